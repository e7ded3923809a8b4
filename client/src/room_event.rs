//! Typed room events: the documented kinds of docs/room-api.md "Events", parsed from a
//! message's `{kind, body}`.
//!
//! Unknown kinds are kept as [`RoomEvent::Other`] (custom push-API kinds, or kinds added
//! by a newer server), so they never break an older SDK. A known kind whose body does not
//! parse is a [`RoomEventError`] that carries the kind and the bytes: nothing is lost.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::event::Event;
use crate::room_types::{Mute, Poll, PollState, Role, UserState};

/// A known event kind whose body did not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("room event {kind:?}: unreadable body: {reason}")]
pub struct RoomEventError {
    /// The kind.
    pub kind: String,
    /// The body as received.
    pub body: Bytes,
    /// What was wrong.
    pub reason: String,
}

/// The fields every stage event carries: the subject, who acted, the new `v`, and the
/// subject's whole stage state.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct StageChange {
    /// The subject.
    pub uid: String,
    /// Who acted (may be empty for the app backend).
    pub by: Option<String>,
    /// The room's state version after the change.
    pub v: u64,
    /// The subject's whole stage state after the change.
    pub user: UserState,
}

/// `room_started`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RoomStarted {
    /// Start time (Unix ms).
    pub started_at_ms: u64,
    /// Who started it.
    pub by: Option<String>,
    /// State version.
    pub v: u64,
}

/// `room_ended`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RoomEnded {
    /// `host`, `api` or `empty`.
    pub reason: String,
    /// Who ended it.
    pub by: Option<String>,
    /// End time (Unix ms).
    pub ended_at_ms: u64,
    /// The final summary (docs/room-api.md "Summary").
    pub summary: Map<String, Value>,
    /// State version.
    pub v: u64,
}

/// `hand_raised`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct HandRaised {
    /// Subject, actor, version, user.
    #[serde(flatten)]
    pub change: StageChange,
    /// Raised at (Unix ms).
    pub at_ms: u64,
}

/// Why a role changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleChangeReason {
    /// The listener accepted an invite to speak.
    AcceptedInvite,
    /// A host or moderator moved them off stage.
    MovedToAudience,
    /// They left the stage.
    SteppedDown,
    /// The host made them a moderator.
    Promoted,
    /// The host made a moderator a speaker.
    Demoted,
    /// A reason added after this SDK was built.
    #[default]
    #[serde(other)]
    Other,
}

/// `role_changed`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RoleChanged {
    /// Subject, actor, version, user.
    #[serde(flatten)]
    pub change: StageChange,
    /// The new role.
    pub role: Role,
    /// The role before.
    pub previous: Role,
    /// Why.
    pub reason: RoleChangeReason,
}

/// `mute_changed`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MuteChanged {
    /// Subject, actor, version, user.
    #[serde(flatten)]
    pub change: StageChange,
    /// The new mute, `None` when unmuted.
    pub muted: Option<Mute>,
}

/// `member_kicked`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MemberKicked {
    /// Subject, actor, version, user.
    #[serde(flatten)]
    pub change: StageChange,
    /// Also put on the host's block list.
    pub blocked: bool,
}

/// `comment_removed`: hide the comment with this seq.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct CommentRemoved {
    /// The removed comment's seq.
    pub seq: u64,
    /// Who removed it.
    pub by: Option<String>,
    /// State version.
    pub v: u64,
}

/// `slow_mode`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct SlowModeChanged {
    /// Seconds between comments per user (0: off).
    pub seconds: u64,
    /// Who set it.
    pub by: Option<String>,
    /// State version.
    pub v: u64,
}

/// `gift`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Gift {
    /// The giver.
    pub uid: String,
    /// The app's gift id.
    pub gift_id: String,
    /// How many.
    pub count: u64,
    /// Value per gift.
    pub value: u64,
    /// `count × value`.
    pub total_value: u64,
}

/// `poll_opened`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PollOpened {
    /// The poll.
    pub poll: Poll,
    /// Who opened it.
    pub by: Option<String>,
    /// State version.
    pub v: u64,
}

/// `poll_closed`: the final result, sent once.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PollClosed {
    /// The final poll.
    pub poll: Poll,
    /// `closed`, `timer` or `room_ended`.
    pub reason: String,
    /// Who closed it.
    pub by: Option<String>,
    /// State version.
    pub v: u64,
}

/// `comment`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Comment {
    /// The author.
    pub uid: String,
    /// The text.
    pub text: String,
    /// Opaque display attributes.
    pub attrs: Map<String, Value>,
}

/// `totals` (ephemeral): durable totals of likes and reactions.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Likes.
    pub likes: u64,
    /// Reactions by emoji.
    pub reactions: BTreeMap<String, u64>,
    /// Reactions in all.
    pub reactions_total: u64,
}

/// `poll_tally` (ephemeral): a live tally.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PollTally {
    /// Poll id.
    pub poll_id: String,
    /// Votes per option.
    pub tallies: Vec<u64>,
    /// Votes in all.
    pub votes: u64,
    /// Open or closed.
    pub state: PollState,
}

/// `member_joined` (ephemeral, small rooms).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MemberJoined {
    /// Who joined.
    pub uid: String,
    /// Their role.
    pub role: Role,
    /// Members now.
    pub members: u64,
}

/// `member_left` (ephemeral, small rooms).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MemberLeft {
    /// Who left; `None` for a dead conn node's sessions.
    pub uid: Option<String>,
    /// Members now.
    pub members: u64,
}

/// `presence` (ephemeral, rooms of 100 members or more).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Presence {
    /// Joins in the window.
    pub joined: u64,
    /// Leaves in the window.
    pub left: u64,
    /// Members now.
    pub members: u64,
}

/// A room event, by kind.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// A scheduled room went live.
    RoomStarted(RoomStarted),
    /// The room ended.
    RoomEnded(RoomEnded),
    /// A listener raised their hand.
    HandRaised(HandRaised),
    /// A hand went down.
    HandLowered(StageChange),
    /// A listener was invited to speak.
    SpeakerInvited(StageChange),
    /// The invite was declined.
    InviteDeclined(StageChange),
    /// A role changed.
    RoleChanged(RoleChanged),
    /// A mute changed.
    MuteChanged(MuteChanged),
    /// Someone was kicked (or blocked).
    MemberKicked(MemberKicked),
    /// A comment was removed.
    CommentRemoved(CommentRemoved),
    /// Slow mode changed.
    SlowMode(SlowModeChanged),
    /// A gift.
    Gift(Gift),
    /// A poll opened.
    PollOpened(PollOpened),
    /// A poll's final result.
    PollClosed(PollClosed),
    /// A comment.
    Comment(Comment),
    /// Ephemeral: like and reaction totals.
    Totals(Totals),
    /// Ephemeral: a live poll tally.
    PollTally(PollTally),
    /// Ephemeral: someone joined.
    MemberJoined(MemberJoined),
    /// Ephemeral: someone left.
    MemberLeft(MemberLeft),
    /// Ephemeral: joins and leaves of a window.
    Presence(Presence),
    /// A kind this SDK does not know: the raw body.
    Other {
        /// The kind.
        kind: String,
        /// The body bytes.
        body: Bytes,
    },
}

fn body<T: DeserializeOwned>(kind: &str, body: &Bytes) -> Result<T, RoomEventError> {
    serde_json::from_slice(body).map_err(|e| RoomEventError {
        kind: kind.to_owned(),
        body: body.clone(),
        reason: e.to_string(),
    })
}

impl RoomEvent {
    /// Parse a room event (durable or ephemeral) from its kind and body.
    pub fn parse(kind: &str, bytes: &Bytes) -> Result<Self, RoomEventError> {
        Ok(match kind {
            "room_started" => Self::RoomStarted(body(kind, bytes)?),
            "room_ended" => Self::RoomEnded(body(kind, bytes)?),
            "hand_raised" => Self::HandRaised(body(kind, bytes)?),
            "hand_lowered" => Self::HandLowered(body(kind, bytes)?),
            "speaker_invited" => Self::SpeakerInvited(body(kind, bytes)?),
            "invite_declined" => Self::InviteDeclined(body(kind, bytes)?),
            "role_changed" => Self::RoleChanged(body(kind, bytes)?),
            "mute_changed" => Self::MuteChanged(body(kind, bytes)?),
            "member_kicked" => Self::MemberKicked(body(kind, bytes)?),
            "comment_removed" => Self::CommentRemoved(body(kind, bytes)?),
            "slow_mode" => Self::SlowMode(body(kind, bytes)?),
            "gift" => Self::Gift(body(kind, bytes)?),
            "poll_opened" => Self::PollOpened(body(kind, bytes)?),
            "poll_closed" => Self::PollClosed(body(kind, bytes)?),
            "comment" => Self::Comment(body(kind, bytes)?),
            "totals" => Self::Totals(body(kind, bytes)?),
            "poll_tally" => Self::PollTally(body(kind, bytes)?),
            "member_joined" => Self::MemberJoined(body(kind, bytes)?),
            "member_left" => Self::MemberLeft(body(kind, bytes)?),
            "presence" => Self::Presence(body(kind, bytes)?),
            _ => Self::Other {
                kind: kind.to_owned(),
                body: bytes.clone(),
            },
        })
    }

    /// The state version the event carries (state events only).
    pub fn version(&self) -> Option<u64> {
        match self {
            Self::RoomStarted(e) => Some(e.v),
            Self::RoomEnded(e) => Some(e.v),
            Self::HandRaised(e) => Some(e.change.v),
            Self::HandLowered(c) | Self::SpeakerInvited(c) | Self::InviteDeclined(c) => Some(c.v),
            Self::RoleChanged(e) => Some(e.change.v),
            Self::MuteChanged(e) => Some(e.change.v),
            Self::MemberKicked(e) => Some(e.change.v),
            Self::CommentRemoved(e) => Some(e.v),
            Self::SlowMode(e) => Some(e.v),
            Self::PollOpened(e) => Some(e.v),
            Self::PollClosed(e) => Some(e.v),
            _ => None,
        }
        .filter(|v| *v > 0)
    }

    /// The subject's stage state, for stage events.
    pub fn user(&self) -> Option<&UserState> {
        match self {
            Self::HandRaised(e) => Some(&e.change.user),
            Self::HandLowered(c) | Self::SpeakerInvited(c) | Self::InviteDeclined(c) => {
                Some(&c.user)
            }
            Self::RoleChanged(e) => Some(&e.change.user),
            Self::MuteChanged(e) => Some(&e.change.user),
            Self::MemberKicked(e) => Some(&e.change.user),
            _ => None,
        }
    }
}

/// `room_invite` (user push): put on a room's invite list.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RoomInvite {
    /// Room id.
    pub room: String,
    /// Title.
    pub title: String,
    /// Host.
    pub host: Option<String>,
    /// Lifecycle state.
    pub state: String,
    /// Planned start (Unix ms).
    pub scheduled_at_ms: Option<u64>,
    /// Who invited.
    pub by: Option<String>,
}

/// `room_started` (user push): a room you were invited to or interested in started.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RoomStartedNotice {
    /// Room id.
    pub room: String,
    /// Title.
    pub title: String,
    /// Host.
    pub host: Option<String>,
}

/// `speak_invite` (user push): you were invited to speak.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct SpeakInvite {
    /// Room id.
    pub room: String,
    /// Who invited.
    pub by: String,
}

/// `kicked` (user push): you were removed from a room.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Kicked {
    /// Room id.
    pub room: String,
    /// Who.
    pub by: String,
    /// Also blocked by the host.
    pub blocked: bool,
}

/// A user-targeted push (an ephemeral frame with an empty room; the body names it).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UserPush {
    /// Invited to a room.
    RoomInvite(RoomInvite),
    /// A room started.
    RoomStarted(RoomStartedNotice),
    /// Invited to speak.
    SpeakInvite(SpeakInvite),
    /// Removed from a room.
    Kicked(Kicked),
    /// A kind this SDK does not know.
    Other {
        /// The kind.
        kind: String,
        /// The body bytes.
        body: Bytes,
    },
}

impl UserPush {
    /// Parse a user push from its kind and body.
    pub fn parse(kind: &str, bytes: &Bytes) -> Result<Self, RoomEventError> {
        Ok(match kind {
            "room_invite" => Self::RoomInvite(body(kind, bytes)?),
            "room_started" => Self::RoomStarted(body(kind, bytes)?),
            "speak_invite" => Self::SpeakInvite(body(kind, bytes)?),
            "kicked" => Self::Kicked(body(kind, bytes)?),
            _ => Self::Other {
                kind: kind.to_owned(),
                body: bytes.clone(),
            },
        })
    }
}

/// A room event with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomUpdate {
    /// Room id.
    pub room: String,
    /// The message's seq; `None` for ephemeral events.
    pub seq: Option<u64>,
    /// The acting uid (durable events; empty otherwise).
    pub sender: String,
    /// Publish time (Unix ms).
    pub ts_ms: u64,
    /// The event.
    pub event: RoomEvent,
}

impl RoomUpdate {
    /// Whether the event is durable (has a seq and history).
    pub fn is_durable(&self) -> bool {
        self.seq.is_some()
    }
}

/// An [`Event`] carrying business content, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedEvent {
    /// A room event (durable or ephemeral).
    Room(RoomUpdate),
    /// A user-targeted push.
    User(UserPush),
}

impl TypedEvent {
    /// Type an [`Event::Message`] or [`Event::Ephemeral`]; `None` for every other event
    /// (connection life, joins, leaves).
    pub fn from_event(event: &Event) -> Option<Result<Self, RoomEventError>> {
        match event {
            Event::Message { room, message, .. } => {
                Some(RoomEvent::parse(&message.kind, &message.body).map(|event| {
                    Self::Room(RoomUpdate {
                        room: room.clone(),
                        seq: Some(message.seq),
                        sender: message.sender.clone(),
                        ts_ms: message.ts_ms,
                        event,
                    })
                }))
            }
            Event::Ephemeral { room, .. } if room.is_empty() => {
                let Event::Ephemeral { kind, body, .. } = event else {
                    return None;
                };
                Some(UserPush::parse(kind, body).map(Self::User))
            }
            Event::Ephemeral {
                room,
                kind,
                body,
                ts_ms,
            } => Some(RoomEvent::parse(kind, body).map(|event| {
                Self::Room(RoomUpdate {
                    room: room.clone(),
                    seq: None,
                    sender: String::new(),
                    ts_ms: *ts_ms,
                    event,
                })
            })),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: &str, body: Value) -> RoomEvent {
        RoomEvent::parse(kind, &Bytes::from(body.to_string())).expect("parses")
    }

    fn user(uid: &str, role: &str, muted: Value) -> Value {
        json!({"uid": uid, "role": role, "hand_raised_at_ms": null, "invited_by": null, "muted": muted})
    }

    #[test]
    fn every_documented_durable_kind_parses() {
        let e = parse(
            "room_started",
            json!({"started_at_ms": 5, "by": "host", "v": 2}),
        );
        assert_eq!(
            e,
            RoomEvent::RoomStarted(RoomStarted {
                started_at_ms: 5,
                by: Some("host".into()),
                v: 2
            })
        );
        assert_eq!(e.version(), Some(2));

        let e = parse(
            "room_ended",
            json!({"reason": "host", "by": "host", "ended_at_ms": 9, "summary": {"final": true}, "v": 7}),
        );
        let RoomEvent::RoomEnded(ended) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (ended.reason.as_str(), ended.ended_at_ms, ended.v),
            ("host", 9, 7)
        );
        assert_eq!(ended.summary.get("final"), Some(&json!(true)));

        let mut raised = user("carol", "listener", Value::Null);
        raised["hand_raised_at_ms"] = json!(100);
        let e = parse(
            "hand_raised",
            json!({"uid": "carol", "by": "carol", "v": 3, "at_ms": 100, "user": raised}),
        );
        let RoomEvent::HandRaised(hand) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (hand.at_ms, hand.change.user.hand_raised_at_ms),
            (100, Some(100))
        );
        assert_eq!(e.version(), Some(3));
        assert_eq!(e.user().map(|u| u.uid.as_str()), Some("carol"));

        let stage = json!({"uid": "carol", "by": "mo", "v": 4, "user": user("carol", "listener", Value::Null)});
        assert!(matches!(
            parse("hand_lowered", stage.clone()),
            RoomEvent::HandLowered(c) if c.v == 4 && c.by.as_deref() == Some("mo")
        ));
        assert!(matches!(
            parse("speaker_invited", stage.clone()),
            RoomEvent::SpeakerInvited(_)
        ));
        assert!(matches!(
            parse("invite_declined", stage),
            RoomEvent::InviteDeclined(_)
        ));

        let e = parse(
            "role_changed",
            json!({"uid": "bob", "by": "bob", "v": 5, "role": "speaker", "previous": "listener",
                   "reason": "accepted_invite", "user": user("bob", "speaker", json!("self"))}),
        );
        let RoomEvent::RoleChanged(role) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (role.role, role.previous, role.reason),
            (
                Role::Speaker,
                Role::Listener,
                RoleChangeReason::AcceptedInvite
            )
        );
        assert_eq!(role.change.user.muted, Some(Mute::SelfMuted));

        let e = parse(
            "mute_changed",
            json!({"uid": "bob", "by": "mo", "v": 6, "muted": "moderator", "user": user("bob", "speaker", json!("moderator"))}),
        );
        assert!(matches!(e, RoomEvent::MuteChanged(m) if m.muted == Some(Mute::Moderator)));
        let e = parse(
            "mute_changed",
            json!({"uid": "bob", "by": "bob", "v": 7, "muted": null, "user": user("bob", "speaker", Value::Null)}),
        );
        assert!(matches!(e, RoomEvent::MuteChanged(m) if m.muted.is_none()));

        let e = parse(
            "member_kicked",
            json!({"uid": "eve", "by": "host", "v": 8, "blocked": true, "user": user("eve", "listener", Value::Null)}),
        );
        assert!(matches!(e, RoomEvent::MemberKicked(k) if k.blocked));

        assert_eq!(
            parse("comment_removed", json!({"seq": 12, "by": "mo", "v": 9})),
            RoomEvent::CommentRemoved(CommentRemoved {
                seq: 12,
                by: Some("mo".into()),
                v: 9
            })
        );
        assert_eq!(
            parse("slow_mode", json!({"seconds": 30, "by": "mo", "v": 10})),
            RoomEvent::SlowMode(SlowModeChanged {
                seconds: 30,
                by: Some("mo".into()),
                v: 10
            })
        );
        let e = parse(
            "gift",
            json!({"uid": "carol", "gift_id": "rose", "count": 3, "value": 5, "total_value": 15}),
        );
        assert!(matches!(&e, RoomEvent::Gift(g) if g.total_value == 15 && g.gift_id == "rose"));
        assert_eq!(e.version(), None, "gifts carry no v");

        let poll = json!({"poll_id": "p1", "question": "Q?", "options": ["a", "b"], "opened_by": "mo",
                          "opened_at_ms": 1, "closes_at_ms": null, "state": "open", "tallies": [0, 0],
                          "votes": 0, "closed_at_ms": null});
        let e = parse("poll_opened", json!({"poll": poll, "by": "mo", "v": 11}));
        assert!(matches!(&e, RoomEvent::PollOpened(p) if p.poll.options == ["a", "b"]));
        let mut closed = poll.clone();
        closed["state"] = json!("closed");
        closed["tallies"] = json!([2, 1]);
        let e = parse(
            "poll_closed",
            json!({"poll": closed, "reason": "timer", "by": null, "v": 12}),
        );
        assert!(
            matches!(&e, RoomEvent::PollClosed(p) if p.poll.state == PollState::Closed && p.reason == "timer" && p.by.is_none())
        );

        let e = parse(
            "comment",
            json!({"uid": "bob", "text": "hi", "attrs": {"color": "red"}}),
        );
        assert!(
            matches!(&e, RoomEvent::Comment(c) if c.text == "hi" && c.attrs.get("color") == Some(&json!("red")))
        );
        assert_eq!(
            parse("comment", json!({"uid": "bob", "text": "no attrs"})),
            RoomEvent::Comment(Comment {
                uid: "bob".into(),
                text: "no attrs".into(),
                attrs: Map::new()
            })
        );
    }

    #[test]
    fn every_documented_ephemeral_kind_parses() {
        let e = parse(
            "totals",
            json!({"likes": 10, "reactions": {"🔥": 3}, "reactions_total": 3}),
        );
        assert!(
            matches!(&e, RoomEvent::Totals(t) if t.likes == 10 && t.reactions.get("🔥") == Some(&3))
        );
        let e = parse(
            "poll_tally",
            json!({"poll_id": "p1", "tallies": [1, 2], "votes": 3, "state": "open"}),
        );
        assert!(matches!(&e, RoomEvent::PollTally(t) if t.tallies == [1, 2] && t.votes == 3));
        assert_eq!(
            parse(
                "member_joined",
                json!({"uid": "a", "role": "listener", "members": 4})
            ),
            RoomEvent::MemberJoined(MemberJoined {
                uid: "a".into(),
                role: Role::Listener,
                members: 4
            })
        );
        assert_eq!(
            parse("member_left", json!({"uid": null, "members": 3})),
            RoomEvent::MemberLeft(MemberLeft {
                uid: None,
                members: 3
            })
        );
        assert_eq!(
            parse(
                "presence",
                json!({"joined": 120, "left": 3, "members": 10412})
            ),
            RoomEvent::Presence(Presence {
                joined: 120,
                left: 3,
                members: 10412
            })
        );
    }

    #[test]
    fn unknown_kinds_are_kept_raw_and_bad_bodies_are_errors_that_keep_the_bytes() {
        let raw = Bytes::from_static(b"\x00\x01 not json");
        assert_eq!(
            RoomEvent::parse("custom_banner", &raw),
            Ok(RoomEvent::Other {
                kind: "custom_banner".into(),
                body: raw.clone()
            })
        );
        let error = RoomEvent::parse("comment", &raw).expect_err("bad body");
        assert_eq!(error.kind, "comment");
        assert_eq!(error.body, raw);
        assert!(error.to_string().contains("comment"), "{error}");
        // A known kind with a wrongly typed field is refused too, not silently zeroed.
        assert!(RoomEvent::parse("gift", &Bytes::from(r#"{"count":"many"}"#)).is_err());
        // Unknown fields in a known kind are fine (newer servers add fields).
        assert!(
            RoomEvent::parse(
                "slow_mode",
                &Bytes::from(r#"{"seconds":1,"v":2,"new":true}"#)
            )
            .is_ok()
        );
    }

    #[test]
    fn user_pushes_parse() {
        let kicked = UserPush::parse(
            "kicked",
            &Bytes::from(r#"{"room":"r1","by":"host","blocked":false}"#),
        )
        .expect("kicked");
        assert!(matches!(kicked, UserPush::Kicked(k) if k.room == "r1"));
        let invite = UserPush::parse("speak_invite", &Bytes::from(r#"{"room":"r1","by":"mo"}"#))
            .expect("invite");
        assert!(matches!(invite, UserPush::SpeakInvite(i) if i.by == "mo"));
        let started = UserPush::parse(
            "room_started",
            &Bytes::from(r#"{"room":"r1","title":"T","host":"h"}"#),
        )
        .expect("started");
        assert!(matches!(started, UserPush::RoomStarted(s) if s.title == "T"));
        let invited = UserPush::parse(
            "room_invite",
            &Bytes::from(r#"{"room":"r1","title":"T","host":null,"state":"scheduled","scheduled_at_ms":5,"by":null}"#),
        )
        .expect("room invite");
        assert!(matches!(invited, UserPush::RoomInvite(i) if i.scheduled_at_ms == Some(5)));
        assert!(matches!(
            UserPush::parse("new_kind", &Bytes::new()),
            Ok(UserPush::Other { .. })
        ));
    }

    #[test]
    fn events_are_typed_by_where_they_come_from() {
        let message = Event::Message {
            room: "r1".into(),
            epoch: 1,
            message: proto::client::v1::RoomMessage {
                seq: 7,
                kind: "comment".into(),
                body: br#"{"uid":"bob","text":"hi"}"#.to_vec().into(),
                sender: "bob".into(),
                ts_ms: 3,
                priority: 0,
            },
        };
        let Some(Ok(TypedEvent::Room(update))) = TypedEvent::from_event(&message) else {
            panic!("typed")
        };
        assert_eq!((update.seq, update.sender.as_str()), (Some(7), "bob"));
        assert!(update.is_durable());
        let room_started_push = Event::Ephemeral {
            room: String::new(),
            kind: "room_started".into(),
            body: Bytes::from(r#"{"room":"r9","title":"T","host":"h"}"#),
            ts_ms: 1,
        };
        assert!(matches!(
            TypedEvent::from_event(&room_started_push),
            Some(Ok(TypedEvent::User(UserPush::RoomStarted(_))))
        ));
        let totals = Event::Ephemeral {
            room: "r1".into(),
            kind: "totals".into(),
            body: Bytes::from(r#"{"likes":1}"#),
            ts_ms: 1,
        };
        assert!(matches!(
            TypedEvent::from_event(&totals),
            Some(Ok(TypedEvent::Room(RoomUpdate { seq: None, .. })))
        ));
        assert!(TypedEvent::from_event(&Event::Disconnected { reason: "x".into() }).is_none());
    }
}
