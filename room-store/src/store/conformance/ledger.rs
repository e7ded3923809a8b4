//! The behaviour of every [`Ledger`] engine: due jobs claimed once per lease,
//! inboxes newest first and bounded, idempotency keys answered with the
//! first reply.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;

use crate::error::StoreError;
use crate::store::ledger::{Ledger, Once};

/// Run every ledger check; jobs, uids and keys are unique to this run.
pub(super) async fn run_all(ledger: &dyn Ledger) {
    let run = crate::ids::new_room_id();
    due_jobs_are_claimed_once_per_lease(ledger, &run).await;
    inboxes_keep_the_newest_items(ledger, &run).await;
    idempotency_keys_answer_with_the_first_reply(ledger, &run).await;
    the_event_log_is_read_by_cursor_and_claimed_per_group(ledger, &run).await;
}

async fn due_jobs_are_claimed_once_per_lease(ledger: &dyn Ledger, run: &str) {
    // Far in the past, so no other check's jobs are older.
    let base = 1_000u64;
    let jobs: Vec<String> = (0..20).map(|i| format!("start:{run}-{i}")).collect();
    for (i, job) in jobs.iter().enumerate() {
        ledger
            .schedule_due(job, base + i as u64)
            .await
            .expect("schedule");
    }
    let later = format!("start:{run}-later");
    ledger
        .schedule_due(&later, base + 10_000_000)
        .await
        .expect("schedule");
    assert_eq!(
        ledger.due_at(&later).await.expect("due_at"),
        Some(base + 10_000_000)
    );

    // Eight claimers at once: every due job goes to exactly one of them.
    let now = base + 100;
    let claims = join_all((0..8).map(|_| ledger.claim_due(now, 60_000, 5))).await;
    let mut claimed = Vec::new();
    for claim in claims {
        claimed.extend(claim.expect("claim"));
    }
    let ours: Vec<&String> = claimed.iter().filter(|j| j.contains(run)).collect();
    let distinct: HashSet<&&String> = ours.iter().collect();
    assert_eq!(
        ours.len(),
        jobs.len(),
        "each due job claimed once: {ours:?}"
    );
    assert_eq!(distinct.len(), jobs.len());
    assert!(!ours.contains(&&later), "a job not yet due is not claimed");

    // Within the lease nobody claims them again; after it, unfinished ones return.
    let again = ledger.claim_due(now + 1, 60_000, 100).await.expect("claim");
    assert!(again.iter().all(|j| !j.contains(run)), "{again:?}");
    for job in &jobs[1..] {
        ledger.finish_due(job).await.expect("finish");
    }
    let after_lease = ledger
        .claim_due(now + 60_001, 60_000, 100)
        .await
        .expect("claim");
    let ours: Vec<&String> = after_lease.iter().filter(|j| j.contains(run)).collect();
    assert_eq!(
        ours,
        vec![&jobs[0]],
        "only the unfinished job is re-offered"
    );
    ledger.finish_due(&jobs[0]).await.expect("finish");
    ledger.finish_due(&later).await.expect("finish");
    assert_eq!(ledger.due_at(&jobs[0]).await.expect("due_at"), None);
    ledger
        .finish_due(&later)
        .await
        .expect("finishing twice is fine");
}

async fn inboxes_keep_the_newest_items(ledger: &dyn Ledger, run: &str) {
    let (ann, bob) = (format!("ann-{run}"), format!("bob-{run}"));
    let ttl = Duration::from_secs(60);
    assert!(ledger.inbox_read(&ann).await.expect("read").is_empty());
    for i in 0..5 {
        let uids = if i % 2 == 0 {
            vec![ann.clone(), bob.clone()]
        } else {
            vec![ann.clone()]
        };
        ledger
            .inbox_push(&uids, &format!("item-{i}"), 3, ttl)
            .await
            .expect("push");
    }
    assert_eq!(
        ledger.inbox_read(&ann).await.expect("read"),
        vec!["item-4", "item-3", "item-2"]
    );
    assert_eq!(
        ledger.inbox_read(&bob).await.expect("read"),
        vec!["item-4", "item-2", "item-0"]
    );
}

async fn idempotency_keys_answer_with_the_first_reply(ledger: &dyn Ledger, run: &str) {
    let ttl = Duration::from_secs(60);
    let key = format!("msg:{run}:a");
    let begins = join_all((0..6).map(|_| ledger.once_begin(&key, ttl))).await;
    let firsts = begins
        .iter()
        .filter(|b| matches!(b, Ok(Once::First)))
        .count();
    assert_eq!(firsts, 1, "one caller takes a new key: {begins:?}");
    assert!(begins.iter().all(|b| b.is_ok()));
    assert_eq!(
        ledger.once_begin(&key, ttl).await.expect("begin"),
        Once::Pending
    );
    ledger
        .once_finish(&key, r#"{"seq":7}"#, ttl)
        .await
        .expect("finish");
    assert_eq!(
        ledger.once_begin(&key, ttl).await.expect("begin"),
        Once::Done(r#"{"seq":7}"#.into())
    );
    ledger.once_abort(&key).await.expect("abort");
    assert_eq!(
        ledger.once_begin(&key, ttl).await.expect("begin"),
        Once::Done(r#"{"seq":7}"#.into()),
        "a finished key is not given up"
    );

    // A failed attempt gives its key up, so the retry does the work.
    let failed = format!("msg:{run}:b");
    assert_eq!(
        ledger.once_begin(&failed, ttl).await.expect("begin"),
        Once::First
    );
    ledger.once_abort(&failed).await.expect("abort");
    assert_eq!(
        ledger.once_begin(&failed, ttl).await.expect("begin"),
        Once::First
    );

    // A key outlives its window only that long.
    let short = format!("msg:{run}:c");
    let window = Duration::from_millis(50);
    assert_eq!(
        ledger.once_begin(&short, window).await.expect("begin"),
        Once::First
    );
    ledger
        .once_finish(&short, "x", window)
        .await
        .expect("finish");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match ledger.once_begin(&short, ttl).await.expect("begin") {
            Once::First => break,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "key never expired: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn the_event_log_is_read_by_cursor_and_claimed_per_group(ledger: &dyn Ledger, run: &str) {
    let group = format!("hooks-{run}");
    // A group starts at the end of the log: nothing before it is handed out.
    ledger.events_append("before", 1000).await.expect("append");
    ledger.events_join(&group).await.expect("join");
    ledger
        .events_join(&group)
        .await
        .expect("joining twice is fine");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            ledger
                .events_append(&format!("{run}-{i}"), 1000)
                .await
                .expect("append"),
        );
    }
    let all = ledger.events_after(None, 1000).await.expect("read");
    let ours: Vec<&str> = all
        .iter()
        .filter(|e| e.event.starts_with(run))
        .map(|e| e.event.as_str())
        .collect();
    assert_eq!(ours.len(), 5);
    let after = ledger
        .events_after(Some(&ids[1]), 2)
        .await
        .expect("read after");
    assert_eq!(
        after.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[3].clone()],
        "a page after a cursor, in order"
    );
    assert_eq!(after[0].event, format!("{run}-2"));
    assert!(
        ledger
            .events_after(Some(&ids[4]), 10)
            .await
            .expect("read")
            .is_empty()
    );
    let bad = ledger.events_after(Some("yesterday"), 10).await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))), "{bad:?}");

    // Consumers of one group share the events: each goes to one of them.
    let a = ledger
        .events_claim(&group, "a", 3, 60_000)
        .await
        .expect("claim");
    let b = ledger
        .events_claim(&group, "b", 10, 60_000)
        .await
        .expect("claim");
    let ids_of = |events: &[crate::store::ledger::LoggedEvent]| {
        events.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids_of(&a), ids[..3].to_vec());
    assert_eq!(ids_of(&b), ids[3..].to_vec());
    assert_eq!(a[0].event, format!("{run}-0"));
    ledger.events_ack(&group, &ids_of(&a)).await.expect("ack");
    // Another group reads the same log independently (from its own start).
    let other = format!("other-{run}");
    assert!(
        ledger
            .events_claim(&other, "a", 10, 60_000)
            .await
            .expect("claim")
            .is_empty()
    );

    // b stops without acknowledging: its events go to c once stale.
    assert!(
        ledger
            .events_claim(&group, "c", 10, 60_000)
            .await
            .expect("claim")
            .is_empty(),
        "not stale yet, nothing new"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let taken = loop {
        let taken = ledger
            .events_claim(&group, "c", 10, 30)
            .await
            .expect("claim");
        if !taken.is_empty() {
            break taken;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stale events never re-offered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(ids_of(&taken), ids[3..].to_vec());
    // Touched events are not stale; acknowledged ones never come back.
    ledger
        .events_touch(&group, "c", &ids_of(&taken))
        .await
        .expect("touch");
    assert!(
        ledger
            .events_claim(&group, "d", 10, 60_000)
            .await
            .expect("claim")
            .is_empty()
    );
    ledger
        .events_ack(&group, &ids_of(&taken))
        .await
        .expect("ack");
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(
        ledger
            .events_claim(&group, "d", 10, 30)
            .await
            .expect("claim")
            .is_empty(),
        "acknowledged events are done"
    );
}
