//! Long polling below HTTP: what serving clients without a long connection
//! needs besides the HTTP routes (those are in `crate::http::longpoll`).
//!
//! - `cache`: the per-node [`LongPollCache`] of polled rooms' recent messages,
//!   refreshed from the push layer, with pollers counted as members.
//! - `cover`: which messages one reply carries (caps and sampling), pure.
//! - `slots`: waiting long polls per uid, capped.

pub(crate) mod cache;
pub(crate) mod cover;
pub(crate) mod slots;

pub(crate) use self::cache::LongPollCache;
pub(crate) use self::slots::UidSlots;
