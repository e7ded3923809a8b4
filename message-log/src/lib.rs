//! The per-room message log: dense sequence numbers issued atomically with the
//! write, bounded history, and an epoch that changes when a stream is lost.
//!
//! A reader can never observe seq N+1 without N: the engine issues the seq and
//! stores the message in one atomic step (a Lua script on Redis, a lock in
//! memory).
//!
//! # Layout
//! - this file: the [`MessageLog`] trait, what it returns ([`StreamHead`],
//!   [`Appended`], [`LogRead`]), how much one read may return ([`ReadLimit`]),
//!   its error ([`LogError`]), [`HistoryLimits`] and [`new_epoch`].
//! - [`memory`]: [`MemoryLog`], the in-process engine (standalone mode, tests).
//! - [`redis`]: [`redis::RedisLog`], the Redis engine (standalone or Cluster),
//!   its Lua scripts and [`redis::connect`].
//! - [`keys`]: the log's Redis key layout (`{prefix}{room:<id>}:epoch|seq|log`).
//! - `conformance` (feature `test-util`, and this crate's own tests): the
//!   suite every engine must pass. Production builds do not compile it; crates
//!   that run it enable the feature in `[dev-dependencies]` only.

use std::time::Duration;

use proto::client::v1::RoomMessage;

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod keys;
pub mod memory;
pub mod redis;

pub use memory::{MemoryBudget, MemoryLog};

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

/// Encoded bytes one read returns at most by default: well under the 4 MiB a
/// gRPC peer decodes by default, so a page always fits one reply.
pub const DEFAULT_READ_BYTES: usize = proto::paging::PAGE_BYTES;

/// How much one read may return: a page of the stream, bounded by count and
/// by bytes. Histories of large messages are read page after page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimit {
    /// Messages at most.
    pub max_messages: usize,
    /// Encoded bytes at most (the sum of the messages' protobuf-encoded
    /// lengths). The first message is returned even when it alone is larger,
    /// so a reader always makes progress.
    pub max_bytes: usize,
}

impl ReadLimit {
    /// At most `max_messages`, and [`DEFAULT_READ_BYTES`].
    pub const fn messages(max_messages: usize) -> Self {
        Self {
            max_messages,
            max_bytes: DEFAULT_READ_BYTES,
        }
    }

    /// At most `max_messages` and `max_bytes`.
    pub const fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            max_messages,
            max_bytes,
        }
    }
}

/// The result of a read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogRead {
    /// The stream's epoch.
    pub epoch: u64,
    /// The newest seq at the time of the read.
    pub head_seq: u64,
    /// Contiguous messages from `after_seq + 1` (or from the oldest kept when
    /// `truncated`), within the read's [`ReadLimit`].
    pub messages: Vec<RoomMessage>,
    /// History no longer reaches back to `after_seq + 1`.
    pub truncated: bool,
    /// The read stopped at its limit before the head: read again after the
    /// last message for the next page. (False when no message was returned.)
    pub more: bool,
}

impl LogRead {
    /// Whether `messages` stop before `head_seq` (the value of `more`).
    pub fn stops_before_head(messages: &[RoomMessage], head_seq: u64) -> bool {
        messages.last().is_some_and(|m| m.seq < head_seq)
    }
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
    /// Read one page after `after_seq`: contiguous messages within `limit`
    /// (count and bytes), and whether more follow.
    async fn read_after(
        &self,
        room: &str,
        after_seq: u64,
        limit: ReadLimit,
    ) -> Result<LogRead, LogError>;
    /// The stream head, creating the stream (and its epoch) if absent.
    async fn head(&self, room: &str) -> Result<StreamHead, LogError>;
    /// Forget a room entirely (after archiving).
    async fn delete(&self, room: &str) -> Result<(), LogError>;
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
