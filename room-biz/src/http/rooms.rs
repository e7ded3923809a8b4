//! Room lifecycle and reads for the app backend: create (now or scheduled,
//! public or private), read, start, end, invite; state, summary, members.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use room_store::domain::entry;
use room_store::domain::room::StageRole;
use room_store::domain::text::{self, Lines};
use room_store::{MemberEntry, MemberFilter, NewRoom, Room, RoomState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::caller::Caller;
use super::error::{ApiError, ApiJson, refusal_error};
use crate::shared::Shared;

/// Longest owner uid accepted, in characters.
const OWNER_MAX_CHARS: usize = 128;
/// Most uids in one invite request.
const INVITE_MAX: usize = 1000;
/// Longest auto-end delay accepted (a week).
const AUTO_END_MAX_SECS: u32 = 7 * 24 * 3600;
/// Default and largest page of `GET /v1/rooms/{id}/members`.
const MEMBERS_PAGE: (usize, usize) = (100, 500);

#[derive(Deserialize)]
pub(super) struct CreateRoom {
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
pub(super) struct RoomJson {
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
    text::check("uid", uid, Lines::One).map_err(ApiError::invalid_text)?;
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

pub(super) async fn create_room(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
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
    text::check("title", title, Lines::One).map_err(ApiError::invalid_text)?;
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
    if let Some(owner) = &owner {
        text::check("owner", owner, Lines::One).map_err(ApiError::invalid_text)?;
    }
    if body.scheduled_at_ms == Some(0) {
        return Err(ApiError::bad_request(
            "scheduled_at_ms must be a Unix time in ms",
        ));
    }
    if let Some(at) = body.scheduled_at_ms {
        let now = common::time::now_ms();
        if at <= now {
            return Err(ApiError::bad_request(format!(
                "scheduled_at_ms {at} is in the past (now {now}); create a live room instead"
            )));
        }
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
    // Without its index entry the room would never start by itself: the
    // create fails (retryable) rather than leave a silent room behind.
    shared.schedules.scheduled(&room).await?;
    shared.metrics.rooms_created.inc();
    shared.backends.rooms.webhooks.emit(
        crate::webhooks::kinds::ROOM_CREATED,
        &room.id,
        serde_json::json!({
            "title": room.title,
            "owner": room.owner,
            "state": room.state,
            "scheduled_at_ms": room.scheduled_at_ms,
            "private": room.private,
        }),
    );
    tracing::info!(room = %room.id, owner = ?room.owner, state = room.state.as_str(), by = %caller.actor(), "Room created.");
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

pub(super) async fn get_room(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RoomJson>, ApiError> {
    admit_reader(&shared, &id, &caller).await?;
    let store = &shared.backends.store;
    let room = store
        .get_room(&id)
        .await?
        .ok_or_else(|| ApiError::room_not_found(&id))?;
    let members = store.member_count(&id).await?;
    Ok(Json(RoomJson::new(room, members)))
}

/// `POST /v1/rooms/{id}/start`: the app backend starts a scheduled room.
pub(super) async fn start_room(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<RoomJson>, ApiError> {
    let rooms = &shared.backends.rooms;
    let (room, _) = rooms.start(&id, None).await.map_err(refusal_error)?;
    let members = shared.backends.store.member_count(&id).await?;
    Ok(Json(RoomJson::new(room, members)))
}

/// `POST /v1/rooms/{id}/end`: the app backend ends a room.
pub(super) async fn end_room(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    tracing::info!(room = %id, by = %caller.actor(), "Room end requested through the backend API.");
    let summary = shared
        .backends
        .rooms
        .end(&id, None, "api")
        .await
        .map_err(refusal_error)?;
    Ok(Json(
        serde_json::json!({"room_id": id, "state": "ended", "summary": summary}),
    ))
}

#[derive(Deserialize)]
pub(super) struct Invite {
    uids: Vec<String>,
}

/// `POST /v1/rooms/{id}/invite`: add to the invite list and tell them.
pub(super) async fn invite(
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
        .map_err(refusal_error)?;
    Ok(Json(
        serde_json::json!({"room_id": id, "invited": uids.len(), "online": online}),
    ))
}

/// `GET /v1/rooms/{id}/summary`: live during the room, final after it.
pub(super) async fn summary(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admit_reader(&shared, &id, &caller).await?;
    let read = shared
        .backends
        .rooms
        .read(&id, None)
        .await
        .map_err(refusal_error)?;
    Ok(Json(read.summary_json(common::time::now_ms())))
}

/// `GET /v1/rooms/{id}/state`: the snapshot a join gets; for a client, its
/// own role and state too, if the read rule lets it read the room. The app
/// backend reads any room.
pub(super) async fn state(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admit_reader(&shared, &id, &caller).await?;
    let rooms = &shared.backends.rooms;
    let read = rooms
        .read(&id, caller.reader())
        .await
        .map_err(refusal_error)?;
    Ok(Json(serde_json::json!({
        "room": id,
        "title": read.room.title,
        "role": read.viewer_role().as_str(),
        "members": read.members,
        "state": read.snapshot_json(rooms.settings.polls_max),
    })))
}

/// The read rule ([`entry::check_read`]) for a client reading `room`, from
/// the node's view of it: a private room answers only those who may enter
/// it, during and after the room. Unknown rooms are left to the read, which
/// answers 404. The app backend reads every room.
async fn admit_reader(shared: &Shared, room: &str, caller: &Caller) -> Result<(), ApiError> {
    let Some(uid) = caller.reader() else {
        return Ok(());
    };
    let Some(view) = shared.backends.rooms.views.get(room).await? else {
        return Ok(());
    };
    entry::check_read(view.room.state, view.standing(uid))
        .map_err(|barred| refusal_error(barred.into()))
}

#[derive(Deserialize)]
pub(super) struct MembersQuery {
    role: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/rooms/{id}/members`: the audience by join time (paged), or the
/// exact stage lists.
pub(super) async fn members(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<MembersQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    admit_reader(&shared, &id, &caller).await?;
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
    let read = rooms.read(&id, None).await.map_err(refusal_error)?;
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
