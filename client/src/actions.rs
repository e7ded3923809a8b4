//! Typed actions: the whole client action table of docs/room-api.md ("Client actions"),
//! as [`Action`] (name + JSON payload) and as methods on a [`Room`] handle that send one
//! and read its typed reply.
//!
//! ```no_run
//! # async fn demo(client: roomcast_client::Client) -> Result<(), roomcast_client::Error> {
//! let room = client.room("r1");
//! room.raise_hand().await?;
//! let poll = room.open_poll("More jazz?", ["yes", "no"], None).await?;
//! room.vote(&poll.poll_id, 0).await?;
//! # Ok(()) }
//! ```
//!
//! A refusal is [`Error::Refused`] with the server's code (`FORBIDDEN`, `BAD_REQUEST`,
//! `RATE_LIMITED`, ...); a reply body this SDK cannot read is [`Error::Protocol`].

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::Client;
use crate::error::Error;
use crate::event::ReplyInfo;
use crate::room_types::{Poll, UserState};

/// One client action: its name on the wire and its JSON payload.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// `comment {text, attrs}`.
    Comment {
        /// 1–500 characters.
        text: String,
        /// Opaque display attributes (≤ 1 KiB), omitted when `None`.
        attrs: Option<Map<String, Value>>,
    },
    /// `like {count}`: 1–100 taps.
    Like {
        /// Taps.
        count: u32,
    },
    /// `react {emoji}`.
    React {
        /// One emoji.
        emoji: String,
    },
    /// `gift {gift_id, count, value, request_id}`.
    Gift {
        /// The app's gift id.
        gift_id: String,
        /// How many (1–10,000).
        count: u32,
        /// Value per gift, omitted when `None`.
        value: Option<u64>,
        /// The client's id for this sending (1–128 printable ASCII): a retry
        /// with the same id is sent and counted once. Omitted when `None`.
        request_id: Option<String>,
    },
    /// `raise_hand {}`.
    RaiseHand,
    /// `lower_hand {}` (your own) or `{uid}` (host, moderator).
    LowerHand {
        /// Whose hand; `None` for your own.
        uid: Option<String>,
    },
    /// `invite_speaker {uid}`.
    InviteSpeaker {
        /// The listener.
        uid: String,
    },
    /// `accept_invite {}`.
    AcceptInvite,
    /// `decline_invite {}`.
    DeclineInvite,
    /// `move_to_audience {uid}`.
    MoveToAudience {
        /// Who.
        uid: String,
    },
    /// `step_down {}`.
    StepDown,
    /// `promote_moderator {uid}`.
    PromoteModerator {
        /// Who.
        uid: String,
    },
    /// `demote_moderator {uid}`.
    DemoteModerator {
        /// Who.
        uid: String,
    },
    /// `mute {}` (yourself) or `{uid}` (host, moderator).
    Mute {
        /// Whom; `None` for yourself.
        uid: Option<String>,
    },
    /// `unmute {}` (yourself) or `{uid}` (lift a moderator mute).
    Unmute {
        /// Whom; `None` for yourself.
        uid: Option<String>,
    },
    /// `kick {uid}`.
    Kick {
        /// Who.
        uid: String,
    },
    /// `block {uid}`.
    Block {
        /// Who.
        uid: String,
    },
    /// `remove_comment {seq}`.
    RemoveComment {
        /// The comment's seq.
        seq: u64,
    },
    /// `slow_mode {seconds}` (0 off, at most 3,600).
    SlowMode {
        /// Seconds.
        seconds: u32,
    },
    /// `poll_open {question, options, duration_secs}`.
    PollOpen {
        /// 1–200 characters.
        question: String,
        /// 2–10 distinct options.
        options: Vec<String>,
        /// Optional timer (5–86,400 s).
        duration_secs: Option<u32>,
    },
    /// `vote {poll_id, option}`.
    Vote {
        /// The poll.
        poll_id: String,
        /// Option index.
        option: u32,
    },
    /// `poll_close {poll_id}`.
    PollClose {
        /// The poll.
        poll_id: String,
    },
    /// `end_room {}`.
    EndRoom,
    /// `interest {}` (scheduled rooms).
    Interest,
    /// `start_room {}` (the host, scheduled rooms).
    StartRoom,
}

fn uid_or_self(uid: &Option<String>) -> Value {
    match uid {
        Some(uid) => json!({ "uid": uid }),
        None => json!({}),
    }
}

impl Action {
    /// The action's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Comment { .. } => "comment",
            Self::Like { .. } => "like",
            Self::React { .. } => "react",
            Self::Gift { .. } => "gift",
            Self::RaiseHand => "raise_hand",
            Self::LowerHand { .. } => "lower_hand",
            Self::InviteSpeaker { .. } => "invite_speaker",
            Self::AcceptInvite => "accept_invite",
            Self::DeclineInvite => "decline_invite",
            Self::MoveToAudience { .. } => "move_to_audience",
            Self::StepDown => "step_down",
            Self::PromoteModerator { .. } => "promote_moderator",
            Self::DemoteModerator { .. } => "demote_moderator",
            Self::Mute { .. } => "mute",
            Self::Unmute { .. } => "unmute",
            Self::Kick { .. } => "kick",
            Self::Block { .. } => "block",
            Self::RemoveComment { .. } => "remove_comment",
            Self::SlowMode { .. } => "slow_mode",
            Self::PollOpen { .. } => "poll_open",
            Self::Vote { .. } => "vote",
            Self::PollClose { .. } => "poll_close",
            Self::EndRoom => "end_room",
            Self::Interest => "interest",
            Self::StartRoom => "start_room",
        }
    }

    /// The action's JSON payload.
    pub fn payload(&self) -> Value {
        match self {
            Self::Comment { text, attrs } => match attrs {
                Some(attrs) => json!({ "text": text, "attrs": attrs }),
                None => json!({ "text": text }),
            },
            Self::Like { count } => json!({ "count": count }),
            Self::React { emoji } => json!({ "emoji": emoji }),
            Self::Gift {
                gift_id,
                count,
                value,
                request_id,
            } => {
                let mut payload = json!({ "gift_id": gift_id, "count": count });
                if let Some(value) = value {
                    payload["value"] = json!(value);
                }
                if let Some(request_id) = request_id {
                    payload["request_id"] = json!(request_id);
                }
                payload
            }
            Self::LowerHand { uid } | Self::Mute { uid } | Self::Unmute { uid } => uid_or_self(uid),
            Self::InviteSpeaker { uid }
            | Self::MoveToAudience { uid }
            | Self::PromoteModerator { uid }
            | Self::DemoteModerator { uid }
            | Self::Kick { uid }
            | Self::Block { uid } => json!({ "uid": uid }),
            Self::RemoveComment { seq } => json!({ "seq": seq }),
            Self::SlowMode { seconds } => json!({ "seconds": seconds }),
            Self::PollOpen {
                question,
                options,
                duration_secs,
            } => match duration_secs {
                Some(secs) => {
                    json!({ "question": question, "options": options, "duration_secs": secs })
                }
                None => json!({ "question": question, "options": options }),
            },
            Self::Vote { poll_id, option } => json!({ "poll_id": poll_id, "option": option }),
            Self::PollClose { poll_id } => json!({ "poll_id": poll_id }),
            Self::RaiseHand
            | Self::AcceptInvite
            | Self::DeclineInvite
            | Self::StepDown
            | Self::EndRoom
            | Self::Interest
            | Self::StartRoom => json!({}),
        }
    }
}

/// The reply of stage and moderation actions (hands, invites, roles, mutes, kicks).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct StageReply {
    /// False for a repeat (nothing changed, nothing pushed).
    pub changed: bool,
    /// The room's state version after the action.
    pub v: u64,
    /// The subject's whole stage state.
    pub user: UserState,
    /// The event's seq; `None` when nothing changed or the push layer was down.
    pub seq: Option<u64>,
}

/// The reply of `comment` and `gift`: the event's seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct SeqReply {
    /// The message's seq in the room stream.
    pub seq: u64,
}

/// The reply of `like` and `react`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct AcceptedReply {
    /// Taps (or reactions) counted.
    pub accepted: u64,
}

/// The reply of `remove_comment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct RemoveCommentReply {
    /// The seq of the comment removed.
    pub removed: u64,
    /// The seq of the `comment_removed` event (`None` if it could not be pushed).
    pub seq: Option<u64>,
}

/// The reply of `slow_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct SlowModeReply {
    /// The setting now.
    pub seconds: u64,
    /// Whether it changed.
    pub changed: bool,
    /// State version.
    pub v: u64,
    /// The event's seq, if one was pushed.
    pub seq: Option<u64>,
}

/// The reply of `poll_open`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct PollOpenReply {
    /// The new poll's id.
    pub poll_id: String,
    /// When its timer closes it.
    pub closes_at_ms: Option<u64>,
    /// The `poll_opened` event's seq.
    pub seq: u64,
}

/// The reply of `vote`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct VoteReply {
    /// The poll.
    pub poll_id: String,
    /// The option voted.
    pub option: u32,
}

/// The reply of `poll_close`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PollCloseReply {
    /// The final poll.
    pub poll: Poll,
    /// The `poll_closed` event's seq (`None` for a repeat).
    pub seq: Option<u64>,
    /// State version.
    pub v: u64,
}

/// The reply of `end_room`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct EndRoomReply {
    /// The final summary.
    pub summary: Map<String, Value>,
}

/// The reply of `start_room`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct StartRoomReply {
    /// Start time (Unix ms).
    pub started_at_ms: u64,
    /// The `room_started` event's seq.
    pub seq: u64,
}

/// Read a reply body as `T` (an empty body reads as `{}`).
pub fn parse_reply<T: DeserializeOwned>(action: &str, reply: &ReplyInfo) -> Result<T, Error> {
    let body: &[u8] = if reply.body.is_empty() {
        b"{}"
    } else {
        &reply.body
    };
    serde_json::from_slice(body)
        .map_err(|e| Error::Protocol(format!("unreadable reply to {action}: {e}")))
}

/// One room, seen from a [`Client`]: its typed actions. Cheap to clone; acting does not
/// need a join (public rooms take audience actions from anyone), but most stage actions
/// need the caller in the room.
#[derive(Debug, Clone)]
pub struct Room {
    client: Client,
    id: String,
}

impl Client {
    /// A handle to `room`'s typed actions (no request is made).
    pub fn room(&self, room: impl Into<String>) -> Room {
        Room {
            client: self.clone(),
            id: room.into(),
        }
    }
}

impl Room {
    /// The room id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The client this handle acts through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Send any action and read its reply as `T` (use `serde_json::Value` for a custom
    /// action or to read the raw body).
    pub async fn act<T: DeserializeOwned>(&self, action: &Action) -> Result<T, Error> {
        let payload = serde_json::to_vec(&action.payload())
            .map_err(|e| Error::Protocol(format!("cannot encode {}: {e}", action.name())))?;
        let reply = self
            .client
            .publish(self.id.clone(), action.name(), payload)
            .await?;
        parse_reply(action.name(), &reply)
    }

    /// Post a comment (1–500 characters).
    pub async fn comment(&self, text: impl Into<String>) -> Result<SeqReply, Error> {
        self.act(&Action::Comment {
            text: text.into(),
            attrs: None,
        })
        .await
    }

    /// Post a comment with display attributes.
    pub async fn comment_with(
        &self,
        text: impl Into<String>,
        attrs: Map<String, Value>,
    ) -> Result<SeqReply, Error> {
        self.act(&Action::Comment {
            text: text.into(),
            attrs: Some(attrs),
        })
        .await
    }

    /// Like, `count` taps at once (1–100).
    pub async fn like(&self, count: u32) -> Result<AcceptedReply, Error> {
        self.act(&Action::Like { count }).await
    }

    /// React with one emoji.
    pub async fn react(&self, emoji: impl Into<String>) -> Result<AcceptedReply, Error> {
        self.act(&Action::React {
            emoji: emoji.into(),
        })
        .await
    }

    /// Send `count` gifts of `gift_id`. The server prices gifts from the
    /// room's gift catalog (`node.gifts`): `value` is not trusted and is
    /// ignored by Roomcast servers (pass `None`); the `gift` event and the
    /// room's counters carry the catalog's value. An id the catalog lacks is
    /// refused.
    pub async fn gift(
        &self,
        gift_id: impl Into<String>,
        count: u32,
        value: Option<u64>,
    ) -> Result<SeqReply, Error> {
        self.act(&Action::Gift {
            gift_id: gift_id.into(),
            count,
            value,
            request_id: None,
        })
        .await
    }

    /// Send `count` gifts of `gift_id` safely retried: pick `request_id` once
    /// per sending (a UUID, say) and pass the same one on every retry; the
    /// server sends and counts the gift once and answers a retry with the
    /// first reply.
    pub async fn gift_once(
        &self,
        gift_id: impl Into<String>,
        count: u32,
        request_id: impl Into<String>,
    ) -> Result<SeqReply, Error> {
        self.act(&Action::Gift {
            gift_id: gift_id.into(),
            count,
            value: None,
            request_id: Some(request_id.into()),
        })
        .await
    }

    /// Raise your hand (listeners).
    pub async fn raise_hand(&self) -> Result<StageReply, Error> {
        self.act(&Action::RaiseHand).await
    }

    /// Lower your own hand.
    pub async fn lower_hand(&self) -> Result<StageReply, Error> {
        self.act(&Action::LowerHand { uid: None }).await
    }

    /// Lower someone's hand (host, moderator).
    pub async fn lower_hand_of(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::LowerHand {
            uid: Some(uid.into()),
        })
        .await
    }

    /// Invite a listener to speak (host, moderator).
    pub async fn invite_speaker(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::InviteSpeaker { uid: uid.into() }).await
    }

    /// Accept an invite to speak: on stage, muted.
    pub async fn accept_invite(&self) -> Result<StageReply, Error> {
        self.act(&Action::AcceptInvite).await
    }

    /// Decline an invite to speak.
    pub async fn decline_invite(&self) -> Result<StageReply, Error> {
        self.act(&Action::DeclineInvite).await
    }

    /// Move someone off stage (host, moderator).
    pub async fn move_to_audience(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::MoveToAudience { uid: uid.into() }).await
    }

    /// Leave the stage (speaker, moderator).
    pub async fn step_down(&self) -> Result<StageReply, Error> {
        self.act(&Action::StepDown).await
    }

    /// Make someone a moderator (host).
    pub async fn promote_moderator(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::PromoteModerator { uid: uid.into() })
            .await
    }

    /// Make a moderator a speaker (host).
    pub async fn demote_moderator(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::DemoteModerator { uid: uid.into() }).await
    }

    /// Mute yourself (on stage).
    pub async fn mute(&self) -> Result<StageReply, Error> {
        self.act(&Action::Mute { uid: None }).await
    }

    /// Mute someone on stage (host, moderator): a moderator mute.
    pub async fn mute_user(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::Mute {
            uid: Some(uid.into()),
        })
        .await
    }

    /// Unmute yourself (refused `FORBIDDEN` after a moderator mute).
    pub async fn unmute(&self) -> Result<StageReply, Error> {
        self.act(&Action::Unmute { uid: None }).await
    }

    /// Lift a moderator mute (host, moderator): it becomes a self mute.
    pub async fn unmute_user(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::Unmute {
            uid: Some(uid.into()),
        })
        .await
    }

    /// Kick someone out of the room (host, moderator).
    pub async fn kick(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::Kick { uid: uid.into() }).await
    }

    /// Kick and block someone from every room of this host (host).
    pub async fn block(&self, uid: impl Into<String>) -> Result<StageReply, Error> {
        self.act(&Action::Block { uid: uid.into() }).await
    }

    /// Remove a comment by seq (host, moderator).
    pub async fn remove_comment(&self, seq: u64) -> Result<RemoveCommentReply, Error> {
        self.act(&Action::RemoveComment { seq }).await
    }

    /// Set slow mode, 0–3,600 s (host, moderator).
    pub async fn slow_mode(&self, seconds: u32) -> Result<SlowModeReply, Error> {
        self.act(&Action::SlowMode { seconds }).await
    }

    /// Open a poll (host, moderator; live rooms).
    pub async fn open_poll<S: Into<String>>(
        &self,
        question: impl Into<String>,
        options: impl IntoIterator<Item = S>,
        duration_secs: Option<u32>,
    ) -> Result<PollOpenReply, Error> {
        self.act(&Action::PollOpen {
            question: question.into(),
            options: options.into_iter().map(Into::into).collect(),
            duration_secs,
        })
        .await
    }

    /// Vote (once per poll), by option index.
    pub async fn vote(&self, poll_id: impl Into<String>, option: u32) -> Result<VoteReply, Error> {
        self.act(&Action::Vote {
            poll_id: poll_id.into(),
            option,
        })
        .await
    }

    /// Close a poll (host, moderator; idempotent).
    pub async fn close_poll(&self, poll_id: impl Into<String>) -> Result<PollCloseReply, Error> {
        self.act(&Action::PollClose {
            poll_id: poll_id.into(),
        })
        .await
    }

    /// End the room (host).
    pub async fn end_room(&self) -> Result<EndRoomReply, Error> {
        self.act(&Action::EndRoom).await
    }

    /// Mark interest in a scheduled room.
    pub async fn interest(&self) -> Result<Value, Error> {
        self.act(&Action::Interest).await
    }

    /// Start a scheduled room (host).
    pub async fn start_room(&self) -> Result<StartRoomReply, Error> {
        self.act(&Action::StartRoom).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proto::client::v1::Code;

    fn uid(u: &str) -> String {
        u.to_owned()
    }

    #[test]
    fn every_action_has_its_documented_name_and_payload() {
        let cases: Vec<(Action, &str, Value)> = vec![
            (
                Action::Comment {
                    text: "hi".into(),
                    attrs: None,
                },
                "comment",
                json!({"text": "hi"}),
            ),
            (
                Action::Comment {
                    text: "hi".into(),
                    attrs: Some(Map::from_iter([("c".to_owned(), json!("red"))])),
                },
                "comment",
                json!({"text": "hi", "attrs": {"c": "red"}}),
            ),
            (Action::Like { count: 3 }, "like", json!({"count": 3})),
            (
                Action::React {
                    emoji: "🔥".into()
                },
                "react",
                json!({"emoji": "🔥"}),
            ),
            (
                Action::Gift {
                    gift_id: "rose".into(),
                    count: 2,
                    value: Some(5),
                    request_id: None,
                },
                "gift",
                json!({"gift_id": "rose", "count": 2, "value": 5}),
            ),
            (
                Action::Gift {
                    gift_id: "rose".into(),
                    count: 1,
                    value: None,
                    request_id: Some("tap-7".into()),
                },
                "gift",
                json!({"gift_id": "rose", "count": 1, "request_id": "tap-7"}),
            ),
            (
                Action::Gift {
                    gift_id: "rose".into(),
                    count: 1,
                    value: None,
                    request_id: None,
                },
                "gift",
                json!({"gift_id": "rose", "count": 1}),
            ),
            (Action::RaiseHand, "raise_hand", json!({})),
            (Action::LowerHand { uid: None }, "lower_hand", json!({})),
            (
                Action::LowerHand {
                    uid: Some(uid("bob")),
                },
                "lower_hand",
                json!({"uid": "bob"}),
            ),
            (
                Action::InviteSpeaker { uid: uid("bob") },
                "invite_speaker",
                json!({"uid": "bob"}),
            ),
            (Action::AcceptInvite, "accept_invite", json!({})),
            (Action::DeclineInvite, "decline_invite", json!({})),
            (
                Action::MoveToAudience { uid: uid("bob") },
                "move_to_audience",
                json!({"uid": "bob"}),
            ),
            (Action::StepDown, "step_down", json!({})),
            (
                Action::PromoteModerator { uid: uid("bob") },
                "promote_moderator",
                json!({"uid": "bob"}),
            ),
            (
                Action::DemoteModerator { uid: uid("bob") },
                "demote_moderator",
                json!({"uid": "bob"}),
            ),
            (Action::Mute { uid: None }, "mute", json!({})),
            (
                Action::Mute {
                    uid: Some(uid("bob")),
                },
                "mute",
                json!({"uid": "bob"}),
            ),
            (Action::Unmute { uid: None }, "unmute", json!({})),
            (
                Action::Unmute {
                    uid: Some(uid("bob")),
                },
                "unmute",
                json!({"uid": "bob"}),
            ),
            (
                Action::Kick { uid: uid("eve") },
                "kick",
                json!({"uid": "eve"}),
            ),
            (
                Action::Block { uid: uid("eve") },
                "block",
                json!({"uid": "eve"}),
            ),
            (
                Action::RemoveComment { seq: 12 },
                "remove_comment",
                json!({"seq": 12}),
            ),
            (
                Action::SlowMode { seconds: 30 },
                "slow_mode",
                json!({"seconds": 30}),
            ),
            (
                Action::PollOpen {
                    question: "Q?".into(),
                    options: vec!["a".into(), "b".into()],
                    duration_secs: Some(60),
                },
                "poll_open",
                json!({"question": "Q?", "options": ["a", "b"], "duration_secs": 60}),
            ),
            (
                Action::PollOpen {
                    question: "Q?".into(),
                    options: vec!["a".into(), "b".into()],
                    duration_secs: None,
                },
                "poll_open",
                json!({"question": "Q?", "options": ["a", "b"]}),
            ),
            (
                Action::Vote {
                    poll_id: "p1".into(),
                    option: 1,
                },
                "vote",
                json!({"poll_id": "p1", "option": 1}),
            ),
            (
                Action::PollClose {
                    poll_id: "p1".into(),
                },
                "poll_close",
                json!({"poll_id": "p1"}),
            ),
            (Action::EndRoom, "end_room", json!({})),
            (Action::Interest, "interest", json!({})),
            (Action::StartRoom, "start_room", json!({})),
        ];
        for (action, name, payload) in cases {
            assert_eq!(action.name(), name, "{action:?}");
            assert_eq!(action.payload(), payload, "{action:?}");
        }
    }

    fn reply(body: &str) -> ReplyInfo {
        ReplyInfo {
            code: Code::Ok,
            message: String::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn replies_parse_into_their_types() {
        let stage: StageReply = parse_reply(
            "invite_speaker",
            &reply(
                r#"{"changed":true,"v":58,"seq":1207,
                "user":{"uid":"bob","role":"listener","hand_raised_at_ms":1795450100000,"invited_by":"alice","muted":null}}"#,
            ),
        )
        .expect("stage reply");
        assert_eq!((stage.changed, stage.v, stage.seq), (true, 58, Some(1207)));
        assert_eq!(stage.user.invited_by.as_deref(), Some("alice"));
        let repeat: StageReply = parse_reply(
            "raise_hand",
            &reply(r#"{"changed":false,"v":3,"seq":null,"user":{"uid":"a","role":"listener"}}"#),
        )
        .expect("repeat");
        assert_eq!(repeat.seq, None);
        let seq: SeqReply = parse_reply("comment", &reply(r#"{"seq":44}"#)).expect("seq");
        assert_eq!(seq.seq, 44);
        let poll: PollOpenReply = parse_reply(
            "poll_open",
            &reply(r#"{"poll_id":"p1","closes_at_ms":null,"seq":9}"#),
        )
        .expect("poll");
        assert_eq!(poll.poll_id, "p1");
        // An empty body is `{}`.
        let empty: Value = parse_reply("interest", &reply("")).expect("empty");
        assert_eq!(empty, json!({}));
    }

    #[test]
    fn an_unreadable_reply_is_a_protocol_error_naming_the_action() {
        let error = parse_reply::<SeqReply>("comment", &reply("not json")).expect_err("bad");
        assert!(
            matches!(&error, Error::Protocol(m) if m.contains("comment")),
            "{error}"
        );
        let error =
            parse_reply::<SeqReply>("comment", &reply(r#"{"seq":"x"}"#)).expect_err("bad type");
        assert!(matches!(error, Error::Protocol(_)));
    }
}
