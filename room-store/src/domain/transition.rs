//! Guarded state transitions: the one way room state changes.
//!
//! An action becomes a [`Transition`]: guards (facts that must hold) and
//! effects (changes made if they all do). A store applies it atomically (a
//! Lua script on Redis, one lock in memory) and reports the first guard that
//! failed, so checking and changing can never interleave with another action
//! (two moderators inviting the same listener, a vote racing the poll's close).
//!
//! [`RoomDoc::apply`] is the reference semantics, used by the memory store;
//! the Redis script mirrors it, and the store conformance suite runs the same
//! transitions on both. Transitions travel to Lua as JSON; numbers are encoded
//! as strings so no timestamp goes through a Lua double.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Serialize, Serializer};

use super::poll::{PollDef, PollView};
use super::room::{Mute, MuteState, Role, Room, RoomState, StageRole, UserStage};

/// A fact a transition needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "g", rename_all = "snake_case")]
pub enum Guard {
    /// The room is in one of these states.
    Phase {
        /// Allowed states.
        any: Vec<RoomState>,
    },
    /// `uid` has one of these roles.
    Role {
        /// Who.
        uid: String,
        /// Allowed roles.
        any: Vec<Role>,
    },
    /// `uid` is in the room now.
    Member {
        /// Who.
        uid: String,
    },
    /// `uid` was not kicked.
    NotKicked {
        /// Who.
        uid: String,
    },
    /// `uid` may enter: the room is public, or `uid` owns it or is invited.
    MayEnter {
        /// Who.
        uid: String,
    },
    /// `actor` ranks above `target` (host > moderator > everyone else).
    Outranks {
        /// Who acts.
        actor: String,
        /// On whom.
        target: String,
    },
    /// `uid` has a pending invite to speak.
    Invited {
        /// Who.
        uid: String,
    },
    /// `uid`'s mute is one of these.
    Muted {
        /// Who.
        uid: String,
        /// Allowed mute states.
        any: Vec<MuteState>,
    },
    /// The poll exists, is not closed and its timer has not run out.
    PollOpen {
        /// Poll id.
        poll: String,
        /// Now, Unix ms.
        #[serde(serialize_with = "as_string")]
        now_ms: u64,
    },
    /// The poll exists.
    PollExists {
        /// Poll id.
        poll: String,
    },
    /// `option` is an index of the poll's options.
    PollOption {
        /// Poll id.
        poll: String,
        /// Option index.
        option: u32,
    },
    /// `uid` has not voted in the poll.
    NotVoted {
        /// Poll id.
        poll: String,
        /// Who.
        uid: String,
    },
    /// Fewer than `max` polls are open.
    OpenPollsBelow {
        /// Bound.
        max: u32,
    },
    /// Nobody is in the room and it has been so for `ms` as of `now_ms`.
    EmptyFor {
        /// How long.
        #[serde(serialize_with = "as_string")]
        ms: u64,
        /// Now, Unix ms.
        #[serde(serialize_with = "as_string")]
        now_ms: u64,
    },
}

/// A change a transition makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Effect {
    /// Give `uid` a stored role, or none (back to the audience).
    SetRole {
        /// Who.
        uid: String,
        /// The role; absent: listener.
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<StageRole>,
    },
    /// Mute `uid` (self) if they are a listener now: people join the stage muted.
    MuteIfListener {
        /// Who.
        uid: String,
    },
    /// Raise `uid`'s hand (keeps the first raise time).
    RaiseHand {
        /// Who.
        uid: String,
        /// When.
        #[serde(serialize_with = "as_string")]
        at_ms: u64,
    },
    /// Lower `uid`'s hand.
    LowerHand {
        /// Who.
        uid: String,
    },
    /// Invite `uid` to speak (keeps the first inviter).
    Invite {
        /// Who.
        uid: String,
        /// The inviter.
        by: String,
    },
    /// Drop `uid`'s invite.
    Uninvite {
        /// Who.
        uid: String,
    },
    /// Set or clear `uid`'s mute.
    SetMute {
        /// Who.
        uid: String,
        /// The mute; absent: unmuted.
        #[serde(skip_serializing_if = "Option::is_none")]
        mute: Option<Mute>,
    },
    /// Kick `uid`: mark kicked, drop role, hand, invite, mute and membership.
    Kick {
        /// Who.
        uid: String,
        /// Now, Unix ms (the room may become empty).
        #[serde(serialize_with = "as_string")]
        now_ms: u64,
    },
    /// Set slow mode.
    SlowMode {
        /// Seconds between comments per user; 0 off.
        secs: u32,
    },
    /// Go live.
    Start {
        /// When.
        #[serde(serialize_with = "as_string")]
        at_ms: u64,
    },
    /// End.
    End {
        /// When.
        #[serde(serialize_with = "as_string")]
        at_ms: u64,
    },
    /// Record `uid`'s interest in a scheduled room.
    Interest {
        /// Who.
        uid: String,
    },
    /// Put `uid` on the invite list.
    Allow {
        /// Who.
        uid: String,
    },
    /// Open a poll (unless the id exists).
    OpenPoll {
        /// Poll id.
        id: String,
        /// Number of options.
        options: u32,
        /// When its timer closes it.
        #[serde(
            serialize_with = "opt_as_string",
            skip_serializing_if = "Option::is_none"
        )]
        closes_at_ms: Option<u64>,
        /// The [`PollDef`] as JSON, stored as is.
        def: String,
    },
    /// Count `uid`'s vote (unless they voted).
    Vote {
        /// Poll id.
        poll: String,
        /// Who.
        uid: String,
        /// Option index.
        option: u32,
    },
    /// Close a poll (unless closed).
    ClosePoll {
        /// Poll id.
        poll: String,
        /// When.
        #[serde(serialize_with = "as_string")]
        at_ms: u64,
    },
}

impl Effect {
    /// Open the poll `def`.
    pub fn open_poll(def: &PollDef) -> Self {
        Self::OpenPoll {
            id: def.id.clone(),
            options: u32::try_from(def.options.len()).unwrap_or(u32::MAX),
            closes_at_ms: def.closes_at_ms,
            // A struct of strings and integers always encodes.
            def: serde_json::to_string(def).unwrap_or_default(),
        }
    }
}

fn as_string<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_string())
}

fn opt_as_string<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_str(&v.to_string()),
        None => s.serialize_none(),
    }
}

/// Guards and effects applied as one atomic step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// Checked in order; the first that fails refuses the transition.
    pub guards: Vec<Guard>,
    /// Applied in order when every guard holds.
    pub effects: Vec<Effect>,
    /// The user whose stage state is reported before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Transition {
    /// The JSON the Redis script reads.
    pub fn to_json(&self) -> String {
        // Strings, integers and enums only: encoding cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What applying a transition did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Guard number `guard` (0-based) did not hold; nothing changed.
    Refused {
        /// Its index in [`Transition::guards`].
        guard: usize,
    },
    /// Every guard held and the effects were applied.
    Done {
        /// Whether any effect changed anything (false: a repeat, e.g. raising
        /// a raised hand).
        changed: bool,
        /// The room's state version after (incremented by each change).
        version: u64,
        /// The subject's state before.
        before: Option<UserStage>,
        /// The subject's state after.
        after: Option<UserStage>,
    },
}

/// A poll as the memory store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollRecord {
    /// Its definition.
    pub def: PollDef,
    /// Votes per option.
    pub tallies: Vec<u64>,
    /// uid → the option they chose.
    pub voters: BTreeMap<String, u32>,
    /// When it closed.
    pub closed_at_ms: Option<u64>,
}

impl PollRecord {
    /// As everyone sees it.
    pub fn view(&self) -> PollView {
        PollView::new(self.def.clone(), self.tallies.clone(), self.closed_at_ms)
    }
}

/// Who is in a room, as a transition needs to know it.
pub trait Membership {
    /// Whether `uid` is in the room.
    fn contains(&self, uid: &str) -> bool;
    /// Distinct members.
    fn count(&self) -> u64;
    /// Drop every session of `uid`.
    fn evict(&mut self, uid: &str);
}

/// A room's state besides its record and sessions (the memory store's copy,
/// and the reference semantics of the Redis script).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomDoc {
    /// uid → stored role.
    pub roles: BTreeMap<String, StageRole>,
    /// uid → when the hand went up.
    pub hands: BTreeMap<String, u64>,
    /// uid → who invited them to speak.
    pub invites: BTreeMap<String, String>,
    /// uid → mute.
    pub muted: BTreeMap<String, Mute>,
    /// Kicked uids.
    pub kicked: BTreeSet<String>,
    /// Invite list (private rooms admit only these and the owner).
    pub allowed: BTreeSet<String>,
    /// uids interested in a scheduled room.
    pub interest: BTreeSet<String>,
    /// Polls by id.
    pub polls: BTreeMap<String, PollRecord>,
    /// State version.
    pub version: u64,
}

impl RoomDoc {
    /// `uid`'s role in `room`.
    pub fn role_of(&self, room: &Room, uid: &str) -> Role {
        if room.owner.as_deref() == Some(uid) {
            return Role::Host;
        }
        self.roles.get(uid).map_or(Role::Listener, |r| r.role())
    }

    /// `uid`'s stage state.
    pub fn user(&self, room: &Room, members: &dyn Membership, uid: &str) -> UserStage {
        UserStage {
            role: self.role_of(room, uid),
            hand_raised_at_ms: self.hands.get(uid).copied(),
            invited_by: self.invites.get(uid).cloned(),
            muted: self.muted.get(uid).copied(),
            kicked: self.kicked.contains(uid),
            member: members.contains(uid),
        }
    }

    fn open_polls(&self) -> usize {
        self.polls
            .values()
            .filter(|p| p.closed_at_ms.is_none())
            .count()
    }

    fn holds(&self, room: &Room, members: &dyn Membership, guard: &Guard) -> bool {
        match guard {
            Guard::Phase { any } => any.contains(&room.state),
            Guard::Role { uid, any } => any.contains(&self.role_of(room, uid)),
            Guard::Member { uid } => members.contains(uid),
            Guard::NotKicked { uid } => !self.kicked.contains(uid),
            Guard::MayEnter { uid } => {
                !room.private || room.owner.as_deref() == Some(uid) || self.allowed.contains(uid)
            }
            Guard::Outranks { actor, target } => {
                self.role_of(room, actor).rank() > self.role_of(room, target).rank()
            }
            Guard::Invited { uid } => self.invites.contains_key(uid),
            Guard::Muted { uid, any } => any.contains(&self.muted.get(uid).copied().into()),
            Guard::PollOpen { poll, now_ms } => self.polls.get(poll).is_some_and(|p| {
                p.closed_at_ms.is_none() && p.def.closes_at_ms.is_none_or(|at| *now_ms < at)
            }),
            Guard::PollExists { poll } => self.polls.contains_key(poll),
            Guard::PollOption { poll, option } => self
                .polls
                .get(poll)
                .is_some_and(|p| (*option as usize) < p.def.options.len()),
            Guard::NotVoted { poll, uid } => self
                .polls
                .get(poll)
                .is_none_or(|p| !p.voters.contains_key(uid)),
            Guard::OpenPollsBelow { max } => self.open_polls() < *max as usize,
            Guard::EmptyFor { ms, now_ms } => {
                members.count() == 0
                    && room
                        .empty_since_ms
                        .is_some_and(|since| now_ms.saturating_sub(since) >= *ms)
            }
        }
    }

    /// Apply `t` to `room` (its record), this state and `members`, atomically
    /// as far as the caller holds them exclusively.
    pub fn apply(
        &mut self,
        room: &mut Room,
        members: &mut dyn Membership,
        t: &Transition,
    ) -> Applied {
        if let Some(guard) = t
            .guards
            .iter()
            .position(|g| !self.holds(room, &*members, g))
        {
            return Applied::Refused { guard };
        }
        let before = t.subject.as_deref().map(|u| self.user(room, &*members, u));
        let mut changed = false;
        for effect in &t.effects {
            changed |= self.effect(room, members, effect);
        }
        if changed {
            self.version += 1;
        }
        let after = t.subject.as_deref().map(|u| self.user(room, &*members, u));
        Applied::Done {
            changed,
            version: self.version,
            before,
            after,
        }
    }

    /// Apply one effect; whether it changed anything.
    fn effect(&mut self, room: &mut Room, members: &mut dyn Membership, effect: &Effect) -> bool {
        match effect {
            Effect::SetRole { uid, role: None } => self.roles.remove(uid).is_some(),
            Effect::SetRole {
                uid,
                role: Some(role),
            } => self.roles.insert(uid.clone(), *role) != Some(*role),
            Effect::MuteIfListener { uid } => {
                if self.role_of(room, uid) != Role::Listener || self.muted.contains_key(uid) {
                    return false;
                }
                self.muted.insert(uid.clone(), Mute::SelfMuted);
                true
            }
            Effect::RaiseHand { uid, at_ms } => {
                if self.hands.contains_key(uid) {
                    return false;
                }
                self.hands.insert(uid.clone(), *at_ms);
                true
            }
            Effect::LowerHand { uid } => self.hands.remove(uid).is_some(),
            Effect::Invite { uid, by } => {
                if self.invites.contains_key(uid) {
                    return false;
                }
                self.invites.insert(uid.clone(), by.clone());
                true
            }
            Effect::Uninvite { uid } => self.invites.remove(uid).is_some(),
            Effect::SetMute { uid, mute: None } => self.muted.remove(uid).is_some(),
            Effect::SetMute {
                uid,
                mute: Some(mute),
            } => self.muted.insert(uid.clone(), *mute) != Some(*mute),
            Effect::Kick { uid, now_ms } => {
                let fresh = self.kicked.insert(uid.clone());
                self.roles.remove(uid);
                self.hands.remove(uid);
                self.invites.remove(uid);
                self.muted.remove(uid);
                if members.contains(uid) {
                    members.evict(uid);
                    if members.count() == 0
                        && room.state == RoomState::Live
                        && room.empty_since_ms.is_none()
                    {
                        room.empty_since_ms = Some(*now_ms);
                    }
                }
                fresh
            }
            Effect::SlowMode { secs } => {
                let changed = room.slow_mode_secs != *secs;
                room.slow_mode_secs = *secs;
                changed
            }
            Effect::Start { at_ms } => {
                if room.state == RoomState::Live {
                    return false;
                }
                room.state = RoomState::Live;
                room.started_at_ms = Some(*at_ms);
                if members.count() == 0 {
                    room.empty_since_ms = Some(*at_ms);
                }
                true
            }
            Effect::End { at_ms } => {
                if room.state == RoomState::Ended {
                    return false;
                }
                room.state = RoomState::Ended;
                room.ended_at_ms = Some(*at_ms);
                true
            }
            Effect::Interest { uid } => self.interest.insert(uid.clone()),
            Effect::Allow { uid } => self.allowed.insert(uid.clone()),
            Effect::OpenPoll { id, def, .. } => {
                if self.polls.contains_key(id) {
                    return false;
                }
                // Built by `Effect::open_poll` from a `PollDef`, so it parses.
                let Ok(def) = serde_json::from_str::<PollDef>(def) else {
                    return false;
                };
                let record = PollRecord {
                    tallies: vec![0; def.options.len()],
                    def,
                    voters: BTreeMap::new(),
                    closed_at_ms: None,
                };
                self.polls.insert(id.clone(), record);
                true
            }
            Effect::Vote { poll, uid, option } => {
                let Some(record) = self.polls.get_mut(poll) else {
                    return false;
                };
                if record.voters.contains_key(uid) {
                    return false;
                }
                let Some(count) = record.tallies.get_mut(*option as usize) else {
                    return false;
                };
                *count += 1;
                record.voters.insert(uid.clone(), *option);
                true
            }
            Effect::ClosePoll { poll, at_ms } => match self.polls.get_mut(poll) {
                Some(record) if record.closed_at_ms.is_none() => {
                    record.closed_at_ms = Some(*at_ms);
                    true
                }
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::room::NewRoom;

    #[derive(Default)]
    struct Members(BTreeSet<String>);

    impl Membership for Members {
        fn contains(&self, uid: &str) -> bool {
            self.0.contains(uid)
        }
        fn count(&self) -> u64 {
            self.0.len() as u64
        }
        fn evict(&mut self, uid: &str) {
            self.0.remove(uid);
        }
    }

    fn setup() -> (Room, RoomDoc, Members) {
        let room = NewRoom::titled("t", Some("host")).into_room("r1".into(), 0);
        let members = Members(["host", "bob", "carol"].map(String::from).into());
        (room, RoomDoc::default(), members)
    }

    fn done(applied: &Applied) -> (bool, u64) {
        match applied {
            Applied::Done {
                changed, version, ..
            } => (*changed, *version),
            Applied::Refused { guard } => panic!("refused by guard {guard}"),
        }
    }

    #[test]
    fn the_first_failing_guard_is_reported_and_nothing_changes() {
        let (mut room, mut doc, mut members) = setup();
        let t = Transition {
            guards: vec![
                Guard::Member { uid: "bob".into() },
                Guard::Role {
                    uid: "bob".into(),
                    any: vec![Role::Host, Role::Moderator],
                },
                Guard::Member {
                    uid: "nobody".into(),
                },
            ],
            effects: vec![Effect::Kick {
                uid: "carol".into(),
                now_ms: 1,
            }],
            subject: None,
        };
        assert_eq!(
            doc.apply(&mut room, &mut members, &t),
            Applied::Refused { guard: 1 }
        );
        assert!(doc.kicked.is_empty() && members.contains("carol"));
        assert_eq!(doc.version, 0);
    }

    #[test]
    fn repeats_change_nothing_and_keep_the_version() {
        let (mut room, mut doc, mut members) = setup();
        let raise = Transition {
            guards: vec![],
            effects: vec![Effect::RaiseHand {
                uid: "bob".into(),
                at_ms: 5,
            }],
            subject: Some("bob".into()),
        };
        assert_eq!(done(&doc.apply(&mut room, &mut members, &raise)), (true, 1));
        let again = Transition {
            effects: vec![Effect::RaiseHand {
                uid: "bob".into(),
                at_ms: 9,
            }],
            ..raise.clone()
        };
        let Applied::Done {
            changed,
            version,
            after,
            ..
        } = doc.apply(&mut room, &mut members, &again)
        else {
            panic!("refused")
        };
        assert_eq!((changed, version), (false, 1));
        assert_eq!(
            after.and_then(|a| a.hand_raised_at_ms),
            Some(5),
            "first raise kept"
        );
    }

    #[test]
    fn kicking_clears_everything_and_may_empty_the_room() {
        let (mut room, mut doc, mut members) = setup();
        room.empty_since_ms = None;
        doc.roles.insert("bob".into(), StageRole::Speaker);
        doc.muted.insert("bob".into(), Mute::Moderator);
        doc.hands.insert("carol".into(), 1);
        let kick = |uid: &str| Transition {
            guards: vec![],
            effects: vec![Effect::Kick {
                uid: uid.into(),
                now_ms: 42,
            }],
            subject: Some(uid.into()),
        };
        let Applied::Done { before, after, .. } = doc.apply(&mut room, &mut members, &kick("bob"))
        else {
            panic!("refused")
        };
        assert_eq!(before.map(|b| b.role), Some(Role::Speaker));
        let after = after.expect("subject");
        assert_eq!(
            (after.role, after.muted, after.kicked, after.member),
            (Role::Listener, None, true, false)
        );
        doc.apply(&mut room, &mut members, &kick("carol"));
        assert!(doc.hands.is_empty());
        assert_eq!(room.empty_since_ms, None, "the host is still in");
        doc.apply(&mut room, &mut members, &kick("host"));
        assert_eq!(room.empty_since_ms, Some(42));
    }

    #[test]
    fn votes_count_once_and_polls_close_once() {
        let (mut room, mut doc, mut members) = setup();
        let def = PollDef {
            id: "p1".into(),
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            opened_by: "host".into(),
            opened_at_ms: 0,
            closes_at_ms: Some(100),
        };
        let open = Transition {
            guards: vec![Guard::OpenPollsBelow { max: 1 }],
            effects: vec![Effect::open_poll(&def)],
            subject: None,
        };
        done(&doc.apply(&mut room, &mut members, &open));
        assert_eq!(
            doc.apply(&mut room, &mut members, &open),
            Applied::Refused { guard: 0 },
            "one open poll at most"
        );
        let vote = |uid: &str, option: u32, now_ms: u64| Transition {
            guards: vec![
                Guard::PollOpen {
                    poll: "p1".into(),
                    now_ms,
                },
                Guard::PollOption {
                    poll: "p1".into(),
                    option,
                },
                Guard::NotVoted {
                    poll: "p1".into(),
                    uid: uid.into(),
                },
            ],
            effects: vec![Effect::Vote {
                poll: "p1".into(),
                uid: uid.into(),
                option,
            }],
            subject: None,
        };
        done(&doc.apply(&mut room, &mut members, &vote("bob", 1, 10)));
        assert_eq!(
            doc.apply(&mut room, &mut members, &vote("bob", 0, 10)),
            Applied::Refused { guard: 2 }
        );
        assert_eq!(
            doc.apply(&mut room, &mut members, &vote("carol", 2, 10)),
            Applied::Refused { guard: 1 }
        );
        assert_eq!(
            doc.apply(&mut room, &mut members, &vote("carol", 0, 100)),
            Applied::Refused { guard: 0 },
            "timer ran out"
        );
        assert_eq!(doc.polls["p1"].view().tallies, [0, 1]);
        let close = Transition {
            guards: vec![Guard::PollExists { poll: "p1".into() }],
            effects: vec![Effect::ClosePoll {
                poll: "p1".into(),
                at_ms: 7,
            }],
            subject: None,
        };
        assert!(done(&doc.apply(&mut room, &mut members, &close)).0);
        assert!(
            !done(&doc.apply(&mut room, &mut members, &close)).0,
            "closed once"
        );
    }

    #[test]
    fn transitions_encode_numbers_as_strings_for_lua() {
        let t = Transition {
            guards: vec![Guard::EmptyFor {
                ms: 1_795_446_710_231,
                now_ms: 2,
            }],
            effects: vec![Effect::SetRole {
                uid: "bob".into(),
                role: None,
            }],
            subject: None,
        };
        assert_eq!(
            t.to_json(),
            r#"{"guards":[{"g":"empty_for","ms":"1795446710231","now_ms":"2"}],"effects":[{"e":"set_role","uid":"bob"}]}"#
        );
    }
}
