//! Room business rules, pure and synchronous: what a room is, who may do
//! what, how state changes, poll and rate rules, and the JSON clients read.
//! Nothing here does I/O or needs a runtime; the stores apply
//! [`stage::Transition`]s atomically and the action handlers glue the two to
//! the push API.
//!
//! - [`room`]: the room record, lifecycle, roles, mutes.
//! - [`stage`]: guarded transitions and their reference semantics.
//! - [`rules`]: every action as rules + effects (the permission matrix).
//! - [`poll`]: poll limits and views.
//! - [`rate`]: slow mode, payload limits, push pacing.
//! - [`state`]: the read model, the snapshot and summary JSON.

pub mod poll;
pub mod rate;
pub mod room;
pub mod rules;
pub mod stage;
pub mod state;
