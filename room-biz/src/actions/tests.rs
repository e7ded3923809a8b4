//! The action table end to end on the memory store with a recording pusher:
//! the authorization matrix (every action × every kind of user, in a live,
//! a scheduled and an ended room), the events each change pushes, and the
//! action path under concurrency on memory and Redis.

use std::sync::Arc;

use proto::client::v1::{Code, Priority};
use room_store::domain::poll::PollDef;
use room_store::domain::rules;
use room_store::{MemoryRoomStore, NewRoom};
use serde_json::{Value, json};

use super::*;
use crate::test_util::{RecordingPusher, backends, backends_on};

/// The kinds of user the matrix checks, and the uid playing each.
const ACTORS: [(&str, &str); 7] = [
    ("host", "host"),
    ("moderator", "mod"),
    ("speaker", "spk"),
    ("listener", "lis"),
    ("stranger", "str"),
    ("kicked", "kik"),
    ("blocked", "blk"),
];

const O: Code = Code::Ok;
const F: Code = Code::Forbidden;
const B: Code = Code::BadRequest;

/// The documented matrix of a live public room (docs/room-api.md): action,
/// payload, and the answer for host, moderator, speaker, listener, stranger,
/// kicked, blocked.
fn live_matrix() -> Vec<(&'static str, Value, [Code; 7])> {
    vec![
        ("raise_hand", json!({}), [B, B, B, O, F, F, F]),
        ("lower_hand", json!({}), [O, O, O, O, O, F, F]),
        ("lower_hand", json!({"uid": "tgt"}), [O, O, F, F, F, F, F]),
        (
            "invite_speaker",
            json!({"uid": "tgt"}),
            [O, O, F, F, F, F, F],
        ),
        ("accept_invite", json!({}), [B, B, B, O, F, F, F]),
        ("decline_invite", json!({}), [B, B, B, O, B, F, F]),
        (
            "move_to_audience",
            json!({"uid": "spk2"}),
            [O, O, F, F, F, F, F],
        ),
        ("step_down", json!({}), [B, O, O, B, B, F, F]),
        (
            "promote_moderator",
            json!({"uid": "tgt"}),
            [O, F, F, F, F, F, F],
        ),
        (
            "demote_moderator",
            json!({"uid": "mod2"}),
            [O, F, F, F, F, F, F],
        ),
        ("mute", json!({}), [O, O, O, F, F, F, F]),
        ("mute", json!({"uid": "spk2"}), [O, O, F, F, F, F, F]),
        ("unmute", json!({}), [O, O, O, F, F, F, F]),
        ("unmute", json!({"uid": "spk2"}), [O, O, F, F, F, F, F]),
        ("kick", json!({"uid": "tgt"}), [O, O, F, F, F, F, F]),
        ("block", json!({"uid": "tgt"}), [O, F, F, F, F, F, F]),
        ("remove_comment", json!({"seq": 1}), [O, O, F, F, F, F, F]),
        ("slow_mode", json!({"seconds": 5}), [O, O, F, F, F, F, F]),
        ("comment", json!({"text": "hi"}), [O, O, O, O, O, F, F]),
        ("like", json!({"count": 3}), [O, O, O, O, O, F, F]),
        ("react", json!({"emoji": "❤️"}), [O, O, O, O, O, F, F]),
        (
            "gift",
            json!({"gift_id": "rose", "count": 1}),
            [O, O, O, O, O, F, F],
        ),
        (
            "poll_open",
            json!({"question": "Tea?", "options": ["yes", "no"]}),
            [O, O, F, F, F, F, F],
        ),
        (
            "vote",
            json!({"poll_id": "pSetup", "option": 0}),
            [O, O, O, O, O, F, F],
        ),
        (
            "poll_close",
            json!({"poll_id": "pSetup"}),
            [O, O, F, F, F, F, F],
        ),
        ("end_room", json!({}), [O, F, F, F, F, F, F]),
        ("interest", json!({}), [B, B, B, B, B, F, F]),
        ("start_room", json!({}), [B, F, F, F, F, F, F]),
    ]
}

/// What changes in a scheduled room: hands, interest and the stage work,
/// content does not, and the host may start it.
fn scheduled_matrix() -> Vec<(&'static str, Value, [Code; 7])> {
    vec![
        ("raise_hand", json!({}), [B, B, B, O, F, F, F]),
        ("interest", json!({}), [O, O, O, O, O, F, F]),
        (
            "invite_speaker",
            json!({"uid": "tgt"}),
            [O, O, F, F, F, F, F],
        ),
        ("comment", json!({"text": "hi"}), [B, B, B, B, B, F, F]),
        ("like", json!({}), [B, B, B, B, B, F, F]),
        ("gift", json!({"gift_id": "rose"}), [B, B, B, B, B, F, F]),
        (
            "poll_open",
            json!({"question": "Tea?", "options": ["yes", "no"]}),
            [B, B, F, F, F, F, F],
        ),
        ("start_room", json!({}), [O, F, F, F, F, F, F]),
        ("end_room", json!({}), [O, F, F, F, F, F, F]),
    ]
}

async fn act(
    b: &Backends,
    table: &ActionTable,
    room: &str,
    uid: &str,
    action: &str,
    payload: &Value,
) -> Result<Value, Refusal> {
    let payload = payload.to_string();
    let call = ActionCall {
        uid,
        room,
        session_id: "s1",
        payload: payload.as_bytes(),
    };
    let body = table.dispatch(b, action, call).await?;
    Ok(serde_json::from_slice(&body).expect("reply body is JSON"))
}

async fn ok(
    b: &Backends,
    table: &ActionTable,
    room: &str,
    uid: &str,
    action: &str,
    payload: Value,
) -> Value {
    act(b, table, room, uid, action, &payload)
        .await
        .unwrap_or_else(|r| panic!("{uid} {action} {payload}: {r:?}"))
}

/// A room with the whole cast: host, moderators `mod` and `mod2`, speakers
/// `spk` and `spk2`, listeners `lis` (invited to speak) and `tgt`, the
/// stranger `str` (never joined), `kik` (kicked), `blk` (blocked by the host
/// in another room), and an open poll `pSetup`.
async fn cast(b: &Backends, table: &ActionTable, scheduled: bool) -> String {
    let new = NewRoom {
        // An hour ahead: a scheduled room past its time starts on first use.
        scheduled_at_ms: scheduled.then(|| common::time::now_ms() + 3_600_000),
        ..NewRoom::titled("Matrix", Some("host"))
    };
    let room = b.store.create_room(new).await.expect("create").id;
    for uid in [
        "host", "mod", "mod2", "spk", "spk2", "lis", "tgt", "kik", "blk",
    ] {
        b.store
            .member_joined(&room, uid, "s1", "conn-1")
            .await
            .expect("join");
    }
    for uid in ["mod", "mod2"] {
        ok(
            b,
            table,
            &room,
            "host",
            "promote_moderator",
            json!({"uid": uid}),
        )
        .await;
    }
    for uid in ["spk", "spk2", "lis"] {
        ok(
            b,
            table,
            &room,
            "host",
            "invite_speaker",
            json!({"uid": uid}),
        )
        .await;
    }
    for uid in ["spk", "spk2"] {
        ok(b, table, &room, uid, "accept_invite", json!({})).await;
    }
    ok(b, table, &room, "host", "kick", json!({"uid": "kik"})).await;
    b.store
        .set_blocked("host", "blk", true)
        .await
        .expect("block");
    if !scheduled {
        let def = PollDef {
            id: "pSetup".into(),
            question: "Setup?".into(),
            options: vec!["a".into(), "b".into()],
            opened_by: "host".into(),
            opened_at_ms: 1,
            closes_at_ms: None,
        };
        b.rooms
            .apply(&room, &rules::poll_open("host", &def, 5))
            .await
            .expect("open the setup poll");
        // spk2 is muted by a moderator for the "lift" cells.
        ok(b, table, &room, "mod", "mute", json!({"uid": "spk2"})).await;
    }
    room
}

async fn check_matrix(scheduled: bool, matrix: Vec<(&'static str, Value, [Code; 7])>) {
    let b = backends(RecordingPusher::new());
    let table = ActionTable::new(&Config::default()).expect("table");
    let mut mismatches = Vec::new();
    for (action, payload, expected) in &matrix {
        for ((who, uid), want) in ACTORS.iter().zip(expected) {
            // A fresh room per cell: no cell sees another's effects.
            let room = cast(&b, &table, scheduled).await;
            let got = act(&b, &table, &room, uid, action, payload)
                .await
                .map_or_else(|r| r.code, |_| Code::Ok);
            if got != *want {
                mismatches.push(format!(
                    "{action} {payload} by {who}: got {}, documented {}",
                    got.as_str_name(),
                    want.as_str_name()
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test]
async fn the_authorization_matrix_of_a_live_room_holds() {
    let matrix = live_matrix();
    let covered: std::collections::BTreeSet<&str> = matrix.iter().map(|(a, _, _)| *a).collect();
    let every: std::collections::BTreeSet<&str> =
        rules::Action::ALL.iter().map(|a| a.name()).collect();
    assert_eq!(covered, every, "every action is in the matrix");
    check_matrix(false, matrix).await;
}

#[tokio::test]
async fn the_authorization_matrix_of_a_scheduled_room_holds() {
    check_matrix(true, scheduled_matrix()).await;
}

#[tokio::test]
async fn everything_is_refused_once_the_room_ended() {
    let b = backends(RecordingPusher::new());
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = cast(&b, &table, false).await;
    ok(&b, &table, &room, "host", "end_room", json!({})).await;
    for (action, payload, _) in live_matrix() {
        for (who, uid) in ACTORS {
            let got = act(&b, &table, &room, uid, action, &payload).await;
            assert_eq!(
                got.map_err(|r| r.code).err(),
                Some(Code::RoomEnded),
                "{action} by {who} after the end"
            );
        }
    }
    let err = act(&b, &table, "rNope", "host", "raise_hand", &json!({})).await;
    assert_eq!(err.map_err(|r| r.code).err(), Some(Code::RoomNotFound));
}

/// (kind, priority, durable) of everything pushed to `room` after `skip`.
fn pushed(pusher: &RecordingPusher, room: &str, skip: usize) -> Vec<(String, i32, bool, Value)> {
    pusher
        .sent()
        .into_iter()
        .filter(|s| s.room == room)
        .skip(skip)
        .map(|s| {
            let body = serde_json::from_slice(&s.body).unwrap_or_default();
            (s.kind, s.priority, s.durable, body)
        })
        .collect()
}

fn count(pusher: &RecordingPusher, room: &str) -> usize {
    pusher.sent().iter().filter(|s| s.room == room).count()
}

const HIGH: i32 = Priority::High as i32;

#[tokio::test]
async fn stage_changes_push_high_priority_durable_events_with_whole_user_state() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = b
        .store
        .create_room(NewRoom::titled("Stage", Some("host")))
        .await
        .expect("create")
        .id;
    for uid in ["host", "mo", "bob"] {
        b.store
            .member_joined(&room, uid, "s1", "c")
            .await
            .expect("join");
    }
    let seen = count(&pusher, &room);
    let reply = ok(&b, &table, &room, "bob", "raise_hand", json!({})).await;
    assert_eq!(reply["changed"], true);
    assert_eq!(reply["user"]["role"], "listener");
    assert!(reply["user"]["hand_raised_at_ms"].as_u64().is_some());
    let again = ok(&b, &table, &room, "bob", "raise_hand", json!({})).await;
    assert_eq!(
        (again["changed"].as_bool(), again["seq"].is_null()),
        (Some(false), true),
        "no event for a repeat"
    );

    ok(
        &b,
        &table,
        &room,
        "host",
        "promote_moderator",
        json!({"uid": "mo"}),
    )
    .await;
    ok(
        &b,
        &table,
        &room,
        "mo",
        "invite_speaker",
        json!({"uid": "bob"}),
    )
    .await;
    let users = pusher.sent_users();
    let invite = users.last().expect("a user push");
    assert_eq!(
        (invite.uids.as_slice(), invite.kind.as_str()),
        (&["bob".to_owned()][..], "speak_invite")
    );
    ok(&b, &table, &room, "bob", "accept_invite", json!({})).await;
    ok(&b, &table, &room, "mo", "mute", json!({"uid": "bob"})).await;
    let refused = act(&b, &table, &room, "bob", "unmute", &json!({})).await;
    assert_eq!(
        refused.map_err(|r| r.code).err(),
        Some(Code::Forbidden),
        "moderator mutes hold"
    );
    ok(&b, &table, &room, "host", "kick", json!({"uid": "bob"})).await;

    let events = pushed(&pusher, &room, seen);
    let kinds: Vec<&str> = events.iter().map(|(k, _, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "hand_raised",
            "role_changed",
            "speaker_invited",
            "role_changed",
            "mute_changed",
            "member_kicked"
        ]
    );
    for (kind, priority, durable, body) in &events {
        assert_eq!((*priority, *durable), (HIGH, true), "{kind}");
        assert!(body["v"].as_u64().is_some(), "{kind}: {body}");
        assert_eq!(body["user"]["uid"], body["uid"], "{kind}: {body}");
    }
    let accepted = &events[3].3;
    assert_eq!(
        (
            accepted["reason"].as_str(),
            accepted["role"].as_str(),
            accepted["previous"].as_str()
        ),
        (Some("accepted_invite"), Some("speaker"), Some("listener"))
    );
    assert_eq!(
        accepted["user"]["muted"], "self",
        "new speakers start muted"
    );
    assert_eq!(
        accepted["user"]["hand_raised_at_ms"],
        Value::Null,
        "the hand went down"
    );
    assert_eq!(events[4].3["muted"], "moderator");
    assert_eq!(events[5].3["blocked"], false);
    let versions: Vec<u64> = events.iter().filter_map(|e| e.3["v"].as_u64()).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions grow: {versions:?}"
    );
    assert_eq!(
        pusher.sent_users().last().map(|u| u.kind.as_str()),
        Some("kicked")
    );
    // Typed: conn nodes end the room's fan-out to the kicked user from this.
    assert_eq!(
        pusher
            .sent_users()
            .last()
            .and_then(|u| u.removal.as_ref())
            .map(|r| r.room.as_str()),
        Some(room.as_str())
    );

    // The kicked user is out and cannot come back.
    assert_eq!(b.store.member_count(&room).await.expect("count"), 2);
    let rejoin =
        crate::join::authorize(&b.rooms, &room, "bob", "s2", "c", crate::join::Entry::Join).await;
    assert!(
        matches!(rejoin, Err(crate::error::JoinError::Forbidden(_))),
        "{rejoin:?}"
    );
    let comment = act(
        &b,
        &table,
        &room,
        "bob",
        "comment",
        &json!({"text": "back!"}),
    )
    .await;
    assert_eq!(comment.map_err(|r| r.code).err(), Some(Code::Forbidden));
}

#[tokio::test]
async fn blocks_keep_users_out_of_every_room_of_the_host() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let first = b
        .store
        .create_room(NewRoom::titled("One", Some("host")))
        .await
        .expect("create")
        .id;
    let second = b
        .store
        .create_room(NewRoom::titled("Two", Some("host")))
        .await
        .expect("create")
        .id;
    let elsewhere = b
        .store
        .create_room(NewRoom::titled("Other", Some("eve")))
        .await
        .expect("create")
        .id;
    b.store
        .member_joined(&first, "troll", "s1", "c")
        .await
        .expect("join");
    let reply = ok(&b, &table, &first, "host", "block", json!({"uid": "troll"})).await;
    assert_eq!(reply["user"]["uid"], "troll");
    let (kind, _, _, body) = pushed(&pusher, &first, 0).pop().expect("event");
    assert_eq!(
        (kind.as_str(), body["blocked"].as_bool()),
        ("member_kicked", Some(true))
    );
    assert_eq!(b.store.member_count(&first).await.expect("count"), 0);
    for room in [&first, &second] {
        let join =
            crate::join::authorize(&b.rooms, room, "troll", "s2", "c", crate::join::Entry::Join)
                .await;
        assert!(
            matches!(join, Err(crate::error::JoinError::Forbidden(_))),
            "{join:?}"
        );
        let like = act(&b, &table, room, "troll", "like", &json!({})).await;
        assert_eq!(like.map_err(|r| r.code).err(), Some(Code::Forbidden));
    }
    crate::join::authorize(
        &b.rooms,
        &elsewhere,
        "troll",
        "s3",
        "c",
        crate::join::Entry::Join,
    )
    .await
    .expect("other hosts' rooms are open");
}

#[tokio::test]
async fn comments_removals_slow_mode_and_gifts() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = b
        .store
        .create_room(NewRoom::titled("Chat", Some("host")))
        .await
        .expect("create")
        .id;
    let seq = ok(
        &b,
        &table,
        &room,
        "bob",
        "comment",
        json!({"text": "first"}),
    )
    .await["seq"]
        .clone();
    let removed = ok(
        &b,
        &table,
        &room,
        "host",
        "remove_comment",
        json!({"seq": seq}),
    )
    .await;
    assert_eq!(removed["removed"], seq);
    let (kind, priority, durable, body) = pushed(&pusher, &room, 1).remove(0);
    assert_eq!(
        (kind.as_str(), priority, durable),
        ("comment_removed", HIGH, true)
    );
    assert_eq!(
        (body["seq"].clone(), body["by"].as_str()),
        (seq, Some("host"))
    );

    ok(
        &b,
        &table,
        &room,
        "host",
        "slow_mode",
        json!({"seconds": 30}),
    )
    .await;
    ok(&b, &table, &room, "bob", "comment", json!({"text": "one"})).await;
    let second = act(&b, &table, &room, "bob", "comment", &json!({"text": "two"})).await;
    let second = second.expect_err("slow mode");
    assert_eq!(second.code, Code::RateLimited);
    assert!(
        second.message.starts_with("slow mode"),
        "{}",
        second.message
    );
    ok(
        &b,
        &table,
        &room,
        "host",
        "comment",
        json!({"text": "hosts are exempt"}),
    )
    .await;
    ok(
        &b,
        &table,
        &room,
        "host",
        "comment",
        json!({"text": "still exempt"}),
    )
    .await;
    let too_slow = act(
        &b,
        &table,
        &room,
        "host",
        "slow_mode",
        &json!({"seconds": 3601}),
    )
    .await;
    assert_eq!(too_slow.map_err(|r| r.code).err(), Some(Code::BadRequest));

    let gift = ok(
        &b,
        &table,
        &room,
        "carol",
        "gift",
        json!({"gift_id": "star", "count": 3}),
    )
    .await;
    let (kind, priority, durable, body) = pushed(&pusher, &room, 0).pop().expect("gift");
    assert_eq!((kind.as_str(), priority, durable), ("gift", HIGH, true));
    assert_eq!(gift["seq"], pusher.events(&room).len());
    assert_eq!(
        body,
        json!({"uid": "carol", "gift_id": "star", "name": "Star", "count": 3, "value": 10, "total_value": 30})
    );
    // The client claims a value: the catalog's counts, not the claim.
    ok(
        &b,
        &table,
        &room,
        "carol",
        "gift",
        json!({"gift_id": "rose", "count": 1, "value": 10_000_000_000_000_u64}),
    )
    .await;
    let (_, _, _, body) = pushed(&pusher, &room, 0).pop().expect("gift");
    assert_eq!(
        (body["value"].as_u64(), body["total_value"].as_u64()),
        (Some(1), Some(1))
    );
    let unknown = act(
        &b,
        &table,
        &room,
        "carol",
        "gift",
        &json!({"gift_id": "diamond-of-1e13", "count": 1}),
    )
    .await
    .expect_err("not in the catalog");
    assert_eq!(unknown.code, Code::BadRequest);
    assert!(
        unknown.message.contains("unknown gift"),
        "{}",
        unknown.message
    );
    b.rooms.counters.flush().await;
    let summary = b
        .rooms
        .read(&room, None)
        .await
        .expect("read")
        .summary_json(0);
    assert_eq!(
        (summary["gifts"].as_u64(), summary["gift_value"].as_u64()),
        (Some(4), Some(31)),
        "3 stars at 10 and a rose at 1; the claimed value and the unknown gift count nothing"
    );
    assert_eq!(summary["comments"], 4, "counted once flushed");
    let bad = act(
        &b,
        &table,
        &room,
        "carol",
        "gift",
        &json!({"gift_id": "rose", "count": 0}),
    )
    .await;
    assert_eq!(bad.map_err(|r| r.code).err(), Some(Code::BadRequest));
}

#[tokio::test]
async fn likes_and_reactions_are_aggregated_and_pushed_as_ephemeral_totals() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = b
        .store
        .create_room(NewRoom::titled("Hearts", None))
        .await
        .expect("create")
        .id;
    for uid in ["a", "b", "c"] {
        ok(&b, &table, &room, uid, "like", json!({"count": 10})).await;
        ok(&b, &table, &room, uid, "react", json!({"emoji": "🔥"})).await;
    }
    assert_eq!(count(&pusher, &room), 0, "nothing pushed per like");
    let flushed = b.rooms.counters.flush().await;
    assert_eq!(flushed.writes, 1, "one store write for the whole window");
    let totals = pusher.ephemerals(&room);
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].0, "totals");
    assert_eq!(
        totals[0].1,
        json!({"likes": 30, "reactions": {"🔥": 3}, "reactions_total": 3})
    );
    assert_eq!(
        b.rooms.counters.flush().await.writes,
        0,
        "nothing new, nothing written"
    );

    for (payload, code) in [
        (json!({"count": 0}), Code::BadRequest),
        (json!({"count": 101}), Code::BadRequest),
        (json!({"count": "many"}), Code::BadRequest),
    ] {
        let got = act(&b, &table, &room, "a", "like", &payload).await;
        assert_eq!(got.map_err(|r| r.code).err(), Some(code), "{payload}");
    }
    // A kind outside the configured set is refused and takes no slot.
    for junk in ["x", "💩", "zz"] {
        let got = act(&b, &table, &room, "a", "react", &json!({ "emoji": junk })).await;
        assert_eq!(
            got.map_err(|r| r.code).err(),
            Some(Code::BadRequest),
            "{junk}"
        );
    }
    ok(&b, &table, &room, "b", "react", json!({"emoji": "❤️"})).await;
    b.rooms.counters.flush().await;
    let summary = b
        .rooms
        .read(&room, None)
        .await
        .expect("read")
        .summary_json(0);
    assert_eq!(
        summary["reactions"]["by_emoji"],
        json!({"🔥": 3, "❤️": 1}),
        "junk kinds never reached the counters"
    );

    let few = Config {
        reaction_kinds_max: 2,
        reactions: vec!["1".into(), "2".into(), "3".into()],
        ..Config::default()
    };
    let limited = backends_on(
        Arc::new(MemoryRoomStore::new()),
        &few,
        RecordingPusher::new(),
    );
    let table = ActionTable::new(&few).expect("table");
    let room = limited
        .store
        .create_room(NewRoom::titled("R", None))
        .await
        .expect("create")
        .id;
    ok(&limited, &table, &room, "a", "react", json!({"emoji": "1"})).await;
    ok(&limited, &table, &room, "a", "react", json!({"emoji": "2"})).await;
    ok(&limited, &table, &room, "b", "react", json!({"emoji": "1"})).await;
    let third = act(
        &limited,
        &table,
        &room,
        "c",
        "react",
        &json!({"emoji": "3"}),
    )
    .await;
    assert_eq!(third.map_err(|r| r.code).err(), Some(Code::BadRequest));
}

#[tokio::test]
async fn polls_push_opened_throttled_tallies_and_one_final_result() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = b
        .store
        .create_room(NewRoom::titled("Quiz", Some("host")))
        .await
        .expect("create")
        .id;
    let opened = ok(
        &b,
        &table,
        &room,
        "host",
        "poll_open",
        json!({"question": "Best?", "options": ["a", "b", "c"], "duration_secs": 60}),
    )
    .await;
    let poll = opened["poll_id"].as_str().expect("poll_id").to_owned();
    assert!(opened["closes_at_ms"].as_u64().is_some());
    let (kind, priority, durable, body) = pushed(&pusher, &room, 0).remove(0);
    assert_eq!(
        (kind.as_str(), priority, durable),
        ("poll_opened", HIGH, true)
    );
    assert_eq!(body["poll"]["tallies"], json!([0, 0, 0]));
    assert_eq!(body["poll"]["state"], "open");

    for (uid, option) in [("a", 0), ("b", 1), ("c", 1)] {
        ok(
            &b,
            &table,
            &room,
            uid,
            "vote",
            json!({"poll_id": poll, "option": option}),
        )
        .await;
    }
    let twice = act(
        &b,
        &table,
        &room,
        "a",
        "vote",
        &json!({"poll_id": poll, "option": 2}),
    )
    .await;
    assert_eq!(twice.map_err(|r| r.code).err(), Some(Code::BadRequest));
    assert!(pusher.ephemerals(&room).is_empty(), "no push per vote");
    b.rooms.push_tallies().await;
    b.rooms.push_tallies().await;
    let tallies = pusher.ephemerals(&room);
    assert_eq!(tallies.len(), 1, "one tally for all the votes");
    assert_eq!(tallies[0].0, "poll_tally");
    assert_eq!(tallies[0].1["tallies"], json!([1, 2, 0]));

    let closed = ok(
        &b,
        &table,
        &room,
        "host",
        "poll_close",
        json!({"poll_id": poll}),
    )
    .await;
    assert_eq!(closed["poll"]["state"], "closed");
    let again = ok(
        &b,
        &table,
        &room,
        "host",
        "poll_close",
        json!({"poll_id": poll}),
    )
    .await;
    assert_eq!(again["seq"], Value::Null, "closed once");
    let finals: Vec<_> = pusher
        .events(&room)
        .into_iter()
        .filter(|(k, _)| k == "poll_closed")
        .collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].1["poll"]["tallies"], json!([1, 2, 0]));
    assert_eq!(finals[0].1["reason"], "closed");
    let late = act(
        &b,
        &table,
        &room,
        "d",
        "vote",
        &json!({"poll_id": poll, "option": 0}),
    )
    .await;
    assert_eq!(late.map_err(|r| r.code).err(), Some(Code::BadRequest));

    let bad = act(
        &b,
        &table,
        &room,
        "host",
        "poll_open",
        &json!({"question": "q", "options": ["only"]}),
    )
    .await;
    assert_eq!(bad.map_err(|r| r.code).err(), Some(Code::BadRequest));
}

#[tokio::test]
async fn scheduled_rooms_start_and_end_with_events_and_user_pushes() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let new = NewRoom {
        scheduled_at_ms: Some(common::time::now_ms() + 3_600_000),
        invited: vec!["guest".into()],
        ..NewRoom::titled("Tonight", Some("host"))
    };
    let room = b.store.create_room(new).await.expect("create").id;
    ok(&b, &table, &room, "fan", "interest", json!({})).await;
    b.store
        .member_joined(&room, "early", "s1", "c")
        .await
        .expect("join");
    ok(&b, &table, &room, "early", "raise_hand", json!({})).await;
    let started = ok(&b, &table, &room, "host", "start_room", json!({})).await;
    assert!(started["started_at_ms"].as_u64().is_some());
    let (kind, priority, durable, _) = pushed(&pusher, &room, 1).remove(0);
    assert_eq!(
        (kind.as_str(), priority, durable),
        ("room_started", HIGH, true)
    );
    let told = pusher
        .sent_users()
        .into_iter()
        .find(|u| u.kind == "room_started")
        .expect("told");
    let mut uids = told.uids.clone();
    uids.sort();
    assert_eq!(uids, ["fan", "guest"]);

    ok(&b, &table, &room, "early", "like", json!({"count": 7})).await;
    ok(
        &b,
        &table,
        &room,
        "early",
        "comment",
        json!({"text": "hello"}),
    )
    .await;
    let polled = ok(
        &b,
        &table,
        &room,
        "host",
        "poll_open",
        json!({"question": "q", "options": ["x", "y"]}),
    )
    .await;
    let ended = ok(&b, &table, &room, "host", "end_room", json!({})).await;
    let summary = &ended["summary"];
    assert_eq!(summary["final"], true);
    assert_eq!(
        (summary["likes"].as_u64(), summary["comments"].as_u64()),
        (Some(7), Some(1)),
        "flushed at the end"
    );
    assert_eq!(summary["unique_listeners"], 1);
    let events = pusher.events(&room);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["poll_closed", "room_ended"],
        "{kinds:?}"
    );
    let (_, poll_closed) = &events[events.len() - 2];
    assert_eq!(
        (
            poll_closed["reason"].as_str(),
            poll_closed["poll"]["poll_id"].as_str()
        ),
        (Some("room_ended"), polled["poll_id"].as_str())
    );
    let (_, end) = events.last().expect("room_ended");
    assert_eq!(
        (end["reason"].as_str(), end["summary"]["likes"].as_u64()),
        (Some("host"), Some(7))
    );
    let after = act(&b, &table, &room, "early", "like", &json!({})).await;
    assert_eq!(after.map_err(|r| r.code).err(), Some(Code::RoomEnded));
}

#[tokio::test]
async fn empty_rooms_end_by_themselves() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let new = NewRoom {
        auto_end_empty_secs: 1,
        ..NewRoom::titled("Brief", Some("host"))
    };
    let room = b.store.create_room(new).await.expect("create").id;
    let members = b
        .store
        .member_joined(&room, "host", "s1", "c")
        .await
        .expect("join");
    assert!(!b.rooms.auto_end(&room).await, "occupied");
    let members = b
        .store
        .member_left(&room, "host", "s1")
        .await
        .expect("leave")
        .min(members);
    b.rooms.left(&room, Some("host"), members).await;
    assert!(!b.rooms.auto_end(&room).await, "not empty long enough yet");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert!(b.rooms.auto_end(&room).await);
    let (kind, end) = pusher.events(&room).pop().expect("room_ended");
    assert_eq!(
        (kind.as_str(), end["reason"].as_str()),
        ("room_ended", Some("empty"))
    );
    let table = ActionTable::new(&Config::default()).expect("table");
    let after = act(&b, &table, &room, "host", "raise_hand", &json!({})).await;
    assert_eq!(after.map_err(|r| r.code).err(), Some(Code::RoomEnded));
}

/// 1,000 users vote and raise hands at once through the action table.
async fn concurrent_actions(b: Backends) {
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = b
        .store
        .create_room(NewRoom::titled("Crowd", Some("host")))
        .await
        .expect("create")
        .id;
    let uids: Vec<String> = (0..1000).map(|n| format!("u{n}")).collect();
    futures::future::join_all(
        uids.iter()
            .map(|u| b.store.member_joined(&room, u, "s1", "c")),
    )
    .await;
    let poll = ok(
        &b,
        &table,
        &room,
        "host",
        "poll_open",
        json!({"question": "q", "options": ["x", "y"]}),
    )
    .await;
    let poll = poll["poll_id"].clone();
    let votes = uids.iter().enumerate().map(|(n, uid)| {
        let payload = json!({"poll_id": poll, "option": n % 2});
        let (b, table, room) = (&b, &table, &room);
        async move {
            let first = act(b, table, room, uid, "vote", &payload).await.is_ok();
            let second = act(b, table, room, uid, "vote", &payload).await.is_ok();
            let hand = act(b, table, room, uid, "raise_hand", &json!({}))
                .await
                .is_ok();
            (first, second, hand)
        }
    });
    let results = futures::future::join_all(votes).await;
    assert!(
        results.iter().all(|r| *r == (true, false, true)),
        "one vote and one hand each"
    );
    let read = b.rooms.read(&room, None).await.expect("read");
    assert_eq!(
        (read.polls[0].tallies.clone(), read.hands_count),
        (vec![500, 500], 1000)
    );
}

#[tokio::test]
async fn concurrent_votes_and_hands_through_the_table_on_memory() {
    concurrent_actions(backends(RecordingPusher::new())).await;
}

#[tokio::test]
async fn concurrent_votes_and_hands_through_the_table_on_redis() {
    let redis = test_servers::RedisServer::start().expect("start redis-server");
    let store = room_store::RedisRoomStore::connect(&[redis.url()], "test:")
        .await
        .expect("connect");
    concurrent_actions(backends_on(
        Arc::new(store),
        &Config::default(),
        RecordingPusher::new(),
    ))
    .await;
}

#[tokio::test]
async fn control_and_bidi_characters_are_refused_in_comments_and_polls() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = b
        .store
        .create_room(NewRoom {
            owner: Some("host".into()),
            ..NewRoom::titled("Text", None)
        })
        .await
        .expect("create")
        .id;
    let attacks = [
        ("comment", json!({"text": "see evil\u{202E}gpj.exe"})),
        ("comment", json!({"text": "isolate\u{2066}x\u{2069}"})),
        ("comment", json!({"text": "bell\u{7}"})),
        (
            "poll_open",
            json!({"question": "Tea\u{202D}?", "options": ["yes", "no"]}),
        ),
        (
            "poll_open",
            json!({"question": "Tea?", "options": ["yes", "n\u{1b}[2Jo"]}),
        ),
    ];
    for (action, payload) in attacks {
        let refusal = act(&b, &table, &room, "host", action, &payload)
            .await
            .expect_err("refused");
        assert_eq!(refusal.code, Code::InvalidText, "{action} {payload}");
        assert!(refusal.message.contains("U+"), "{}", refusal.message);
    }
    assert!(pusher.events(&room).is_empty(), "nothing was published");
    // Ordinary text still goes through, line breaks in comments included.
    ok(
        &b,
        &table,
        &room,
        "host",
        "comment",
        json!({"text": "שלום\nworld 🎉"}),
    )
    .await;
    ok(
        &b,
        &table,
        &room,
        "host",
        "poll_open",
        json!({"question": "お茶?", "options": ["はい", "いいえ"]}),
    )
    .await;
}

#[tokio::test]
async fn a_retried_gift_with_its_request_id_is_sent_and_counted_once() {
    let pusher = RecordingPusher::new();
    let b = backends(pusher.clone());
    let table = ActionTable::new(&Config::default()).expect("table");
    let room = b
        .store
        .create_room(NewRoom::titled("Gifts", Some("host")))
        .await
        .expect("create")
        .id;
    let gift = json!({"gift_id": "star", "count": 2, "request_id": "tap-1"});
    let first = ok(&b, &table, &room, "carol", "gift", gift.clone()).await;
    let retry = ok(&b, &table, &room, "carol", "gift", gift.clone()).await;
    assert_eq!(first, retry, "the retry gets the first reply");
    // The same request id from someone else, or another id, is another gift.
    ok(&b, &table, &room, "dave", "gift", gift).await;
    ok(
        &b,
        &table,
        &room,
        "carol",
        "gift",
        json!({"gift_id": "star", "count": 2, "request_id": "tap-2"}),
    )
    .await;
    let gifts = pusher
        .events(&room)
        .into_iter()
        .filter(|(kind, _)| kind == "gift")
        .count();
    assert_eq!(gifts, 3, "pushed once per request id");
    let summary = b
        .rooms
        .read(&room, None)
        .await
        .expect("read")
        .summary_json(0);
    assert_eq!(
        (summary["gifts"].as_u64(), summary["gift_value"].as_u64()),
        (Some(6), Some(60)),
        "counted once per request id"
    );
    let bad = act(
        &b,
        &table,
        &room,
        "carol",
        "gift",
        &json!({"gift_id": "star", "request_id": "two words"}),
    )
    .await;
    assert_eq!(bad.map_err(|r| r.code).err(), Some(Code::BadRequest));

    // A gift whose push failed gives its id up: the retry sends it.
    let failing = backends_on(
        b.store.clone(),
        &Config::default(),
        RecordingPusher::failing(),
    );
    let lost = act(
        &failing,
        &table,
        &room,
        "erin",
        "gift",
        &json!({"gift_id": "star", "request_id": "tap-9"}),
    )
    .await;
    assert_eq!(lost.map_err(|r| r.code).err(), Some(Code::Unavailable));
    ok(
        &b,
        &table,
        &room,
        "erin",
        "gift",
        json!({"gift_id": "star", "request_id": "tap-9"}),
    )
    .await;
    assert_eq!(
        pusher
            .events(&room)
            .iter()
            .filter(|(k, _)| k == "gift")
            .count(),
        4
    );
}
