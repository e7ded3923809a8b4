//! What a room is: its record, lifecycle and the roles of the people in it.

use serde::{Deserialize, Serialize};

/// Where a room is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomState {
    /// Created for later: people may join, mark interest and raise hands, but
    /// the room does not take comments, likes, gifts or polls until the host
    /// starts it.
    Scheduled,
    /// Open.
    Live,
    /// Closed for good; history and the summary stay readable until archived.
    Ended,
}

impl RoomState {
    /// The stored and serialized name (`scheduled`, `live`, `ended`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::Ended => "ended",
        }
    }

    /// The state named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "scheduled" => Some(Self::Scheduled),
            "live" => Some(Self::Live),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }
}

/// A person's role in a room, highest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The room's owner: on stage, moderates, ends the room; cannot be moved.
    Host,
    /// On stage, moderates; promoted and demoted by the host.
    Moderator,
    /// On stage.
    Speaker,
    /// Everyone else (in the audience).
    Listener,
}

impl Role {
    /// The name clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Moderator => "moderator",
            Self::Speaker => "speaker",
            Self::Listener => "listener",
        }
    }

    /// The role named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "host" => Some(Self::Host),
            "moderator" => Some(Self::Moderator),
            "speaker" => Some(Self::Speaker),
            "listener" => Some(Self::Listener),
            _ => None,
        }
    }

    /// Whether this role is on stage (has a microphone).
    pub fn on_stage(self) -> bool {
        self != Self::Listener
    }

    /// Whether this role moderates (host or moderator).
    pub fn moderates(self) -> bool {
        matches!(self, Self::Host | Self::Moderator)
    }

    /// Rank for "may act on": host 3, moderator 2, everyone else 1.
    pub fn rank(self) -> u8 {
        match self {
            Self::Host => 3,
            Self::Moderator => 2,
            Self::Speaker | Self::Listener => 1,
        }
    }
}

/// A role that is stored per user (the host is the room's owner, listeners
/// are everyone without a stored role).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageRole {
    /// See [`Role::Moderator`].
    Moderator,
    /// See [`Role::Speaker`].
    Speaker,
}

impl StageRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        self.role().as_str()
    }

    /// The stored role named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "moderator" => Some(Self::Moderator),
            "speaker" => Some(Self::Speaker),
            _ => None,
        }
    }

    /// As a [`Role`].
    pub fn role(self) -> Role {
        match self {
            Self::Moderator => Role::Moderator,
            Self::Speaker => Role::Speaker,
        }
    }
}

/// Why a person on stage is muted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mute {
    /// Muted themselves (or joined the stage muted): they may unmute.
    #[serde(rename = "self")]
    SelfMuted,
    /// Muted by a moderator: they may not unmute until a moderator lifts it
    /// (which turns it into [`Mute::SelfMuted`], never opens the microphone).
    Moderator,
}

impl Mute {
    /// The stored name (`self`, `moderator`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfMuted => "self",
            Self::Moderator => "moderator",
        }
    }

    /// The mute named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "self" => Some(Self::SelfMuted),
            "moderator" => Some(Self::Moderator),
            _ => None,
        }
    }
}

/// A mute state including "not muted", as guards name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuteState {
    /// Not muted.
    None,
    /// See [`Mute::SelfMuted`].
    #[serde(rename = "self")]
    SelfMuted,
    /// See [`Mute::Moderator`].
    Moderator,
}

impl From<Option<Mute>> for MuteState {
    fn from(m: Option<Mute>) -> Self {
        match m {
            None => Self::None,
            Some(Mute::SelfMuted) => Self::SelfMuted,
            Some(Mute::Moderator) => Self::Moderator,
        }
    }
}

/// A room's record (what the store calls its metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Short URL-safe id (`r` + 10 base62 characters).
    pub id: String,
    /// Display title.
    pub title: String,
    /// The uid that hosts the room, if any.
    pub owner: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Scheduled, live or ended.
    pub state: RoomState,
    /// When the room is planned to start (informational: the host starts it).
    pub scheduled_at_ms: Option<u64>,
    /// When it went live.
    pub started_at_ms: Option<u64>,
    /// When it ended.
    pub ended_at_ms: Option<u64>,
    /// Only the owner and invited uids may join or act.
    pub private: bool,
    /// End the live room after it has been empty this long; 0 never.
    pub auto_end_empty_secs: u32,
    /// One comment per this many seconds per user (moderators exempt); 0 off.
    pub slow_mode_secs: u32,
    /// Since when the live room has had no member (absent while anyone is in).
    pub empty_since_ms: Option<u64>,
}

impl Room {
    /// The role `uid` has by the record alone: host for the owner, else listener.
    pub fn base_role_of(&self, uid: &str) -> Role {
        if self.owner.as_deref() == Some(uid) {
            Role::Host
        } else {
            Role::Listener
        }
    }

    /// How long the room has been (or was) live, in ms, as of `now_ms`.
    pub fn duration_ms(&self, now_ms: u64) -> u64 {
        match (self.started_at_ms, self.ended_at_ms) {
            (Some(start), Some(end)) => end.saturating_sub(start),
            (Some(start), None) => now_ms.saturating_sub(start),
            _ => 0,
        }
    }

    /// Whether the live room has been empty long enough to end, as of `now_ms`.
    pub fn empty_expired(&self, now_ms: u64) -> bool {
        self.state == RoomState::Live
            && self.auto_end_empty_secs > 0
            && self.empty_since_ms.is_some_and(|since| {
                now_ms.saturating_sub(since) >= u64::from(self.auto_end_empty_secs) * 1000
            })
    }
}

/// What a caller supplies to create a room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRoom {
    /// Display title (already validated).
    pub title: String,
    /// The hosting uid, if any.
    pub owner: Option<String>,
    /// Schedule for later instead of starting now.
    pub scheduled_at_ms: Option<u64>,
    /// Invite-only.
    pub private: bool,
    /// See [`Room::auto_end_empty_secs`].
    pub auto_end_empty_secs: u32,
    /// uids invited (allowed into a private room; told about a scheduled one).
    pub invited: Vec<String>,
}

impl NewRoom {
    /// A public room starting now that never ends by itself.
    pub fn titled(title: impl Into<String>, owner: Option<&str>) -> Self {
        Self {
            title: title.into(),
            owner: owner.map(Into::into),
            ..Self::default()
        }
    }

    /// The record of the room created from this at `now_ms` with `id`.
    pub fn into_room(self, id: String, now_ms: u64) -> Room {
        let state = if self.scheduled_at_ms.is_some() {
            RoomState::Scheduled
        } else {
            RoomState::Live
        };
        let live = state == RoomState::Live;
        Room {
            id,
            title: self.title,
            owner: self.owner,
            created_at_ms: now_ms,
            state,
            scheduled_at_ms: self.scheduled_at_ms,
            started_at_ms: live.then_some(now_ms),
            ended_at_ms: None,
            private: self.private,
            auto_end_empty_secs: self.auto_end_empty_secs,
            slow_mode_secs: 0,
            // A live room nobody joins is as empty as one everybody left.
            empty_since_ms: live.then_some(now_ms),
        }
    }
}

/// One person's stage state in a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStage {
    /// Their role.
    pub role: Role,
    /// When they raised their hand, if it is up.
    pub hand_raised_at_ms: Option<u64>,
    /// Who invited them to speak, if an invite is pending.
    pub invited_by: Option<String>,
    /// Their mute, if on stage and muted.
    pub muted: Option<Mute>,
    /// Whether they were kicked.
    pub kicked: bool,
    /// Whether they are in the room now (any session).
    pub member: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [RoomState::Scheduled, RoomState::Live, RoomState::Ended] {
            assert_eq!(RoomState::from_name(s.as_str()), Some(s));
        }
        for r in [Role::Host, Role::Moderator, Role::Speaker, Role::Listener] {
            assert_eq!(Role::from_name(r.as_str()), Some(r));
        }
        for m in [Mute::SelfMuted, Mute::Moderator] {
            assert_eq!(Mute::from_name(m.as_str()), Some(m));
        }
        assert_eq!(
            serde_json::to_string(&Mute::SelfMuted).ok().as_deref(),
            Some("\"self\"")
        );
        assert_eq!(RoomState::from_name("paused"), None);
    }

    #[test]
    fn new_rooms_are_live_or_scheduled() {
        let live = NewRoom::titled("t", Some("alice")).into_room("r1".into(), 1000);
        assert_eq!(live.state, RoomState::Live);
        assert_eq!(
            (live.started_at_ms, live.empty_since_ms),
            (Some(1000), Some(1000))
        );
        let later = NewRoom {
            scheduled_at_ms: Some(5000),
            ..NewRoom::titled("t", None)
        }
        .into_room("r2".into(), 1000);
        assert_eq!(later.state, RoomState::Scheduled);
        assert_eq!((later.started_at_ms, later.empty_since_ms), (None, None));
    }

    #[test]
    fn empty_rooms_expire_only_when_live_and_configured() {
        let mut room = NewRoom {
            auto_end_empty_secs: 10,
            ..NewRoom::titled("t", None)
        }
        .into_room("r".into(), 0);
        assert!(!room.empty_expired(9_999));
        assert!(room.empty_expired(10_000));
        room.empty_since_ms = None;
        assert!(!room.empty_expired(99_999), "someone is in");
        room.empty_since_ms = Some(0);
        room.auto_end_empty_secs = 0;
        assert!(!room.empty_expired(99_999), "disabled");
        assert_eq!(Role::Host.rank(), 3);
        assert!(Role::Moderator.moderates() && !Role::Speaker.moderates());
    }
}
