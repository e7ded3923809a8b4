//! Everything HTTP: the API app backends call (create, read, start, end and
//! invite to rooms, read their state, summary and members, publish system
//! messages) and the routes of clients without a long connection (long
//! polling and actions, authenticated with the client's token). Every error
//! is JSON: `{"error":{"code":"…","message":"…"}}`. The contract is in
//! docs/room-api.md.
//!
//! - `error`: [`ApiError`], the JSON extractor, refusals as HTTP answers.
//! - `auth`: `Authorization: Bearer <JWT>` of client routes.
//! - `rooms`: room lifecycle and reads.
//! - `messages`: system messages from the app backend.
//! - `longpoll`: `GET /v1/rooms/{id}/messages`, over the node's long-poll
//!   cache (`crate::longpoll`, which knows nothing of HTTP).
//! - `actions`: `POST /v1/rooms/{id}/actions`.
//! - `users`: `POST /v1/users/{uid}/revoke` (app backend).

mod actions;
mod auth;
mod error;
mod longpoll;
mod messages;
mod rooms;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};

use self::error::ApiError;
use crate::shared::Shared;

/// Room for the JSON envelope around a message body when limiting request size.
const ENVELOPE_BYTES: usize = 4096;

/// The service's routes merged with `ops` (`/metrics`, `/livez`, `/readyz`).
pub(crate) fn app(shared: Arc<Shared>, ops: Router) -> Router {
    let body_limit = shared.cfg.message_max_bytes.saturating_add(ENVELOPE_BYTES);
    Router::new()
        .route("/v1/rooms", post(rooms::create_room))
        .route("/v1/rooms/{id}", get(rooms::get_room))
        .route(
            "/v1/rooms/{id}/messages",
            post(messages::post_message).get(longpoll::messages),
        )
        .route("/v1/rooms/{id}/actions", post(actions::action))
        .route("/v1/rooms/{id}/start", post(rooms::start_room))
        .route("/v1/rooms/{id}/end", post(rooms::end_room))
        .route("/v1/rooms/{id}/invite", post(rooms::invite))
        .route("/v1/rooms/{id}/summary", get(rooms::summary))
        .route("/v1/rooms/{id}/state", get(rooms::state))
        .route("/v1/rooms/{id}/members", get(rooms::members))
        .route("/v1/users/{uid}/revoke", post(users::revoke))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
        .merge(ops)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
}

#[cfg(test)]
mod tests;
