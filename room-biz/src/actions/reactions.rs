//! `like {count}` and `react {emoji}`: counted in this node's aggregator
//! (no store operation, no push per request); totals reach the store and the
//! room once per window as an ephemeral `totals` event. See `rooms::counters`.

use std::sync::Arc;

use bytes::Bytes;
use room_store::domain::catalog::ReactionSet;
use room_store::domain::rate;
use room_store::domain::rules::{self, Action, Refusal};
use serde::Deserialize;
use serde_json::json;

use super::{ActionCall, ActionHandler, Backends, Limit, payload, reply};

/// `like`.
pub(super) struct Like {
    limit: Arc<Limit>,
}

impl Like {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for Like {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let like: rate::Like = payload(Action::Like, call.payload)?;
        let count = like.validate().map_err(Refusal::bad_request)?;
        let rooms = &backends.rooms;
        let view = rooms.gate(call.room, call.uid).await?;
        rules::live_for_audience(view.room.state)?;
        self.limit.check(call.room, call.uid)?;
        rooms.counters.add_likes(call.room, u64::from(count));
        Ok(reply(&json!({"accepted": count})))
    }
}

#[derive(Deserialize)]
struct Reaction {
    emoji: String,
}

/// `react`: only kinds of the configured set, so junk kinds cannot take the
/// room's reaction slots.
pub(super) struct React {
    limit: Arc<Limit>,
    kinds: ReactionSet,
}

impl React {
    pub(super) fn new(limit: Arc<Limit>, kinds: ReactionSet) -> Self {
        Self { limit, kinds }
    }
}

#[async_trait::async_trait]
impl ActionHandler for React {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let Reaction { emoji } = payload(Action::React, call.payload)?;
        if !self.kinds.contains(&emoji) {
            let shown: String = emoji.chars().take(rate::REACTION_MAX_CHARS).collect();
            return Err(Refusal::bad_request(format!(
                "unknown reaction {shown:?}; this server accepts {}",
                self.kinds.kinds().join(" ")
            )));
        }
        let rooms = &backends.rooms;
        let view = rooms.gate(call.room, call.uid).await?;
        rules::live_for_audience(view.room.state)?;
        self.limit.check(call.room, call.uid)?;
        if !rooms
            .counters
            .admit_kind(call.room, &emoji, rooms.settings.reaction_kinds_max)
        {
            return Err(Refusal::bad_request(format!(
                "this room already has {} kinds of reactions",
                rooms.settings.reaction_kinds_max
            )));
        }
        rooms.counters.add_reaction(call.room, &emoji);
        Ok(reply(&json!({"accepted": 1})))
    }
}
