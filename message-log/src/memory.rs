//! The in-memory engine of [`MessageLog`]: standalone mode and unit tests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use proto::client::v1::RoomMessage;

use prost::Message as _;

use crate::{
    Appended, HistoryLimits, LogError, LogRead, MessageLog, ReadLimit, StreamHead, new_epoch,
};

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
        limit: ReadLimit,
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
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(room);
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
