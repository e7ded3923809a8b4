//! The archiver end to end: a room ends through the API, is archived and
//! deleted, and its history and replay move from the live log to the archive
//! (in memory and SQLite); and a 10,000-message room archived into a real
//! PostgreSQL from a real Redis, exactly once across a worker killed
//! mid-batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use archive::{
    ArchiveBatch, ArchiveError, ArchiveStore, ArchivedMessage, ArchivedRoom, HistoryQuery,
    PostgresArchive, SqliteArchive,
};
use message_log::redis::RedisLogConfig;
use message_log::{HistoryLimits, MemoryLog, MessageLog, ReadLimit};
use proto::client::v1::{Priority, RoomMessage};
use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};
use room_store::domain::poll::PollDef;
use room_store::domain::rules;
use room_store::{MemoryRoomStore, NewRoom, RedisRoomStore, RoomStore, counter};
use serde_json::{Value, json};

use super::{Archiver, ArchiverSettings};
use crate::archive_jobs::{ArchiveQueue, MemoryQueue, RedisQueue};
use crate::error::PushError;
use crate::pusher::RoomPusher;
use crate::test_util::{backend_client, bind, install_test_key, shared_on};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long a test waits for a condition it polls.
const PATIENCE: Duration = Duration::from_secs(60);

/// Poll `check` until it holds or [`PATIENCE`] runs out.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn settings(consumer: &str, claim_idle: Duration) -> ArchiverSettings {
    ArchiverSettings {
        consumer: consumer.into(),
        batch: 500,
        claim_idle,
        poll: Duration::from_millis(10),
    }
}

/// The push API over a message log, as a push node is: durable messages are
/// appended (seq issued by the log), pulls read it.
struct LogPusher {
    log: Arc<dyn MessageLog>,
}

#[async_trait::async_trait]
impl RoomPusher for LogPusher {
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
        if !req.durable {
            return Ok(PushRoomReply::default());
        }
        let message = RoomMessage {
            seq: 0,
            kind: req.kind,
            body: req.body,
            sender: req.sender,
            ts_ms: common::time::now_ms(),
            priority: req.priority,
        };
        let appended =
            self.log
                .append(&req.room, &[message])
                .await
                .map_err(|e| PushError::Rpc {
                    node: "log".into(),
                    status: tonic::Status::unavailable(e.to_string()),
                })?;
        Ok(PushRoomReply {
            epoch: appended.epoch,
            seq: appended.first_seq,
        })
    }

    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError> {
        let read = self
            .log
            .read_after(
                &req.room,
                req.after_seq,
                ReadLimit::messages(req.limit as usize),
            )
            .await
            .map_err(|e| PushError::Rpc {
                node: "log".into(),
                status: tonic::Status::unavailable(e.to_string()),
            })?;
        Ok(PullReply {
            epoch: read.epoch,
            head_seq: read.head_seq,
            messages: read.messages,
            truncated: read.truncated,
        })
    }

    async fn push_users(&self, _req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
        Ok(PushUsersReply { online: 0 })
    }
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["seq"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_ended_room_is_archived_deleted_and_still_readable() -> TestResult {
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let memory_log = Arc::new(MemoryLog::new(HistoryLimits::default()));
    let log: Arc<dyn MessageLog> = memory_log.clone();
    let pusher = Arc::new(LogPusher { log: log.clone() });
    let archive: Arc<dyn ArchiveStore> = Arc::new(SqliteArchive::in_memory().await?);
    let queue = Arc::new(MemoryQueue::default());
    let shared = shared_on(store.clone(), crate::Config::default(), pusher);
    install_test_key(&shared);
    shared.history.attach(archive.clone());
    let _ = shared.backends.rooms.archive_queue.set(queue.clone());
    let listener = bind().await;
    let url = format!("http://{}", listener.local_addr()?);
    let app = crate::http::backend_app(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = backend_client();

    let (status, room) = call(
        client
            .post(format!("{url}/v1/rooms"))
            .json(&json!({"title": "Replay me", "owner": "alice"})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["room_id"].as_str().unwrap_or_default().to_owned();
    for i in 1..=30 {
        let (status, _) = call(
            client
                .post(format!("{url}/v1/rooms/{id}/messages"))
                .json(&json!({"kind": "note", "body": {"i": i}})),
        )
        .await;
        assert_eq!(status, 200);
    }

    // Live: from the log.
    let (status, page) = call(client.get(format!("{url}/v1/rooms/{id}/history?limit=5"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["source"].as_str(), seqs(&page)),
        (Some("live"), vec![26, 27, 28, 29, 30])
    );
    assert_eq!(page["messages"][0]["body"], json!({"i": 26}));
    let (_, page) = call(client.get(format!("{url}/v1/rooms/{id}/history?before_seq=3"))).await;
    assert_eq!(seqs(&page), [1, 2]);
    let (_, page) =
        call(client.get(format!("{url}/v1/rooms/{id}/history?after_seq=10&limit=3"))).await;
    assert_eq!(seqs(&page), [11, 12, 13]);
    let (_, page) = call(client.get(format!("{url}/v1/rooms/{id}/replay?limit=2"))).await;
    assert_eq!(
        (page["source"].as_str(), seqs(&page)),
        (Some("live"), vec![1, 2])
    );

    // The end queues the room; until archived, its history stays readable.
    let (status, _) = call(
        client
            .post(format!("{url}/v1/rooms/{id}/end"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(queue.backlog().await?, 1, "the end queued an archive job");
    let (status, page) = call(client.get(format!("{url}/v1/rooms/{id}/history?limit=1"))).await;
    assert_eq!(
        status, 200,
        "an ended room's history stays readable: {page}"
    );
    assert_eq!(page["messages"][0]["kind"], "room_ended");
    let head = page["messages"][0]["seq"].as_u64().unwrap_or_default();
    assert_eq!(head, 31);

    let archiver = Archiver::new(
        store.clone(),
        log.clone(),
        archive.clone(),
        queue.clone(),
        settings("biz-1", Duration::from_secs(30)),
        &prometheus::Registry::new(),
    );
    let job = queue
        .next("biz-1", Duration::from_secs(30))
        .await?
        .ok_or("no job")?;
    let done = archiver.archive_room(&job).await?;
    assert_eq!((done.new_messages, done.batches, done.gap), (31, 1, false));
    assert_eq!(queue.backlog().await?, 0, "acknowledged");
    assert_eq!(store.get_room(&id).await?, None, "live state deleted");
    assert_eq!(memory_log.rooms(), 0, "log deleted");
    let archived = archive.room(&id).await?.ok_or("archived room")?;
    assert!(archived.archived_at_ms.is_some());
    assert_eq!(archived.summary["final"], true);
    // Running the job again (a redelivery) changes nothing.
    assert_eq!(archiver.archive_room(&job).await?.new_messages, 0);

    // Archived: from the archive, same pages.
    let (status, page) = call(client.get(format!("{url}/v1/rooms/{id}/history?limit=5"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["source"].as_str(), seqs(&page)),
        (Some("archive"), vec![27, 28, 29, 30, 31])
    );
    assert_eq!(page["messages"][0]["body"], json!({"i": 27}));
    let (_, page) =
        call(client.get(format!("{url}/v1/rooms/{id}/history?after_seq=10&limit=3"))).await;
    assert_eq!(seqs(&page), [11, 12, 13]);
    let (_, page) =
        call(client.get(format!("{url}/v1/rooms/{id}/replay?from_ms=0&limit=31"))).await;
    assert_eq!(seqs(&page), (1..=31).collect::<Vec<_>>());
    let offsets: Vec<i64> = page["messages"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["offset_ms"].as_i64()).collect())
        .unwrap_or_default();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert_eq!(shared.history.cached_pages(), 1, "replay pages are cached");
    let (_, again) =
        call(client.get(format!("{url}/v1/rooms/{id}/replay?from_ms=0&limit=31"))).await;
    assert_eq!(again, page);
    assert_eq!(shared.history.cached_pages(), 1);

    // Bad input and unknown rooms.
    let (status, body) = call(client.get(format!("{url}/v1/rooms/{id}/history?limit=0"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = call(client.get(format!("{url}/v1/rooms/{id}/history?before_seq=x"))).await;
    assert_eq!(status, 400);
    let (status, _) = call(client.get(format!("{url}/v1/rooms/{id}/replay?from_ms=soon"))).await;
    assert_eq!(status, 400);
    let (status, body) = call(client.get(format!("{url}/v1/rooms/rNope/history"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("room_not_found"))
    );
    Ok(())
}

/// An archive whose `stall_at`-th message batch writes half its messages
/// and then never returns: a worker killed in the middle of a batch.
struct StallingArchive {
    inner: Arc<dyn ArchiveStore>,
    message_batches: AtomicUsize,
    stall_at: usize,
}

#[async_trait::async_trait]
impl ArchiveStore for StallingArchive {
    async fn put_room(&self, room: &ArchivedRoom) -> Result<(), ArchiveError> {
        self.inner.put_room(room).await
    }
    async fn write_batch(&self, batch: &ArchiveBatch) -> Result<u64, ArchiveError> {
        if !batch.messages.is_empty()
            && self.message_batches.fetch_add(1, Ordering::SeqCst) + 1 == self.stall_at
        {
            let half = ArchiveBatch {
                messages: batch.messages[..batch.messages.len() / 2].to_vec(),
                ..batch.clone()
            };
            self.inner.write_batch(&half).await?;
            return std::future::pending().await;
        }
        self.inner.write_batch(batch).await
    }
    async fn mark_archived(&self, room: &str, at_ms: u64) -> Result<bool, ArchiveError> {
        self.inner.mark_archived(room, at_ms).await
    }
    async fn room(&self, room: &str) -> Result<Option<ArchivedRoom>, ArchiveError> {
        self.inner.room(room).await
    }
    async fn rooms_ended_since(&self, since_ms: u64) -> Result<Vec<ArchivedRoom>, ArchiveError> {
        self.inner.rooms_ended_since(since_ms).await
    }
    async fn last_seq(&self, room: &str) -> Result<u64, ArchiveError> {
        self.inner.last_seq(room).await
    }
    async fn history(
        &self,
        room: &str,
        query: HistoryQuery,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        self.inner.history(room, query).await
    }
    async fn replay(
        &self,
        room: &str,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        self.inner.replay(room, from_ms, limit).await
    }
    async fn table_counts(&self, room: &str) -> Result<archive::store::TableCounts, ArchiveError> {
        self.inner.table_counts(room).await
    }
    async fn sessions(&self, room: &str) -> Result<Vec<archive::MemberSession>, ArchiveError> {
        self.inner.sessions(room).await
    }
    async fn counter_minutes(
        &self,
        room: &str,
    ) -> Result<Vec<archive::CounterMinute>, ArchiveError> {
        self.inner.counter_minutes(room).await
    }
    async fn stats(&self, room: &str) -> Result<Option<archive::RoomStats>, ArchiveError> {
        self.inner.stats(room).await
    }
}

/// Messages in the test room.
const MESSAGES: u64 = 10_000;
/// Every 50th message is a gift.
const GIFT_EVERY: u64 = 50;

/// Message `i`, sent `i` × 100 ms after `origin_ms`.
fn room_message(i: u64, origin_ms: u64) -> RoomMessage {
    let (kind, body, priority) = if i.is_multiple_of(GIFT_EVERY) {
        (
            "gift",
            json!({"uid": "u1", "gift_id": "rose", "name": "Rose", "count": 2, "value": 10, "total_value": 20}),
            Priority::High,
        )
    } else {
        (
            "comment",
            json!({"uid": "u2", "text": format!("message {i}")}),
            Priority::Low,
        )
    };
    RoomMessage {
        seq: 0,
        kind: kind.into(),
        body: serde_json::to_vec(&body).unwrap_or_default().into(),
        sender: if kind == "gift" { "u1" } else { "u2" }.into(),
        ts_ms: origin_ms + i * 100,
        priority: priority as i32,
    }
}

/// An ended room of [`MESSAGES`] durable messages (comments and gifts),
/// six members, a poll with votes, likes and reactions; its id.
async fn fill_room(
    store: &dyn RoomStore,
    log: &dyn MessageLog,
) -> Result<String, Box<dyn std::error::Error>> {
    let room = store
        .create_room(NewRoom::titled("Ten thousand", Some("host")))
        .await?;
    let id = room.id.clone();
    let origin = room.started_at_ms.unwrap_or(room.created_at_ms);
    for uid in ["host", "u1", "u2", "u3", "u4", "u5"] {
        store
            .member_joined(&id, uid, &format!("s-{uid}"), "conn-1")
            .await?;
    }
    let def = PollDef {
        id: "p1".into(),
        question: "Tea or coffee?".into(),
        options: vec!["tea".into(), "coffee".into()],
        opened_by: "host".into(),
        opened_at_ms: common::time::now_ms(),
        closes_at_ms: None,
    };
    store
        .apply(&id, &rules::poll_open("host", &def, 5).transition())
        .await?;
    for (uid, option) in [("u1", 0), ("u2", 1), ("u3", 1)] {
        let vote = rules::vote(uid, "p1", option, common::time::now_ms());
        store.apply(&id, &vote.transition()).await?;
    }
    store
        .add_counters(
            &id,
            &[
                (counter::LIKES.to_owned(), 400),
                (counter::reaction("👏"), 70),
                (counter::GIFTS.to_owned(), 2 * MESSAGES / GIFT_EVERY),
            ],
            None,
        )
        .await?;
    for chunk in (1..=MESSAGES).collect::<Vec<_>>().chunks(1000) {
        let messages: Vec<RoomMessage> = chunk.iter().map(|&i| room_message(i, origin)).collect();
        log.append(&id, &messages).await?;
    }
    assert_eq!(log.head(&id).await?.last_seq, MESSAGES);
    store.end_room(&id).await?;
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_are_archived_once_across_a_killed_worker() -> TestResult {
    let redis = test_servers::RedisServer::start()?;
    let pg = test_servers::Postgres::start()?;
    let urls = vec![redis.url()];
    let prefix = "rc:";
    let store: Arc<dyn RoomStore> = Arc::new(RedisRoomStore::connect(&urls, prefix).await?);
    let log: Arc<dyn MessageLog> = Arc::new(
        message_log::redis::connect(RedisLogConfig {
            urls: urls.clone(),
            key_prefix: prefix.into(),
            // The whole room stays in the live log until it is archived.
            history: HistoryLimits {
                max_len: 20_000,
                max_age: Duration::from_secs(3600),
            },
            key_ttl_secs: 3600,
            tls: Default::default(),
        })
        .await?,
    );
    let postgres: Arc<dyn ArchiveStore> = Arc::new(PostgresArchive::connect(&pg.url()).await?);
    let queue: Arc<dyn ArchiveQueue> = Arc::new(RedisQueue::connect(&urls, prefix).await?);
    let id = fill_room(&*store, &*log).await?;
    queue.enqueue(&id).await?;

    // Worker A stalls in the middle of its 5th batch and is killed there.
    let claim_idle = Duration::from_millis(500);
    let stalling = Arc::new(StallingArchive {
        inner: postgres.clone(),
        message_batches: AtomicUsize::new(0),
        stall_at: 5,
    });
    let registry = prometheus::Registry::new();
    let a = Arc::new(Archiver::new(
        store.clone(),
        log.clone(),
        stalling.clone(),
        queue.clone(),
        settings("biz-a", claim_idle),
        &registry,
    ));
    let worker_a = tokio::spawn({
        let a = a.clone();
        async move { a.run().await }
    });
    eventually("worker A to stall mid-batch", || {
        let stalling = stalling.clone();
        async move { stalling.message_batches.load(Ordering::SeqCst) >= 5 }
    })
    .await;
    eventually("the half batch to commit", || {
        let postgres = postgres.clone();
        let id = id.clone();
        async move { postgres.last_seq(&id).await.unwrap_or(0) == 2250 }
    })
    .await;
    worker_a.abort();
    assert!(worker_a.await.is_err_and(|e| e.is_cancelled()));
    let partial = postgres.table_counts(&id).await?.messages;
    assert_eq!(partial, 2250, "4 batches of 500 and half of the 5th");
    assert!(
        postgres
            .room(&id)
            .await?
            .is_some_and(|r| r.archived_at_ms.is_none())
    );
    assert_eq!(queue.backlog().await?, 1, "A's job is not acknowledged");

    // Worker B, another node, takes the job over once it is idle and
    // resumes after the last archived seq.
    let started = Instant::now();
    let b = Arc::new(Archiver::new(
        store.clone(),
        log.clone(),
        postgres.clone(),
        queue.clone(),
        settings("biz-b", claim_idle),
        &registry,
    ));
    let worker_b = tokio::spawn({
        let b = b.clone();
        async move { b.run().await }
    });
    eventually("worker B to finish the archive", || {
        let postgres = postgres.clone();
        let queue = queue.clone();
        let id = id.clone();
        async move {
            let marked = postgres
                .room(&id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.archived_at_ms.is_some());
            marked && queue.backlog().await.unwrap_or(1) == 0
        }
    })
    .await;
    let took = started.elapsed();
    worker_b.abort();

    // Every durable message exactly once, in order, as written.
    let counts = postgres.table_counts(&id).await?;
    assert_eq!(counts.messages, MESSAGES);
    let mut after = 0;
    let mut seen = 0u64;
    loop {
        let query = HistoryQuery {
            after_seq: Some(after),
            limit: 1000,
            ..HistoryQuery::default()
        };
        let page = postgres.history(&id, query).await?;
        let Some(last) = page.last() else { break };
        for m in &page {
            seen += 1;
            assert_eq!(m.seq, seen, "dense and once");
        }
        after = last.seq;
    }
    assert_eq!(seen, MESSAGES);
    let gift = postgres
        .history(
            &id,
            HistoryQuery {
                after_seq: Some(GIFT_EVERY - 1),
                limit: 1,
                ..HistoryQuery::default()
            },
        )
        .await?;
    assert_eq!(
        (gift[0].kind.as_str(), gift[0].priority),
        ("gift", Priority::High as i32)
    );
    assert_eq!(counts.gifts, MESSAGES / GIFT_EVERY);
    assert_eq!((counts.polls, counts.members), (1, 6));
    // Analytics: six sessions, in at the end, leave with the room; likes and
    // reactions per minute add up to the totals; room_stats adds up.
    assert_eq!(counts.sessions, 6);
    let archived_room = postgres.room(&id).await?.ok_or("room row")?;
    let ended = archived_room.ended_at_ms.ok_or("ended")?;
    for s in postgres.sessions(&id).await? {
        assert_eq!(s.left_at_ms, ended, "{s:?}");
        assert!(s.joined_at_ms <= ended);
    }
    let minutes = postgres.counter_minutes(&id).await?;
    let total = |name: &str| -> u64 {
        minutes
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.value)
            .sum()
    };
    assert_eq!(
        (total("likes"), total("r:👏"), total("gifts")),
        (400, 70, 0)
    );
    assert!(
        minutes.iter().all(|m| (0..=1).contains(&m.minute)),
        "{minutes:?}"
    );
    let stats = postgres.stats(&id).await?.ok_or("stats")?;
    assert_eq!(
        (
            stats.peak_concurrency,
            stats.unique_listeners,
            stats.sessions,
            stats.messages
        ),
        (Some(6), Some(6), 6, MESSAGES)
    );
    let archived = postgres.room(&id).await?.ok_or("room row")?;
    assert_eq!(archived.summary["likes"], 400);
    assert_eq!(archived.summary["reactions"]["by_emoji"]["👏"], 70);
    assert_eq!(archived.summary["polls"], 1);

    // The live keys are gone: only the (empty) job stream is left.
    let mut raw = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut raw).await?;
    let room_keys: Vec<&String> = keys.iter().filter(|k| k.contains(&id)).collect();
    assert!(room_keys.is_empty(), "room keys left: {room_keys:?}");
    assert_eq!(store.get_room(&id).await?, None);

    eprintln!(
        "take-over: {} messages archived by worker B in {took:?} (including the {claim_idle:?} claim wait)",
        MESSAGES - partial
    );

    // The archive rate: one whole room, Redis → PostgreSQL, no interruption.
    let id = fill_room(&*store, &*log).await?;
    queue.enqueue(&id).await?;
    let job = queue.next("biz-c", claim_idle).await?.ok_or("a job")?;
    let c = Archiver::new(
        store,
        log,
        postgres.clone(),
        queue,
        settings("biz-c", claim_idle),
        &registry,
    );
    let started = Instant::now();
    let done = c.archive_room(&job).await?;
    let took = started.elapsed();
    assert_eq!(done.new_messages, MESSAGES);
    eprintln!(
        "archive rate: {MESSAGES} messages in {took:?}: {:.0} messages/s into PostgreSQL",
        MESSAGES as f64 / took.as_secs_f64()
    );
    // Replay latency from PostgreSQL (the cache is in front of it in biz).
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    for i in 0..100i64 {
        let t = Instant::now();
        let page = postgres.replay(&id, i * 10_000, 100).await?;
        assert_eq!(page.len(), 100);
        worst = worst.max(t.elapsed());
    }
    eprintln!(
        "replay from PostgreSQL: 100 pages of 100 in {:?} (worst {worst:?})",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn clients_read_history_under_the_read_rule_before_and_after_the_archive() -> TestResult {
    const SECRET: &str = "archive-test-token-secret";
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let log: Arc<dyn MessageLog> = Arc::new(MemoryLog::new(HistoryLimits::default()));
    let pusher = Arc::new(LogPusher { log: log.clone() });
    let archive: Arc<dyn ArchiveStore> = Arc::new(SqliteArchive::in_memory().await?);
    let queue = Arc::new(MemoryQueue::default());
    let cfg = crate::Config {
        token_secret: SECRET.into(),
        ..crate::Config::default()
    };
    let shared = shared_on(store.clone(), cfg, pusher);
    install_test_key(&shared);
    shared.history.attach(archive.clone());
    let _ = shared.backends.rooms.archive_queue.set(queue.clone());
    let (backend, client) = (bind().await, bind().await);
    let backend_url = format!("http://{}", backend.local_addr()?);
    let client_url = format!("http://{}", client.local_addr()?);
    let (b, c) = (
        crate::http::backend_app(shared.clone()),
        crate::http::client_app(shared.clone()),
    );
    tokio::spawn(async move { axum::serve(backend, b).await });
    tokio::spawn(async move { axum::serve(client, c).await });
    let api = backend_client();
    let http = reqwest::Client::new();
    let as_user = |uid: &str, path: &str| {
        let token = common::auth::mint_hs256(SECRET, uid, 600).unwrap_or_default();
        http.get(format!("{client_url}{path}")).bearer_auth(token)
    };

    let (status, room) =
        call(api.post(format!("{backend_url}/v1/rooms")).json(
            &json!({"title": "Private", "owner": "alice", "private": true, "invite": ["bob"]}),
        ))
        .await;
    assert_eq!(status, 201, "{room}");
    let id = room["room_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/rooms/{id}/history");
    call(
        api.post(format!("{backend_url}/v1/rooms/{id}/messages"))
            .json(&json!({"body": {"hello": 1}})),
    )
    .await;

    // Live: the invite list decides.
    for (uid, want) in [("alice", 200), ("bob", 200), ("carol", 403)] {
        let (status, body) = call(as_user(uid, &path)).await;
        assert_eq!(status, want, "{uid}: {body}");
    }
    let (status, _) = call(http.get(format!("{client_url}{path}"))).await;
    assert_eq!(status, 401, "no token");

    call(
        api.post(format!("{backend_url}/v1/rooms/{id}/end"))
            .json(&json!({})),
    )
    .await;
    let archiver = Archiver::new(
        store,
        log,
        archive,
        queue.clone(),
        settings("biz-1", Duration::from_secs(30)),
        &prometheus::Registry::new(),
    );
    let job = queue
        .next("biz-1", Duration::from_secs(30))
        .await?
        .ok_or("no job")?;
    archiver.archive_room(&job).await?;

    // Archived: the same rule over the lists archived with the room (the
    // live keys are gone): the owner and the invited read, a stranger and
    // someone the owner blocked are refused, history and replay alike.
    assert_eq!(shared.backends.store.get_room(&id).await?, None);
    shared
        .backends
        .store
        .set_blocked("alice", "bob", false)
        .await?;
    let replay = format!("/v1/rooms/{id}/replay?from_ms=0");
    for (uid, want) in [("alice", 200), ("bob", 200), ("carol", 403)] {
        for path in [&path, &replay] {
            let (status, body) = call(as_user(uid, path)).await;
            assert_eq!(status, want, "{uid} {path}: {body}");
            if want == 200 {
                assert_eq!(body["source"], "archive");
                assert_eq!(body["messages"][0]["body"]["hello"], 1, "{body}");
            } else {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("not invited"), "{body}");
            }
        }
    }
    shared
        .backends
        .store
        .set_blocked("alice", "bob", true)
        .await?;
    let (status, body) = call(as_user("bob", &path)).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(status == 403 && message.contains("blocked"), "{body}");
    let (status, body) = call(api.get(format!("{backend_url}{path}"))).await;
    assert_eq!((status, body["source"].as_str()), (200, Some("archive")));
    Ok(())
}

/// Every message of `id` through the history API, paging forward from the
/// start `limit` at a time; each page must be complete (not truncated).
async fn history_forward(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    limit: usize,
) -> Result<(Vec<u64>, Vec<&'static str>), Box<dyn std::error::Error>> {
    let mut all = Vec::new();
    let mut sources = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = call(client.get(format!(
            "{url}/v1/rooms/{id}/history?after_seq={after}&limit={limit}"
        )))
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["truncated"], false, "after {after}: {page}");
        let got = seqs(&page);
        let Some(&last) = got.last() else { break };
        sources.push(if page["source"] == "live" {
            "live"
        } else {
            "archive"
        });
        all.extend(got);
        after = last;
    }
    Ok((all, sources))
}

/// Every message of `id`, paging backward from the newest.
async fn history_backward(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    limit: usize,
) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let mut all = Vec::new();
    let mut before = None::<u64>;
    loop {
        let query = match before {
            Some(b) => format!("before_seq={b}&limit={limit}"),
            None => format!("limit={limit}"),
        };
        let (status, page) = call(client.get(format!("{url}/v1/rooms/{id}/history?{query}"))).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["truncated"], false, "{query}: {page}");
        let got = seqs(&page);
        let Some(&first) = got.first() else { break };
        all.splice(0..0, got);
        before = Some(first);
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_live_room_is_archived_while_live_and_reads_across_the_boundary() -> TestResult {
    // The live log keeps 100 messages; the room gets 500 while live.
    const LOG_KEEPS: usize = 100;
    const EVERY: u64 = 25;
    const LIVE_MESSAGES: u64 = 500;
    let redis = test_servers::RedisServer::start()?;
    let pg = test_servers::Postgres::start()?;
    let urls = vec![redis.url()];
    let prefix = "rc:";
    let store: Arc<dyn RoomStore> = Arc::new(RedisRoomStore::connect(&urls, prefix).await?);
    let log: Arc<dyn MessageLog> = Arc::new(
        message_log::redis::connect(RedisLogConfig {
            urls: urls.clone(),
            key_prefix: prefix.into(),
            history: HistoryLimits {
                max_len: LOG_KEEPS,
                max_age: Duration::from_secs(3600),
            },
            key_ttl_secs: 3600,
            tls: Default::default(),
        })
        .await?,
    );
    let archive: Arc<dyn ArchiveStore> = Arc::new(PostgresArchive::connect(&pg.url()).await?);
    let queue: Arc<dyn ArchiveQueue> = Arc::new(RedisQueue::connect(&urls, prefix).await?);
    let live = Arc::new(super::live::LiveArchiving::new(
        Arc::new(LogPusher { log: log.clone() }),
        queue.clone(),
        super::live::LiveArchiveSettings {
            every: EVERY,
            interval: Duration::ZERO,
        },
    ));
    let shared = shared_on(store.clone(), crate::Config::default(), live);
    install_test_key(&shared);
    shared.history.attach(archive.clone());
    let _ = shared.backends.rooms.archive_queue.set(queue.clone());
    let listener = bind().await;
    let url = format!("http://{}", listener.local_addr()?);
    let app = crate::http::backend_app(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = backend_client();
    let registry = prometheus::Registry::new();
    let archiver = Arc::new(Archiver::new(
        store.clone(),
        log.clone(),
        archive.clone(),
        queue.clone(),
        settings("biz-1", Duration::from_secs(30)),
        &registry,
    ));
    let worker = tokio::spawn({
        let archiver = archiver.clone();
        async move { archiver.run().await }
    });

    let (status, room) = call(
        client
            .post(format!("{url}/v1/rooms"))
            .json(&json!({"title": "All night long", "owner": "alice"})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["room_id"].as_str().unwrap_or_default().to_owned();
    for i in 1..=LIVE_MESSAGES {
        let (status, body) = call(
            client
                .post(format!("{url}/v1/rooms/{id}/messages"))
                .json(&json!({"kind": "note", "body": {"i": i}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if i.is_multiple_of(EVERY) {
            // The checkpoint of message i copies it before the log (which
            // keeps 100) lets it go.
            eventually("the checkpoint to catch up", || {
                let archive = archive.clone();
                let id = id.clone();
                async move { archive.last_seq(&id).await.unwrap_or(0) >= i }
            })
            .await;
        }
    }
    let head = log.head(&id).await?.last_seq;
    assert_eq!(head, LIVE_MESSAGES);
    let from_start = log.read_after(&id, 0, ReadLimit::messages(10)).await?;
    assert!(from_start.truncated, "the live log kept only its window");
    let row = archive.room(&id).await?.ok_or("a room row while live")?;
    assert_eq!((row.ended_at_ms, row.archived_at_ms), (None, None));
    assert_eq!(archive.last_seq(&id).await?, LIVE_MESSAGES);

    // Eight more, not yet checkpointed: the tail only the live log has.
    for i in LIVE_MESSAGES + 1..=LIVE_MESSAGES + 8 {
        let (status, _) = call(
            client
                .post(format!("{url}/v1/rooms/{id}/messages"))
                .json(&json!({"kind": "note", "body": {"i": i}})),
        )
        .await;
        assert_eq!(status, 200);
    }
    let head = LIVE_MESSAGES + 8;

    // History of the live room: complete and in order, across the
    // archive/live boundary, forward and backward, with page sizes that
    // straddle it.
    let everything: Vec<u64> = (1..=head).collect();
    for limit in [7, 40, 1000] {
        let (forward, sources) = history_forward(&client, &url, &id, limit).await?;
        assert_eq!(forward, everything, "forward by {limit}");
        assert!(sources.iter().all(|s| *s == "live"), "{sources:?}");
        assert_eq!(
            history_backward(&client, &url, &id, limit).await?,
            everything,
            "backward by {limit}"
        );
    }
    let (_, page) =
        call(client.get(format!("{url}/v1/rooms/{id}/history?after_seq=0&limit=3"))).await;
    assert_eq!(page["messages"][0]["body"], json!({"i": 1}), "{page}");
    let (_, page) =
        call(client.get(format!("{url}/v1/rooms/{id}/replay?from_ms=0&limit=1000"))).await;
    assert_eq!(seqs(&page), everything, "replay of the live room");
    assert_eq!(page["truncated"], false);

    // The end: the end pass copies only what the checkpoints did not.
    eventually("the checkpoint jobs to drain", || {
        let queue = queue.clone();
        async move { queue.backlog().await.unwrap_or(1) == 0 }
    })
    .await;
    worker.abort();
    let _ = worker.await;
    let archived_before_end = archive.last_seq(&id).await?;
    assert_eq!(archived_before_end, LIVE_MESSAGES);
    let (status, _) = call(
        client
            .post(format!("{url}/v1/rooms/{id}/end"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let head = head + 1; // room_ended
    let mut end_pass_new = 0;
    while let Some(job) = queue.next("biz-1", Duration::from_secs(30)).await? {
        let done = archiver.archive_room(&job).await?;
        assert!(!done.checkpoint && !done.gap, "{done:?}");
        end_pass_new += done.new_messages;
    }
    assert_eq!(end_pass_new, head - archived_before_end, "only the tail");
    assert_eq!(archive.table_counts(&id).await?.messages, head, "each once");
    assert!(
        archive
            .room(&id)
            .await?
            .is_some_and(|r| r.archived_at_ms.is_some())
    );
    assert_eq!(store.get_room(&id).await?, None);
    let (forward, sources) = history_forward(&client, &url, &id, 64).await?;
    assert_eq!(forward, (1..=head).collect::<Vec<_>>());
    assert!(sources.iter().all(|s| *s == "archive"), "{sources:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_room_is_queued_again_once_redis_is_back() -> TestResult {
    let mut redis = test_servers::RedisServer::start()?;
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let log: Arc<dyn MessageLog> = Arc::new(MemoryLog::new(HistoryLimits::default()));
    let pusher = Arc::new(LogPusher { log: log.clone() });
    let archive: Arc<dyn ArchiveStore> = Arc::new(SqliteArchive::in_memory().await?);
    let queue: Arc<dyn ArchiveQueue> = Arc::new(RedisQueue::connect(&[redis.url()], "rc:").await?);
    let shared = shared_on(store.clone(), crate::Config::default(), pusher);
    install_test_key(&shared);
    shared.history.attach(archive.clone());
    let _ = shared.backends.rooms.archive_queue.set(queue.clone());
    let listener = bind().await;
    let url = format!("http://{}", listener.local_addr()?);
    let app = crate::http::backend_app(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = backend_client();
    let (status, room) = call(
        client
            .post(format!("{url}/v1/rooms"))
            .json(&json!({"title": "Outage", "owner": "alice"})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["room_id"].as_str().unwrap_or_default().to_owned();
    call(
        client
            .post(format!("{url}/v1/rooms/{id}/messages"))
            .json(&json!({"body": {"hello": 1}})),
    )
    .await;

    // The queue's Redis is down when the room ends: the end still works,
    // and the room waits to be queued.
    redis.kill();
    let (status, body) = call(
        client
            .post(format!("{url}/v1/rooms/{id}/end"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(shared.backends.rooms.archive_retry.waiting(), 1);
    assert!(queue.backlog().await.is_err(), "Redis is down");

    // Redis comes back (empty: the stream and its group are gone too); the
    // retry queues the room and a worker archives it.
    redis.restart_empty()?;
    let archiver = Arc::new(Archiver::new(
        store.clone(),
        log,
        archive.clone(),
        queue.clone(),
        settings("biz-1", Duration::from_secs(30)),
        &prometheus::Registry::new(),
    ));
    let worker = tokio::spawn({
        let archiver = archiver.clone();
        async move { archiver.run().await }
    });
    eventually("the ended room to be archived", || {
        let archive = archive.clone();
        let id = id.clone();
        async move {
            archive
                .room(&id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.archived_at_ms.is_some())
        }
    })
    .await;
    worker.abort();
    assert_eq!(shared.backends.rooms.archive_retry.waiting(), 0);
    assert_eq!(
        archive.table_counts(&id).await?.messages,
        2,
        "hello and room_ended"
    );
    assert_eq!(store.get_room(&id).await?, None);
    assert_eq!(queue.backlog().await?, 0);
    Ok(())
}
