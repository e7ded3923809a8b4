//! The [`ArchiveStore`] trait every engine implements.

use crate::error::ArchiveError;
use crate::model::{ArchiveBatch, ArchivedMessage, ArchivedRoom, CounterMinute, MemberSession};

/// Most messages one read returns; larger limits are cut to it.
pub const MAX_PAGE: usize = 1000;

/// A page of history by seq. Pages come back oldest first.
///
/// With `after_seq`, the oldest `limit` messages after it (below `before_seq`
/// when both are set); otherwise the newest `limit` below `before_seq` (or
/// the newest of all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Messages with a smaller seq.
    pub before_seq: Option<u64>,
    /// Messages with a larger seq.
    pub after_seq: Option<u64>,
    /// Messages at most (cut to [`MAX_PAGE`]).
    pub limit: usize,
}

impl HistoryQuery {
    /// The limit, at least 1 and at most [`MAX_PAGE`].
    pub fn page(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }
}

/// An archive engine.
#[async_trait::async_trait]
pub trait ArchiveStore: Send + Sync + 'static {
    /// Insert or update the room row (its record and summary); keeps an
    /// existing `archived_at_ms`.
    async fn put_room(&self, room: &ArchivedRoom) -> Result<(), ArchiveError>;
    /// Write `batch` in one transaction; returns how many of its messages
    /// were new (the others were archived before).
    async fn write_batch(&self, batch: &ArchiveBatch) -> Result<u64, ArchiveError>;
    /// Record that the archive of `room` is complete; false if the room row
    /// is unknown. Idempotent: the first time stays.
    async fn mark_archived(&self, room: &str, at_ms: u64) -> Result<bool, ArchiveError>;
    /// The room row, or `None`.
    async fn room(&self, room: &str) -> Result<Option<ArchivedRoom>, ArchiveError>;
    /// Completely archived rooms that ended at or after `since_ms`, by end
    /// time then id (exports).
    async fn rooms_ended_since(&self, since_ms: u64) -> Result<Vec<ArchivedRoom>, ArchiveError>;
    /// The highest archived seq of `room` (0 if none): where a resumed
    /// archiver continues.
    async fn last_seq(&self, room: &str) -> Result<u64, ArchiveError>;
    /// A page of history (see [`HistoryQuery`]).
    async fn history(
        &self,
        room: &str,
        query: HistoryQuery,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError>;
    /// Up to `limit` (cut to [`MAX_PAGE`]) messages from `from_ms` after the
    /// room's start on, by offset then seq.
    async fn replay(
        &self,
        room: &str,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError>;
    /// Rows archived for `room`, per table.
    async fn table_counts(&self, room: &str) -> Result<TableCounts, ArchiveError>;
    /// The session stays of `room`, by join time then uid and session.
    async fn sessions(&self, room: &str) -> Result<Vec<MemberSession>, ArchiveError>;
    /// The per-minute counts of `room`, by minute then name.
    async fn counter_minutes(&self, room: &str) -> Result<Vec<CounterMinute>, ArchiveError>;
    /// The `room_stats` row of `room` (duration, peak, unique listeners…),
    /// or `None` for a room never archived.
    async fn stats(&self, room: &str) -> Result<Option<RoomStats>, ArchiveError>;
}

/// One row of the `room_stats` view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// From the start (else the creation) to the end; `None` before the end.
    pub duration_ms: Option<i64>,
    /// Most members at once (the `peak` counter).
    pub peak_concurrency: Option<u64>,
    /// Distinct uids that ever joined (the `unique_listeners` counter).
    pub unique_listeners: Option<u64>,
    /// Session stays archived.
    pub sessions: u64,
    /// Durable messages archived.
    pub messages: u64,
}

/// Rows archived for one room, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Messages.
    pub messages: u64,
    /// Participation rows.
    pub members: u64,
    /// Polls.
    pub polls: u64,
    /// Gifts.
    pub gifts: u64,
    /// Counter totals.
    pub counters: u64,
    /// Session stays.
    pub sessions: u64,
    /// Per-minute counts.
    pub minutes: u64,
}
