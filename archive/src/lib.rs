//! The archive of ended rooms: what a room leaves behind once it ends (its
//! durable messages with their offset from the start, participation, polls,
//! gifts, counters and summary), kept in a relational store for history,
//! replay and analytics, apart from the live path.
//!
//! Writes are idempotent: a message is keyed by `(room, seq)` and written
//! with "insert unless present", every other row is an upsert, so an
//! archiver that crashed mid-batch and starts again writes each message
//! exactly once.
//!
//! # Layout
//! - [`model`]: the archived rows ([`ArchivedRoom`], [`ArchivedMessage`],
//!   [`Participation`], [`ArchivedPoll`], [`ArchivedGift`], and for
//!   analytics [`MemberSession`] and [`CounterMinute`]) and
//!   [`ArchiveBatch`], one write.
//! - [`store`]: the [`ArchiveStore`] trait and its queries ([`HistoryQuery`]).
//! - [`migrations`]: the numbered schema migrations of each engine and the
//!   `schema_migrations` bookkeeping they share.
//! - [`postgres`]: [`PostgresArchive`] (distributed mode).
//! - [`sqlite`]: [`SqliteArchive`], embedded (standalone mode).
//! - [`open`]: [`open()`] an engine from a URL or path.
//! - `export` (feature `parquet`): archived rooms and messages as Parquet
//!   files.
//! - [`error`]: why an operation failed ([`ArchiveError`]).
//! - `conformance` (feature `test-util`, and this crate's tests): the suite
//!   every engine passes.

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod error;
#[cfg(feature = "parquet")]
pub mod export;
pub mod migrations;
pub mod model;
pub mod open;
pub mod postgres;
pub mod sqlite;
pub mod store;

pub use crate::error::ArchiveError;
pub use crate::model::{
    ArchiveBatch, ArchivedGift, ArchivedMessage, ArchivedPoll, ArchivedRoom, CounterMinute,
    MemberSession, Participation, RoomAccess,
};
pub use crate::open::open;
pub use crate::postgres::PostgresArchive;
pub use crate::sqlite::SqliteArchive;
pub use crate::store::{ArchiveStore, HistoryQuery, MAX_PAGE, RoomStats, TableCounts};
