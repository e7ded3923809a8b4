//! Everything HTTP, on two listeners. The **backend** listener serves the API
//! app backends call (create, read, start, end and invite to rooms, read
//! their state, summary and members, publish system messages), each route
//! behind an API key with its scope; it need not be public. The **client**
//! listener serves clients without a long connection (long polling,
//! actions, reads of rooms they may enter), behind the client's token. Every
//! error is JSON: `{"error":{"code":"…","message":"…"}}`. The contract is in
//! docs/room-api.md; the trust model in docs/security.md.
//!
//! - `error`: [`ApiError`], the JSON extractor, refusals as HTTP answers.
//! - `caller`: who calls: API keys (scopes, quotas, no browsers, JSON
//!   only) and client tokens, as middleware.
//! - `auth`: `Authorization: Bearer <JWT>` of client routes.
//! - `rooms`: room lifecycle and reads.
//! - `messages`: system messages from the app backend.
//! - `longpoll`: `GET /v1/rooms/{id}/messages`, over the node's long-poll
//!   cache (`crate::longpoll`, which knows nothing of HTTP).
//! - `actions`: `POST /v1/rooms/{id}/actions`.
//! - `inbox`: `GET /v1/me/inbox` (client): notices kept for users who were
//!   offline, such as `room_started`.
//! - `users`: `POST /v1/users/{uid}/revoke` (app backend).
//! - `events`: `GET /v1/events` (app backend): the event log webhooks are
//!   delivered from.

mod actions;
mod auth;
mod caller;
mod error;
mod events;
mod inbox;
mod longpoll;
mod messages;
mod rooms;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use common::api_keys::Scope;

use self::error::ApiError;
use crate::shared::Shared;

/// Room for the JSON envelope around a message body when limiting request size.
const ENVELOPE_BYTES: usize = 4096;

/// The backend listener's routes, each behind an API key with its scope.
pub(crate) fn backend_app(shared: Arc<Shared>) -> Router {
    let body_limit = shared.cfg.message_max_bytes.saturating_add(ENVELOPE_BYTES);
    let scoped = |scope: Scope, routes: Router<Arc<Shared>>| {
        routes.route_layer(middleware::from_fn_with_state(
            (shared.clone(), scope),
            caller::api_key,
        ))
    };
    let rooms_write = Router::new()
        .route("/v1/rooms", post(rooms::create_room))
        .route("/v1/rooms/{id}/start", post(rooms::start_room))
        .route("/v1/rooms/{id}/end", post(rooms::end_room))
        .route("/v1/rooms/{id}/invite", post(rooms::invite));
    let messages_write =
        Router::new().route("/v1/rooms/{id}/messages", post(messages::post_message));
    let users_write = Router::new().route("/v1/users/{uid}/revoke", post(users::revoke));
    let events_read = Router::new().route("/v1/events", get(events::events));
    Router::new()
        .merge(scoped(Scope::RoomsRead, reads()))
        .merge(scoped(Scope::RoomsRead, events_read))
        .merge(scoped(Scope::RoomsWrite, rooms_write))
        .merge(scoped(Scope::MessagesWrite, messages_write))
        .merge(scoped(Scope::UsersWrite, users_write))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
        .fallback(not_found)
}

/// The client listener's routes: long polling and actions (the client's
/// token, checked by the handlers), and reads of rooms under the read rule.
pub(crate) fn client_app(shared: Arc<Shared>) -> Router {
    let body_limit = shared.cfg.message_max_bytes.saturating_add(ENVELOPE_BYTES);
    let reads = reads().route_layer(middleware::from_fn_with_state(
        shared.clone(),
        caller::client_token,
    ));
    Router::new()
        .route("/v1/rooms/{id}/messages", get(longpoll::messages))
        .route("/v1/rooms/{id}/actions", post(actions::action))
        .route("/v1/me/inbox", get(inbox::inbox))
        .merge(reads)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(common::cors::layer(&shared.cfg.cors_origins))
        .with_state(shared)
        .fallback(not_found)
}

/// Reads both listeners serve; the handlers apply the read rule to clients.
fn reads() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/rooms/{id}", get(rooms::get_room))
        .route("/v1/rooms/{id}/summary", get(rooms::summary))
        .route("/v1/rooms/{id}/state", get(rooms::state))
        .route("/v1/rooms/{id}/members", get(rooms::members))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

#[cfg(test)]
mod schedule_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
