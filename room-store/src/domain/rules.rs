//! Who may do what: every action as a list of rules (a guard and the refusal
//! its failure means) plus the effects, built without I/O.
//!
//! Rules are checked in a fixed order so refusals are predictable:
//! 1. the room has not ended (`ROOM_ENDED`);
//! 2. the actor was not kicked, and may enter a private room (`FORBIDDEN`);
//! 3. the actor's role allows the action (`FORBIDDEN`);
//! 4. the room is in the right state, e.g. live for polls (`BAD_REQUEST`);
//! 5. the actor is in the room where the action needs it (`FORBIDDEN`);
//! 6. the target and the room state allow it (`BAD_REQUEST`, or `FORBIDDEN`
//!    when the target outranks the actor).
//!
//! Blocks are checked by the caller before (the block list spans rooms, so
//! it is not in the room's atomic step), as are payloads and rate limits.
//! The full matrix is in docs/room-api.md and asserted by the action tests.

use proto::client::v1::Code;

use super::entry::Barred;
use super::poll::PollDef;
use super::room::{Mute, MuteState, Role, RoomState, StageRole};
use super::transition::{Effect, Guard, Transition};

/// Every action, by its wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `raise_hand`
    RaiseHand,
    /// `lower_hand`
    LowerHand,
    /// `invite_speaker`
    InviteSpeaker,
    /// `accept_invite`
    AcceptInvite,
    /// `decline_invite`
    DeclineInvite,
    /// `move_to_audience`
    MoveToAudience,
    /// `step_down`
    StepDown,
    /// `promote_moderator`
    PromoteModerator,
    /// `demote_moderator`
    DemoteModerator,
    /// `mute`
    Mute,
    /// `unmute`
    Unmute,
    /// `kick`
    Kick,
    /// `block`
    Block,
    /// `remove_comment`
    RemoveComment,
    /// `slow_mode`
    SlowMode,
    /// `comment`
    Comment,
    /// `like`
    Like,
    /// `react`
    React,
    /// `gift`
    Gift,
    /// `poll_open`
    PollOpen,
    /// `vote`
    Vote,
    /// `poll_close`
    PollClose,
    /// `end_room`
    EndRoom,
    /// `interest`
    Interest,
    /// `start_room`
    StartRoom,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 25] = [
        Self::RaiseHand,
        Self::LowerHand,
        Self::InviteSpeaker,
        Self::AcceptInvite,
        Self::DeclineInvite,
        Self::MoveToAudience,
        Self::StepDown,
        Self::PromoteModerator,
        Self::DemoteModerator,
        Self::Mute,
        Self::Unmute,
        Self::Kick,
        Self::Block,
        Self::RemoveComment,
        Self::SlowMode,
        Self::Comment,
        Self::Like,
        Self::React,
        Self::Gift,
        Self::PollOpen,
        Self::Vote,
        Self::PollClose,
        Self::EndRoom,
        Self::Interest,
        Self::StartRoom,
    ];

    /// The name clients send.
    pub fn name(self) -> &'static str {
        match self {
            Self::RaiseHand => "raise_hand",
            Self::LowerHand => "lower_hand",
            Self::InviteSpeaker => "invite_speaker",
            Self::AcceptInvite => "accept_invite",
            Self::DeclineInvite => "decline_invite",
            Self::MoveToAudience => "move_to_audience",
            Self::StepDown => "step_down",
            Self::PromoteModerator => "promote_moderator",
            Self::DemoteModerator => "demote_moderator",
            Self::Mute => "mute",
            Self::Unmute => "unmute",
            Self::Kick => "kick",
            Self::Block => "block",
            Self::RemoveComment => "remove_comment",
            Self::SlowMode => "slow_mode",
            Self::Comment => "comment",
            Self::Like => "like",
            Self::React => "react",
            Self::Gift => "gift",
            Self::PollOpen => "poll_open",
            Self::Vote => "vote",
            Self::PollClose => "poll_close",
            Self::EndRoom => "end_room",
            Self::Interest => "interest",
            Self::StartRoom => "start_room",
        }
    }

    /// The action named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Why an action was refused: the code and message the client sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Client-visible code.
    pub code: Code,
    /// Human-readable reason.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The request is invalid in itself or for the room's current state.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// The actor may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    /// The room has ended.
    pub fn ended() -> Self {
        Barred::Ended.into()
    }
}

impl From<super::text::BadText> for Refusal {
    fn from(bad: super::text::BadText) -> Self {
        Self::new(Code::InvalidText, bad.to_string())
    }
}

impl From<Barred> for Refusal {
    fn from(barred: Barred) -> Self {
        Self::new(barred.code(), barred.to_string())
    }
}

/// A guard and what its failure means to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The fact checked.
    pub guard: Guard,
    /// The answer when it does not hold.
    pub refusal: Refusal,
}

/// An action made ready for the store: rules, effects and the user whose
/// state the events describe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Checked in order.
    pub rules: Vec<Rule>,
    /// Applied when every rule holds.
    pub effects: Vec<Effect>,
    /// Whose stage state to report.
    pub subject: Option<String>,
}

impl Plan {
    /// The transition the store applies.
    pub fn transition(&self) -> Transition {
        Transition {
            guards: self.rules.iter().map(|r| r.guard.clone()).collect(),
            effects: self.effects.clone(),
            subject: self.subject.clone(),
        }
    }

    /// The refusal of rule `index` (as reported by the store).
    pub fn refusal(&self, index: usize) -> Refusal {
        self.rules.get(index).map_or_else(
            || Refusal::new(Code::Internal, format!("unknown guard {index}")),
            |r| r.refusal.clone(),
        )
    }

    fn rule(mut self, guard: Guard, refusal: Refusal) -> Self {
        self.rules.push(Rule { guard, refusal });
        self
    }

    fn effect(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }

    fn about(mut self, uid: &str) -> Self {
        self.subject = Some(uid.to_owned());
        self
    }

    /// Rules 1–2 of every action by a user: the entry rule
    /// ([`super::entry::check`]) as store guards, so it holds atomically with
    /// the change (blocks span rooms: the caller checks them before).
    fn by(actor: &str) -> Self {
        Self::default()
            .rule(
                Guard::Phase {
                    any: vec![RoomState::Scheduled, RoomState::Live],
                },
                Refusal::ended(),
            )
            .rule(
                Guard::NotKicked { uid: actor.into() },
                Barred::Kicked.into(),
            )
            .rule(
                Guard::MayEnter { uid: actor.into() },
                Barred::NotInvited.into(),
            )
    }

    /// Rule 1 only: the app backend acting on a room.
    fn system() -> Self {
        Self::default().rule(
            Guard::Phase {
                any: vec![RoomState::Scheduled, RoomState::Live],
            },
            Refusal::ended(),
        )
    }

    fn role(self, uid: &str, any: &[Role], refusal: Refusal) -> Self {
        self.rule(
            Guard::Role {
                uid: uid.into(),
                any: any.to_vec(),
            },
            refusal,
        )
    }

    fn moderator(self, actor: &str, action: Action) -> Self {
        self.role(
            actor,
            &[Role::Host, Role::Moderator],
            Refusal::forbidden(format!(
                "only the host or a moderator may {}",
                action.name()
            )),
        )
    }

    fn host(self, actor: &str, action: Action) -> Self {
        self.role(
            actor,
            &[Role::Host],
            Refusal::forbidden(format!("only the host may {}", action.name())),
        )
    }

    fn live(self) -> Self {
        self.rule(
            Guard::Phase {
                any: vec![RoomState::Live],
            },
            Refusal::bad_request("the room has not started"),
        )
    }

    fn present(self, actor: &str) -> Self {
        self.rule(
            Guard::Member { uid: actor.into() },
            Refusal::forbidden("join the room first"),
        )
    }

    fn outranks(self, actor: &str, target: &str, what: &str) -> Self {
        self.rule(
            Guard::Outranks {
                actor: actor.into(),
                target: target.into(),
            },
            Refusal::forbidden(format!("you may not {what} {target}")),
        )
    }

    fn target_not_kicked(self, target: &str) -> Self {
        self.rule(
            Guard::NotKicked { uid: target.into() },
            Refusal::bad_request(format!("{target} was removed from this room")),
        )
    }

    fn target_present(self, target: &str) -> Self {
        self.rule(
            Guard::Member { uid: target.into() },
            Refusal::bad_request(format!("{target} is not in the room")),
        )
    }
}

const STAGE: [Role; 3] = [Role::Host, Role::Moderator, Role::Speaker];

/// A target naming the actor is a mistake for actions on others.
pub fn not_self(action: Action, actor: &str, target: &str) -> Result<(), Refusal> {
    if actor == target {
        return Err(Refusal::bad_request(format!(
            "{} cannot target yourself",
            action.name()
        )));
    }
    Ok(())
}

/// `raise_hand`: a listener in the room (scheduled or live).
pub fn raise_hand(actor: &str, now_ms: u64) -> Plan {
    Plan::by(actor)
        .role(
            actor,
            &[Role::Listener],
            Refusal::bad_request("you are already on stage"),
        )
        .present(actor)
        .effect(Effect::RaiseHand {
            uid: actor.into(),
            at_ms: now_ms,
        })
        .about(actor)
}

/// `lower_hand`: your own (anyone; a no-op without a raised hand), or
/// someone else's (host, moderator).
pub fn lower_hand(actor: &str, target: Option<&str>) -> Plan {
    match target.filter(|t| *t != actor) {
        None => Plan::by(actor)
            .effect(Effect::LowerHand { uid: actor.into() })
            .about(actor),
        Some(target) => Plan::by(actor)
            .moderator(actor, Action::LowerHand)
            .effect(Effect::LowerHand { uid: target.into() })
            .about(target),
    }
}

/// `invite_speaker {uid}`: host or moderator invites a listener in the room.
pub fn invite_speaker(actor: &str, target: &str) -> Plan {
    Plan::by(actor)
        .moderator(actor, Action::InviteSpeaker)
        .target_not_kicked(target)
        .role(
            target,
            &[Role::Listener],
            Refusal::bad_request(format!("{target} is already on stage")),
        )
        .target_present(target)
        .effect(Effect::Invite {
            uid: target.into(),
            by: actor.into(),
        })
        .about(target)
}

/// `accept_invite`: an invited listener in the room comes on stage, muted.
pub fn accept_invite(actor: &str) -> Plan {
    Plan::by(actor)
        .present(actor)
        .role(
            actor,
            &[Role::Listener],
            Refusal::bad_request("you are already on stage"),
        )
        .rule(
            Guard::Invited { uid: actor.into() },
            Refusal::bad_request("you have no pending invite to speak"),
        )
        .effect(Effect::MuteIfListener { uid: actor.into() })
        .effect(Effect::SetRole {
            uid: actor.into(),
            role: Some(StageRole::Speaker),
        })
        .effect(Effect::Uninvite { uid: actor.into() })
        .effect(Effect::LowerHand { uid: actor.into() })
        .about(actor)
}

/// `decline_invite`: drop your pending invite.
pub fn decline_invite(actor: &str) -> Plan {
    Plan::by(actor)
        .rule(
            Guard::Invited { uid: actor.into() },
            Refusal::bad_request("you have no pending invite to speak"),
        )
        .effect(Effect::Uninvite { uid: actor.into() })
        .about(actor)
}

/// `move_to_audience {uid}`: host or moderator moves someone they outrank off stage.
pub fn move_to_audience(actor: &str, target: &str) -> Plan {
    Plan::by(actor)
        .moderator(actor, Action::MoveToAudience)
        .outranks(actor, target, "move")
        .role(
            target,
            &[Role::Moderator, Role::Speaker],
            Refusal::bad_request(format!("{target} is not on stage")),
        )
        .effect(Effect::SetRole {
            uid: target.into(),
            role: None,
        })
        .effect(Effect::SetMute {
            uid: target.into(),
            mute: None,
        })
        .about(target)
}

/// `step_down`: a speaker or moderator leaves the stage (a moderator loses
/// the role too); the host cannot.
pub fn step_down(actor: &str) -> Plan {
    Plan::by(actor)
        .role(
            actor,
            &[Role::Moderator, Role::Speaker, Role::Listener],
            Refusal::bad_request("the host cannot leave the stage; end the room instead"),
        )
        .role(
            actor,
            &[Role::Moderator, Role::Speaker],
            Refusal::bad_request("you are not on stage"),
        )
        .effect(Effect::SetRole {
            uid: actor.into(),
            role: None,
        })
        .effect(Effect::SetMute {
            uid: actor.into(),
            mute: None,
        })
        .about(actor)
}

/// `promote_moderator {uid}`: the host makes a speaker or listener in the
/// room a moderator (listeners come on stage muted).
pub fn promote_moderator(actor: &str, target: &str) -> Plan {
    Plan::by(actor)
        .host(actor, Action::PromoteModerator)
        .target_not_kicked(target)
        .role(
            target,
            &[Role::Speaker, Role::Listener],
            Refusal::bad_request(format!("{target} already moderates")),
        )
        .target_present(target)
        .effect(Effect::MuteIfListener { uid: target.into() })
        .effect(Effect::SetRole {
            uid: target.into(),
            role: Some(StageRole::Moderator),
        })
        .effect(Effect::Uninvite { uid: target.into() })
        .effect(Effect::LowerHand { uid: target.into() })
        .about(target)
}

/// `demote_moderator {uid}`: the host makes a moderator a speaker.
pub fn demote_moderator(actor: &str, target: &str) -> Plan {
    Plan::by(actor)
        .host(actor, Action::DemoteModerator)
        .role(
            target,
            &[Role::Moderator],
            Refusal::bad_request(format!("{target} is not a moderator")),
        )
        .effect(Effect::SetRole {
            uid: target.into(),
            role: Some(StageRole::Speaker),
        })
        .about(target)
}

/// `mute`: yourself when on stage; someone on stage you outrank (host,
/// moderator), which they cannot lift themselves.
pub fn mute(actor: &str, target: Option<&str>) -> Plan {
    match target.filter(|t| *t != actor) {
        None => Plan::by(actor)
            .role(actor, &STAGE, Refusal::forbidden("you are not on stage"))
            .rule(
                Guard::Muted {
                    uid: actor.into(),
                    any: vec![MuteState::None, MuteState::SelfMuted],
                },
                Refusal::bad_request("you are already muted by a moderator"),
            )
            .effect(Effect::SetMute {
                uid: actor.into(),
                mute: Some(Mute::SelfMuted),
            })
            .about(actor),
        Some(target) => Plan::by(actor)
            .moderator(actor, Action::Mute)
            .outranks(actor, target, "mute")
            .role(
                target,
                &[Role::Moderator, Role::Speaker],
                Refusal::bad_request(format!("{target} is not on stage")),
            )
            .effect(Effect::SetMute {
                uid: target.into(),
                mute: Some(Mute::Moderator),
            })
            .about(target),
    }
}

/// `unmute`: yourself, unless a moderator muted you; or lift a moderator's
/// mute of someone you outrank (they stay muted until they unmute).
pub fn unmute(actor: &str, target: Option<&str>) -> Plan {
    match target.filter(|t| *t != actor) {
        None => Plan::by(actor)
            .role(actor, &STAGE, Refusal::forbidden("you are not on stage"))
            .rule(
                Guard::Muted {
                    uid: actor.into(),
                    any: vec![MuteState::None, MuteState::SelfMuted],
                },
                Refusal::forbidden("a moderator muted you; only a moderator can lift it"),
            )
            .effect(Effect::SetMute {
                uid: actor.into(),
                mute: None,
            })
            .about(actor),
        Some(target) => Plan::by(actor)
            .moderator(actor, Action::Unmute)
            .outranks(actor, target, "unmute")
            .rule(
                Guard::Muted {
                    uid: target.into(),
                    any: vec![MuteState::Moderator],
                },
                Refusal::bad_request(format!("{target} is not muted by a moderator")),
            )
            .effect(Effect::SetMute {
                uid: target.into(),
                mute: Some(Mute::SelfMuted),
            })
            .about(target),
    }
}

/// `kick {uid}`: host or moderator removes someone they outrank; they cannot
/// rejoin this room.
pub fn kick(actor: &str, target: &str, now_ms: u64) -> Plan {
    Plan::by(actor)
        .moderator(actor, Action::Kick)
        .outranks(actor, target, "remove")
        .effect(Effect::Kick {
            uid: target.into(),
            now_ms,
        })
        .about(target)
}

/// `block {uid}`: the host kicks someone; the caller also adds them to the
/// host's block list (no room of this host admits them).
pub fn block(actor: &str, target: &str, now_ms: u64) -> Plan {
    Plan::by(actor)
        .host(actor, Action::Block)
        .effect(Effect::Kick {
            uid: target.into(),
            now_ms,
        })
        .about(target)
}

/// An action only the host or a moderator may take, changing nothing in the
/// store (`remove_comment`) or only the room record (`slow_mode`).
pub fn moderate(actor: &str, action: Action, effects: Vec<Effect>) -> Plan {
    Plan {
        effects,
        ..Plan::by(actor).moderator(actor, action)
    }
}

/// `poll_open`: host or moderator, live room, fewer than `max_open` open.
pub fn poll_open(actor: &str, def: &PollDef, max_open: u32) -> Plan {
    Plan::by(actor)
        .moderator(actor, Action::PollOpen)
        .live()
        .rule(
            Guard::OpenPollsBelow { max: max_open },
            Refusal::bad_request(format!("at most {max_open} polls may be open at once")),
        )
        .effect(Effect::open_poll(def))
}

/// `vote {poll_id, option}`: anyone who may enter, once per poll.
pub fn vote(actor: &str, poll: &str, option: u32, now_ms: u64) -> Plan {
    Plan::by(actor)
        .live()
        .rule(
            Guard::PollExists { poll: poll.into() },
            Refusal::bad_request(format!("no poll {poll}")),
        )
        .rule(
            Guard::PollOpen {
                poll: poll.into(),
                now_ms,
            },
            Refusal::bad_request(format!("poll {poll} is closed")),
        )
        .rule(
            Guard::PollOption {
                poll: poll.into(),
                option,
            },
            Refusal::bad_request(format!("poll {poll} has no option {option}")),
        )
        .rule(
            Guard::NotVoted {
                poll: poll.into(),
                uid: actor.into(),
            },
            Refusal::bad_request(format!("you already voted in poll {poll}")),
        )
        .effect(Effect::Vote {
            poll: poll.into(),
            uid: actor.into(),
            option,
        })
}

/// `poll_close {poll_id}` by host or moderator (`actor` `None`: the timer or
/// the room's end).
pub fn poll_close(actor: Option<&str>, poll: &str, now_ms: u64) -> Plan {
    let plan = match actor {
        Some(actor) => Plan::by(actor).moderator(actor, Action::PollClose),
        None => Plan::default(),
    };
    plan.rule(
        Guard::PollExists { poll: poll.into() },
        Refusal::bad_request(format!("no poll {poll}")),
    )
    .effect(Effect::ClosePoll {
        poll: poll.into(),
        at_ms: now_ms,
    })
}

/// `end_room` by the host (`actor` `None`: the app backend).
pub fn end_room(actor: Option<&str>, now_ms: u64) -> Plan {
    let plan = match actor {
        Some(actor) => Plan::by(actor).host(actor, Action::EndRoom),
        None => Plan::system(),
    };
    plan.effect(Effect::End { at_ms: now_ms })
}

/// The room ends by itself: live and empty for `empty_ms`.
pub fn auto_end(empty_ms: u64, now_ms: u64) -> Plan {
    Plan::default()
        .rule(
            Guard::Phase {
                any: vec![RoomState::Live],
            },
            Refusal::bad_request("the room is not live"),
        )
        .rule(
            Guard::EmptyFor {
                ms: empty_ms,
                now_ms,
            },
            Refusal::bad_request("the room is not empty"),
        )
        .effect(Effect::End { at_ms: now_ms })
}

/// `start_room` by the host (`actor` `None`: the app backend).
pub fn start_room(actor: Option<&str>, now_ms: u64) -> Plan {
    let plan = match actor {
        Some(actor) => Plan::by(actor).host(actor, Action::StartRoom),
        None => Plan::system(),
    };
    plan.rule(
        Guard::Phase {
            any: vec![RoomState::Scheduled],
        },
        Refusal::bad_request("the room is already live"),
    )
    .effect(Effect::Start { at_ms: now_ms })
}

/// `interest`: anyone who may enter marks interest in a scheduled room.
pub fn interest(actor: &str) -> Plan {
    Plan::by(actor)
        .rule(
            Guard::Phase {
                any: vec![RoomState::Scheduled],
            },
            Refusal::bad_request("the room has already started"),
        )
        .effect(Effect::Interest { uid: actor.into() })
        .about(actor)
}

/// The app backend invites `uids` (the invite list of private rooms).
pub fn invite_users(uids: &[String]) -> Plan {
    let mut plan = Plan::system();
    for uid in uids {
        plan = plan.effect(Effect::Allow { uid: uid.clone() });
    }
    plan
}

/// Rule 4 of the audience actions (comment, like, react, gift): content
/// needs a live room. Rules 1–2 are the entry rule, checked by the caller
/// against its cached view of the room ([`super::entry::check`]).
pub fn live_for_audience(state: RoomState) -> Result<(), Refusal> {
    if state != RoomState::Live {
        return Err(Refusal::bad_request("the room has not started"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entry::{self, Standing};

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        assert_eq!(Action::from_name("teleport"), None);
    }

    #[test]
    fn every_user_action_checks_end_kick_and_privacy_first() {
        let plans = [
            raise_hand("a", 1),
            lower_hand("a", None),
            invite_speaker("a", "b"),
            accept_invite("a"),
            decline_invite("a"),
            move_to_audience("a", "b"),
            step_down("a"),
            promote_moderator("a", "b"),
            demote_moderator("a", "b"),
            mute("a", None),
            unmute("a", Some("b")),
            kick("a", "b", 1),
            block("a", "b", 1),
            moderate("a", Action::SlowMode, vec![]),
            vote("a", "p", 0, 1),
            poll_close(Some("a"), "p", 1),
            end_room(Some("a"), 1),
            start_room(Some("a"), 1),
            interest("a"),
        ];
        for plan in plans {
            let codes: Vec<Code> = plan.rules.iter().take(3).map(|r| r.refusal.code).collect();
            assert_eq!(
                codes,
                [Code::RoomEnded, Code::Forbidden, Code::Forbidden],
                "{plan:?}"
            );
            assert_eq!(plan.refusal(99).code, Code::Internal);
        }
    }

    #[test]
    fn self_targets_are_own_actions() {
        assert_eq!(mute("a", Some("a")), mute("a", None));
        assert_eq!(lower_hand("a", Some("a")), lower_hand("a", None));
        assert!(not_self(Action::Kick, "a", "a").is_err());
        assert!(not_self(Action::Kick, "a", "b").is_ok());
    }

    /// The entry rule, then "live": what an audience action is refused with.
    fn audience(state: RoomState, standing: Standing) -> Result<(), Refusal> {
        entry::check(state, standing)?;
        live_for_audience(state)
    }

    #[test]
    fn audience_refusals_come_in_order() {
        let ok = Standing {
            may_enter: true,
            ..Standing::default()
        };
        assert_eq!(audience(RoomState::Live, ok), Ok(()));
        let code = |state, standing| audience(state, standing).map_err(|r| r.code);
        assert_eq!(
            code(
                RoomState::Ended,
                Standing {
                    blocked: true,
                    ..ok
                }
            ),
            Err(Code::RoomEnded)
        );
        assert_eq!(
            code(
                RoomState::Live,
                Standing {
                    blocked: true,
                    ..ok
                }
            ),
            Err(Code::Forbidden)
        );
        assert_eq!(
            code(RoomState::Live, Standing { kicked: true, ..ok }),
            Err(Code::Forbidden)
        );
        assert_eq!(
            code(RoomState::Live, Standing::default()),
            Err(Code::Forbidden)
        );
        assert_eq!(code(RoomState::Scheduled, ok), Err(Code::BadRequest));
    }
}
