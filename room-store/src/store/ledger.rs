//! The [`Ledger`]: records of the room service that are not one room's state
//! — the due-job index that starts scheduled rooms, per-user inboxes,
//! idempotency keys, and the event log webhooks are delivered from — with
//! the same two engines as rooms (memory in standalone mode, Redis in
//! distributed mode).
//!
//! Every engine of [`crate::RoomStore`] hands out its ledger
//! ([`crate::RoomStore::ledger`]), so the service needs no second store to
//! configure, and a test that swaps the room store swaps the ledger with it.

use std::time::Duration;

use crate::error::StoreError;

/// Where an idempotency key stands, from [`Ledger::once_begin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Once {
    /// The key is new: the caller now holds it and does the work, then
    /// calls [`Ledger::once_finish`] (or [`Ledger::once_abort`] on failure).
    First,
    /// Another request with the key is still being served.
    Pending,
    /// The work was done; this is the first request's recorded reply.
    Done(String),
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its id, `<ms>-<n>`, increasing in log order: a reader's cursor, and
    /// the event's idempotency key.
    pub id: String,
    /// The event as appended (JSON).
    pub event: String,
}

/// Due jobs, inboxes, idempotency keys and the event log.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Put `job` in the due index at `at_ms` (Unix ms), replacing any time
    /// it had.
    async fn schedule_due(&self, job: &str, at_ms: u64) -> Result<(), StoreError>;

    /// Claim up to `limit` jobs due at `now_ms` (oldest first). A claimed job
    /// stays in the index, hidden until `now_ms + lease_ms`: the claimer calls
    /// [`Self::finish_due`] when done, and if it dies first the job is due
    /// again after the lease. Atomic: two callers never claim the same job
    /// within one lease.
    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Drop `job` from the due index (no error if absent).
    async fn finish_due(&self, job: &str) -> Result<(), StoreError>;

    /// When `job` is due (Unix ms), if it is in the index.
    async fn due_at(&self, job: &str) -> Result<Option<u64>, StoreError>;

    /// Add `item` to the front of each uid's inbox, keeping the newest `max`
    /// items; an inbox expires `ttl` after its last write.
    async fn inbox_push(
        &self,
        uids: &[String],
        item: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The items of `uid`'s inbox, newest first.
    async fn inbox_read(&self, uid: &str) -> Result<Vec<String>, StoreError>;

    /// Take idempotency `key` if it is new (held as pending for `ttl`), or
    /// say where it stands.
    async fn once_begin(&self, key: &str, ttl: Duration) -> Result<Once, StoreError>;

    /// Record the reply of the work done under `key`, kept for `ttl`.
    async fn once_finish(&self, key: &str, reply: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Give `key` up (the work failed): a retry may take it again.
    async fn once_abort(&self, key: &str) -> Result<(), StoreError>;

    /// Append `event` to the event log, keeping about the newest `max_len`
    /// events; its id.
    async fn events_append(&self, event: &str, max_len: usize) -> Result<String, StoreError>;

    /// Up to `limit` events after id `after` (from the oldest kept when
    /// `None`), oldest first.
    async fn events_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// Create reader group `group` at the log's end, unless it exists: a
    /// reader joins before the events it must see are appended.
    async fn events_join(&self, group: &str) -> Result<(), StoreError>;

    /// Claim up to `limit` events for `consumer` of reader group `group`
    /// (created at the log's end on first use): first events claimed by any
    /// consumer and not touched or acknowledged for `stale_ms` (their
    /// consumer died), then events no consumer of the group has had yet. A
    /// claimed event stays the consumer's until it is acknowledged.
    async fn events_claim(
        &self,
        group: &str,
        consumer: &str,
        limit: usize,
        stale_ms: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// Mark `ids`, claimed by `consumer`, as still being worked on.
    async fn events_touch(
        &self,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), StoreError>;

    /// Acknowledge `ids`: done for `group`, never handed out to it again.
    async fn events_ack(&self, group: &str, ids: &[String]) -> Result<(), StoreError>;
}
