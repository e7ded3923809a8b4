//! A room's state as read from the store, and the JSON clients get from it:
//! the join snapshot (`RoomSnapshot.state`) and the summary.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::poll::PollView;
use super::room::{Mute, Role, Room, RoomState, StageRole, UserStage};

/// Durable counters of a room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Likes.
    pub likes: u64,
    /// Comments posted.
    pub comments: u64,
    /// Gifts (pieces).
    pub gifts: u64,
    /// Gift value (sum of count × value).
    pub gift_value: u64,
    /// Reactions by emoji.
    pub reactions: BTreeMap<String, u64>,
    /// Most members at once.
    pub peak: u64,
}

impl Counters {
    /// All reactions.
    pub fn reactions_total(&self) -> u64 {
        self.reactions.values().sum()
    }
}

/// The reader's own state, when the read is for a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// Who.
    pub uid: String,
    /// Their stage state.
    pub stage: UserStage,
    /// Whether they may enter (public room, owner, or invited).
    pub may_enter: bool,
    /// Whether they marked interest.
    pub interested: bool,
    /// poll id → the option they chose.
    pub votes: BTreeMap<String, u32>,
}

/// Everything about a room clients see, read in one atomic step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRead {
    /// The record.
    pub room: Room,
    /// Distinct members now.
    pub members: u32,
    /// Stage people (host, moderators, speakers) who are members now.
    pub stage_present: u32,
    /// Distinct uids that ever joined.
    pub unique_listeners: u64,
    /// Stored roles.
    pub roles: BTreeMap<String, StageRole>,
    /// Raised hands, oldest first, at most the read's limit.
    pub hands: Vec<(String, u64)>,
    /// All raised hands.
    pub hands_count: u64,
    /// Pending invites to speak: uid → inviter.
    pub invites: BTreeMap<String, String>,
    /// Mutes.
    pub muted: BTreeMap<String, Mute>,
    /// Kicked uids (count).
    pub kicked_count: u64,
    /// Interested uids (count).
    pub interest_count: u64,
    /// Every poll, oldest first.
    pub polls: Vec<PollView>,
    /// Counters.
    pub counters: Counters,
    /// State version (see [`crate::domain::transition::Applied`]).
    pub version: u64,
    /// The reader, if the read was for one.
    pub viewer: Option<Viewer>,
}

#[derive(Serialize)]
struct HandJson<'a> {
    uid: &'a str,
    at_ms: u64,
}

#[derive(Serialize)]
struct InviteJson<'a> {
    uid: &'a str,
    by: &'a str,
}

/// A user's stage state as events and snapshots carry it.
pub fn user_json(uid: &str, user: &UserStage) -> Value {
    json!({
        "uid": uid,
        "role": user.role.as_str(),
        "hand_raised_at_ms": user.hand_raised_at_ms,
        "invited_by": user.invited_by,
        "muted": user.muted.map(Mute::as_str),
    })
}

impl RoomRead {
    /// uids with `role`, sorted.
    pub fn with_role(&self, role: StageRole) -> Vec<&str> {
        self.roles
            .iter()
            .filter(|(_, r)| **r == role)
            .map(|(u, _)| u.as_str())
            .collect()
    }

    /// Members in the audience (not on stage).
    pub fn listeners(&self) -> u32 {
        self.members.saturating_sub(self.stage_present)
    }

    /// The viewer's role (listener without a viewer).
    pub fn viewer_role(&self) -> Role {
        self.viewer
            .as_ref()
            .map_or(Role::Listener, |v| v.stage.role)
    }

    /// The snapshot JSON (`RoomSnapshot.state`, `GET /v1/rooms/{id}/state`),
    /// with the newest `polls_max` polls. Shape documented in docs/room-api.md.
    pub fn snapshot_json(&self, polls_max: usize) -> Value {
        let room = &self.room;
        let hands: Vec<HandJson<'_>> = self
            .hands
            .iter()
            .map(|(uid, at_ms)| HandJson { uid, at_ms: *at_ms })
            .collect();
        let invites: Vec<InviteJson<'_>> = self
            .invites
            .iter()
            .map(|(uid, by)| InviteJson { uid, by })
            .collect();
        let muted: BTreeMap<&str, &str> = self
            .muted
            .iter()
            .map(|(u, m)| (u.as_str(), m.as_str()))
            .collect();
        let skip = self.polls.len().saturating_sub(polls_max);
        let polls: Vec<&PollView> = self.polls.iter().skip(skip).collect();
        let you = self.viewer.as_ref().map(|v| {
            let mut you = user_json(&v.uid, &v.stage);
            if let Some(map) = you.as_object_mut() {
                map.insert("member".into(), v.stage.member.into());
                map.insert("interested".into(), v.interested.into());
                map.insert("votes".into(), json!(v.votes));
            }
            you
        });
        json!({
            "v": self.version,
            "title": room.title,
            "owner": room.owner,
            "host": room.owner,
            "created_at_ms": room.created_at_ms,
            "state": room.state,
            "scheduled_at_ms": room.scheduled_at_ms,
            "started_at_ms": room.started_at_ms,
            "ended_at_ms": room.ended_at_ms,
            "private": room.private,
            "auto_end_empty_secs": room.auto_end_empty_secs,
            "slow_mode_secs": room.slow_mode_secs,
            "members": self.members,
            "listeners": self.listeners(),
            "moderators": self.with_role(StageRole::Moderator),
            "speakers": self.with_role(StageRole::Speaker),
            "hands": hands,
            "hands_count": self.hands_count,
            "invites": invites,
            "muted": muted,
            "polls": polls,
            "likes": self.counters.likes,
            "reactions": self.counters.reactions,
            "comments": self.counters.comments,
            "gifts": self.counters.gifts,
            "gift_value": self.counters.gift_value,
            "interested": self.interest_count,
            "you": you,
        })
    }

    /// The summary as of `now_ms`: live while the room runs, final once ended.
    pub fn summary_json(&self, now_ms: u64) -> Value {
        let room = &self.room;
        json!({
            "room_id": room.id,
            "state": room.state,
            "final": room.state == RoomState::Ended,
            "comments": self.counters.comments,
            "likes": self.counters.likes,
            "reactions": {
                "total": self.counters.reactions_total(),
                "by_emoji": self.counters.reactions,
            },
            "gifts": self.counters.gifts,
            "gift_value": self.counters.gift_value,
            "unique_listeners": self.unique_listeners,
            "peak_concurrency": self.counters.peak,
            "members": self.members,
            "polls": self.polls.len(),
            "started_at_ms": room.started_at_ms,
            "ended_at_ms": room.ended_at_ms,
            "duration_ms": room.duration_ms(now_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::poll::PollDef;
    use crate::domain::room::NewRoom;

    fn read() -> RoomRead {
        let room = NewRoom::titled("Jazz", Some("alice")).into_room("r1".into(), 1_000);
        let def = PollDef {
            id: "p1".into(),
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            opened_by: "alice".into(),
            opened_at_ms: 2_000,
            closes_at_ms: None,
        };
        RoomRead {
            room,
            members: 5,
            stage_present: 2,
            unique_listeners: 9,
            roles: [
                ("mo".to_owned(), StageRole::Moderator),
                ("sam".to_owned(), StageRole::Speaker),
            ]
            .into(),
            hands: vec![("bob".into(), 3_000)],
            hands_count: 1,
            invites: [("carol".to_owned(), "mo".to_owned())].into(),
            muted: [("sam".to_owned(), Mute::Moderator)].into(),
            kicked_count: 0,
            interest_count: 0,
            polls: vec![PollView::new(def, vec![1, 2], None)],
            counters: Counters {
                likes: 10,
                reactions: [("❤️".to_owned(), 3)].into(),
                peak: 7,
                ..Counters::default()
            },
            version: 12,
            viewer: None,
        }
    }

    #[test]
    fn the_snapshot_holds_the_whole_stage() {
        let state = read().snapshot_json(20);
        assert_eq!(state["v"], 12);
        assert_eq!(state["state"], "live");
        assert_eq!(state["host"], "alice");
        assert_eq!(state["moderators"], json!(["mo"]));
        assert_eq!(state["speakers"], json!(["sam"]));
        assert_eq!(state["hands"], json!([{"uid": "bob", "at_ms": 3000}]));
        assert_eq!(state["invites"], json!([{"uid": "carol", "by": "mo"}]));
        assert_eq!(state["muted"], json!({"sam": "moderator"}));
        assert_eq!(state["listeners"], 3);
        assert_eq!(state["polls"][0]["tallies"], json!([1, 2]));
        assert_eq!(state["polls"][0]["state"], "open");
        assert_eq!(state["reactions"], json!({"❤️": 3}));
        assert_eq!(state["you"], Value::Null);
        assert_eq!(read().snapshot_json(0)["polls"], json!([]));
    }

    #[test]
    fn summaries_are_final_after_the_end() {
        let mut r = read();
        let live = r.summary_json(61_000);
        assert_eq!(
            (live["final"].as_bool(), live["duration_ms"].as_u64()),
            (Some(false), Some(60_000))
        );
        assert_eq!(live["reactions"]["total"], 3);
        assert_eq!(live["peak_concurrency"], 7);
        r.room.state = RoomState::Ended;
        r.room.ended_at_ms = Some(31_000);
        let done = r.summary_json(99_000);
        assert_eq!(
            (done["final"].as_bool(), done["duration_ms"].as_u64()),
            (Some(true), Some(30_000))
        );
    }
}
