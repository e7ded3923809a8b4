//! The per-room message log: dense sequence numbers issued atomically with the
//! write, bounded history, and an epoch that changes when a stream is lost.
//!
//! A reader can never observe seq N+1 without N: the engine issues the seq and
//! stores the message in one atomic step (a Lua script on Redis, a lock here).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::client::v1::RoomMessage;

pub mod redis;

/// Where a room's stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHead {
    /// Identifies this incarnation of the stream; never 0.
    pub epoch: u64,
    /// The newest seq (0 before the first message).
    pub last_seq: u64,
}

/// The seqs an append was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stream's epoch.
    pub epoch: u64,
    /// Seq of the first appended message; the rest follow densely.
    pub first_seq: u64,
}

/// The result of a read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogRead {
    /// The stream's epoch.
    pub epoch: u64,
    /// The newest seq at the time of the read.
    pub head_seq: u64,
    /// Contiguous messages from `after_seq + 1` (or from the oldest kept when
    /// `truncated`), at most `limit`.
    pub messages: Vec<RoomMessage>,
    /// History no longer reaches back to `after_seq + 1`.
    pub truncated: bool,
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The backing store is unreachable; the caller may retry.
    #[error("message log unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("message log entry is corrupt: {0}")]
    Corrupt(String),
}

/// History bounds.
#[derive(Clone, Copy, Debug)]
pub struct HistoryLimits {
    /// Messages kept per room.
    pub max_len: usize,
    /// Age after which messages are dropped.
    pub max_age: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            max_len: 1000,
            max_age: Duration::from_secs(3600),
        }
    }
}

/// A message log engine.
#[async_trait::async_trait]
pub trait MessageLog: Send + Sync + 'static {
    /// Append `messages` to `room`, assigning dense seqs in order.
    /// The `seq` fields of the input are ignored.
    async fn append(&self, room: &str, messages: &[RoomMessage]) -> Result<Appended, LogError>;
    /// Read up to `limit` messages after `after_seq`.
    async fn read_after(
        &self,
        room: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<LogRead, LogError>;
    /// The stream head, creating the stream (and its epoch) if absent.
    async fn head(&self, room: &str) -> Result<StreamHead, LogError>;
    /// Forget a room entirely (after archiving).
    async fn delete(&self, room: &str) -> Result<(), LogError>;
}

/// In-memory engine: standalone mode and unit tests.
#[derive(Clone, Default)]
pub struct MemoryLog {
    limits: HistoryLimits,
    // One lock per room stream; the outer map lock is held only to find it.
    rooms: Arc<Mutex<HashMap<String, Arc<Mutex<Stream>>>>>,
}

struct Stream {
    epoch: u64,
    last_seq: u64,
    entries: VecDeque<(Instant, RoomMessage)>,
}

impl Stream {
    fn new() -> Self {
        Self {
            epoch: new_epoch(),
            last_seq: 0,
            entries: VecDeque::new(),
        }
    }

    fn trim(&mut self, limits: &HistoryLimits, now: Instant) {
        while self.entries.len() > limits.max_len {
            self.entries.pop_front();
        }
        while let Some((at, _)) = self.entries.front() {
            if now.duration_since(*at) > limits.max_age {
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }
}

/// A random non-zero epoch.
pub fn new_epoch() -> u64 {
    loop {
        let e = rand::random::<u64>() >> 11; // fits a JSON double exactly
        if e != 0 {
            return e;
        }
    }
}

impl MemoryLog {
    /// An empty log with the given history bounds.
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            rooms: Arc::default(),
        }
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
        let stream = self.stream(room);
        let mut s = stream.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let first_seq = s.last_seq + 1;
        for m in messages {
            s.last_seq += 1;
            let mut m = m.clone();
            m.seq = s.last_seq;
            s.entries.push_back((now, m));
        }
        s.trim(&self.limits, now);
        Ok(Appended {
            epoch: s.epoch,
            first_seq,
        })
    }

    async fn read_after(
        &self,
        room: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<LogRead, LogError> {
        let stream = self.stream(room);
        let mut s = stream.lock().unwrap_or_else(|p| p.into_inner());
        s.trim(&self.limits, Instant::now());
        let oldest = s
            .entries
            .front()
            .map(|(_, m)| m.seq)
            .unwrap_or(s.last_seq + 1);
        let truncated = after_seq + 1 < oldest && after_seq < s.last_seq;
        let skip = (after_seq + 1).saturating_sub(oldest) as usize;
        let messages = s
            .entries
            .iter()
            .skip(skip)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect();
        Ok(LogRead {
            epoch: s.epoch,
            head_seq: s.last_seq,
            messages,
            truncated,
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
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(room);
        Ok(())
    }
}

/// Conformance tests every engine must pass; engines call them from their own tests.
pub mod conformance {
    use super::*;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_log_conformance() {
        let log = MemoryLog::new(HistoryLimits {
            max_len: 5,
            max_age: Duration::from_secs(60),
        });
        conformance::dense_seqs_and_bounded_history(&log, "room-a").await;
        let log = Arc::new(MemoryLog::new(HistoryLimits::default()));
        conformance::concurrent_appends_are_dense(log, "room-b").await;
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
        let read = log.read_after("r", 0, 10).await.expect("read");
        assert!(read.messages.is_empty());
        assert!(read.truncated);
        assert_eq!(read.head_seq, 1);
    }
}
