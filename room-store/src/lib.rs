//! Room state, reusable without the room service: the room domain (pure and
//! synchronous) and the [`RoomStore`] engines that keep rooms, their members
//! and their state. room-biz serves rooms on it; an archiver or a replay
//! service can read and write the same rooms through it.
//!
//! # Layout
//! - [`domain`]: the business rules, pure and synchronous, no I/O: the room
//!   record and roles, the entry rule ([`domain::entry`]), the permission
//!   matrix, the state-transition engine, polls (voting), rates, the snapshot
//!   JSON.
//! - [`store`]: the [`RoomStore`] engine trait, [`MemoryRoomStore`],
//!   [`RedisRoomStore`] (standalone or Cluster; key layout in its docs, with
//!   an in-process metadata cache) and [`Metered`] (counts operations). The
//!   engine conformance suite, `store::conformance`, is compiled for tests and
//!   with the `test-util` feature only (enable it in `[dev-dependencies]`).
//! - [`ids`]: random room, poll and node ids.
//! - [`error`]: why a store operation failed ([`StoreError`]).

pub mod domain;
pub mod error;
pub mod ids;
pub mod store;

pub use crate::error::StoreError;
pub use crate::store::{
    AudienceSet, CounterBatch, DEFAULT_KEY_PREFIX, Ledger, LoggedEvent, MAX_STAYS, MemberEntry,
    MemberFilter, MemoryLedger, MemoryRoomStore, Metered, MinuteCount, NewRoom, Once, ROOM_TTL,
    RedisRoomStore, Role, Room, RoomAnalytics, RoomLists, RoomState, RoomStore, SessionLeft,
    SessionStay, counter,
};
