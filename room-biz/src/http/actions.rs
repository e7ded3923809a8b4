//! `POST /v1/rooms/{id}/actions`: a client action over HTTP, authenticated
//! with the client's token. It runs the same action table as a socket
//! `Publish`, with the token's uid and session `http-<uid>`, so rate limits
//! are shared.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use proto::client::v1::Code;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth;
use super::error::{ApiError, body_error, refusal_error};
use super::messages::json_or_base64;
use crate::actions::ActionCall;
use crate::shared::Shared;

/// Body of `POST /v1/rooms/{id}/actions`.
#[derive(Debug, Deserialize)]
struct ActionBody {
    action: String,
    #[serde(default)]
    payload: Value,
}

/// The answer to an action that succeeded (as a socket `Reply`).
#[derive(Debug, Serialize)]
pub(super) struct ActionOk {
    code: i32,
    message: String,
    body: Value,
}

/// `POST /v1/rooms/{id}/actions`.
pub(super) async fn action(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ActionOk>, ApiError> {
    // Authenticate before looking at the body: strangers learn nothing from it.
    let uid = auth::uid(&shared, &headers).await?;
    let body = body.map_err(body_error)?;
    let request: ActionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let payload = request.payload.to_string();
    let session_id = format!("http-{uid}");
    let call = ActionCall {
        uid: &uid,
        room: &room,
        session_id: &session_id,
        payload: payload.as_bytes(),
    };
    match shared.perform(&request.action, call).await {
        Ok(reply) => Ok(Json(ActionOk {
            code: Code::Ok as i32,
            message: String::new(),
            body: if reply.is_empty() {
                Value::Null
            } else {
                json_or_base64(&reply)
            },
        })),
        Err(refusal) => Err(refusal_error(refusal)),
    }
}
