//! `gift {gift_id, count}`: pushed to the room as a durable, high-priority
//! `gift` event (never sampled), then added to the room's gift counters. The
//! value of a gift is the server's (the configured catalog); a `value` in the
//! payload is ignored, and an id the catalog lacks is refused. The push comes
//! first: a gift nobody saw is not counted, and a failed push is answered
//! `UNAVAILABLE` so the client may retry. A gift carrying a client-chosen
//! `request_id` is sent and counted once however often it is retried within
//! the idempotency window; a retry gets the first reply.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proto::client::v1::Code;
use room_store::counter;
use room_store::domain::catalog::GiftCatalog;
use room_store::domain::rate;
use room_store::domain::rules::{self, Action, Refusal};
use serde_json::json;

use super::{ActionCall, ActionHandler, Backends, Limit, payload};
use crate::idempotency::{self, OnceError};
use crate::rooms::events;

/// `gift`.
pub(super) struct Gift {
    limit: Arc<Limit>,
    catalog: GiftCatalog,
    /// How long a `request_id` is remembered.
    window: Duration,
}

impl Gift {
    pub(super) fn new(limit: Arc<Limit>, catalog: GiftCatalog, window: Duration) -> Self {
        Self {
            limit,
            catalog,
            window,
        }
    }
}

#[async_trait::async_trait]
impl ActionHandler for Gift {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let gift: rate::Gift = payload(Action::Gift, call.payload)?;
        let gift = gift.validate().map_err(Refusal::bad_request)?;
        let Some(spec) = self.catalog.get(&gift.gift_id) else {
            let shown: String = gift.gift_id.chars().take(64).collect();
            return Err(Refusal::bad_request(format!("unknown gift {shown:?}")));
        };
        let rooms = &backends.rooms;
        let view = rooms.gate(call.room, call.uid).await?;
        rules::live_for_audience(view.room.state)?;
        self.limit.check(call.room, call.uid)?;
        let total = gift.total_value(spec.value);
        let body = json!({
            "uid": call.uid,
            "gift_id": gift.gift_id,
            "name": spec.name,
            "count": gift.count,
            "value": spec.value,
            "total_value": total,
        });
        let send = || async {
            let Some(seq) = rooms.event(call.room, events::GIFT, &body, call.uid).await else {
                return Err(Refusal::new(
                    Code::Unavailable,
                    "cannot publish the gift; it was not sent",
                ));
            };
            let deltas = [
                (counter::GIFTS.to_owned(), u64::from(gift.count)),
                (counter::GIFT_VALUE.to_owned(), total),
            ];
            if let Err(error) = backends.store.add_counters(call.room, &deltas).await {
                // Everyone saw it; only the summary misses it.
                tracing::warn!(room = call.room, %error, "Gift pushed but not counted.");
            }
            let mut hook = body.clone();
            hook["seq"] = json!(seq);
            hook["request_id"] = json!(gift.request_id);
            rooms
                .webhooks
                .emit(crate::webhooks::kinds::GIFT, call.room, hook);
            Ok(json!({"seq": seq}).to_string())
        };
        let Some(request_id) = &gift.request_id else {
            return send().await.map(Bytes::from);
        };
        // A retried gift (same sender, room and request id) is sent and
        // counted once; the retry gets the first reply.
        let key = format!("gift:{}:{}:{request_id}", call.room, call.uid);
        let ledger = backends.store.ledger();
        match idempotency::once(&*ledger, &key, self.window, send).await {
            Ok(replied) => Ok(Bytes::from(replied.reply)),
            Err(OnceError::Work(refusal)) => Err(refusal),
            Err(OnceError::InProgress) => Err(Refusal::new(
                Code::Unavailable,
                "a gift with this request_id is still being sent; retry shortly",
            )),
            Err(OnceError::Store(error)) => Err(Refusal::from(error)),
        }
    }
}
