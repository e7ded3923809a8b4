//! The room business types of docs/room-api.md: the snapshot (`RoomSnapshot.state`,
//! `GET /v1/rooms/{id}/state`), a user's stage state, polls.
//!
//! Field names are the server's (snake_case). Every struct takes missing fields as their
//! default and keeps fields this SDK does not know in `extra`, so a newer server never
//! breaks an older SDK and nothing it sends is lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A role in a room. Roles this SDK does not know read as [`Role::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The room's owner.
    Host,
    /// A moderator (on stage).
    Moderator,
    /// A speaker (on stage).
    Speaker,
    /// Anyone else in the room.
    #[default]
    Listener,
    /// A role added after this SDK was built.
    #[serde(other)]
    Other,
}

impl Role {
    /// Whether the role is on stage (host, moderator, speaker).
    pub fn on_stage(self) -> bool {
        matches!(self, Self::Host | Self::Moderator | Self::Speaker)
    }
}

/// Who muted a microphone. Absent (`None`) means not muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mute {
    /// Muted by themselves: they may unmute.
    #[serde(rename = "self")]
    SelfMuted,
    /// Muted by a host or moderator: they may not unmute.
    Moderator,
}

/// A user's whole stage state, as stage events and replies carry it (`user`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserState {
    /// The subject.
    pub uid: String,
    /// Their role.
    pub role: Role,
    /// When their hand went up (Unix ms), `None` when it is down.
    pub hand_raised_at_ms: Option<u64>,
    /// Who invited them to speak, while the invite is pending.
    pub invited_by: Option<String>,
    /// Their mute, `None` when not muted (only people on stage have one).
    pub muted: Option<Mute>,
}

/// Whether a poll takes votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollState {
    /// Takes votes.
    #[default]
    Open,
    /// Final.
    Closed,
    /// A state added after this SDK was built.
    #[serde(other)]
    Other,
}

/// A poll, as snapshots and poll events carry it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Poll {
    /// Poll id.
    pub poll_id: String,
    /// The question.
    pub question: String,
    /// The options, voted by index.
    pub options: Vec<String>,
    /// Who opened it.
    pub opened_by: String,
    /// When it opened (Unix ms).
    pub opened_at_ms: u64,
    /// When its timer closes it (Unix ms), `None` without a timer.
    pub closes_at_ms: Option<u64>,
    /// Open or closed.
    pub state: PollState,
    /// Votes per option.
    pub tallies: Vec<u64>,
    /// Votes in all.
    pub votes: u64,
    /// When it closed (Unix ms).
    pub closed_at_ms: Option<u64>,
    /// Fields this SDK does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A raised hand.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Hand {
    /// Whose.
    pub uid: String,
    /// Raised at (Unix ms).
    pub at_ms: u64,
}

/// A pending invite to speak.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Invite {
    /// Who is invited.
    pub uid: String,
    /// Who invited them.
    pub by: String,
}

/// The caller, as the snapshot sees them (`state.you`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct You {
    /// The caller's uid.
    pub uid: String,
    /// Their role.
    pub role: Role,
    /// When their hand went up (Unix ms).
    pub hand_raised_at_ms: Option<u64>,
    /// Who invited them to speak.
    pub invited_by: Option<String>,
    /// Their mute.
    pub muted: Option<Mute>,
    /// Whether they are a member now.
    pub member: bool,
    /// Whether they marked interest (scheduled rooms).
    pub interested: bool,
    /// Their vote per poll (option index).
    pub votes: BTreeMap<String, u32>,
    /// Fields this SDK does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The room's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Created with a schedule, not started.
    Scheduled,
    /// Running.
    #[default]
    Live,
    /// Over.
    Ended,
    /// A state added after this SDK was built.
    #[serde(other)]
    Other,
}

/// The snapshot JSON (`RoomSnapshot.state`): the whole room at version `v`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomStateJson {
    /// The state version: +1 on every state change.
    pub v: u64,
    /// Title.
    pub title: String,
    /// The owner (= host), if any.
    pub owner: Option<String>,
    /// The host (= owner).
    pub host: Option<String>,
    /// Creation time (Unix ms).
    pub created_at_ms: u64,
    /// Lifecycle state.
    pub state: Lifecycle,
    /// Planned start (Unix ms).
    pub scheduled_at_ms: Option<u64>,
    /// Actual start (Unix ms).
    pub started_at_ms: Option<u64>,
    /// End (Unix ms).
    pub ended_at_ms: Option<u64>,
    /// Only the owner and invited uids may enter.
    pub private: bool,
    /// Auto-end after this long empty (0: never).
    pub auto_end_empty_secs: u64,
    /// Slow mode (0: off).
    pub slow_mode_secs: u64,
    /// Distinct members now.
    pub members: u64,
    /// Members not on stage.
    pub listeners: u64,
    /// Moderators, sorted.
    pub moderators: Vec<String>,
    /// Speakers, sorted.
    pub speakers: Vec<String>,
    /// Raised hands, oldest first (at most `snapshot_hands_max`).
    pub hands: Vec<Hand>,
    /// Every raised hand, counted.
    pub hands_count: u64,
    /// Pending invites to speak.
    pub invites: Vec<Invite>,
    /// Mutes of people on stage.
    pub muted: BTreeMap<String, Mute>,
    /// The newest polls, oldest first.
    pub polls: Vec<Poll>,
    /// Likes (durable total).
    pub likes: u64,
    /// Reactions by emoji (durable totals).
    pub reactions: BTreeMap<String, u64>,
    /// Comments (durable total).
    pub comments: u64,
    /// Gifts (count).
    pub gifts: u64,
    /// Gift value (the app's unit).
    pub gift_value: u64,
    /// Uids interested in a scheduled room.
    pub interested: u64,
    /// The caller, `None` without one.
    pub you: Option<You>,
    /// Fields this SDK does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a join answers and `GET /v1/rooms/{id}/state` returns: the room and the caller's
/// role, with the state JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// Room id.
    pub room: String,
    /// Title.
    pub title: String,
    /// The caller's role.
    pub role: Role,
    /// Distinct members.
    pub members: u64,
    /// The state JSON; `None` when the server sent none.
    pub state: Option<RoomStateJson>,
}

impl Snapshot {
    /// Read a join's protobuf snapshot (its `state` is UTF-8 JSON; empty means none).
    pub fn from_proto(
        snapshot: &proto::client::v1::RoomSnapshot,
    ) -> Result<Self, serde_json::Error> {
        let state = if snapshot.state.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&snapshot.state)?)
        };
        Ok(Self {
            room: snapshot.room.clone(),
            title: snapshot.title.clone(),
            role: serde_json::from_value(Value::String(snapshot.role.clone()))?,
            members: u64::from(snapshot.members),
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_SNAPSHOT: &str = r#"{
      "v": 57, "title": "Night talk", "owner": "alice", "host": "alice",
      "created_at_ms": 1795446710231, "state": "live",
      "scheduled_at_ms": 1795450000000, "started_at_ms": 1795450000321, "ended_at_ms": null,
      "private": false, "auto_end_empty_secs": 300, "slow_mode_secs": 0,
      "members": 212, "listeners": 208,
      "moderators": ["mo"], "speakers": ["bob", "sam"],
      "hands": [{"uid": "carol", "at_ms": 1795450100000}], "hands_count": 1,
      "invites": [{"uid": "dave", "by": "mo"}],
      "muted": {"bob": "moderator", "sam": "self"},
      "polls": [{"poll_id": "pX7k2mQ9a", "question": "More jazz?", "options": ["yes", "no"],
                 "opened_by": "mo", "opened_at_ms": 1795450200000, "closes_at_ms": 1795450260000,
                 "state": "open", "tallies": [40, 12], "votes": 52, "closed_at_ms": null}],
      "likes": 120431, "reactions": {"🔥": 7000}, "comments": 5120, "gifts": 341, "gift_value": 98000,
      "interested": 0,
      "you": {"uid": "carol", "role": "listener", "hand_raised_at_ms": 1795450100000,
              "invited_by": null, "muted": null, "member": true, "interested": false,
              "votes": {"pX7k2mQ9a": 0}},
      "future_field": {"x": 1}
    }"#;

    #[test]
    fn the_documented_snapshot_parses_and_keeps_unknown_fields() {
        let state: RoomStateJson = serde_json::from_str(DOC_SNAPSHOT).expect("snapshot");
        assert_eq!(state.v, 57);
        assert_eq!(state.state, Lifecycle::Live);
        assert_eq!(state.speakers, ["bob", "sam"]);
        assert_eq!(state.muted.get("bob"), Some(&Mute::Moderator));
        assert_eq!(state.muted.get("sam"), Some(&Mute::SelfMuted));
        assert_eq!(state.polls[0].tallies, [40, 12]);
        assert_eq!(state.reactions.get("🔥"), Some(&7000));
        let you = state.you.as_ref().expect("you");
        assert_eq!(you.votes.get("pX7k2mQ9a"), Some(&0));
        assert_eq!(
            state.extra.get("future_field"),
            Some(&serde_json::json!({"x": 1}))
        );
        // Round trip: nothing is lost.
        let again: RoomStateJson =
            serde_json::from_value(serde_json::to_value(&state).expect("to JSON")).expect("back");
        assert_eq!(again, state);
    }

    #[test]
    fn unknown_roles_and_states_do_not_fail() {
        let user: UserState =
            serde_json::from_str(r#"{"uid":"x","role":"cohost","muted":null}"#).expect("user");
        assert_eq!(user.role, Role::Other);
        let state: RoomStateJson = serde_json::from_str(r#"{"state":"paused"}"#).expect("state");
        assert_eq!(state.state, Lifecycle::Other);
    }

    #[test]
    fn a_proto_snapshot_converts() {
        let proto = proto::client::v1::RoomSnapshot {
            room: "r1".into(),
            title: "T".into(),
            role: "speaker".into(),
            members: 3,
            state: br#"{"v":4,"speakers":["bob"]}"#.to_vec().into(),
        };
        let snapshot = Snapshot::from_proto(&proto).expect("snapshot");
        assert_eq!(snapshot.role, Role::Speaker);
        assert_eq!(snapshot.state.expect("state").v, 4);
        let bad = proto::client::v1::RoomSnapshot {
            state: b"{not json".to_vec().into(),
            ..proto
        };
        assert!(Snapshot::from_proto(&bad).is_err());
    }
}
