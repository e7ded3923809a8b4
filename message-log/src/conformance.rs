//! Conformance tests every [`MessageLog`] engine must pass; engines call them
//! from their own tests. Compiled for this crate's tests and with the
//! `test-util` feature only.

use std::sync::Arc;

use proto::client::v1::RoomMessage;

use crate::MessageLog;

fn msg(text: &str) -> RoomMessage {
    RoomMessage {
        kind: "comment".into(),
        body: text.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

/// Seqs are dense from 1, reads are contiguous, and history is bounded by
/// `max_len` (the engine must have been built with `max_len == 5`).
pub async fn dense_seqs_and_bounded_history(log: &dyn MessageLog, room: &str) {
    let head = log.head(room).await.expect("head");
    assert_eq!(head.last_seq, 0);
    assert_ne!(head.epoch, 0);
    let a = log
        .append(room, &[msg("a"), msg("b")])
        .await
        .expect("append");
    assert_eq!(a.first_seq, 1);
    assert_eq!(a.epoch, head.epoch);
    let b = log.append(room, &[msg("c")]).await.expect("append");
    assert_eq!(b.first_seq, 3);
    let read = log.read_after(room, 1, 10).await.expect("read");
    assert_eq!(read.head_seq, 3);
    assert!(!read.truncated);
    let seqs: Vec<u64> = read.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(read.messages[0].body.as_ref(), b"b");

    for i in 0..10 {
        log.append(room, &[msg(&format!("m{i}"))])
            .await
            .expect("append");
    }
    let read = log.read_after(room, 0, 100).await.expect("read");
    assert!(read.truncated, "history of 5 cannot reach seq 1");
    let seqs: Vec<u64> = read.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![9, 10, 11, 12, 13]);
    let read = log.read_after(room, 8, 2).await.expect("read");
    assert!(!read.truncated);
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![9, 10]
    );
    let read = log.read_after(room, 13, 10).await.expect("read at head");
    assert!(read.messages.is_empty() && !read.truncated);

    log.delete(room).await.expect("delete");
    let fresh = log.head(room).await.expect("head");
    assert_eq!(fresh.last_seq, 0);
    assert_ne!(
        fresh.epoch, head.epoch,
        "a recreated stream has a new epoch"
    );
}

/// Concurrent appenders never get the same seq and leave no hole.
pub async fn concurrent_appends_are_dense(log: Arc<dyn MessageLog>, room: &str) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        let room = room.to_string();
        tasks.push(tokio::spawn(async move {
            let mut firsts = Vec::new();
            for i in 0..25 {
                let a = log
                    .append(&room, &[msg(&format!("{t}-{i}"))])
                    .await
                    .expect("append");
                firsts.push(a.first_seq);
            }
            firsts
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<u64>>());
}
