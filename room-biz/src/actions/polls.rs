//! `poll_open`, `vote`, `poll_close`.
//!
//! A vote is one atomic store step (voter recorded and option counted
//! together, refused if the user voted), so concurrent votes are never lost
//! or doubled. Live tallies are not pushed per vote: the room service pushes
//! an ephemeral `poll_tally` at most every `poll_tally_ms` per poll. The
//! final result is the durable, high-priority `poll_closed` event, sent once
//! by whoever closes the poll (by hand, its timer, or the room's end).

use std::sync::Arc;

use bytes::Bytes;
use room_store::domain::poll::{PollSpec, PollSpecError, PollView};
use room_store::domain::rules::{self, Action, Refusal};
use room_store::domain::transition::Guard;
use room_store::ids;
use serde::Deserialize;
use serde_json::json;

use super::{ActionCall, ActionHandler, Backends, Limit, payload, reply};
use crate::rooms::events;
use crate::rooms::timers::Due;

/// `poll_open`.
pub(super) struct PollOpen {
    limit: Arc<Limit>,
}

impl PollOpen {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for PollOpen {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let spec: PollSpec = payload(Action::PollOpen, call.payload)?;
        let spec = spec.validate().map_err(|e| match e {
            PollSpecError::Text(bad) => Refusal::from(bad),
            other => Refusal::bad_request(other.to_string()),
        })?;
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let now = common::time::now_ms();
        let def = spec.into_def(ids::new_poll_id(), call.uid, now);
        let plan = rules::poll_open(call.uid, &def, rooms.settings.polls_open_max);
        let done = rooms.apply(call.room, &plan).await?;
        if let Some(at) = def.closes_at_ms {
            rooms.timers.schedule(
                at,
                Due::ClosePoll {
                    room: call.room.to_owned(),
                    poll: def.id.clone(),
                },
            );
        }
        let view = PollView::new(def, Vec::new(), None);
        let body = json!({"poll": view, "by": call.uid, "v": done.version});
        let seq = rooms
            .event(call.room, events::POLL_OPENED, &body, call.uid)
            .await;
        Ok(reply(&json!({
            "poll_id": view.def.id,
            "closes_at_ms": view.def.closes_at_ms,
            "seq": seq,
        })))
    }
}

#[derive(Deserialize)]
struct Ballot {
    poll_id: String,
    option: u32,
}

/// `vote`.
pub(super) struct Vote {
    limit: Arc<Limit>,
}

impl Vote {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for Vote {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let Ballot { poll_id, option } = payload(Action::Vote, call.payload)?;
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let now = common::time::now_ms();
        let plan = rules::vote(call.uid, &poll_id, option, now);
        match rooms.apply(call.room, &plan).await {
            Ok(_) => {
                rooms.vote_counted(call.room, &poll_id);
                Ok(reply(&json!({"poll_id": poll_id, "option": option})))
            }
            Err(refusal) => {
                let expired = plan
                    .rules
                    .iter()
                    .any(|r| matches!(r.guard, Guard::PollOpen { .. }) && r.refusal == refusal);
                if expired {
                    // Closed, or its timer ran out on a node that is gone:
                    // closing is idempotent, and the final result goes out once.
                    let _ = rooms.close_poll(call.room, &poll_id, None, "timer").await;
                }
                Err(refusal)
            }
        }
    }
}

#[derive(Deserialize)]
struct PollRef {
    poll_id: String,
}

/// `poll_close`.
pub(super) struct PollClose {
    limit: Arc<Limit>,
}

impl PollClose {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for PollClose {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let PollRef { poll_id } = payload(Action::PollClose, call.payload)?;
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let (view, seq, version) = rooms
            .close_poll(call.room, &poll_id, Some(call.uid), "closed")
            .await?;
        Ok(reply(&json!({"poll": view, "seq": seq, "v": version})))
    }
}
