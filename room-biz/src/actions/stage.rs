//! The stage and its people: hands, invites to speak, stage moves,
//! moderators, mutes, kicks, blocks, and interest in a scheduled room.
//!
//! One handler for all of them: parse the optional target, gate (room exists,
//! not ended, actor not blocked), rate-limit, apply the action's plan
//! atomically, push the event its change means (high priority, durable), and
//! reply with the subject's new stage state:
//! `{"changed": bool, "v": n, "user": {...}, "seq": n|null}`.

use std::sync::Arc;

use bytes::Bytes;
use room_store::domain::rules::{self, Action, Plan, Refusal};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ActionCall, ActionHandler, Backends, Limit, payload, reply};
use crate::rooms::{Done, Rooms, events};

/// The actions this module handles.
pub(super) const ACTIONS: [Action; 14] = [
    Action::RaiseHand,
    Action::LowerHand,
    Action::InviteSpeaker,
    Action::AcceptInvite,
    Action::DeclineInvite,
    Action::MoveToAudience,
    Action::StepDown,
    Action::PromoteModerator,
    Action::DemoteModerator,
    Action::Mute,
    Action::Unmute,
    Action::Kick,
    Action::Block,
    Action::Interest,
];

/// Longest target uid accepted, in characters.
const UID_MAX_CHARS: usize = 128;

#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    uid: Option<String>,
}

/// A stage action.
pub(super) struct Stage {
    action: Action,
    limit: Arc<Limit>,
}

impl Stage {
    pub(super) fn new(action: Action, limit: Arc<Limit>) -> Self {
        Self { action, limit }
    }

    /// Whether the action needs a target uid.
    fn needs_target(&self) -> bool {
        matches!(
            self.action,
            Action::InviteSpeaker
                | Action::MoveToAudience
                | Action::PromoteModerator
                | Action::DemoteModerator
                | Action::Kick
                | Action::Block
        )
    }

    fn target(&self, call: &ActionCall<'_>) -> Result<Option<String>, Refusal> {
        let target: Target = payload(self.action, call.payload)?;
        let uid = target
            .uid
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        if let Some(uid) = &uid
            && uid.chars().count() > UID_MAX_CHARS
        {
            return Err(Refusal::bad_request(format!(
                "uid is longer than {UID_MAX_CHARS} characters"
            )));
        }
        if self.needs_target() {
            let Some(uid) = uid else {
                return Err(Refusal::bad_request(format!(
                    "{} needs a uid",
                    self.action.name()
                )));
            };
            rules::not_self(self.action, call.uid, &uid)?;
            return Ok(Some(uid));
        }
        Ok(uid)
    }

    fn plan(&self, actor: &str, target: Option<&str>, now: u64) -> Plan {
        let t = target.unwrap_or(actor);
        match self.action {
            Action::RaiseHand => rules::raise_hand(actor, now),
            Action::LowerHand => rules::lower_hand(actor, target),
            Action::InviteSpeaker => rules::invite_speaker(actor, t),
            Action::AcceptInvite => rules::accept_invite(actor),
            Action::DeclineInvite => rules::decline_invite(actor),
            Action::MoveToAudience => rules::move_to_audience(actor, t),
            Action::StepDown => rules::step_down(actor),
            Action::PromoteModerator => rules::promote_moderator(actor, t),
            Action::DemoteModerator => rules::demote_moderator(actor, t),
            Action::Mute => rules::mute(actor, target),
            Action::Unmute => rules::unmute(actor, target),
            Action::Kick => rules::kick(actor, t, now),
            Action::Block => rules::block(actor, t, now),
            // `ACTIONS` lists what reaches here; interest is the rest.
            _ => rules::interest(actor),
        }
    }

    /// The room event of a change, and extra body fields.
    fn event(&self, done: &Done) -> Option<(&'static str, Value)> {
        let role = |d: &Done, before: bool| {
            let user = if before { &d.before } else { &d.after };
            user.as_ref().map(|u| u.role.as_str())
        };
        let role_change = |reason: &str| {
            Some((
                events::ROLE_CHANGED,
                json!({"role": role(done, false), "previous": role(done, true), "reason": reason}),
            ))
        };
        match self.action {
            Action::RaiseHand => Some((
                events::HAND_RAISED,
                json!({"at_ms": done.after.as_ref().and_then(|u| u.hand_raised_at_ms)}),
            )),
            Action::LowerHand => Some((events::HAND_LOWERED, json!({}))),
            Action::InviteSpeaker => Some((events::SPEAKER_INVITED, json!({}))),
            Action::DeclineInvite => Some((events::INVITE_DECLINED, json!({}))),
            Action::AcceptInvite => role_change("accepted_invite"),
            Action::MoveToAudience => role_change("moved_to_audience"),
            Action::StepDown => role_change("stepped_down"),
            Action::PromoteModerator => role_change("promoted"),
            Action::DemoteModerator => role_change("demoted"),
            Action::Mute | Action::Unmute => Some((
                events::MUTE_CHANGED,
                json!({"muted": done.after.as_ref().and_then(|u| u.muted).map(|m| m.as_str())}),
            )),
            Action::Kick => Some((events::MEMBER_KICKED, json!({"blocked": false}))),
            Action::Block => Some((events::MEMBER_KICKED, json!({"blocked": true}))),
            _ => None,
        }
    }

    /// Pushes to one user that go with the room event.
    async fn tell_user(&self, rooms: &Rooms, room: &str, actor: &str, target: &str) {
        match self.action {
            Action::InviteSpeaker => {
                let body = json!({"room": room, "by": actor});
                rooms
                    .notify_users(&[target.to_owned()], events::USER_SPEAK_INVITE, &body)
                    .await;
            }
            Action::Kick | Action::Block => {
                let blocked = self.action == Action::Block;
                rooms.webhooks.emit(
                    crate::webhooks::kinds::MEMBER_KICKED,
                    room,
                    json!({"uid": target, "by": actor, "blocked": blocked}),
                );
                let body = json!({"room": room, "by": actor, "blocked": blocked});
                rooms
                    .notify_removed(target, room, events::USER_KICKED, &body)
                    .await;
            }
            _ => {}
        }
    }
}

#[async_trait::async_trait]
impl ActionHandler for Stage {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let target = self.target(&call)?;
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let now = common::time::now_ms();
        let plan = self.plan(call.uid, target.as_deref(), now);
        let subject = plan.subject.clone().unwrap_or_else(|| call.uid.to_owned());
        let done = rooms.apply(call.room, &plan).await?;
        if self.action == Action::Block {
            // The plan checked the actor hosts the room, so the actor's list
            // is the host's. Blocked even when already kicked here.
            backends
                .store
                .set_blocked(call.uid, &subject, true)
                .await
                .map_err(Refusal::from)?;
        }
        if matches!(self.action, Action::Kick | Action::Block) {
            rooms.views.invalidate(call.room);
        }
        let mut seq = None;
        if done.changed
            && let Some((kind, extra)) = self.event(&done)
        {
            let body = Rooms::state_body(&subject, Some(call.uid), &done, extra);
            seq = rooms.event(call.room, kind, &body, call.uid).await;
            self.tell_user(rooms, call.room, call.uid, &subject).await;
        }
        let user = done
            .after
            .as_ref()
            .map(|u| room_store::domain::state::user_json(&subject, u));
        Ok(reply(&json!({
            "changed": done.changed,
            "v": done.version,
            "user": user,
            "seq": seq,
        })))
    }
}
