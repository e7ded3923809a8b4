//! Likes, reactions and comment counts, aggregated per room in memory and
//! written to the store once per window.
//!
//! A like costs an atomic add on this node: no store operation, no push. Every
//! `counter_window_ms` (250 ms by default) the flusher takes each room's
//! delta, writes it with one store operation (`add_counters`: all counters of
//! the room in one script, returning the new durable totals) and pushes one
//! ephemeral `totals` event with the likes and reaction totals. So a room
//! costs at most one store write and one push per window and biz node,
//! whatever the rate of likes: 100,000 likes a second are 4 writes a second.
//!
//! Each write is a numbered batch ([`CounterBatch`]: this aggregator's random
//! id and a growing number). A write that fails is kept as it is and written
//! again, with the same number, before anything newer of that room: the
//! store applies a number once, so a write that did land but whose reply was
//! lost (a timeout) is not counted twice, and one that did not land is not
//! lost. A biz node that dies loses at most one window of its likes (they are
//! not money; gifts are written before they are acknowledged).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt as _;
use prometheus::IntCounter;
use room_store::domain::state::Counters;
use room_store::{CounterBatch, RoomStore, counter};
use serde_json::json;

use super::events;
use crate::pusher::RoomPusher;

/// Rooms flushed at once.
const FLUSH_CONCURRENCY: usize = 64;
/// Windows without news after which a room's entry is dropped.
const IDLE_WINDOWS: u32 = 240;

/// What a flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    /// Rooms written.
    pub(crate) writes: u64,
    /// Rooms whose write failed (kept for the next window).
    pub(crate) failed: u64,
}

/// Deltas not yet written, of one room.
#[derive(Default)]
struct Pending {
    likes: AtomicU64,
    comments: AtomicU64,
    /// emoji → count; a lock, as reactions are far rarer than likes.
    reactions: Mutex<HashMap<String, u64>>,
    /// Reaction kinds seen here (bounded by `admit_kind`).
    kinds: Mutex<HashSet<String>>,
    idle_windows: AtomicU32,
    /// A numbered batch whose write failed: written again, as it is, first.
    unsent: Mutex<Option<Batch>>,
}

/// A batch number and its counter deltas.
type Batch = (u64, Vec<(String, u64)>);

impl Pending {
    fn reactions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // Single inserts and takes: a poisoned map is consistent.
        self.reactions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unsent(&self) -> std::sync::MutexGuard<'_, Option<Batch>> {
        // Replaced whole: a poisoned slot is consistent.
        self.unsent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_empty(&self) -> bool {
        self.unsent().is_none()
            && self.likes.load(Ordering::Acquire) == 0
            && self.comments.load(Ordering::Acquire) == 0
            && self.reactions().is_empty()
    }

    /// Take everything pending as store deltas.
    fn take(&self) -> Vec<(String, u64)> {
        let mut deltas = Vec::new();
        let likes = self.likes.swap(0, Ordering::AcqRel);
        if likes > 0 {
            deltas.push((counter::LIKES.to_owned(), likes));
        }
        let comments = self.comments.swap(0, Ordering::AcqRel);
        if comments > 0 {
            deltas.push((counter::COMMENTS.to_owned(), comments));
        }
        deltas.extend(
            self.reactions()
                .drain()
                .map(|(emoji, n)| (counter::reaction(&emoji), n)),
        );
        deltas
    }
}

/// The aggregator of one biz node.
pub(crate) struct Aggregator {
    rooms: DashMap<String, Pending>,
    /// This aggregator's id in the store's batch numbers.
    writer: String,
    /// The last batch number given.
    batches: AtomicU64,
    store: Arc<dyn RoomStore>,
    pusher: Arc<dyn RoomPusher>,
    window: Duration,
    likes_received: IntCounter,
    reactions_received: IntCounter,
    flushes: IntCounter,
}

impl Aggregator {
    /// Flush every `window` to `store`, pushing totals through `pusher`.
    pub(crate) fn new(
        store: Arc<dyn RoomStore>,
        pusher: Arc<dyn RoomPusher>,
        window: Duration,
        likes_received: IntCounter,
        reactions_received: IntCounter,
        flushes: IntCounter,
    ) -> Self {
        Self {
            rooms: DashMap::new(),
            writer: uuid::Uuid::new_v4().simple().to_string(),
            batches: AtomicU64::new(0),
            store,
            pusher,
            window,
            likes_received,
            reactions_received,
            flushes,
        }
    }

    /// Run `f` on `room`'s pending deltas. The shard guard is held while `f`
    /// runs, so a flush cannot drop the entry between the lookup and the add
    /// (which would lose the add).
    fn with_room(&self, room: &str, f: impl FnOnce(&Pending)) {
        if let Some(pending) = self.rooms.get(room) {
            f(&pending);
            return;
        }
        let pending = self.rooms.entry(room.to_owned()).or_default();
        f(&pending);
    }

    /// Count `n` likes.
    pub(crate) fn add_likes(&self, room: &str, n: u64) {
        self.with_room(room, |p| {
            p.likes.fetch_add(n, Ordering::AcqRel);
        });
        self.likes_received.inc_by(n);
    }

    /// Count one reaction `emoji`.
    pub(crate) fn add_reaction(&self, room: &str, emoji: &str) {
        self.with_room(room, |p| {
            *p.reactions().entry(emoji.to_owned()).or_default() += 1;
        });
        self.reactions_received.inc();
    }

    /// Count one comment.
    pub(crate) fn add_comment(&self, room: &str) {
        self.with_room(room, |p| {
            p.comments.fetch_add(1, Ordering::AcqRel);
        });
    }

    /// Whether `room` may take reaction `emoji`: it was seen here before, or
    /// fewer than `max` kinds were. Kinds are remembered per node while the
    /// room is active here, so a room has at most `max` kinds per biz node.
    pub(crate) fn admit_kind(&self, room: &str, emoji: &str, max: usize) -> bool {
        let mut admitted = false;
        self.with_room(room, |p| {
            let mut kinds = p.kinds.lock().unwrap_or_else(|e| e.into_inner());
            admitted = kinds.contains(emoji) || kinds.len() < max;
            if admitted {
                kinds.insert(emoji.to_owned());
            }
        });
        admitted
    }

    /// Write one room's pending deltas and push its totals.
    pub(crate) async fn flush_room(&self, room: &str) -> Flushed {
        // The shard guard goes at the end of this statement, before any await.
        let batch = match self.rooms.get(room) {
            Some(p) => p.unsent().take().or_else(|| {
                let deltas = p.take();
                let seq = self.batches.fetch_add(1, Ordering::AcqRel) + 1;
                (!deltas.is_empty()).then_some((seq, deltas))
            }),
            None => return Flushed::default(),
        };
        match batch {
            Some((seq, deltas)) => self.write(room, seq, deltas).await,
            None => Flushed::default(),
        }
    }

    async fn write(&self, room: &str, seq: u64, deltas: Vec<(String, u64)>) -> Flushed {
        let pushes_totals = deltas.iter().any(|(name, _)| name != counter::COMMENTS);
        let batch = CounterBatch {
            writer: &self.writer,
            seq,
        };
        match self.store.add_counters(room, &deltas, Some(batch)).await {
            Ok(Some(totals)) => {
                self.flushes.inc();
                if pushes_totals {
                    self.push_totals(room, &totals).await;
                }
                Flushed {
                    writes: 1,
                    failed: 0,
                }
            }
            Ok(None) => {
                // The room is gone: nothing to count into.
                self.rooms.remove(room);
                Flushed::default()
            }
            Err(error) => {
                tracing::warn!(room, %error, "Cannot write aggregated counters; retrying next window.");
                if let Some(p) = self.rooms.get(room) {
                    *p.unsent() = Some((seq, deltas));
                }
                Flushed {
                    writes: 0,
                    failed: 1,
                }
            }
        }
    }

    async fn push_totals(&self, room: &str, totals: &Counters) {
        let body = json!({
            "likes": totals.likes,
            "reactions": totals.reactions,
            "reactions_total": totals.reactions_total(),
        });
        let request = proto::internal::v1::PushRoomRequest {
            room: room.to_owned(),
            kind: events::TOTALS.to_owned(),
            body: body.to_string().into(),
            sender: String::new(),
            priority: proto::client::v1::Priority::Normal as i32,
            durable: false,
        };
        if let Err(error) = self.pusher.push_room(request).await {
            // Totals are ephemeral: the next window's push carries them again.
            tracing::debug!(room, %error, "Cannot push totals.");
        }
    }

    /// Write every room's pending deltas (one store operation per room).
    pub(crate) async fn flush(&self) -> Flushed {
        let mut due = Vec::new();
        for entry in &self.rooms {
            if entry.is_empty() {
                entry.idle_windows.fetch_add(1, Ordering::AcqRel);
            } else {
                entry.idle_windows.store(0, Ordering::Release);
                due.push(entry.key().clone());
            }
        }
        // Drop rooms idle for long; `retain` holds each shard's lock while it
        // checks, and adds hold it too, so no add can slip in and be lost.
        self.rooms
            .retain(|_, p| p.idle_windows.load(Ordering::Acquire) < IDLE_WINDOWS || !p.is_empty());
        let mut writes = futures::stream::iter(due)
            .map(|room| async move { self.flush_room(&room).await })
            .buffer_unordered(FLUSH_CONCURRENCY);
        let mut total = Flushed::default();
        while let Some(done) = writes.next().await {
            total.writes += done.writes;
            total.failed += done.failed;
        }
        total
    }

    /// Flush every window, forever.
    pub(crate) async fn run(&self) {
        let mut tick = tokio::time::interval(self.window);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use room_store::{MemoryRoomStore, NewRoom, RedisRoomStore};

    use super::*;
    use crate::metrics::Metrics;
    use crate::test_util::{FlakyStore, RecordingPusher};

    const WINDOW: Duration = Duration::from_millis(200);
    const TASKS: u64 = 100;
    const LIKES_PER_TASK: u64 = 1_000;
    const ROUNDS: u64 = 10;

    fn aggregator(
        store: Arc<dyn RoomStore>,
        pusher: Arc<RecordingPusher>,
    ) -> (Arc<Aggregator>, Metrics) {
        let metrics = Metrics::new(&prometheus::Registry::new());
        let aggregator = Aggregator::new(
            store,
            pusher,
            WINDOW,
            metrics.likes_received.clone(),
            metrics.reactions_received.clone(),
            metrics.counter_flushes.clone(),
        );
        (Arc::new(aggregator), metrics)
    }

    /// 100 concurrent tasks add 1,000 single likes each, in 10 bursts spread
    /// over one second, while the flusher runs every 200 ms: every like is
    /// counted in the store, with at most one store write (and one totals
    /// push) per window.
    async fn like_storm_is_counted_in_few_writes(store: Arc<dyn RoomStore>) {
        let room = store
            .create_room(NewRoom::titled("Hearts", None))
            .await
            .expect("create")
            .id;
        let pusher = RecordingPusher::new();
        let (aggregator, metrics) = aggregator(store.clone(), pusher.clone());
        let flusher = tokio::spawn({
            let aggregator = aggregator.clone();
            async move { aggregator.run().await }
        });
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (aggregator, room) = (aggregator.clone(), room.clone());
                tokio::spawn(async move {
                    for _ in 0..ROUNDS {
                        for _ in 0..LIKES_PER_TASK / ROUNDS {
                            aggregator.add_likes(&room, 1);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let elapsed = started.elapsed();
        // Let the flusher write the last window itself, then stop it while
        // it has nothing in hand.
        tokio::time::sleep(WINDOW * 3).await;
        flusher.abort();
        let _ = flusher.await;
        assert_eq!(
            aggregator.flush().await.writes,
            0,
            "the flusher wrote everything"
        );

        let total = TASKS * LIKES_PER_TASK;
        let read = store
            .read(&room, None, 0)
            .await
            .expect("read")
            .expect("room");
        assert_eq!(read.counters.likes, total, "every like counted");
        assert_eq!(metrics.likes_received.get(), total);
        let writes = metrics.counter_flushes.get();
        let windows = (elapsed + WINDOW * 3).as_millis() as u64 / WINDOW.as_millis() as u64 + 1;
        assert!(
            (1..=windows).contains(&writes),
            "{writes} store writes for {windows} windows"
        );
        let pushes = pusher.ephemerals(&room);
        assert_eq!(pushes.len() as u64, writes, "one totals push per write");
        assert_eq!(
            pushes.last().map(|(_, body)| body["likes"].clone()),
            Some(total.into())
        );
        println!(
            "likes: {total} in {elapsed:?} ({:.0}/s) cost {writes} store writes over {windows} \
             windows of {WINDOW:?} (at most 1 per window)",
            total as f64 / elapsed.as_secs_f64(),
        );

        // How fast one room takes likes when nobody sleeps: 8 tasks adding
        // as fast as they can, while the flusher keeps writing per window.
        let flusher = tokio::spawn({
            let aggregator = aggregator.clone();
            async move { aggregator.run().await }
        });
        let before_writes = metrics.counter_flushes.get();
        let burst = 250_000_u64;
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (aggregator, room) = (aggregator.clone(), room.clone());
                tokio::spawn(async move {
                    for _ in 0..burst {
                        aggregator.add_likes(&room, 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(WINDOW * 3).await;
        flusher.abort();
        let _ = flusher.await;
        aggregator.flush().await;
        let read = store
            .read(&room, None, 0)
            .await
            .expect("read")
            .expect("room");
        assert_eq!(read.counters.likes, total + 8 * burst);
        // The rate is a figure, not a bound: timings belong to benchmarks
        // (`roomcast-bench likes-storm`), and a busy machine would fail here.
        let rate = (8 * burst) as f64 / elapsed.as_secs_f64();
        println!(
            "likes: burst of {} in {elapsed:?} ({rate:.0}/s), {} store writes",
            8 * burst,
            metrics.counter_flushes.get() - before_writes
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_like_storm_on_memory_is_counted_exactly_in_one_write_per_window() {
        like_storm_is_counted_in_few_writes(Arc::new(MemoryRoomStore::new())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_like_storm_on_redis_is_counted_exactly_in_one_write_per_window() {
        let redis = test_servers::RedisServer::start().expect("start redis-server");
        let store = RedisRoomStore::connect(&[redis.url()], "test:")
            .await
            .expect("connect");
        like_storm_is_counted_in_few_writes(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn a_failed_write_keeps_the_likes_for_the_next_window() {
        let store = Arc::new(MemoryRoomStore::new());
        let (aggregator, metrics) = aggregator(store.clone(), RecordingPusher::new());
        aggregator.add_likes("r-missing", 5);
        assert_eq!(
            aggregator.flush().await,
            Flushed::default(),
            "unknown rooms are dropped"
        );
        let room = store
            .create_room(NewRoom::titled("t", None))
            .await
            .expect("create")
            .id;
        aggregator.add_likes(&room, 2);
        aggregator.add_reaction(&room, "👍");
        aggregator.add_comment(&room);
        assert_eq!(aggregator.flush().await.writes, 1);
        let read = store
            .read(&room, None, 0)
            .await
            .expect("read")
            .expect("room");
        assert_eq!((read.counters.likes, read.counters.comments), (2, 1));
        assert_eq!(read.counters.reactions_total(), 1);
        assert_eq!(metrics.counter_flushes.get(), 1);
    }

    async fn likes(store: &FlakyStore, room: &str) -> u64 {
        let read = store.read(room, None, 0).await.expect("read");
        read.expect("room").counters.likes
    }

    #[tokio::test]
    async fn a_write_that_failed_is_written_again_and_counted_once() {
        let store = Arc::new(FlakyStore::default());
        let (aggregator, _) = aggregator(store.clone(), RecordingPusher::new());
        let room = store
            .create_room(NewRoom::titled("t", None))
            .await
            .expect("create")
            .id;

        // The store is down: nothing written, the batch kept.
        store.counter_failures.store(1, Ordering::SeqCst);
        aggregator.add_likes(&room, 3);
        assert_eq!(aggregator.flush().await.failed, 1);
        assert_eq!(likes(&store, &room).await, 0);
        // Likes of the next window wait behind it, then go in a batch of their own.
        aggregator.add_likes(&room, 4);
        assert_eq!(aggregator.flush().await.writes, 1);
        assert_eq!(likes(&store, &room).await, 3, "the kept batch first");
        assert_eq!(aggregator.flush().await.writes, 1);
        assert_eq!(likes(&store, &room).await, 7);

        // The write lands but its reply is lost (a timeout): written again
        // with its number, counted once.
        store.counter_replies_lost.store(1, Ordering::SeqCst);
        aggregator.add_likes(&room, 10);
        assert_eq!(aggregator.flush().await.failed, 1);
        assert_eq!(likes(&store, &room).await, 17);
        aggregator.add_likes(&room, 1);
        assert_eq!(aggregator.flush().await.writes, 1, "the retry");
        assert_eq!(likes(&store, &room).await, 17, "not counted twice");
        assert_eq!(aggregator.flush().await.writes, 1);
        assert_eq!(likes(&store, &room).await, 18);
        assert_eq!(aggregator.flush().await, Flushed::default(), "all written");
    }
}
