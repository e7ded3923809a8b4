//! The in-memory engine of [`MessageLog`]: standalone mode and unit tests.
//!
//! Besides the history bounds every engine keeps (count, age), memory is
//! bounded by a [`MemoryBudget`]: bytes per room, and bytes in all: past the
//! total, the rooms written least recently lose their oldest messages first
//! (a history truncation, which clients already handle). Rooms with nothing
//! left and no write for the history's age are forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::client::v1::RoomMessage;

use prost::Message as _;

use crate::{
    Appended, HistoryLimits, LogError, LogRead, MessageLog, ReadLimit, StreamHead, new_epoch,
};

/// How many bytes of messages the memory engine keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes of history per room (the newest message is always kept).
    pub room_bytes: usize,
    /// Bytes of history in all rooms.
    pub total_bytes: usize,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            room_bytes: 4 * 1024 * 1024,
            total_bytes: 512 * 1024 * 1024,
        }
    }
}

/// How often appends look for forgotten rooms.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// In-memory engine: standalone mode and unit tests.
#[derive(Clone, Default)]
pub struct MemoryLog {
    limits: HistoryLimits,
    budget: MemoryBudget,
    // One lock per room stream; the outer map lock is held only to find it.
    // Lock order: the map, then one stream; never a stream, then the map.
    rooms: Arc<Mutex<HashMap<String, Arc<Mutex<Stream>>>>>,
    /// Bytes of all entries of all streams.
    total: Arc<AtomicUsize>,
    last_sweep: Arc<Mutex<Option<Instant>>>,
}

struct Stream {
    epoch: u64,
    last_seq: u64,
    entries: VecDeque<(Instant, RoomMessage)>,
    bytes: usize,
    last_append: Instant,
}

impl Stream {
    fn new() -> Self {
        Self {
            epoch: new_epoch(),
            last_seq: 0,
            entries: VecDeque::new(),
            bytes: 0,
            last_append: Instant::now(),
        }
    }

    fn pop_oldest(&mut self, total: &AtomicUsize) {
        if let Some((_, m)) = self.entries.pop_front() {
            let size = m.encoded_len();
            self.bytes -= size;
            total.fetch_sub(size, Ordering::Relaxed);
        }
    }

    fn trim(
        &mut self,
        limits: &HistoryLimits,
        budget: &MemoryBudget,
        total: &AtomicUsize,
        now: Instant,
    ) {
        while self.entries.len() > limits.max_len
            || (self.entries.len() > 1 && self.bytes > budget.room_bytes)
        {
            self.pop_oldest(total);
        }
        while let Some((at, _)) = self.entries.front() {
            if now.duration_since(*at) > limits.max_age {
                self.pop_oldest(total);
            } else {
                break;
            }
        }
    }
}

impl MemoryLog {
    /// An empty log with the given history bounds and the default budget.
    pub fn new(limits: HistoryLimits) -> Self {
        Self::with_budget(limits, MemoryBudget::default())
    }

    /// An empty log with the given history bounds and memory budget.
    pub fn with_budget(limits: HistoryLimits, budget: MemoryBudget) -> Self {
        Self {
            limits,
            budget,
            rooms: Arc::default(),
            total: Arc::default(),
            last_sweep: Arc::default(),
        }
    }

    /// Bytes of history held now, in all rooms.
    pub fn bytes(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Rooms held now.
    pub fn rooms(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Over the total budget: the rooms written least recently lose their
    /// oldest messages until the log fits again.
    fn enforce_total(&self) {
        if self.bytes() <= self.budget.total_bytes {
            return;
        }
        let mut streams: Vec<Arc<Mutex<Stream>>> = self
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        streams.sort_by_cached_key(|s| s.lock().unwrap_or_else(|p| p.into_inner()).last_append);
        for stream in streams {
            let mut s = stream.lock().unwrap_or_else(|p| p.into_inner());
            while !s.entries.is_empty() && self.bytes() > self.budget.total_bytes {
                s.pop_oldest(&self.total);
            }
            if self.bytes() <= self.budget.total_bytes {
                return;
            }
        }
    }

    /// Forget rooms with no history left and no write for the history's
    /// age (ended or abandoned rooms); at most every [`SWEEP_EVERY`].
    fn sweep(&self, now: Instant) {
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < SWEEP_EVERY) {
                return;
            }
            *last = Some(now);
        }
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.retain(|_, stream| {
            // A stream in use (locked) stays: it is being written or read.
            let Ok(mut s) = stream.try_lock() else {
                return true;
            };
            s.trim(&self.limits, &self.budget, &self.total, now);
            !(s.entries.is_empty() && now.duration_since(s.last_append) > self.limits.max_age)
        });
    }

    fn stream(&self, room: &str) -> Arc<Mutex<Stream>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .entry(room.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Stream::new())))
            .clone()
    }
}

#[async_trait::async_trait]
impl MessageLog for MemoryLog {
    async fn append(&self, room: &str, messages: &[RoomMessage]) -> Result<Appended, LogError> {
        let now = Instant::now();
        let appended = {
            let stream = self.stream(room);
            let mut s = stream.lock().unwrap_or_else(|p| p.into_inner());
            let first_seq = s.last_seq + 1;
            for m in messages {
                s.last_seq += 1;
                let mut m = m.clone();
                m.seq = s.last_seq;
                let size = m.encoded_len();
                s.bytes += size;
                self.total.fetch_add(size, Ordering::Relaxed);
                s.entries.push_back((now, m));
            }
            s.last_append = now;
            s.trim(&self.limits, &self.budget, &self.total, now);
            Appended {
                epoch: s.epoch,
                first_seq,
            }
        };
        // The stream's lock is released: these take the map's.
        self.enforce_total();
        self.sweep(now);
        Ok(appended)
    }

    async fn read_after(
        &self,
        room: &str,
        after_seq: u64,
        limit: ReadLimit,
    ) -> Result<LogRead, LogError> {
        let stream = self.stream(room);
        let mut s = stream.lock().unwrap_or_else(|p| p.into_inner());
        s.trim(&self.limits, &self.budget, &self.total, Instant::now());
        let oldest = s
            .entries
            .front()
            .map(|(_, m)| m.seq)
            .unwrap_or(s.last_seq + 1);
        let truncated = after_seq + 1 < oldest && after_seq < s.last_seq;
        let skip = (after_seq + 1).saturating_sub(oldest) as usize;
        let mut messages = Vec::new();
        let mut bytes = 0usize;
        for (_, m) in s.entries.iter().skip(skip).take(limit.max_messages) {
            bytes = bytes.saturating_add(m.encoded_len());
            if !messages.is_empty() && bytes > limit.max_bytes {
                break;
            }
            messages.push(m.clone());
        }
        let more = LogRead::stops_before_head(&messages, s.last_seq);
        Ok(LogRead {
            epoch: s.epoch,
            head_seq: s.last_seq,
            messages,
            truncated,
            more,
        })
    }

    async fn head(&self, room: &str) -> Result<StreamHead, LogError> {
        let stream = self.stream(room);
        let s = stream.lock().unwrap_or_else(|p| p.into_inner());
        Ok(StreamHead {
            epoch: s.epoch,
            last_seq: s.last_seq,
        })
    }

    async fn delete(&self, room: &str) -> Result<(), LogError> {
        let removed = self
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(room);
        if let Some(stream) = removed {
            let s = stream.lock().unwrap_or_else(|p| p.into_inner());
            self.total.fetch_sub(s.bytes, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::conformance;

    #[tokio::test]
    async fn memory_log_conformance() {
        let log = MemoryLog::new(HistoryLimits {
            max_len: 5,
            max_age: Duration::from_secs(60),
        });
        conformance::dense_seqs_and_bounded_history(&log, "room-a").await;
        let log = Arc::new(MemoryLog::new(HistoryLimits::default()));
        conformance::concurrent_appends_are_dense(log, "room-b").await;
        let log = MemoryLog::new(HistoryLimits::default());
        conformance::reads_are_paged_by_count_and_bytes(&log, "room-c").await;
    }

    fn message(bytes: usize) -> RoomMessage {
        RoomMessage {
            body: vec![b'x'; bytes].into(),
            ..RoomMessage::default()
        }
    }

    #[tokio::test]
    async fn a_room_keeps_its_byte_budget_and_the_newest_message() {
        let budget = MemoryBudget {
            room_bytes: 10_000,
            total_bytes: 1 << 30,
        };
        let log = MemoryLog::with_budget(HistoryLimits::default(), budget);
        for _ in 0..50 {
            log.append("r", &[message(1_000)]).await.expect("append");
        }
        assert!(log.bytes() <= 10_000, "{} bytes kept", log.bytes());
        let read = log
            .read_after("r", 0, ReadLimit::messages(100))
            .await
            .expect("read");
        assert!(read.truncated, "the oldest are gone, and readers are told");
        assert_eq!(
            read.messages.last().map(|m| m.seq),
            Some(50),
            "the newest stays"
        );
        // A single message larger than the room budget is still kept.
        log.append("big", &[message(20_000)]).await.expect("append");
        let read = log
            .read_after("big", 0, ReadLimit::messages(10))
            .await
            .expect("read");
        assert_eq!(read.messages.len(), 1);
    }

    #[tokio::test]
    async fn over_the_total_the_least_recently_written_rooms_give_way() {
        let budget = MemoryBudget {
            room_bytes: 1 << 20,
            total_bytes: 30_000,
        };
        let log = MemoryLog::with_budget(HistoryLimits::default(), budget);
        for room in ["old", "mid", "new"] {
            for _ in 0..10 {
                log.append(room, &[message(1_000)]).await.expect("append");
            }
        }
        for _ in 0..10 {
            log.append("newest", &[message(1_000)])
                .await
                .expect("append");
        }
        assert!(log.bytes() <= 30_000, "{} bytes", log.bytes());
        let kept = |read: LogRead| read.messages.len();
        let old = kept(
            log.read_after("old", 0, ReadLimit::messages(100))
                .await
                .expect("read"),
        );
        let newest = kept(
            log.read_after("newest", 0, ReadLimit::messages(100))
                .await
                .expect("read"),
        );
        assert!(old < 10, "the oldest room lost history: {old}");
        assert_eq!(newest, 10, "the room written last keeps all");
        // Seqs stay dense: the next append continues.
        let next = log.append("old", &[message(10)]).await.expect("append");
        assert_eq!(next.first_seq, 11);
        log.delete("old").await.expect("delete");
        assert!(log.bytes() <= 30_000);
    }

    #[tokio::test]
    async fn old_messages_expire_by_age() {
        let log = MemoryLog::new(HistoryLimits {
            max_len: 100,
            max_age: Duration::from_millis(20),
        });
        log.append("r", &[RoomMessage::default()])
            .await
            .expect("append");
        tokio::time::sleep(Duration::from_millis(40)).await;
        let read = log
            .read_after("r", 0, ReadLimit::messages(10))
            .await
            .expect("read");
        assert!(read.messages.is_empty());
        assert!(read.truncated);
        assert_eq!(read.head_seq, 1);
    }
}
