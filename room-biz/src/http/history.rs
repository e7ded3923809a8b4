//! `GET /v1/rooms/{id}/history` (pages by seq) and `GET /v1/rooms/{id}/replay`
//! (pages by offset from the room's start), on both listeners: the app
//! backend reads every room, a client under the read rule. Served from the
//! live log while the room has its live keys, from the archive after.

use std::sync::Arc;

use archive::{ArchivedMessage, ArchivedRoom, HistoryQuery, MAX_PAGE};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use proto::client::v1::Priority;
use room_store::RoomState;
use room_store::domain::entry::{self, Standing};
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::error::{ApiError, refusal_error};
use super::messages::json_or_base64;
use crate::history::{HistoryError, Page, Source};
use crate::shared::Shared;

/// Messages per page when the request names no `limit`.
const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
pub(super) struct HistoryParams {
    before_seq: Option<u64>,
    after_seq: Option<u64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct ReplayParams {
    from_ms: Option<i64>,
    limit: Option<usize>,
}

/// A message as history and replay show it.
#[derive(Serialize)]
struct MessageJson {
    seq: u64,
    kind: String,
    sender: String,
    ts_ms: u64,
    offset_ms: i64,
    priority: &'static str,
    body: serde_json::Value,
}

impl From<&ArchivedMessage> for MessageJson {
    fn from(m: &ArchivedMessage) -> Self {
        let priority = match Priority::try_from(m.priority) {
            Ok(Priority::High) => "high",
            Ok(Priority::Low) => "low",
            Ok(Priority::Normal) | Err(_) => "normal",
        };
        Self {
            seq: m.seq,
            kind: m.kind.clone(),
            sender: m.sender.clone(),
            ts_ms: m.sent_at_ms,
            offset_ms: m.offset_ms,
            priority,
            body: json_or_base64(&m.payload),
        }
    }
}

#[derive(Serialize)]
pub(super) struct PageJson {
    room: String,
    source: &'static str,
    /// Where offsets count from (the start, else the creation), Unix ms.
    started_at_ms: u64,
    messages: Vec<MessageJson>,
    truncated: bool,
}

fn page_json(room: String, source: &Source, page: &Page) -> PageJson {
    let started_at_ms = match source {
        Source::Live(r) => crate::archiver::collect::origin_ms(r),
        Source::Archive(r) => r.origin_ms(),
    };
    PageJson {
        room,
        source: source.name(),
        started_at_ms,
        messages: page.messages.iter().map(MessageJson::from).collect(),
        truncated: page.truncated,
    }
}

fn limit_of(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        ))),
    }
}

fn read_error(error: HistoryError) -> ApiError {
    tracing::warn!(%error, "Cannot read history.");
    ApiError::unavailable(error.to_string()).retry_after(1)
}

/// `GET /v1/rooms/{id}/history?before_seq=&after_seq=&limit=`.
pub(super) async fn history(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<PageJson>, ApiError> {
    let Query(params) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let query = HistoryQuery {
        before_seq: params.before_seq,
        after_seq: params.after_seq,
        limit: limit_of(params.limit)?,
    };
    let source = locate(&shared, &id, &caller).await?;
    let page = shared
        .history
        .history(&*shared.backends.pusher, &id, &source, query)
        .await
        .map_err(read_error)?;
    Ok(Json(page_json(id, &source, &page)))
}

/// `GET /v1/rooms/{id}/replay?from_ms=&limit=`.
pub(super) async fn replay(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<ReplayParams>, QueryRejection>,
) -> Result<Json<PageJson>, ApiError> {
    let Query(params) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let limit = limit_of(params.limit)?;
    let source = locate(&shared, &id, &caller).await?;
    let page = shared
        .history
        .replay(
            &*shared.backends.pusher,
            &id,
            &source,
            params.from_ms.unwrap_or(0),
            limit,
        )
        .await
        .map_err(read_error)?;
    Ok(Json(page_json(id, &source, &page)))
}

/// Where `room` is read from, if `caller` may read it: the read rule
/// ([`entry::check_read`]) while the room has live state, and the same rule
/// over the lists archived with it once only the archive has it (the owner
/// and the invited of a private room, never the kicked nor those the owner
/// blocked). The app backend reads every room.
async fn locate(shared: &Shared, room: &str, caller: &Caller) -> Result<Source, ApiError> {
    let view = shared.backends.rooms.views.get(room).await?;
    if let (Some(view), Some(uid)) = (&view, caller.reader()) {
        entry::check_read(view.room.state, view.standing(uid))
            .map_err(|barred| refusal_error(barred.into()))?;
    }
    let source = shared
        .history
        .locate(room, view.map(|v| v.room.clone()))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()).retry_after(1))?
        .ok_or_else(|| ApiError::room_not_found(room))?;
    if let (Source::Archive(archived), Some(uid)) = (&source, caller.reader()) {
        let blocked = match archived.owner.as_deref() {
            Some(owner) => shared.backends.store.is_blocked(owner, uid).await?,
            None => false,
        };
        entry::check_read(RoomState::Ended, archived_standing(archived, uid, blocked))
            .map_err(|barred| refusal_error(barred.into()))?;
    }
    Ok(source)
}

/// `uid`'s standing in an archived room, from the lists archived with it
/// (as `Views::standing` has it from the live lists).
fn archived_standing(archived: &ArchivedRoom, uid: &str, blocked: bool) -> Standing {
    Standing {
        kicked: archived.access.kicked.iter().any(|k| k == uid),
        blocked,
        may_enter: archived.kind != "private"
            || archived.owner.as_deref() == Some(uid)
            || archived.access.invited.iter().any(|i| i == uid),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(limit_of(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit_of(Some(MAX_PAGE)).ok(), Some(MAX_PAGE));
        for bad in [0, MAX_PAGE + 1] {
            let error = limit_of(Some(bad)).err().map(|e| e.status());
            assert_eq!(error, Some(StatusCode::BAD_REQUEST));
        }
    }
}
