//! `/v1/admin/api-keys`: the API keys app backends present to the room API.
//!
//! - `GET`: every active key (id, name, scopes, creation time; never a hash).
//! - `POST {"name": …, "scopes": [...]}`: a new key, shown once in the answer.
//! - `DELETE /{id}`: revoke a key; room-biz nodes refuse it as soon as they
//!   see the change (their watch on live configuration).
//!
//! The keyring is one document, read, changed and written back. Two admins
//! writing at the same instant could lose one change; key management is a
//! rare, human action, and the answer lists the keyring as written.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::api_keys::{ApiKeyError, ApiKeyRecord, Keyring, Scope};
use common::live_config::{LiveConfigError, keys};
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::http::error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// A key as listed: no hash.
#[derive(Serialize)]
struct KeyView<'a> {
    id: &'a str,
    name: &'a str,
    scopes: &'a [Scope],
    created_at_ms: u64,
}

impl<'a> From<&'a ApiKeyRecord> for KeyView<'a> {
    fn from(record: &'a ApiKeyRecord) -> Self {
        Self {
            id: &record.id,
            name: &record.name,
            scopes: &record.scopes,
            created_at_ms: record.created_at_ms,
        }
    }
}

pub(super) async fn list(State(state): State<Arc<AdminState>>) -> Response {
    match load(&state).await {
        Ok(ring) => {
            let keys: Vec<KeyView<'_>> = ring.records().map(KeyView::from).collect();
            Json(serde_json::json!({ "keys": keys })).into_response()
        }
        Err(response) => response,
    }
}

pub(super) async fn create(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    let request: CreateKey = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("expected {{\"name\": \"…\", \"scopes\": [\"rooms:write\", …]}}: {e}"),
            );
        }
    };
    let scopes = match request
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(scopes) => scopes,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    let mut ring = match load(&state).await {
        Ok(ring) => ring,
        Err(response) => return response,
    };
    let (key, record) = match ring.create(&request.name, &scopes, common::time::now_ms()) {
        Ok(made) => made,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    if let Err(e) = state.live.put(keys::API_KEYS, &ring.to_stored()).await {
        return unavailable(e);
    }
    tracing::info!(key_id = %record.id, name = %record.name, scopes = ?record.scopes, "API key created through the admin API.");
    (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "key": key,
            "id": record.id,
            "name": record.name,
            "scopes": record.scopes,
            "created_at_ms": record.created_at_ms,
        })),
    )
        .into_response()
}

pub(super) async fn revoke(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Response {
    let mut ring = match load(&state).await {
        Ok(ring) => ring,
        Err(response) => return response,
    };
    let record = match ring.revoke(&id) {
        Ok(record) => record,
        Err(e @ ApiKeyError::NotFound(_)) => {
            return error(StatusCode::NOT_FOUND, "not_found", e.to_string());
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    if let Err(e) = state.live.put(keys::API_KEYS, &ring.to_stored()).await {
        return unavailable(e);
    }
    tracing::info!(key_id = %record.id, name = %record.name, "API key revoked through the admin API.");
    Json(serde_json::json!({ "id": record.id, "revoked": true })).into_response()
}

async fn load(state: &AdminState) -> Result<Keyring, Response> {
    let stored = state.live.get(keys::API_KEYS).await.map_err(unavailable)?;
    Keyring::from_stored(stored.as_deref()).map_err(|e| {
        tracing::error!(error = %e, "The stored API keyring is unreadable.");
        error(StatusCode::INTERNAL_SERVER_ERROR, "corrupt", e.to_string())
    })
}

fn unavailable(e: LiveConfigError) -> Response {
    tracing::warn!(error = %e, "Cannot reach the API keyring.");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        e.to_string(),
    )
}
