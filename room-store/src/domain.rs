//! Room business rules, pure and synchronous: what a room is, who may enter
//! it, who may do what, how state changes, poll and rate rules, and the JSON
//! clients read. Nothing here does I/O or needs a runtime; the stores apply
//! [`transition::Transition`]s atomically and room-biz's action handlers glue
//! the two to the push API.
//!
//! - [`room`]: the room record, lifecycle, roles, mutes.
//! - [`entry`]: the room entry rule (ended, blocked, kicked, private).
//! - [`transition`]: the state-transition engine: guarded transitions and
//!   their reference semantics ([`transition::RoomDoc::apply`]).
//! - [`rules`]: every action as rules + effects (the permission matrix).
//! - [`poll`]: poll (voting) limits and views.
//! - [`rate`]: slow mode, payload limits, push pacing.
//! - [`state`]: the read model, the snapshot and summary JSON.
//! - [`text`]: text fields people read (no control or bidi-override characters).
//! - [`catalog`]: the gift catalog and the reaction set (server-side values).

pub mod catalog;
pub mod entry;
pub mod poll;
pub mod rate;
pub mod room;
pub mod rules;
pub mod state;
pub mod text;
pub mod transition;
