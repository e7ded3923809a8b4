//! Room state beyond membership: lifecycle records, guarded transitions
//! (stage, moderation, polls), counters, slow mode, pages, blocks, and exact
//! results under concurrency. The same expectations on every engine, so the
//! Redis scripts and the reference semantics of `RoomDoc::apply` agree.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use proto::client::v1::Code;

use crate::domain::poll::{PollDef, PollState};
use crate::domain::room::{Mute, NewRoom, Role, RoomState, StageRole};
use crate::domain::rules::{self, Action, Plan};
use crate::domain::state::RoomRead;
use crate::domain::transition::{Applied, Effect};
use crate::error::StoreError;
use crate::store::engine::{
    AudienceSet, CounterBatch, MemberEntry, MemberFilter, RoomStore, counter,
};

/// Run every state check against `store`.
pub(crate) async fn run_all(store: &dyn RoomStore) {
    scheduled_private_rooms_keep_their_record(store).await;
    joins_refuse_kicked_and_uninvited_and_track_presence(store).await;
    stage_transitions_check_guards_and_apply_effects(store).await;
    polls_count_each_vote_once_and_close_once(store).await;
    lifecycle_transitions_start_end_and_auto_end(store).await;
    counters_add_up_and_report_totals(store).await;
    a_counter_batch_counts_once(store).await;
    slow_mode_spaces_comments(store).await;
    members_page_by_join_time(store).await;
    audience_pages_cover_the_sets(store).await;
    blocks_span_rooms(store).await;
    concurrent_votes_and_hand_raises_are_exact(store).await;
}

async fn create(store: &dyn RoomStore, new: NewRoom) -> String {
    store.create_room(new).await.expect("create").id
}

async fn join(store: &dyn RoomStore, room: &str, uid: &str) -> u32 {
    store
        .member_joined(room, uid, "s1", "conn-state")
        .await
        .unwrap_or_else(|e| panic!("{uid} joins: {e}"))
}

async fn read(store: &dyn RoomStore, room: &str, viewer: Option<&str>) -> RoomRead {
    store
        .read(room, viewer, 100)
        .await
        .expect("read")
        .expect("room exists")
}

/// Apply `plan`; `Ok(changed)` or the refusal code of the failed guard.
async fn apply(store: &dyn RoomStore, room: &str, plan: &Plan) -> Result<bool, (Code, String)> {
    match store.apply(room, &plan.transition()).await.expect("apply") {
        Applied::Done { changed, .. } => Ok(changed),
        Applied::Refused { guard } => {
            let refusal = plan.refusal(guard);
            Err((refusal.code, refusal.message))
        }
    }
}

fn code(result: Result<bool, (Code, String)>) -> Code {
    result.map_or_else(|(code, _)| code, |_| Code::Ok)
}

async fn scheduled_private_rooms_keep_their_record(store: &dyn RoomStore) {
    let new = NewRoom {
        scheduled_at_ms: Some(9_000_000_000_000),
        private: true,
        auto_end_empty_secs: 120,
        invited: vec!["bob".into(), "carol".into()],
        ..NewRoom::titled("Later", Some("alice"))
    };
    let created = store.create_room(new).await.expect("create");
    assert_eq!(created.state, RoomState::Scheduled);
    assert_eq!(
        (created.started_at_ms, created.empty_since_ms),
        (None, None)
    );
    assert_eq!(
        store.get_room(&created.id).await.expect("get"),
        Some(created.clone())
    );
    let lists = store.room_lists(&created.id).await.expect("lists");
    let invited: BTreeSet<String> = lists.invited.into_iter().collect();
    assert_eq!(invited, BTreeSet::from(["bob".into(), "carol".into()]));
    assert!(lists.kicked.is_empty() && lists.moderators.is_empty());
    let state = read(store, &created.id, Some("bob")).await;
    assert_eq!(state.room, created);
    assert_eq!((state.members, state.version), (0, 0));
    let viewer = state.viewer.expect("viewer");
    assert!(viewer.may_enter && !viewer.interested);
    assert_eq!(viewer.stage.role, Role::Listener);
    assert!(
        !read(store, &created.id, Some("dave"))
            .await
            .viewer
            .expect("viewer")
            .may_enter
    );
    assert_eq!(store.read("r-missing", None, 10).await.expect("read"), None);
    let missing = store
        .apply("r-missing", &rules::interest("bob").transition())
        .await;
    assert!(
        matches!(missing, Err(StoreError::RoomNotFound(_))),
        "{missing:?}"
    );
}

async fn joins_refuse_kicked_and_uninvited_and_track_presence(store: &dyn RoomStore) {
    let private = NewRoom {
        private: true,
        invited: vec!["bob".into()],
        ..NewRoom::titled("Private", Some("alice"))
    };
    let id = create(store, private).await;
    let created = store.get_room(&id).await.expect("get").expect("room");
    assert_eq!(
        created.empty_since_ms,
        Some(created.created_at_ms),
        "live and empty"
    );
    let refused = store.member_joined(&id, "mallory", "s1", "c").await;
    assert!(
        matches!(refused, Err(StoreError::NotInvited { .. })),
        "{refused:?}"
    );
    assert_eq!(
        join(store, &id, "alice").await,
        1,
        "the owner needs no invite"
    );
    assert_eq!(join(store, &id, "bob").await, 2);
    assert_eq!(
        store
            .get_room(&id)
            .await
            .expect("get")
            .and_then(|r| r.empty_since_ms),
        None
    );

    let kicked = apply(store, &id, &rules::kick("alice", "bob", 5)).await;
    assert_eq!(kicked, Ok(true));
    assert_eq!(
        store.member_count(&id).await.expect("count"),
        1,
        "kicked out at once"
    );
    let again = store.member_joined(&id, "bob", "s2", "c").await;
    assert!(matches!(again, Err(StoreError::Kicked { .. })), "{again:?}");
    // The kicked session's late leave changes nothing.
    assert_eq!(store.member_left(&id, "bob", "s1").await.expect("leave"), 1);
    assert_eq!(
        store.room_lists(&id).await.expect("lists").kicked,
        vec!["bob".to_owned()]
    );

    let state = read(store, &id, Some("bob")).await;
    assert_eq!(
        (state.members, state.unique_listeners, state.counters.peak),
        (1, 2, 2)
    );
    assert_eq!((state.stage_present, state.kicked_count), (1, 1));
    let bob = state.viewer.expect("viewer").stage;
    assert!(bob.kicked && !bob.member);

    assert_eq!(
        store.member_left(&id, "alice", "s1").await.expect("leave"),
        0
    );
    let emptied = store.get_room(&id).await.expect("get").expect("room");
    assert!(
        emptied.empty_since_ms.is_some(),
        "the last leave marks the room empty"
    );
    join(store, &id, "alice").await;
    assert_eq!(
        store
            .get_room(&id)
            .await
            .expect("get")
            .and_then(|r| r.empty_since_ms),
        None
    );
}

async fn stage_transitions_check_guards_and_apply_effects(store: &dyn RoomStore) {
    let id = create(store, NewRoom::titled("Stage", Some("host"))).await;
    for uid in ["host", "mo", "sam", "lee", "tina"] {
        join(store, &id, uid).await;
    }
    let ok = |r: Result<bool, (Code, String)>| r.expect("allowed");

    // Hands: once per listener, never for the stage, not for strangers.
    assert!(ok(apply(store, &id, &rules::raise_hand("lee", 100)).await));
    assert!(
        !ok(apply(store, &id, &rules::raise_hand("lee", 200)).await),
        "a repeat"
    );
    assert_eq!(
        code(apply(store, &id, &rules::raise_hand("host", 1)).await),
        Code::BadRequest
    );
    assert_eq!(
        code(apply(store, &id, &rules::raise_hand("stranger", 1)).await),
        Code::Forbidden
    );
    assert!(ok(apply(store, &id, &rules::raise_hand("tina", 300)).await));

    // Promote mo; invite sam (no hand) and lee (hand up).
    assert_eq!(
        code(apply(store, &id, &rules::promote_moderator("sam", "mo")).await),
        Code::Forbidden,
        "only the host promotes"
    );
    assert!(ok(apply(
        store,
        &id,
        &rules::promote_moderator("host", "mo")
    )
    .await));
    assert_eq!(
        code(apply(store, &id, &rules::invite_speaker("lee", "sam")).await),
        Code::Forbidden
    );
    assert!(ok(
        apply(store, &id, &rules::invite_speaker("mo", "sam")).await
    ));
    assert!(
        !ok(apply(store, &id, &rules::invite_speaker("host", "sam")).await),
        "invited once"
    );
    assert!(ok(
        apply(store, &id, &rules::invite_speaker("mo", "lee")).await
    ));
    assert_eq!(
        code(apply(store, &id, &rules::invite_speaker("mo", "ghost")).await),
        Code::BadRequest,
        "not in the room"
    );
    assert!(ok(apply(store, &id, &rules::accept_invite("sam")).await));
    assert!(ok(apply(store, &id, &rules::decline_invite("lee")).await));
    assert_eq!(
        code(apply(store, &id, &rules::accept_invite("lee")).await),
        Code::BadRequest
    );

    // Mutes: sam joined the stage muted; a moderator mute cannot be lifted by sam.
    assert!(ok(apply(store, &id, &rules::unmute("sam", None)).await));
    assert!(ok(apply(store, &id, &rules::mute("mo", Some("sam"))).await));
    assert_eq!(
        code(apply(store, &id, &rules::unmute("sam", None)).await),
        Code::Forbidden
    );
    assert_eq!(
        code(apply(store, &id, &rules::mute("sam", None)).await),
        Code::BadRequest
    );
    assert_eq!(
        code(apply(store, &id, &rules::mute("mo", Some("host"))).await),
        Code::Forbidden
    );
    assert_eq!(
        code(apply(store, &id, &rules::mute("lee", None)).await),
        Code::Forbidden
    );

    let state = read(store, &id, Some("sam")).await;
    assert_eq!(state.with_role(StageRole::Moderator), ["mo"]);
    assert_eq!(state.with_role(StageRole::Speaker), ["sam"]);
    assert_eq!(
        state.hands,
        [("lee".to_owned(), 100), ("tina".to_owned(), 300)]
    );
    assert_eq!(state.hands_count, 2);
    assert!(state.invites.is_empty());
    assert_eq!(
        state.muted,
        BTreeMap::from([
            ("sam".to_owned(), Mute::Moderator),
            ("mo".to_owned(), Mute::SelfMuted)
        ])
    );
    assert_eq!(state.stage_present, 3);
    // Changes so far: 2 hands, promote, 2 invites, accept, decline, unmute, mute.
    assert_eq!(state.version, 9);
    let sam = state.viewer.expect("viewer").stage;
    assert_eq!(
        (sam.role, sam.muted, sam.hand_raised_at_ms),
        (Role::Speaker, Some(Mute::Moderator), None)
    );

    // The before/after report of a lift: moderator mute → self mute.
    let lift = rules::unmute("mo", Some("sam")).transition();
    let Applied::Done {
        changed,
        version,
        before,
        after,
    } = store.apply(&id, &lift).await.expect("apply")
    else {
        panic!("lift refused");
    };
    assert!(changed);
    assert_eq!(version, 10);
    assert_eq!(before.and_then(|b| b.muted), Some(Mute::Moderator));
    assert_eq!(after.and_then(|a| a.muted), Some(Mute::SelfMuted));

    // Moderators cannot move moderators; the host can. Stepping down clears the mute.
    assert!(ok(apply(
        store,
        &id,
        &rules::promote_moderator("host", "sam")
    )
    .await));
    assert_eq!(
        code(apply(store, &id, &rules::move_to_audience("mo", "sam")).await),
        Code::Forbidden
    );
    assert!(ok(apply(
        store,
        &id,
        &rules::demote_moderator("host", "sam")
    )
    .await));
    assert!(ok(
        apply(store, &id, &rules::move_to_audience("mo", "sam")).await
    ));
    assert_eq!(
        code(apply(store, &id, &rules::step_down("sam")).await),
        Code::BadRequest
    );
    assert_eq!(
        code(apply(store, &id, &rules::step_down("host")).await),
        Code::BadRequest
    );
    assert!(ok(apply(store, &id, &rules::step_down("mo")).await));
    assert!(ok(apply(
        store,
        &id,
        &rules::lower_hand("host", Some("tina"))
    )
    .await));
    assert!(
        !ok(apply(store, &id, &rules::lower_hand("sam", None)).await),
        "no hand: no change"
    );
    let slow = rules::moderate(
        "host",
        Action::SlowMode,
        vec![Effect::SlowMode { secs: 30 }],
    );
    assert!(ok(apply(store, &id, &slow).await));

    let state = read(store, &id, None).await;
    assert!(state.roles.is_empty(), "{:?}", state.roles);
    assert!(state.muted.is_empty(), "{:?}", state.muted);
    assert_eq!(state.hands, [("lee".to_owned(), 100)]);
    assert_eq!(state.room.slow_mode_secs, 30);
    assert_eq!(state.stage_present, 1);
    assert_eq!(state.listeners(), 4);
    assert_eq!(
        store.room_lists(&id).await.expect("lists").moderators,
        Vec::<String>::new()
    );
}

fn poll_def(id: &str, closes_at_ms: Option<u64>) -> PollDef {
    PollDef {
        id: id.into(),
        question: "Tea or coffee?".into(),
        options: vec!["tea".into(), "coffee".into(), "water".into()],
        opened_by: "host".into(),
        opened_at_ms: 1_000,
        closes_at_ms,
    }
}

async fn polls_count_each_vote_once_and_close_once(store: &dyn RoomStore) {
    let id = create(store, NewRoom::titled("Polls", Some("host"))).await;
    join(store, &id, "host").await;
    let def = poll_def("pA", None);
    assert_eq!(
        code(apply(store, &id, &rules::poll_open("bob", &def, 2)).await),
        Code::Forbidden
    );
    assert_eq!(
        apply(store, &id, &rules::poll_open("host", &def, 2)).await,
        Ok(true)
    );
    assert_eq!(
        apply(store, &id, &rules::poll_open("host", &def, 2)).await,
        Ok(false),
        "same id"
    );
    let timed = poll_def("pB", Some(50_000));
    assert_eq!(
        apply(store, &id, &rules::poll_open("host", &timed, 2)).await,
        Ok(true)
    );
    let third = poll_def("pC", None);
    assert_eq!(
        code(apply(store, &id, &rules::poll_open("host", &third, 2)).await),
        Code::BadRequest
    );

    assert_eq!(
        apply(store, &id, &rules::vote("bob", "pA", 1, 10)).await,
        Ok(true)
    );
    assert_eq!(
        apply(store, &id, &rules::vote("carol", "pA", 1, 10)).await,
        Ok(true)
    );
    assert_eq!(
        apply(store, &id, &rules::vote("dave", "pA", 2, 10)).await,
        Ok(true)
    );
    let double = apply(store, &id, &rules::vote("bob", "pA", 0, 10)).await;
    assert_eq!(
        double.map_err(|e| e.1),
        Err("you already voted in poll pA".into())
    );
    assert_eq!(
        code(apply(store, &id, &rules::vote("erin", "pA", 3, 10)).await),
        Code::BadRequest
    );
    assert_eq!(
        code(apply(store, &id, &rules::vote("erin", "pZ", 0, 10)).await),
        Code::BadRequest
    );
    assert_eq!(
        apply(store, &id, &rules::vote("erin", "pB", 0, 49_999)).await,
        Ok(true)
    );
    let late = apply(store, &id, &rules::vote("frank", "pB", 0, 50_000)).await;
    assert_eq!(
        late.map_err(|e| e.1),
        Err("poll pB is closed".into()),
        "its timer ran out"
    );

    let state = read(store, &id, Some("bob")).await;
    assert_eq!(state.polls.len(), 2);
    let a = &state.polls[0];
    assert_eq!(
        (a.def.id.as_str(), &a.tallies, a.votes, a.state),
        ("pA", &vec![0, 2, 1], 3, PollState::Open)
    );
    assert_eq!(a.def, def);
    assert_eq!(
        state.viewer.expect("viewer").votes,
        BTreeMap::from([("pA".to_owned(), 1)])
    );

    assert_eq!(
        apply(store, &id, &rules::poll_close(Some("host"), "pA", 77)).await,
        Ok(true)
    );
    assert_eq!(
        apply(store, &id, &rules::poll_close(None, "pA", 88)).await,
        Ok(false),
        "once"
    );
    assert_eq!(
        code(apply(store, &id, &rules::vote("erin", "pA", 0, 90)).await),
        Code::BadRequest
    );
    // A slot is free again.
    assert_eq!(
        apply(store, &id, &rules::poll_open("host", &third, 2)).await,
        Ok(true)
    );
    let state = read(store, &id, None).await;
    let a = state.polls.iter().find(|p| p.def.id == "pA").expect("pA");
    assert_eq!(
        (a.state, a.closed_at_ms, a.winners()),
        (PollState::Closed, Some(77), vec![1])
    );
}

async fn lifecycle_transitions_start_end_and_auto_end(store: &dyn RoomStore) {
    let later = NewRoom {
        scheduled_at_ms: Some(5),
        auto_end_empty_secs: 1,
        ..NewRoom::titled("Soon", Some("host"))
    };
    let id = create(store, later).await;
    assert_eq!(apply(store, &id, &rules::interest("fan")).await, Ok(true));
    assert_eq!(apply(store, &id, &rules::interest("fan")).await, Ok(false));
    assert_eq!(
        code(apply(store, &id, &rules::start_room(Some("fan"), 10)).await),
        Code::Forbidden
    );
    assert_eq!(
        code(apply(store, &id, &rules::vote("fan", "p", 0, 1)).await),
        Code::BadRequest,
        "not live yet"
    );
    assert_eq!(
        apply(store, &id, &rules::start_room(Some("host"), 10)).await,
        Ok(true)
    );
    assert_eq!(
        code(apply(store, &id, &rules::start_room(None, 11)).await),
        Code::BadRequest
    );
    assert_eq!(
        code(apply(store, &id, &rules::interest("fan2")).await),
        Code::BadRequest
    );
    let started = store.get_room(&id).await.expect("get").expect("room");
    assert_eq!(
        (started.state, started.started_at_ms, started.empty_since_ms),
        (RoomState::Live, Some(10), Some(10)),
        "started empty"
    );
    // Empty for 1 s as of 1,009 ms? No; as of 1,010 ms: yes.
    assert_eq!(
        code(apply(store, &id, &rules::auto_end(1_000, 1_009)).await),
        Code::BadRequest
    );
    join(store, &id, "host").await;
    assert_eq!(
        code(apply(store, &id, &rules::auto_end(1_000, 99_999)).await),
        Code::BadRequest,
        "occupied"
    );
    store.member_left(&id, "host", "s1").await.expect("leave");
    let since = store
        .get_room(&id)
        .await
        .expect("get")
        .and_then(|r| r.empty_since_ms)
        .expect("empty");
    assert_eq!(
        apply(store, &id, &rules::auto_end(1_000, since + 1_000)).await,
        Ok(true)
    );
    let ended = store.get_room(&id).await.expect("get").expect("room");
    assert_eq!(
        (ended.state, ended.ended_at_ms),
        (RoomState::Ended, Some(since + 1_000))
    );
    assert_eq!(
        code(apply(store, &id, &rules::end_room(Some("host"), 1)).await),
        Code::RoomEnded
    );
    assert_eq!(
        code(apply(store, &id, &rules::raise_hand("host", 1)).await),
        Code::RoomEnded
    );
    let (_, interested) = store
        .audience_page(&id, AudienceSet::Interested, 0, 10)
        .await
        .expect("page");
    assert_eq!(interested, ["fan"]);

    let other = create(store, NewRoom::titled("Now", Some("host"))).await;
    assert_eq!(
        code(apply(store, &other, &rules::end_room(Some("guest"), 1)).await),
        Code::Forbidden
    );
    assert_eq!(
        apply(store, &other, &rules::end_room(None, 1)).await,
        Ok(true)
    );
}

async fn counters_add_up_and_report_totals(store: &dyn RoomStore) {
    let id = create(store, NewRoom::titled("Counts", None)).await;
    let first = store
        .add_counters(
            &id,
            &[(counter::LIKES.into(), 100), (counter::reaction("❤️"), 2)],
            None,
        )
        .await
        .expect("add")
        .expect("room");
    assert_eq!((first.likes, first.reactions_total()), (100, 2));
    let second = store
        .add_counters(
            &id,
            &[
                (counter::LIKES.into(), 5),
                (counter::COMMENTS.into(), 3),
                (counter::GIFTS.into(), 2),
                (counter::GIFT_VALUE.into(), 40),
                (counter::reaction("👏"), 1),
            ],
            None,
        )
        .await
        .expect("add")
        .expect("room");
    assert_eq!(
        (
            second.likes,
            second.comments,
            second.gifts,
            second.gift_value
        ),
        (105, 3, 2, 40)
    );
    assert_eq!(
        second.reactions,
        BTreeMap::from([("❤️".to_owned(), 2), ("👏".to_owned(), 1)])
    );
    assert_eq!(read(store, &id, None).await.counters, second);
    let none = store
        .add_counters("r-missing", &[(counter::LIKES.into(), 1)], None)
        .await;
    assert_eq!(none.expect("add"), None, "no counters for unknown rooms");
}

async fn a_counter_batch_counts_once(store: &dyn RoomStore) {
    let id = create(store, NewRoom::titled("Batches", None)).await;
    let likes = |n: u64| [(counter::LIKES.to_owned(), n)];
    let batch = |writer, seq| Some(CounterBatch { writer, seq });
    let add = |deltas: [(String, u64); 1], batch| {
        let id = id.clone();
        async move {
            store
                .add_counters(&id, &deltas, batch)
                .await
                .expect("add")
                .expect("room")
                .likes
        }
    };
    assert_eq!(add(likes(10), batch("node-a", 1)).await, 10);
    // The same batch again (its first reply was lost): counted once, totals back.
    assert_eq!(add(likes(10), batch("node-a", 1)).await, 10);
    assert_eq!(add(likes(5), batch("node-a", 2)).await, 15);
    // An older number from the same writer is a late duplicate.
    assert_eq!(add(likes(10), batch("node-a", 1)).await, 15);
    // Writers number their batches independently.
    assert_eq!(add(likes(1), batch("node-b", 1)).await, 16);
    // Without a batch every write counts.
    assert_eq!(add(likes(2), None).await, 18);
    assert_eq!(add(likes(2), None).await, 20);
    assert_eq!(read(store, &id, None).await.counters.likes, 20);
}

async fn slow_mode_spaces_comments(store: &dyn RoomStore) {
    let id = create(store, NewRoom::titled("Slow", None)).await;
    assert_eq!(
        store
            .slow_comment(&id, "bob", 10, 1_000)
            .await
            .expect("slow"),
        None
    );
    assert_eq!(
        store
            .slow_comment(&id, "bob", 10, 4_000)
            .await
            .expect("slow"),
        Some(7_000)
    );
    assert_eq!(
        store
            .slow_comment(&id, "carol", 10, 4_000)
            .await
            .expect("slow"),
        None
    );
    assert_eq!(
        store
            .slow_comment(&id, "bob", 10, 11_000)
            .await
            .expect("slow"),
        None
    );
    let missing = store.slow_comment("r-missing", "bob", 10, 1).await;
    assert!(
        matches!(missing, Err(StoreError::RoomNotFound(_))),
        "{missing:?}"
    );
}

async fn members_page_by_join_time(store: &dyn RoomStore) {
    let id = create(store, NewRoom::titled("Pages", Some("u0"))).await;
    for n in 0..7 {
        join(store, &id, &format!("u{n}")).await;
    }
    apply(store, &id, &rules::invite_speaker("u0", "u3"))
        .await
        .expect("invite");
    apply(store, &id, &rules::accept_invite("u3"))
        .await
        .expect("accept");
    let mut all = Vec::new();
    let mut after: Option<MemberEntry> = None;
    loop {
        let page = store
            .members_page(&id, MemberFilter::All, after.as_ref(), 3)
            .await
            .expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last().cloned() else {
            break;
        };
        all.extend(page);
        after = Some(last);
    }
    let uids: Vec<&str> = all.iter().map(|m| m.uid.as_str()).collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "by join time, then uid");
    assert_eq!(uids.len(), 7);
    assert_eq!(
        uids.iter().collect::<BTreeSet<_>>().len(),
        7,
        "no repeats: {uids:?}"
    );
    let listeners = store
        .members_page(&id, MemberFilter::Listeners, None, 100)
        .await
        .expect("page");
    let listeners: BTreeSet<String> = listeners.into_iter().map(|m| m.uid).collect();
    let want: BTreeSet<String> = ["u1", "u2", "u4", "u5", "u6"].map(String::from).into();
    assert_eq!(listeners, want, "not the host, not the speaker");
}

async fn audience_pages_cover_the_sets(store: &dyn RoomStore) {
    let invited: Vec<String> = (0..25).map(|n| format!("guest{n}")).collect();
    let new = NewRoom {
        scheduled_at_ms: Some(1),
        invited: invited.clone(),
        ..NewRoom::titled("Audience", Some("host"))
    };
    let id = create(store, new).await;
    for n in 0..30 {
        apply(store, &id, &rules::interest(&format!("fan{n}")))
            .await
            .expect("interest");
    }
    for (set, want) in [(AudienceSet::Invited, 25), (AudienceSet::Interested, 30)] {
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        loop {
            let (next, page) = store
                .audience_page(&id, set, cursor, 7)
                .await
                .expect("page");
            seen.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), want, "{set:?}");
    }
    let state = read(store, &id, Some("fan3")).await;
    assert_eq!(state.interest_count, 30);
    assert!(state.viewer.expect("viewer").interested);
}

async fn blocks_span_rooms(store: &dyn RoomStore) {
    assert!(!store.is_blocked("hostB", "troll").await.expect("check"));
    store
        .set_blocked("hostB", "troll", true)
        .await
        .expect("block");
    store
        .set_blocked("hostB", "spammer", true)
        .await
        .expect("block");
    assert!(store.is_blocked("hostB", "troll").await.expect("check"));
    assert!(
        !store.is_blocked("hostC", "troll").await.expect("check"),
        "per host"
    );
    store
        .set_blocked("hostB", "spammer", false)
        .await
        .expect("unblock");
    assert_eq!(store.blocked_by("hostB").await.expect("list"), ["troll"]);
    assert!(store.blocked_by("hostC").await.expect("list").is_empty());
}

/// 1,000 simultaneous votes (plus a second, conflicting vote from 200 of the
/// voters) and 1,000 simultaneous hand raises (plus 200 repeats): every first
/// vote counted once, no second vote counted, every hand up once.
pub(crate) async fn concurrent_votes_and_hand_raises_are_exact(store: &dyn RoomStore) {
    const USERS: usize = 1000;
    let id = create(store, NewRoom::titled("Crowd", Some("host"))).await;
    let uids: Vec<String> = (0..USERS).map(|n| format!("fan{n:04}")).collect();
    join_all(uids.iter().map(|uid| join(store, &id, uid))).await;
    let def = PollDef {
        options: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        ..poll_def("pCrowd", None)
    };
    apply(store, &id, &rules::poll_open("host", &def, 5))
        .await
        .expect("open");

    // Every user votes once; every fifth user also sends a conflicting second
    // ballot at the same time. Every fifth user raises their hand twice.
    let ballots: Vec<(String, u32)> = uids
        .iter()
        .enumerate()
        .flat_map(|(n, uid)| {
            let mut mine = vec![(uid.clone(), (n % 4) as u32)];
            if n % 5 == 0 {
                mine.push((uid.clone(), ((n + 1) % 4) as u32));
            }
            mine
        })
        .collect();
    let raises = uids.iter().enumerate().flat_map(|(n, uid)| {
        if n % 5 == 0 {
            vec![uid, uid]
        } else {
            vec![uid]
        }
    });
    let room = id.as_str();
    let vote_results = join_all(ballots.iter().map(|(uid, option)| {
        let plan = rules::vote(uid, "pCrowd", *option, 10);
        async move { apply(store, room, &plan).await }
    }));
    let raise_results = join_all(raises.map(|uid| {
        let plan = rules::raise_hand(uid, 10);
        async move { apply(store, room, &plan).await }
    }));
    let (vote_results, raise_results) = tokio::join!(vote_results, raise_results);
    let id = id.as_str();

    let mut accepted: BTreeMap<&str, u32> = BTreeMap::new();
    let mut want = vec![0_u64; 4];
    let mut refused = 0;
    for ((uid, option), result) in ballots.iter().zip(&vote_results) {
        match result {
            Ok(true) => {
                assert!(
                    accepted.insert(uid, *option).is_none(),
                    "{uid} counted twice"
                );
                want[*option as usize] += 1;
            }
            Err((Code::BadRequest, message)) if message.contains("already voted") => refused += 1,
            other => panic!("{uid}: {other:?}"),
        }
    }
    assert_eq!(
        (accepted.len(), refused),
        (USERS, USERS / 5),
        "one vote each"
    );
    let raised = raise_results.iter().filter(|r| r == &&Ok(true)).count();
    let repeats = raise_results.iter().filter(|r| r == &&Ok(false)).count();
    assert_eq!((raised, repeats), (USERS, USERS / 5));

    let state = store
        .read(id, None, USERS)
        .await
        .expect("read")
        .expect("room");
    let poll = &state.polls[0];
    assert_eq!(poll.votes, USERS as u64);
    assert_eq!(poll.tallies, want, "tallies match the accepted ballots");
    assert_eq!(state.hands_count, USERS as u64);
    assert_eq!(state.hands.len(), USERS);
    assert_eq!(
        state.version,
        1 + 2 * USERS as u64,
        "open + one change per vote and hand"
    );
}
