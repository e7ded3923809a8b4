//! The suite every [`ArchiveStore`] engine passes; engines call
//! [`run_all`] from their own tests. Compiled for this crate's tests and with
//! the `test-util` feature only.

use serde_json::json;

use crate::model::{
    ArchiveBatch, ArchivedGift, ArchivedMessage, ArchivedPoll, ArchivedRoom, CounterMinute,
    MemberSession, Participation, RoomAccess,
};
use crate::store::{ArchiveStore, HistoryQuery, MAX_PAGE, RoomStats};

/// Every test, each on its own room ids (prefixed by `prefix`) so engines
/// may share one database.
pub async fn run_all(store: &dyn ArchiveStore, prefix: &str) {
    unknown_rooms_are_empty(store, &format!("{prefix}-unknown")).await;
    batches_are_idempotent(store, &format!("{prefix}-idem")).await;
    history_pages_by_seq(store, &format!("{prefix}-hist")).await;
    replay_pages_by_offset(store, &format!("{prefix}-replay")).await;
    room_rows_round_trip(store, &format!("{prefix}-room")).await;
    side_tables_upsert(store, &format!("{prefix}-side")).await;
    archived_rooms_are_listed_by_end(store, &format!("{prefix}-list")).await;
    analytics_tables_upsert_and_add_up(store, &format!("{prefix}-analytics")).await;
}

/// A room starting at 1,000,000 ms.
pub fn room(id: &str) -> ArchivedRoom {
    ArchivedRoom {
        id: id.to_owned(),
        title: "Friday night 🎧".into(),
        owner: Some("host".into()),
        kind: "public".into(),
        created_at_ms: 999_000,
        started_at_ms: Some(1_000_000),
        ended_at_ms: Some(1_600_000),
        summary: json!({"comments": 3, "peak": 2, "reactions": {"👏": 4}}),
        archived_at_ms: None,
        access: RoomAccess {
            invited: vec!["guest".into(), "ゲスト".into()],
            kicked: vec!["troll".into()],
        },
    }
}

/// Message `seq`, sent `seq` seconds after the start.
pub fn message(seq: u64) -> ArchivedMessage {
    ArchivedMessage {
        seq,
        kind: if seq.is_multiple_of(10) {
            "gift"
        } else {
            "comment"
        }
        .into(),
        priority: (seq % 3) as i32,
        sender: format!("u{}", seq % 7),
        // Not UTF-8 on purpose: payloads are opaque bytes.
        payload: vec![0xff, 0x00, (seq % 256) as u8],
        sent_at_ms: 1_000_000 + seq * 1000,
        offset_ms: (seq * 1000) as i64,
    }
}

fn batch(room: &str, seqs: impl IntoIterator<Item = u64>) -> ArchiveBatch {
    ArchiveBatch {
        room: room.to_owned(),
        messages: seqs.into_iter().map(message).collect(),
        ..ArchiveBatch::default()
    }
}

fn seqs(page: &[ArchivedMessage]) -> Vec<u64> {
    page.iter().map(|m| m.seq).collect()
}

/// Reads of a room never archived find nothing; marking it fails softly.
pub async fn unknown_rooms_are_empty(store: &dyn ArchiveStore, id: &str) {
    assert_eq!(store.room(id).await.expect("room"), None);
    assert_eq!(store.last_seq(id).await.expect("last_seq"), 0);
    let page = store
        .history(
            id,
            HistoryQuery {
                limit: 10,
                ..HistoryQuery::default()
            },
        )
        .await
        .expect("history");
    assert!(page.is_empty());
    assert!(store.replay(id, 0, 10).await.expect("replay").is_empty());
    assert!(
        !store.mark_archived(id, 1).await.expect("mark"),
        "no such room"
    );
}

/// Writing overlapping batches again stores each message once, as written.
pub async fn batches_are_idempotent(store: &dyn ArchiveStore, id: &str) {
    store.put_room(&room(id)).await.expect("put_room");
    assert_eq!(
        store.write_batch(&batch(id, 1..=100)).await.expect("write"),
        100
    );
    // A crashed archiver re-sends its last batch and goes on.
    assert_eq!(
        store
            .write_batch(&batch(id, 51..=150))
            .await
            .expect("write"),
        50
    );
    assert_eq!(
        store.write_batch(&batch(id, 1..=150)).await.expect("write"),
        0
    );
    assert_eq!(store.write_batch(&batch(id, [])).await.expect("empty"), 0);
    assert_eq!(store.last_seq(id).await.expect("last_seq"), 150);
    assert_eq!(store.table_counts(id).await.expect("counts").messages, 150);
    let page = store
        .history(
            id,
            HistoryQuery {
                after_seq: Some(0),
                limit: 1000,
                ..HistoryQuery::default()
            },
        )
        .await
        .expect("history");
    assert_eq!(seqs(&page), (1..=150).collect::<Vec<_>>());
    assert_eq!(page[41], message(42), "stored as written, bytes and all");
}

/// `after_seq` pages forward, `before_seq` backward, both bound a range, and
/// limits are clamped; pages are always oldest first.
pub async fn history_pages_by_seq(store: &dyn ArchiveStore, id: &str) {
    store.put_room(&room(id)).await.expect("put_room");
    store
        .write_batch(&batch(id, 1..=1200))
        .await
        .expect("write");
    let q = |before_seq, after_seq, limit| HistoryQuery {
        before_seq,
        after_seq,
        limit,
    };
    let page = store
        .history(id, q(None, Some(10), 3))
        .await
        .expect("after");
    assert_eq!(seqs(&page), [11, 12, 13]);
    let page = store
        .history(id, q(Some(10), None, 3))
        .await
        .expect("before");
    assert_eq!(seqs(&page), [7, 8, 9]);
    let page = store.history(id, q(None, None, 2)).await.expect("newest");
    assert_eq!(seqs(&page), [1199, 1200]);
    let page = store
        .history(id, q(Some(15), Some(10), 100))
        .await
        .expect("range");
    assert_eq!(seqs(&page), [11, 12, 13, 14]);
    let page = store
        .history(id, q(Some(3), None, 100))
        .await
        .expect("start");
    assert_eq!(seqs(&page), [1, 2]);
    let page = store
        .history(id, q(None, Some(1200), 100))
        .await
        .expect("end");
    assert!(page.is_empty());
    let page = store
        .history(id, q(None, Some(0), 5000))
        .await
        .expect("clamped");
    assert_eq!(page.len(), MAX_PAGE, "limits are cut to MAX_PAGE");
    let page = store.history(id, q(None, Some(0), 0)).await.expect("zero");
    assert_eq!(seqs(&page), [1], "a zero limit still returns one");
}

/// Replay returns messages from an offset on, by offset then seq.
pub async fn replay_pages_by_offset(store: &dyn ArchiveStore, id: &str) {
    store.put_room(&room(id)).await.expect("put_room");
    let mut b = batch(id, 1..=20);
    // Two messages in the same millisecond, and one before the start.
    b.messages[4].offset_ms = 4000;
    b.messages[19].offset_ms = -500;
    store.write_batch(&b).await.expect("write");
    let page = store.replay(id, 0, 4).await.expect("replay");
    assert_eq!(seqs(&page), [1, 2, 3, 4]);
    let page = store.replay(id, 3500, 3).await.expect("replay");
    assert_eq!(seqs(&page), [4, 5, 6]);
    assert_eq!(page[1].offset_ms, 4000);
    let page = store.replay(id, -1000, 1).await.expect("replay");
    assert_eq!(seqs(&page), [20]);
    let page = store.replay(id, 19_000, 10).await.expect("replay");
    assert_eq!(seqs(&page), [19]);
    assert!(
        store
            .replay(id, 20_000, 10)
            .await
            .expect("replay")
            .is_empty()
    );
}

/// The room row comes back as written; re-putting updates it but keeps the
/// archive mark, and the mark's first time stays.
pub async fn room_rows_round_trip(store: &dyn ArchiveStore, id: &str) {
    let mut r = room(id);
    store.put_room(&r).await.expect("put_room");
    assert_eq!(store.room(id).await.expect("room"), Some(r.clone()));
    assert!(store.mark_archived(id, 2_000_000).await.expect("mark"));
    assert!(
        store
            .mark_archived(id, 3_000_000)
            .await
            .expect("mark again")
    );
    r.summary = json!({"comments": 4});
    r.owner = None;
    r.access.invited.push("late".into());
    store.put_room(&r).await.expect("put_room again");
    let got = store.room(id).await.expect("room").expect("present");
    assert_eq!(got.archived_at_ms, Some(2_000_000));
    assert_eq!(got.origin_ms(), 1_000_000);
    assert_eq!(got.access, r.access, "the access lists are replaced");
    assert_eq!((got.summary, got.owner), (json!({"comments": 4}), None));
}

/// Participation, polls, gifts and counters are upserted by their keys.
pub async fn side_tables_upsert(store: &dyn ArchiveStore, id: &str) {
    store.put_room(&room(id)).await.expect("put_room");
    let member = |uid: &str, left| Participation {
        uid: uid.into(),
        role: "listener".into(),
        joined_at_ms: 1_000_100,
        left_at_ms: left,
    };
    let poll = |tallies: Vec<u64>, closed| ArchivedPoll {
        poll_id: "p1".into(),
        question: "Tea or coffee?".into(),
        options: vec!["tea".into(), "coffee".into()],
        tallies,
        opened_by: "host".into(),
        opened_at_ms: 1_000_500,
        closed_at_ms: closed,
    };
    let gift = |seq| ArchivedGift {
        seq,
        uid: "u1".into(),
        gift_id: "rose".into(),
        count: 3,
        value: 30,
        sent_at_ms: 1_001_000,
    };
    let first = ArchiveBatch {
        room: id.into(),
        members: vec![member("a", None), member("b", None)],
        polls: vec![poll(vec![1, 0], None)],
        gifts: vec![gift(10), gift(20)],
        counters: vec![("likes".into(), 5), ("r:👏".into(), 2)],
        ..ArchiveBatch::default()
    };
    store.write_batch(&first).await.expect("write");
    let second = ArchiveBatch {
        room: id.into(),
        members: vec![member("a", Some(1_600_000))],
        polls: vec![poll(vec![2, 1], Some(1_500_000))],
        gifts: vec![gift(20), gift(30)],
        counters: vec![("likes".into(), 9)],
        ..ArchiveBatch::default()
    };
    store.write_batch(&second).await.expect("write again");
    let counts = store.table_counts(id).await.expect("counts");
    assert_eq!(
        (counts.members, counts.polls, counts.gifts, counts.counters),
        (2, 1, 3, 2)
    );
}

/// `rooms_ended_since` lists completely archived rooms ended at or after a
/// time, by end time; rooms still being archived are left out.
pub async fn archived_rooms_are_listed_by_end(store: &dyn ArchiveStore, prefix: &str) {
    // Far in the future, so other tests' rooms (ended at 1,600,000) stay out.
    let base = 4_000_000_000_000;
    for (i, ended) in [
        (1, base + 30),
        (2, base + 10),
        (3, base + 20),
        (4, base + 5),
    ] {
        let mut r = room(&format!("{prefix}-{i}"));
        r.ended_at_ms = Some(ended);
        store.put_room(&r).await.expect("put_room");
        if i != 3 {
            store.mark_archived(&r.id, ended + 1).await.expect("mark");
        }
    }
    let listed = store.rooms_ended_since(base + 10).await.expect("list");
    let ids: Vec<String> = listed.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, [format!("{prefix}-2"), format!("{prefix}-1")]);
}

/// Session stays and per-minute counts are upserted by their keys and read
/// back in order; `room_stats` adds up a room (duration, peak, unique
/// listeners, sessions, messages).
pub async fn analytics_tables_upsert_and_add_up(store: &dyn ArchiveStore, id: &str) {
    assert_eq!(store.stats(id).await.expect("stats"), None);
    store.put_room(&room(id)).await.expect("put_room");
    let stay = |uid: &str, session: &str, joined: u64, left: u64| MemberSession {
        uid: uid.into(),
        session: session.into(),
        joined_at_ms: joined,
        left_at_ms: left,
    };
    let minute = |minute: i64, name: &str, value: u64| CounterMinute {
        minute_ms: (1_000_000 + minute * 60_000) as u64,
        minute,
        name: name.into(),
        value,
    };
    let first = ArchiveBatch {
        room: id.into(),
        messages: (1..=4).map(message).collect(),
        counters: vec![("peak".into(), 3), ("unique_listeners".into(), 5)],
        sessions: vec![
            stay("b", "s1", 1_000_200, 1_100_000),
            stay("a", "s1", 1_000_100, 1_600_000),
            // The same uid and session again later: another stay.
            stay("a", "s1", 1_200_000, 1_300_000),
        ],
        minutes: vec![
            minute(0, "likes", 4),
            minute(0, "r:👏", 1),
            minute(2, "likes", 7),
        ],
        ..ArchiveBatch::default()
    };
    store.write_batch(&first).await.expect("write");
    // A redelivered batch with a stay that since got a later leave.
    let again = ArchiveBatch {
        sessions: vec![stay("b", "s1", 1_000_200, 1_150_000)],
        minutes: vec![minute(2, "likes", 8)],
        messages: Vec::new(),
        counters: Vec::new(),
        ..first.clone()
    };
    store.write_batch(&again).await.expect("write again");

    let counts = store.table_counts(id).await.expect("counts");
    assert_eq!((counts.sessions, counts.minutes), (3, 3));
    assert_eq!(
        store.sessions(id).await.expect("sessions"),
        [
            stay("a", "s1", 1_000_100, 1_600_000),
            stay("b", "s1", 1_000_200, 1_150_000),
            stay("a", "s1", 1_200_000, 1_300_000),
        ]
    );
    assert_eq!(
        store.counter_minutes(id).await.expect("minutes"),
        [
            minute(0, "likes", 4),
            minute(0, "r:👏", 1),
            minute(2, "likes", 8)
        ]
    );
    assert_eq!(
        store.stats(id).await.expect("stats"),
        Some(RoomStats {
            duration_ms: Some(600_000),
            peak_concurrency: Some(3),
            unique_listeners: Some(5),
            sessions: 3,
            messages: 4,
        })
    );
}
