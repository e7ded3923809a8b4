//! Room messages over HTTP: `POST /v1/rooms/{id}/messages` (the app backend
//! publishes a system message), and message bodies as JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use proto::client::v1::Priority;
use proto::internal::v1::PushRoomRequest;
use room_store::RoomState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument as _;

use super::caller::Caller;
use super::error::{ApiError, ApiJson};
use crate::error::PushError;
use crate::idempotency::{self, OnceError};
use crate::shared::Shared;

/// Longest message kind accepted, in characters.
const KIND_MAX_CHARS: usize = 64;

/// Delivery priority as the API spells it.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ApiPriority {
    /// Never sampled.
    High,
    #[default]
    Normal,
    /// May be sampled in very large rooms.
    Low,
}

impl From<ApiPriority> for Priority {
    fn from(p: ApiPriority) -> Self {
        match p {
            ApiPriority::High => Self::High,
            ApiPriority::Normal => Self::Normal,
            ApiPriority::Low => Self::Low,
        }
    }
}

fn default_kind() -> String {
    "system".into()
}

fn default_durable() -> bool {
    true
}

#[derive(Deserialize)]
pub(super) struct PostMessage {
    #[serde(default = "default_kind")]
    kind: String,
    body: Value,
    #[serde(default)]
    priority: ApiPriority,
    #[serde(default = "default_durable")]
    durable: bool,
}

#[derive(Serialize)]
struct Published {
    seq: u64,
    epoch: u64,
}

/// The header of a retry-safe publish.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a reply that repeats an earlier request's (same idempotency key).
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// `POST /v1/rooms/{id}/messages`. With an `Idempotency-Key` header, a retry
/// with the same key (same API key and room) within the window gets the
/// first reply (`Idempotent-Replayed: true`) and appends nothing.
pub(super) async fn post_message(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(msg): ApiJson<PostMessage>,
) -> Result<Response, ApiError> {
    let Some(key) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(Json(publish(&shared, &id, msg).await?).into_response());
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| idempotency::check_key(k).is_ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {} printable ASCII characters",
                idempotency::KEY_MAX_BYTES
            ))
        })?;
    let scoped = format!("msg:{}:{id}:{key}", caller.actor());
    let window = Duration::from_secs(shared.cfg.idempotency_window_secs);
    let ledger = shared.backends.store.ledger();
    let replied = idempotency::once(&*ledger, &scoped, window, || async {
        let published = publish(&shared, &id, msg).await?;
        serde_json::to_string(&published)
            .map_err(|e| ApiError::unavailable(format!("cannot encode the reply: {e}")))
    })
    .await
    .map_err(|error| match error {
        OnceError::Work(error) => error,
        OnceError::InProgress => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still in progress; retry shortly",
        )
        .retry_after(PUBLISH_RETRY_AFTER_SECS),
        OnceError::Store(error) => ApiError::from(error),
    })?;
    let mut response =
        ([(header::CONTENT_TYPE, "application/json")], replied.reply).into_response();
    if replied.repeat {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Check and publish `msg` to room `id`.
async fn publish(shared: &Shared, id: &str, msg: PostMessage) -> Result<Published, ApiError> {
    if msg.kind.is_empty() || msg.kind.chars().count() > KIND_MAX_CHARS {
        return Err(ApiError::bad_request(format!(
            "kind must be 1 to {KIND_MAX_CHARS} characters"
        )));
    }
    if msg.body.is_null() {
        return Err(ApiError::bad_request("body is required"));
    }
    let body = msg.body.to_string();
    let max = shared.cfg.message_max_bytes;
    if body.len() > max {
        let message = format!("body is larger than {max} bytes");
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            message,
        ));
    }
    let room = shared.backends.store.get_room(id).await?;
    match room {
        None => return Err(ApiError::room_not_found(id)),
        Some(r) if r.state == RoomState::Ended => {
            let message = format!("room {id} has ended");
            return Err(ApiError::new(StatusCode::CONFLICT, "room_ended", message));
        }
        Some(_) => {}
    }
    let request = PushRoomRequest {
        room: id.to_owned(),
        kind: msg.kind,
        body: Bytes::from(body),
        // App-backend messages have no user behind them.
        sender: String::new(),
        priority: Priority::from(msg.priority) as i32,
        durable: msg.durable,
    };
    // The root of the message's trace when traces are exported.
    let span = common::span!("biz.publish", room = %id, source = "http");
    let reply = shared
        .backends
        .pusher
        .push_room(request)
        .instrument(span)
        .await
        .map_err(|error| {
            tracing::warn!(room = %id, %error, "Cannot push system message.");
            publish_error(&error)
        })?;
    Ok(Published {
        seq: reply.seq,
        epoch: reply.epoch,
    })
}

/// A publish that got no seq: always retryable (503 + `Retry-After`), and
/// the code says whether the message was certainly not published
/// (`not_published`: send it again as is) or the push node failed while it
/// may have been appending (`publish_unknown`: sending it again may publish
/// it twice; apps that cannot tolerate that put an id in the body).
fn publish_error(error: &PushError) -> ApiError {
    if error.not_applied() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_published",
            format!("the message was not published; retry: {error}"),
        )
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "publish_unknown",
            format!("the message may or may not have been published; retry: {error}"),
        )
    }
    .retry_after(PUBLISH_RETRY_AFTER_SECS)
}

/// `Retry-After` of a failed publish: the push layer re-routes a room within
/// a request, so a second later is almost always enough.
const PUBLISH_RETRY_AFTER_SECS: u32 = 1;

/// `bytes` as JSON if they are UTF-8 JSON, else `{"base64": "…"}`: bodies are
/// opaque to the push layer, and an app may publish binary ones.
pub(super) fn json_or_base64(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::json!({ "base64": BASE64.encode(bytes) }))
}
