//! The HTTP API app backends call: create (now or scheduled, public or
//! private), read, start, end and invite to rooms, read their state, summary
//! and members, publish system messages; and the polling clients' routes (in
//! `poll`). Every error is JSON: `{"error":{"code":"…","message":"…"}}`.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use proto::client::v1::Priority;
use proto::internal::v1::PushRoomRequest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::room::StageRole;
use crate::error::StoreError;
use crate::poll::rejection_error;
use crate::shared::Shared;
use crate::store::{MemberEntry, MemberFilter, NewRoom, Room, RoomState};

/// Longest owner uid accepted, in characters.
const OWNER_MAX_CHARS: usize = 128;
/// Longest message kind accepted, in characters.
const KIND_MAX_CHARS: usize = 64;
/// Room for the JSON envelope around a message body when limiting request size.
const ENVELOPE_BYTES: usize = 4096;

/// The service's routes merged with `ops` (`/metrics`, `/livez`, `/readyz`).
pub(crate) fn app(shared: Arc<Shared>, ops: Router) -> Router {
    let body_limit = shared.cfg.message_max_bytes.saturating_add(ENVELOPE_BYTES);
    Router::new()
        .route("/v1/rooms", post(create_room))
        .route("/v1/rooms/{id}", get(get_room))
        .route(
            "/v1/rooms/{id}/messages",
            post(post_message).get(crate::poll::messages),
        )
        .route("/v1/rooms/{id}/actions", post(crate::poll::action))
        .route("/v1/rooms/{id}/start", post(start_room))
        .route("/v1/rooms/{id}/end", post(end_room))
        .route("/v1/rooms/{id}/invite", post(invite))
        .route("/v1/rooms/{id}/summary", get(summary))
        .route("/v1/rooms/{id}/state", get(state))
        .route("/v1/rooms/{id}/members", get(members))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
        .merge(ops)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
}

// === Errors and the JSON extractor ===

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An answer with `status` and `{"error":{"code","message"}}`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn room_not_found(room: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "room_not_found",
            format!("room {room} not found"),
        )
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::RoomNotFound(room) => Self::room_not_found(&room),
            other => Self::unavailable(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// Like `axum::Json`, but rejections are JSON [`ApiError`]s naming the problem,
/// and a missing `content-type` is tolerated (curl users forget it).
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too_large"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, rejection.body_text())
}

// === Rooms ===

/// Most uids in one invite request.
const INVITE_MAX: usize = 1000;
/// Longest auto-end delay accepted (a week).
const AUTO_END_MAX_SECS: u32 = 7 * 24 * 3600;
/// Default and largest page of `GET /v1/rooms/{id}/members`.
const MEMBERS_PAGE: (usize, usize) = (100, 500);

#[derive(Deserialize)]
struct CreateRoom {
    title: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    scheduled_at_ms: Option<u64>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    invite: Vec<String>,
    #[serde(default)]
    auto_end_empty_secs: Option<u32>,
}

/// A room as the API shows it.
#[derive(Serialize)]
struct RoomJson {
    room_id: String,
    title: String,
    owner: Option<String>,
    created_at_ms: u64,
    state: RoomState,
    members: u32,
    scheduled_at_ms: Option<u64>,
    started_at_ms: Option<u64>,
    ended_at_ms: Option<u64>,
    private: bool,
    auto_end_empty_secs: u32,
    slow_mode_secs: u32,
}

impl RoomJson {
    fn new(room: Room, members: u32) -> Self {
        Self {
            room_id: room.id,
            title: room.title,
            owner: room.owner,
            created_at_ms: room.created_at_ms,
            state: room.state,
            members,
            scheduled_at_ms: room.scheduled_at_ms,
            started_at_ms: room.started_at_ms,
            ended_at_ms: room.ended_at_ms,
            private: room.private,
            auto_end_empty_secs: room.auto_end_empty_secs,
            slow_mode_secs: room.slow_mode_secs,
        }
    }
}

/// A uid from a request: trimmed, 1 to [`OWNER_MAX_CHARS`] characters.
fn uid_field(name: &str, uid: &str) -> Result<String, ApiError> {
    let uid = uid.trim();
    if uid.is_empty() || uid.chars().count() > OWNER_MAX_CHARS {
        return Err(ApiError::bad_request(format!(
            "{name} must be 1 to {OWNER_MAX_CHARS} characters"
        )));
    }
    Ok(uid.to_owned())
}

fn uid_list(uids: &[String]) -> Result<Vec<String>, ApiError> {
    if uids.len() > INVITE_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {INVITE_MAX} uids per request"
        )));
    }
    let mut out: Vec<String> = uids
        .iter()
        .map(|u| uid_field("every invited uid", u))
        .collect::<Result<_, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

async fn create_room(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<RoomJson>), ApiError> {
    let title = body.title.trim();
    if title.is_empty() {
        return Err(ApiError::bad_request("title must not be empty"));
    }
    let max = shared.cfg.title_max_chars;
    if title.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "title is longer than {max} characters"
        )));
    }
    let owner = body
        .owner
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty());
    if owner
        .as_ref()
        .is_some_and(|o| o.chars().count() > OWNER_MAX_CHARS)
    {
        return Err(ApiError::bad_request(format!(
            "owner is longer than {OWNER_MAX_CHARS} characters"
        )));
    }
    if body.scheduled_at_ms == Some(0) {
        return Err(ApiError::bad_request(
            "scheduled_at_ms must be a Unix time in ms",
        ));
    }
    let auto_end = body
        .auto_end_empty_secs
        .unwrap_or(shared.cfg.auto_end_empty_secs);
    if auto_end > AUTO_END_MAX_SECS {
        return Err(ApiError::bad_request(format!(
            "auto_end_empty_secs must be 0 to {AUTO_END_MAX_SECS}"
        )));
    }
    let invited = uid_list(&body.invite)?;
    let new = NewRoom {
        title: title.to_owned(),
        owner,
        scheduled_at_ms: body.scheduled_at_ms,
        private: body.private,
        auto_end_empty_secs: auto_end,
        invited: invited.clone(),
    };
    let room = shared.backends.store.create_room(new).await?;
    shared.metrics.rooms_created.inc();
    tracing::info!(room = %room.id, owner = ?room.owner, state = room.state.as_str(), "Room created.");
    // A live room nobody joins ends like one everybody left.
    shared.backends.rooms.watch_empty(&room);
    if !invited.is_empty() {
        let note = serde_json::json!({
            "room": room.id,
            "title": room.title,
            "host": room.owner,
            "state": room.state,
            "scheduled_at_ms": room.scheduled_at_ms,
            "by": room.owner,
        });
        shared
            .backends
            .rooms
            .notify_users(&invited, crate::rooms::events::USER_ROOM_INVITE, &note)
            .await;
    }
    Ok((StatusCode::CREATED, Json(RoomJson::new(room, 0))))
}

async fn get_room(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<RoomJson>, ApiError> {
    let store = &shared.backends.store;
    let room = store
        .get_room(&id)
        .await?
        .ok_or_else(|| ApiError::room_not_found(&id))?;
    let members = store.member_count(&id).await?;
    Ok(Json(RoomJson::new(room, members)))
}

/// `POST /v1/rooms/{id}/start`: the app backend starts a scheduled room.
async fn start_room(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<RoomJson>, ApiError> {
    let rooms = &shared.backends.rooms;
    let (room, _) = rooms.start(&id, None).await.map_err(rejection_error)?;
    let members = shared.backends.store.member_count(&id).await?;
    Ok(Json(RoomJson::new(room, members)))
}

/// `POST /v1/rooms/{id}/end`: the app backend ends a room.
async fn end_room(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let summary = shared
        .backends
        .rooms
        .end(&id, None, "api")
        .await
        .map_err(rejection_error)?;
    Ok(Json(
        serde_json::json!({"room_id": id, "state": "ended", "summary": summary}),
    ))
}

#[derive(Deserialize)]
struct Invite {
    uids: Vec<String>,
}

/// `POST /v1/rooms/{id}/invite`: add to the invite list and tell them.
async fn invite(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Invite>,
) -> Result<Json<Value>, ApiError> {
    let uids = uid_list(&body.uids)?;
    if uids.is_empty() {
        return Err(ApiError::bad_request("uids must not be empty"));
    }
    let online = shared
        .backends
        .rooms
        .invite(&id, &uids, None)
        .await
        .map_err(rejection_error)?;
    Ok(Json(
        serde_json::json!({"room_id": id, "invited": uids.len(), "online": online}),
    ))
}

/// `GET /v1/rooms/{id}/summary`: live during the room, final after it.
async fn summary(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let read = shared
        .backends
        .rooms
        .read(&id, None)
        .await
        .map_err(rejection_error)?;
    Ok(Json(read.summary_json(common::time::now_ms())))
}

/// `GET /v1/rooms/{id}/state`: the snapshot a join gets; with a bearer
/// token, the caller's own role and state too.
async fn state(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let viewer = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        Some(crate::poll::bearer_uid(&shared, &headers)?)
    } else {
        None
    };
    let rooms = &shared.backends.rooms;
    let read = rooms
        .read(&id, viewer.as_deref())
        .await
        .map_err(rejection_error)?;
    Ok(Json(serde_json::json!({
        "room": id,
        "title": read.room.title,
        "role": read.viewer_role().as_str(),
        "members": read.members,
        "state": read.snapshot_json(rooms.settings.polls_max),
    })))
}

#[derive(Deserialize)]
struct MembersQuery {
    role: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/rooms/{id}/members`: the audience by join time (paged), or the
/// exact stage lists.
async fn members(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    query: Result<Query<MembersQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let role = query.role.as_deref().unwrap_or("listener");
    let limit = query.limit.unwrap_or(MEMBERS_PAGE.0);
    if limit == 0 || limit > MEMBERS_PAGE.1 {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {}",
            MEMBERS_PAGE.1
        )));
    }
    let rooms = &shared.backends.rooms;
    let filter = match role {
        "listener" => Some(MemberFilter::Listeners),
        "all" => Some(MemberFilter::All),
        "host" | "moderator" | "speaker" | "hand" => None,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown role {other:?}: listener, all, host, moderator, speaker or hand"
            )));
        }
    };
    let read = rooms.read(&id, None).await.map_err(rejection_error)?;
    let Some(filter) = filter else {
        let entries: Vec<Value> = match role {
            "host" => read
                .room
                .owner
                .iter()
                .map(|u| serde_json::json!({"uid": u}))
                .collect(),
            "hand" => read
                .hands
                .iter()
                .map(|(u, at)| serde_json::json!({"uid": u, "raised_at_ms": at}))
                .collect(),
            _ => {
                let wanted = if role == "moderator" {
                    StageRole::Moderator
                } else {
                    StageRole::Speaker
                };
                read.with_role(wanted)
                    .into_iter()
                    .map(|u| serde_json::json!({"uid": u}))
                    .collect()
            }
        };
        let total = if role == "hand" {
            read.hands_count
        } else {
            entries.len() as u64
        };
        return Ok(Json(serde_json::json!({
            "room_id": id, "role": role, "members": entries, "total": total, "next_cursor": null,
        })));
    };
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(parse_cursor(cursor)?),
    };
    let page = shared
        .backends
        .store
        .members_page(&id, filter, after.as_ref(), limit)
        .await?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|m| format!("{}:{}", m.joined_at_ms, m.uid)))
        .flatten();
    let entries: Vec<Value> = page
        .iter()
        .map(|m| serde_json::json!({"uid": m.uid, "joined_at_ms": m.joined_at_ms}))
        .collect();
    let total = match filter {
        MemberFilter::All => read.members,
        MemberFilter::Listeners => read.listeners(),
    };
    Ok(Json(serde_json::json!({
        "room_id": id, "role": role, "members": entries, "total": total, "next_cursor": next,
    })))
}

/// A members cursor: `<joined_at_ms>:<uid>` of the last entry of a page.
fn parse_cursor(cursor: &str) -> Result<MemberEntry, ApiError> {
    cursor
        .split_once(':')
        .and_then(|(ms, uid)| {
            Some(MemberEntry {
                joined_at_ms: ms.parse().ok()?,
                uid: uid.to_owned(),
            })
        })
        .ok_or_else(|| ApiError::bad_request("malformed cursor"))
}

// === Messages ===

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
struct PostMessage {
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

async fn post_message(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    ApiJson(msg): ApiJson<PostMessage>,
) -> Result<Json<Published>, ApiError> {
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
    let room = shared.backends.store.get_room(&id).await?;
    match room {
        None => return Err(ApiError::room_not_found(&id)),
        Some(r) if r.state == RoomState::Ended => {
            let message = format!("room {id} has ended");
            return Err(ApiError::new(StatusCode::CONFLICT, "room_ended", message));
        }
        Some(_) => {}
    }
    let request = PushRoomRequest {
        room: id.clone(),
        kind: msg.kind,
        body: Bytes::from(body),
        // App-backend messages have no user behind them.
        sender: String::new(),
        priority: Priority::from(msg.priority) as i32,
        durable: msg.durable,
    };
    let reply = shared
        .backends
        .pusher
        .push_room(request)
        .await
        .map_err(|error| {
            tracing::warn!(room = %id, %error, "Cannot push system message.");
            ApiError::unavailable(format!("cannot publish the message: {error}"))
        })?;
    Ok(Json(Published {
        seq: reply.seq,
        epoch: reply.epoch,
    }))
}

#[cfg(test)]
mod tests;
