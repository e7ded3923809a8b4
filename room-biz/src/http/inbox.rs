//! `GET /v1/me/inbox`: the caller's inbox — notices kept for users who were
//! not connected when they were pushed (today `room_started` of rooms they
//! were interested in or invited to), newest first, until the inbox expires.
//! Reading does not empty it: a client keeps the newest `at_ms` it has seen
//! and passes it as `after_ms` to get only newer items.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth;
use super::error::ApiError;
use crate::shared::Shared;

#[derive(Deserialize)]
pub(super) struct InboxQuery {
    /// Only items newer than this (Unix ms).
    #[serde(default)]
    after_ms: u64,
}

pub(super) async fn inbox(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let uid = auth::uid(&shared, &headers).await?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let items = shared.backends.store.ledger().inbox_read(&uid).await?;
    let items: Vec<Value> = items
        .iter()
        .filter_map(|item| match serde_json::from_str::<Value>(item) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%uid, %error, "Skipping an unreadable inbox item.");
                None
            }
        })
        .filter(|item| item["at_ms"].as_u64().unwrap_or(0) > query.after_ms)
        .collect();
    Ok(Json(json!({ "uid": uid, "items": items })))
}
