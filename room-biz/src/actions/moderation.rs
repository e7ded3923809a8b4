//! `remove_comment {seq}` and `slow_mode {seconds}`: host and moderators.
//!
//! Removing a comment changes no store state (the message log is immutable):
//! the authorization is still checked atomically, and everyone is told with a
//! durable `comment_removed` event naming the seq, which clients hide.

use std::sync::Arc;

use bytes::Bytes;
use room_store::domain::rate::SLOW_MODE_MAX_SECS;
use room_store::domain::rules::{self, Action, Refusal};
use room_store::domain::transition::Effect;
use serde::Deserialize;
use serde_json::json;

use super::{ActionCall, ActionHandler, Backends, Limit, payload, reply};
use crate::rooms::events;

#[derive(Deserialize)]
struct Seq {
    seq: u64,
}

/// `remove_comment`.
pub(super) struct RemoveComment {
    limit: Arc<Limit>,
}

impl RemoveComment {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for RemoveComment {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let Seq { seq } = payload(Action::RemoveComment, call.payload)?;
        if seq == 0 {
            return Err(Refusal::bad_request("seq must be at least 1"));
        }
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let plan = rules::moderate(call.uid, Action::RemoveComment, Vec::new());
        let done = rooms.apply(call.room, &plan).await?;
        let body = json!({"seq": seq, "by": call.uid, "v": done.version});
        let event_seq = rooms
            .event(call.room, events::COMMENT_REMOVED, &body, call.uid)
            .await;
        Ok(reply(&json!({"removed": seq, "seq": event_seq})))
    }
}

#[derive(Deserialize)]
struct Seconds {
    seconds: u32,
}

/// `slow_mode`.
pub(super) struct SlowMode {
    limit: Arc<Limit>,
}

impl SlowMode {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for SlowMode {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let Seconds { seconds } = payload(Action::SlowMode, call.payload)?;
        if seconds > SLOW_MODE_MAX_SECS {
            return Err(Refusal::bad_request(format!(
                "seconds must be 0 to {SLOW_MODE_MAX_SECS}"
            )));
        }
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let effects = vec![Effect::SlowMode { secs: seconds }];
        let plan = rules::moderate(call.uid, Action::SlowMode, effects);
        let done = rooms.apply(call.room, &plan).await?;
        // Comments check slow mode against this node's view: refresh it now.
        rooms.views.invalidate(call.room);
        let mut seq = None;
        if done.changed {
            let body = json!({"seconds": seconds, "by": call.uid, "v": done.version});
            seq = rooms
                .event(call.room, events::SLOW_MODE, &body, call.uid)
                .await;
        }
        Ok(reply(&json!({
            "seconds": seconds,
            "changed": done.changed,
            "v": done.version,
            "seq": seq,
        })))
    }
}
