//! `GET /v1/events?after=&limit=` (backend, `rooms:read`): the event log, for
//! an app re-reading what it missed (a receiver outage, a given-up
//! delivery). Events come oldest first with the same `id` and body as their
//! webhook; `next` is the cursor to pass as `after` for the next page.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::shared::Shared;
use crate::webhooks::public_event;

/// Default and largest page.
const PAGE: (usize, usize) = (100, 1000);

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    /// Events after this id (from the oldest kept when absent).
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Whether `id` looks like an event id (`<ms>-<n>`).
fn is_event_id(id: &str) -> bool {
    let (ms, n) = id.split_once('-').unwrap_or((id, "0"));
    !ms.is_empty()
        && !n.is_empty()
        && ms.bytes().all(|b| b.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_digit())
        && ms.parse::<u64>().is_ok()
        && n.parse::<u64>().is_ok()
}

pub(super) async fn events(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(PAGE.0);
    if !(1..=PAGE.1).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {}",
            PAGE.1
        )));
    }
    let after = query.after.filter(|a| !a.is_empty());
    if let Some(after) = &after
        && !is_event_id(after)
    {
        return Err(ApiError::bad_request(
            "after must be an event id (<ms>-<n>) from an earlier event",
        ));
    }
    let logged = shared
        .backends
        .store
        .ledger()
        .events_after(after.as_deref(), limit)
        .await?;
    let next = logged.last().map(|e| e.id.clone()).or(after);
    let events: Vec<Value> = logged
        .iter()
        .map(|e| public_event(&e.id, &e.event))
        .collect();
    Ok(Json(json!({ "events": events, "next": next })))
}
