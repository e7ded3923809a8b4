//! The behaviour every [`RoomStore`] engine must have, as async checks over
//! `&dyn RoomStore`. Each engine's tests call [`run_all`] on a fresh store
//! (memory, standalone Redis, Redis Cluster), so the engines cannot drift apart.
//!
//! Every check creates its own rooms and uses its own node ids, so the checks
//! can share one store.

use std::collections::BTreeMap;

use futures::future::join_all;

mod ledger;
mod state;

use super::engine::{NewRoom, Room, RoomState, RoomStore, SessionLeft, counter};
use crate::error::StoreError;

/// Run every check against `store`, in order.
pub async fn run_all(store: &dyn RoomStore) {
    created_rooms_are_live_and_readable(store).await;
    members_are_distinct_uids_across_sessions(store).await;
    a_member_leaves_with_its_last_session(store).await;
    unknown_rooms_cannot_be_joined_but_can_be_left(store).await;
    ending_a_room_is_idempotent(store).await;
    deleting_a_room_forgets_it_and_only_it(store).await;
    removing_a_node_drops_exactly_its_sessions(store).await;
    a_session_that_moved_node_survives_its_old_node(store).await;
    concurrent_joins_and_leaves_leave_exact_counts(store).await;
    token_revocations_only_move_forward(store).await;
    sessions_and_minutes_are_kept_for_analytics(store).await;
    state::run_all(store).await;
    ledger::run_all(&*store.ledger()).await;
}

async fn room(store: &dyn RoomStore, owner: Option<&str>) -> Room {
    store
        .create_room(NewRoom {
            owner: owner.map(Into::into),
            ..NewRoom::titled("Late show", None)
        })
        .await
        .expect("create")
}

async fn join(store: &dyn RoomStore, room: &str, uid: &str, session: &str, node: &str) -> u32 {
    store
        .member_joined(room, uid, session, node)
        .await
        .unwrap_or_else(|e| panic!("join {uid}/{session} via {node}: {e}"))
}

async fn leave(store: &dyn RoomStore, room: &str, uid: &str, session: &str) -> u32 {
    store
        .member_left(room, uid, session)
        .await
        .unwrap_or_else(|e| panic!("leave {uid}/{session}: {e}"))
}

async fn count(store: &dyn RoomStore, room: &str) -> u32 {
    store.member_count(room).await.expect("count")
}

/// Rooms created are live, read back equal, and get distinct ids.
pub(crate) async fn created_rooms_are_live_and_readable(store: &dyn RoomStore) {
    let created = room(store, Some("alice")).await;
    assert_eq!(created.state, RoomState::Live);
    assert_eq!(created.owner.as_deref(), Some("alice"));
    assert!(created.created_at_ms > 0);
    assert_eq!(
        store.get_room(&created.id).await.expect("get"),
        Some(created.clone())
    );
    let ownerless = room(store, None).await;
    assert_ne!(ownerless.id, created.id);
    assert_eq!(
        store.get_room(&ownerless.id).await.expect("get"),
        Some(ownerless),
        "no owner reads back as none"
    );
    assert_eq!(store.get_room("r-missing").await.expect("get"), None);
}

/// A uid counts once whatever its sessions; it stops counting with its last.
pub(crate) async fn members_are_distinct_uids_across_sessions(store: &dyn RoomStore) {
    let id = room(store, Some("alice")).await.id;
    assert_eq!(join(store, &id, "bob", "s1", "conn-a").await, 1);
    // A second device of the same user does not add a member.
    assert_eq!(join(store, &id, "bob", "s2", "conn-a").await, 1);
    // Re-joining on the same session is idempotent.
    assert_eq!(join(store, &id, "bob", "s2", "conn-a").await, 1);
    assert_eq!(join(store, &id, "carol", "s3", "conn-a").await, 2);
    // The same session id under another uid is another session.
    assert_eq!(join(store, &id, "dave", "s3", "conn-a").await, 3);
    assert_eq!(count(store, &id).await, 3);

    // bob is still present on s2 after s1 leaves.
    assert_eq!(leave(store, &id, "bob", "s1").await, 3);
    assert_eq!(leave(store, &id, "bob", "s2").await, 2);
    assert_eq!(leave(store, &id, "bob", "s2").await, 2, "leaving twice");
    assert_eq!(leave(store, &id, "nobody", "s9").await, 2, "never joined");
    assert_eq!(
        leave(store, &id, "carol", "s1").await,
        2,
        "another uid's session id is not carol's"
    );
    assert_eq!(leave(store, &id, "carol", "s3").await, 1);
    assert_eq!(leave(store, &id, "dave", "s3").await, 0);
    // A session without a node is an ordinary member.
    assert_eq!(join(store, &id, "erin", "s5", "").await, 1);
    assert_eq!(leave(store, &id, "erin", "s5").await, 0);
}

/// A leave says whether it was the uid's last session: presence announces a
/// member leaving once, not once per session.
pub(crate) async fn a_member_leaves_with_its_last_session(store: &dyn RoomStore) {
    let id = room(store, Some("alice")).await.id;
    join(store, &id, "bob", "s1", "conn-a").await;
    join(store, &id, "bob", "s2", "conn-b").await;
    join(store, &id, "carol", "s3", "conn-a").await;
    let left = |uid: &'static str, session: &'static str| {
        let id = id.clone();
        async move {
            store
                .member_session_left(&id, uid, session)
                .await
                .unwrap_or_else(|e| panic!("leave {uid}/{session}: {e}"))
        }
    };
    let still = |members| SessionLeft {
        members,
        member_gone: false,
    };
    let gone = |members| SessionLeft {
        members,
        member_gone: true,
    };
    assert_eq!(left("bob", "s1").await, still(2), "bob is still on s2");
    assert_eq!(left("bob", "s2").await, gone(1), "bob's last session");
    assert_eq!(left("bob", "s2").await, still(1), "leaving twice");
    assert_eq!(left("nobody", "s9").await, still(1), "never joined");
    assert_eq!(left("carol", "s3").await, gone(0));
    let unknown = store
        .member_session_left("no-such-room", "bob", "s1")
        .await
        .expect("leaving an unknown room");
    assert!(!unknown.member_gone);
}

/// Unknown rooms refuse joins (typed error), and leaving or counting them is fine.
pub(crate) async fn unknown_rooms_cannot_be_joined_but_can_be_left(store: &dyn RoomStore) {
    let err = store
        .member_joined("r-missing", "bob", "s1", "conn-a")
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, StoreError::RoomNotFound(ref r) if r == "r-missing"),
        "{err}"
    );
    assert_eq!(leave(store, "r-missing", "bob", "s1").await, 0);
    assert_eq!(count(store, "r-missing").await, 0);
}

/// Ending is idempotent, keeps the room readable, and is reported for unknown rooms.
pub(crate) async fn ending_a_room_is_idempotent(store: &dyn RoomStore) {
    let created = room(store, Some("alice")).await;
    let ended = store
        .end_room(&created.id)
        .await
        .expect("end")
        .expect("exists");
    let ended_at = ended.ended_at_ms.expect("end time recorded");
    assert!(ended_at >= created.created_at_ms);
    assert_eq!(
        ended,
        Room {
            state: RoomState::Ended,
            ended_at_ms: Some(ended_at),
            ..created.clone()
        }
    );
    let again = store.end_room(&created.id).await.expect("end again");
    assert_eq!(
        again.map(|r| r.ended_at_ms),
        Some(Some(ended_at)),
        "first end time kept"
    );
    let read = store.get_room(&created.id).await.expect("get");
    assert_eq!(read.map(|r| r.state), Some(RoomState::Ended));
    assert_eq!(store.end_room("r-missing").await.expect("end"), None);
}

/// Deleting a room (after its archive) forgets it and all its state, leaves
/// other rooms alone, and is idempotent.
pub(crate) async fn deleting_a_room_forgets_it_and_only_it(store: &dyn RoomStore) {
    let gone = room(store, Some("alice")).await.id;
    let kept = room(store, Some("alice")).await.id;
    join(store, &gone, "bob", "s1", "conn-del-1").await;
    join(store, &kept, "bob", "s2", "conn-del-1").await;
    store
        .add_counters(&gone, &[("likes".to_owned(), 3)], None)
        .await
        .expect("counters");
    store.end_room(&gone).await.expect("end");
    assert!(store.delete_room(&gone).await.expect("delete"));
    assert_eq!(store.get_room(&gone).await.expect("get"), None);
    assert!(store.read(&gone, None, 10).await.expect("read").is_none());
    assert_eq!(count(store, &gone).await, 0);
    assert!(!store.delete_room(&gone).await.expect("delete again"));
    assert_eq!(count(store, &kept).await, 1, "other rooms stay");
    // Its conn node dying later finds nothing of the deleted room to drop.
    let changed = store.remove_node("conn-del-1").await.expect("remove node");
    assert_eq!(changed, vec![(kept.clone(), 0)]);
}

/// `remove_node` drops the sessions its node held in every room, nothing else,
/// reports each changed room with its new count, and is idempotent.
pub(crate) async fn removing_a_node_drops_exactly_its_sessions(store: &dyn RoomStore) {
    let (dead, live) = ("conn-dead-1", "conn-live-1");
    let one = room(store, None).await.id;
    let two = room(store, None).await.id;
    let untouched = room(store, None).await.id;
    // Room one: alice on both nodes (stays), bob only on the dead one (goes),
    // carol on the dead one twice (goes), dave on the live one.
    join(store, &one, "alice", "a1", dead).await;
    join(store, &one, "alice", "a2", live).await;
    join(store, &one, "bob", "b1", dead).await;
    join(store, &one, "carol", "c1", dead).await;
    join(store, &one, "carol", "c2", dead).await;
    assert_eq!(join(store, &one, "dave", "d1", live).await, 4);
    // Room two: everyone was on the dead node.
    join(store, &two, "bob", "b2", dead).await;
    assert_eq!(join(store, &two, "erin", "e1", dead).await, 2);
    // A session that already left is not reported again.
    join(store, &untouched, "frank", "f1", dead).await;
    leave(store, &untouched, "frank", "f1").await;
    assert_eq!(join(store, &untouched, "gina", "g1", live).await, 1);

    let mut changed = store.remove_node(dead).await.expect("remove");
    changed.sort();
    let mut expected = vec![(one.clone(), 2), (two.clone(), 0)];
    expected.sort();
    assert_eq!(changed, expected);
    assert_eq!(count(store, &one).await, 2);
    assert_eq!(count(store, &two).await, 0);
    assert_eq!(count(store, &untouched).await, 1);

    assert_eq!(
        store.remove_node(dead).await.expect("remove again"),
        Vec::new(),
        "idempotent"
    );
    assert_eq!(
        store.remove_node("conn-never-seen").await.expect("unknown"),
        Vec::new()
    );
    assert_eq!(store.remove_node("").await.expect("empty"), Vec::new());
    // The survivors leave normally; alice's dead session is already gone.
    assert_eq!(leave(store, &one, "alice", "a1").await, 2);
    assert_eq!(leave(store, &one, "alice", "a2").await, 1);
    assert_eq!(leave(store, &one, "dave", "d1").await, 0);
}

/// A session that rejoined through another node belongs to that node now.
pub(crate) async fn a_session_that_moved_node_survives_its_old_node(store: &dyn RoomStore) {
    let id = room(store, None).await.id;
    join(store, &id, "bob", "s1", "conn-old-2").await;
    assert_eq!(join(store, &id, "bob", "s1", "conn-new-2").await, 1);
    assert_eq!(
        store.remove_node("conn-old-2").await.expect("remove old"),
        Vec::new()
    );
    assert_eq!(count(store, &id).await, 1);
    assert_eq!(
        store.remove_node("conn-new-2").await.expect("remove new"),
        vec![(id.clone(), 0)]
    );
}

/// Hundreds of joins and leaves at once, with duplicate sessions and second
/// devices mixed in, leave exact counts.
pub(crate) async fn concurrent_joins_and_leaves_leave_exact_counts(store: &dyn RoomStore) {
    const USERS: usize = 500;
    let id = room(store, None).await.id;
    let uid = |i: usize| format!("user-{i}");
    // Every user joins on s1; every user joins s1 again (duplicate); every
    // third user also joins from a second device.
    let joins = (0..USERS)
        .flat_map(|i| {
            let mut sessions = vec![(i, "s1"), (i, "s1")];
            if i % 3 == 0 {
                sessions.push((i, "s2"));
            }
            sessions
        })
        .map(|(i, session)| {
            let (id, uid) = (id.clone(), uid(i));
            let node = if i % 2 == 0 {
                "conn-even-3"
            } else {
                "conn-odd-3"
            };
            async move { store.member_joined(&id, &uid, session, node).await }
        });
    let counts = join_all(joins).await;
    let counts: Vec<u32> = counts.into_iter().collect::<Result<_, _>>().expect("joins");
    assert_eq!(count(store, &id).await, USERS as u32);
    assert_eq!(counts.iter().max().copied(), Some(USERS as u32));

    // Users 0..250 leave s1 (twice each, concurrently); those with a second
    // device stay.
    let leaves = (0..USERS / 2).flat_map(|i| [i, i]).map(|i| {
        let (id, uid) = (id.clone(), uid(i));
        async move { store.member_left(&id, &uid, "s1").await }
    });
    join_all(leaves)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("leaves");
    let stayed = (0..USERS / 2).filter(|i| i % 3 == 0).count();
    let expected = USERS - USERS / 2 + stayed;
    assert_eq!(count(store, &id).await, expected as u32);

    // The even node dies: its users' sessions go, the odd node's stay.
    let changed = store.remove_node("conn-even-3").await.expect("remove");
    let odd_left = (USERS / 2..USERS).filter(|i| i % 2 == 1).count()
        + (0..USERS / 2).filter(|i| i % 2 == 1 && i % 3 == 0).count();
    assert_eq!(
        changed.into_iter().collect::<BTreeMap<_, _>>(),
        BTreeMap::from([(id.clone(), odd_left as u32)])
    );
    assert_eq!(count(store, &id).await, odd_left as u32);
}

/// A revocation is per uid, readable at once, and never moves back.
pub(crate) async fn token_revocations_only_move_forward(store: &dyn RoomStore) {
    let uid = format!("revoked-{}", crate::ids::random_base62(8));
    let other = format!("{uid}-other");
    assert_eq!(store.tokens_revoked_before(&uid).await.expect("read"), None);
    store
        .revoke_tokens(&uid, 2_000_000_000, 3600)
        .await
        .expect("revoke");
    assert_eq!(
        store.tokens_revoked_before(&uid).await.expect("read"),
        Some(2_000_000_000)
    );
    store
        .revoke_tokens(&uid, 1_900_000_000, 3600)
        .await
        .expect("late revoke");
    assert_eq!(
        store.tokens_revoked_before(&uid).await.expect("read"),
        Some(2_000_000_000),
        "an older revocation arriving late does not undo a newer one"
    );
    store
        .revoke_tokens(&uid, 2_000_000_100, 3600)
        .await
        .expect("newer revoke");
    assert_eq!(
        store.tokens_revoked_before(&uid).await.expect("read"),
        Some(2_000_000_100)
    );
    assert_eq!(
        store.tokens_revoked_before(&other).await.expect("read"),
        None
    );
}

/// Every session's stay (join to leave, by session, through leaves and a
/// dead node alike) and likes and reactions per minute are kept for the
/// archive; other counters are not counted per minute; a deleted room has
/// none.
pub(crate) async fn sessions_and_minutes_are_kept_for_analytics(store: &dyn RoomStore) {
    let before = common::time::now_ms();
    let id = room(store, Some("alice")).await.id;
    join(store, &id, "bob", "b1", "conn-an-1").await;
    join(store, &id, "bob", "b2", "conn-an-2").await;
    // Re-joining a session keeps its first join time.
    join(store, &id, "bob", "b1", "conn-an-1").await;
    join(store, &id, "carol\tx", "c1", "conn-an-2").await;
    join(store, &id, "dave", "d1", "conn-an-1").await;
    leave(store, &id, "bob", "b1").await;
    leave(store, &id, "bob", "b1").await;
    store.remove_node("conn-an-2").await.expect("remove node");
    store
        .add_counters(
            &id,
            &[
                (counter::LIKES.into(), 5),
                (counter::reaction("👏"), 2),
                (counter::COMMENTS.into(), 9),
            ],
            None,
        )
        .await
        .expect("count");
    store
        .add_counters(&id, &[(counter::LIKES.into(), 1)], None)
        .await
        .expect("count");
    let after = common::time::now_ms();

    let got = store.analytics(&id).await.expect("analytics");
    let mut closed: Vec<(&str, &str)> = got
        .stays
        .iter()
        .filter(|s| s.left_at_ms.is_some())
        .map(|s| (s.uid.as_str(), s.session.as_str()))
        .collect();
    closed.sort_unstable();
    assert_eq!(
        closed,
        [("bob", "b1"), ("bob", "b2"), ("carol\tx", "c1")],
        "one stay per session that left, leaving twice once"
    );
    let open: Vec<(&str, &str)> = got
        .stays
        .iter()
        .filter(|s| s.left_at_ms.is_none())
        .map(|s| (s.uid.as_str(), s.session.as_str()))
        .collect();
    assert_eq!(open, [("dave", "d1")]);
    for stay in &got.stays {
        assert!(
            before <= stay.joined_at_ms && stay.joined_at_ms <= after,
            "{stay:?}"
        );
        if let Some(left) = stay.left_at_ms {
            assert!(stay.joined_at_ms <= left && left <= after, "{stay:?}");
        }
    }
    // Both additions fall in one or two minutes; their sums are exact.
    let sum = |name: &str| -> u64 {
        got.minutes
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.count)
            .sum()
    };
    assert_eq!((sum("likes"), sum("r:👏"), sum("comments")), (6, 2, 0));
    for m in &got.minutes {
        assert_eq!(m.minute_ms % 60_000, 0, "{m:?}");
        assert!(counter::minute_of(before) <= m.minute_ms && m.minute_ms <= after);
    }

    store.delete_room(&id).await.expect("delete");
    assert_eq!(
        store.analytics(&id).await.expect("analytics"),
        Default::default(),
        "gone with the room"
    );
}
