//! `start_room` and `end_room`: the host starts a scheduled room and ends a
//! room (the app backend does the same over HTTP). See `Rooms::start` and
//! `Rooms::end` for the events.

use std::sync::Arc;

use bytes::Bytes;
use room_store::domain::rules::Refusal;
use serde_json::json;

use super::{ActionCall, ActionHandler, Backends, Limit, reply};

/// `start_room`.
pub(super) struct StartRoom {
    limit: Arc<Limit>,
}

impl StartRoom {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for StartRoom {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let (room, seq) = rooms.start(call.room, Some(call.uid)).await?;
        Ok(reply(
            &json!({"started_at_ms": room.started_at_ms, "seq": seq}),
        ))
    }
}

/// `end_room`.
pub(super) struct EndRoom {
    limit: Arc<Limit>,
}

impl EndRoom {
    pub(super) fn new(limit: Arc<Limit>) -> Self {
        Self { limit }
    }
}

#[async_trait::async_trait]
impl ActionHandler for EndRoom {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let rooms = &backends.rooms;
        rooms.gate(call.room, call.uid).await?;
        self.limit.check(call.room, call.uid)?;
        let summary = rooms.end(call.room, Some(call.uid), "host").await?;
        Ok(reply(&json!({"summary": summary})))
    }
}
