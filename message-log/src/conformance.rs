//! Conformance tests every [`MessageLog`] engine must pass; engines call them
//! from their own tests. Compiled for this crate's tests and with the
//! `test-util` feature only.

use std::sync::Arc;

use proto::client::v1::RoomMessage;

use prost::Message as _;

use crate::{MessageLog, ReadLimit};

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
    let read = log
        .read_after(room, 1, ReadLimit::messages(10))
        .await
        .expect("read");
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
    let read = log
        .read_after(room, 0, ReadLimit::messages(100))
        .await
        .expect("read");
    assert!(read.truncated, "history of 5 cannot reach seq 1");
    let seqs: Vec<u64> = read.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![9, 10, 11, 12, 13]);
    let read = log
        .read_after(room, 8, ReadLimit::messages(2))
        .await
        .expect("read");
    assert!(!read.truncated);
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![9, 10]
    );
    let read = log
        .read_after(room, 13, ReadLimit::messages(10))
        .await
        .expect("read at head");
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

/// Reads are pages bounded by count and by encoded bytes, always at least one
/// message, and say whether more follow; reading page after page returns the
/// whole history in order. The engine must keep at least 40 messages.
pub async fn reads_are_paged_by_count_and_bytes(log: &dyn MessageLog, room: &str) {
    let big = |i: usize| RoomMessage {
        kind: "comment".into(),
        body: vec![b'a' + (i % 26) as u8; 3000].into(),
        ..Default::default()
    };
    for i in 0..30 {
        log.append(room, &[big(i)]).await.expect("append");
    }
    // Every stored message has the same encoded size (seqs below 128).
    let one = log
        .read_after(room, 0, ReadLimit::messages(1))
        .await
        .expect("read");
    assert_eq!(one.messages.len(), 1);
    assert!(one.more, "29 more follow");
    let size = one.messages[0].encoded_len();
    assert!(size > 3000, "{size}");

    // Bytes bind: three and a half messages' worth gives three.
    let read = log
        .read_after(room, 0, ReadLimit::new(100, size * 7 / 2))
        .await
        .expect("read");
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(read.more && !read.truncated);
    assert_eq!(read.head_seq, 30);
    // Exactly four messages' worth gives four.
    let read = log
        .read_after(room, 0, ReadLimit::new(100, size * 4))
        .await
        .expect("read");
    assert_eq!(read.messages.len(), 4);
    // A budget smaller than one message still returns one: reads progress.
    let read = log
        .read_after(room, 10, ReadLimit::new(100, 10))
        .await
        .expect("read");
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [11]
    );
    assert!(read.more);
    // The count binds when the bytes do not.
    let read = log
        .read_after(room, 5, ReadLimit::new(2, usize::MAX))
        .await
        .expect("read");
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [6, 7]
    );
    assert!(read.more);

    // Page after page: everything, in order, each page within its budget,
    // the last one saying nothing more follows.
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = log
            .read_after(room, after, ReadLimit::new(1000, size * 5))
            .await
            .expect("read");
        assert!(!page.truncated);
        assert!(page.messages.len() <= 5);
        for m in &page.messages {
            assert_eq!(m.seq, after + 1, "pages are contiguous");
            assert_eq!(m.body.len(), 3000);
            after = m.seq;
        }
        pages += 1;
        if !page.more {
            break;
        }
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!((after, pages), (30, 6));
    // At the head: nothing, and nothing more.
    let read = log
        .read_after(room, 30, ReadLimit::new(10, size))
        .await
        .expect("read");
    assert!(read.messages.is_empty() && !read.more);
}
