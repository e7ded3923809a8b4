//! Rooms, their members and their state: the [`RoomStore`] engine trait
//! (`engine`), the in-memory engine of standalone mode and the Redis engine of distributed mode.
//!
//! The trait is the seam between standalone mode ([`MemoryRoomStore`]) and
//! distributed mode ([`RedisRoomStore`]: hashes, sets and sorted sets per
//! room, one hash tag per room); code above it is the same. Every method is
//! one atomic step per room so that a Redis engine can implement it with one
//! script, and every engine passes the same conformance suite
//! (`store/conformance.rs`, `store/conformance/state.rs`) on memory, a
//! standalone Redis and a 3-node Redis Cluster.
//!
//! State changes go through [`RoomStore::apply`]: a
//! [`Transition`](crate::domain::transition::Transition) of guards and effects,
//! checked and applied in one step (a lock in memory, a Lua script on Redis),
//! so no action can interleave with another between its check and its change.
//!
//! A membership is one session of a uid, held by one conn node. Recording the
//! node lets [`RoomStore::remove_node`] drop everything a dead conn node held:
//! its clients are gone, and nobody else would ever send their leaves.

mod engine;
mod ledger;
mod memory;
mod memory_ledger;
mod meta_cache;
mod metered;
mod redis_store;

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;

pub use self::engine::{
    AudienceSet, CounterBatch, MAX_STAYS, MemberEntry, MemberFilter, MinuteCount, NewRoom, Role,
    Room, RoomAnalytics, RoomLists, RoomState, RoomStore, SessionLeft, SessionStay, counter,
};
pub use self::ledger::{Ledger, LoggedEvent, Once};
pub use self::memory::MemoryRoomStore;
pub use self::memory_ledger::MemoryLedger;
pub use self::metered::Metered;
pub use self::redis_store::{DEFAULT_KEY_PREFIX, ROOM_TTL, RedisRoomStore};
