//! The kinds of events room-biz pushes, and how they are pushed.
//!
//! Room events (`PushRoom`):
//! - durable, high priority (never sampled): [`ROOM_STARTED`], [`ROOM_ENDED`],
//!   [`HAND_RAISED`], [`HAND_LOWERED`], [`SPEAKER_INVITED`], [`INVITE_DECLINED`],
//!   [`ROLE_CHANGED`], [`MUTE_CHANGED`], [`MEMBER_KICKED`], [`COMMENT_REMOVED`],
//!   [`SLOW_MODE`], [`GIFT`], [`POLL_OPENED`], [`POLL_CLOSED`];
//! - durable, low priority (may be sampled in huge rooms): `comment`;
//! - ephemeral (no seq, carry totals): [`TOTALS`], [`POLL_TALLY`],
//!   [`MEMBER_JOINED`], [`MEMBER_LEFT`], [`PRESENCE`].
//!
//! User events (`PushUsers`, ephemeral, `room` empty in the client frame; the
//! body names the room): [`USER_ROOM_INVITE`], [`USER_ROOM_STARTED`],
//! [`USER_ROOM_REMINDER`], [`USER_SPEAK_INVITE`], [`USER_KICKED`].
//! [`USER_ROOM_STARTED`] is also kept in each such user's inbox, for users
//! who connect later (`GET /v1/me/inbox`).
//!
//! Bodies are documented in docs/room-api.md. Every state event carries `v`,
//! the room's state version after the change, and the subject's whole stage
//! state (`user`), so a client applies events as absolute values.

/// The host (or app) started a scheduled room.
pub(crate) const ROOM_STARTED: &str = "room_started";
/// The room ended; carries the final summary.
pub(crate) const ROOM_ENDED: &str = "room_ended";
/// A listener raised their hand.
pub(crate) const HAND_RAISED: &str = "hand_raised";
/// A hand went down (by its owner or a moderator).
pub(crate) const HAND_LOWERED: &str = "hand_lowered";
/// A moderator invited a listener to speak.
pub(crate) const SPEAKER_INVITED: &str = "speaker_invited";
/// The invited listener declined.
pub(crate) const INVITE_DECLINED: &str = "invite_declined";
/// Someone's role changed (accepted an invite, moved, stepped down, promoted, demoted).
pub(crate) const ROLE_CHANGED: &str = "role_changed";
/// Someone was muted or unmuted.
pub(crate) const MUTE_CHANGED: &str = "mute_changed";
/// Someone was kicked (and maybe blocked).
pub(crate) const MEMBER_KICKED: &str = "member_kicked";
/// A moderator removed a comment.
pub(crate) const COMMENT_REMOVED: &str = "comment_removed";
/// Slow mode changed.
pub(crate) const SLOW_MODE: &str = "slow_mode";
/// A gift.
pub(crate) const GIFT: &str = "gift";
/// A poll opened.
pub(crate) const POLL_OPENED: &str = "poll_opened";
/// A poll closed, with its final result.
pub(crate) const POLL_CLOSED: &str = "poll_closed";
/// Like and reaction totals (ephemeral).
pub(crate) const TOTALS: &str = "totals";
/// A live poll tally (ephemeral, throttled).
pub(crate) const POLL_TALLY: &str = "poll_tally";
/// Someone joined (ephemeral, small rooms).
pub(crate) const MEMBER_JOINED: &str = "member_joined";
/// Someone left (ephemeral, small rooms).
pub(crate) const MEMBER_LEFT: &str = "member_left";
/// Joins and leaves of the last window (ephemeral, large rooms).
pub(crate) const PRESENCE: &str = "presence";

/// To invited users: you are invited to a room.
pub(crate) const USER_ROOM_INVITE: &str = "room_invite";
/// To interested and invited users: the room started.
pub(crate) const USER_ROOM_STARTED: &str = "room_started";
/// To interested and invited users: the scheduled room starts soon.
pub(crate) const USER_ROOM_REMINDER: &str = "room_reminder";
/// To a listener: a moderator invites you to speak.
pub(crate) const USER_SPEAK_INVITE: &str = "speak_invite";
/// To a kicked user: you were removed.
pub(crate) const USER_KICKED: &str = "kicked";
