//! The admin API for SREs, on its own listener, behind a bearer token.
//!
//! # Layout
//! - [`app`]: the routes, every one (and the 404 fallback) behind `authorize`.
//! - `GET /v1/admin/rollout`: the policy in force, its source, and the last
//!   refused stored document if any.
//! - `PUT /v1/admin/rollout`: replace the policy (full document). Validated
//!   first: a bad one is a 400 and nothing is written.
//! - `GET /v1/admin/nodes`: every registered node of every kind with its load.
//! - `POST /v1/admin/nodes/{id}/drain`: ask a conn node to drain, through
//!   live configuration (`drain/{id}`); the node watches that key, drains,
//!   exits, and clears the key.
//! - `DELETE /v1/admin/nodes/{id}/drain`: withdraw a drain request the node
//!   has not acted on (any id, registered or not). A node already draining
//!   finishes its drain: its clients were told to leave.
//! - `/v1/admin/api-keys`: list, create and revoke the API keys of app
//!   backends (`api_keys`).
//!
//! Writes go to live configuration, never to this router's memory: every
//! router (and the node being drained) learns of them through its watch.

mod api_keys;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use common::discovery::{NodeInfo, NodeSet, ServiceKind};
use common::live_config::{LiveConfig, keys};
use serde::Serialize;
use tokio::sync::watch;

use crate::http::error;
use crate::policy::{self, Policy};
use crate::rollout::{PolicyView, Source};

/// How long a successful PUT waits to see its policy in force here, so the
/// caller's next `/v1/route` reflects it.
const APPLY_WAIT: Duration = Duration::from_secs(1);
/// Largest PUT body: room for a maximal policy pretty-printed.
const MAX_BODY_BYTES: usize = 4 * policy::MAX_POLICY_BYTES;

/// What the admin handlers read and write.
pub(crate) struct AdminState {
    /// The bearer token (non-empty: an empty token disables the API).
    pub(crate) token: String,
    /// Where policies and drain requests are written.
    pub(crate) live: Arc<dyn LiveConfig>,
    /// The policy in force.
    pub(crate) policy: watch::Receiver<Arc<PolicyView>>,
    /// Every kind's nodes.
    pub(crate) nodes: BTreeMap<ServiceKind, watch::Receiver<NodeSet>>,
}

/// The admin routes, all behind the token.
pub(crate) fn app(state: Arc<AdminState>) -> Router {
    Router::new()
        .route(
            "/v1/admin/rollout",
            get(get_rollout)
                .put(put_rollout)
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/v1/admin/nodes", get(get_nodes))
        .route("/v1/admin/nodes/{id}/drain", post(drain).delete(undrain))
        .route(
            "/v1/admin/api-keys",
            get(api_keys::list)
                .post(api_keys::create)
                .layer(DefaultBodyLimit::max(4096)),
        )
        .route("/v1/admin/api-keys/{id}", delete(api_keys::revoke))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

// === auth ===

async fn authorize(State(state): State<Arc<AdminState>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            tracing::info!(method = %request.method(), path = %request.uri().path(), "Admin request refused: missing or wrong token.");
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong admin token (Authorization: Bearer <token>)",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"roomcast-admin\""),
            );
            response
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compare without an early exit, so the time taken does not tell how many
/// leading bytes of a guess were right. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

// === rollout ===

/// `GET`/`PUT /v1/admin/rollout` answer.
#[derive(Serialize)]
struct RolloutBody<'a> {
    policy: &'a Policy,
    source: Source,
    /// Why the last stored document was refused (the policy above stays).
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<String>,
}

async fn get_rollout(State(state): State<Arc<AdminState>>) -> Response {
    let view = state.policy.borrow().clone();
    Json(RolloutBody {
        policy: view.rollout.policy(),
        source: view.source,
        rejected: view.rejected.as_ref().map(ToString::to_string),
    })
    .into_response()
}

async fn put_rollout(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    let invalid = |message: String| error(StatusCode::BAD_REQUEST, "invalid_policy", message);
    let Ok(text) = std::str::from_utf8(&body) else {
        return invalid("policy is not UTF-8 text".into());
    };
    let policy = match Policy::from_json(text) {
        Ok(policy) => policy,
        Err(e) => return invalid(e.to_string()),
    };
    // Stored compact, so every router compares the same text.
    let stored = match serde_json::to_string(&policy) {
        Ok(stored) => stored,
        Err(e) => return invalid(format!("cannot encode the policy: {e}")),
    };
    if let Err(e) = state.live.put(keys::ROLLOUT, &stored).await {
        tracing::warn!(error = %e, "Cannot store the rollout policy.");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        );
    }
    tracing::info!(policy = %stored, "Rollout policy replaced through the admin API.");
    let mut view = state.policy.clone();
    let applied = tokio::time::timeout(
        APPLY_WAIT,
        view.wait_for(|v| v.stored.as_deref() == Some(stored.as_str())),
    )
    .await;
    if !matches!(applied, Ok(Ok(_))) {
        // Stored, but another write may have replaced it already; the
        // watch serves whichever is newest.
        tracing::debug!("The stored policy was not seen in force within {APPLY_WAIT:?}.");
    }
    Json(RolloutBody {
        policy: &policy,
        source: Source::LiveConfig,
        rejected: None,
    })
    .into_response()
}

// === nodes ===

#[derive(Serialize)]
struct NodeEntry<'a> {
    kind: ServiceKind,
    #[serde(flatten)]
    node: &'a NodeInfo,
}

async fn get_nodes(State(state): State<Arc<AdminState>>) -> Response {
    let sets: Vec<(ServiceKind, NodeSet)> = state
        .nodes
        .iter()
        .map(|(kind, rx)| (*kind, rx.borrow().clone()))
        .collect();
    let nodes: Vec<NodeEntry<'_>> = sets
        .iter()
        .flat_map(|(kind, set)| set.iter().map(|node| NodeEntry { kind: *kind, node }))
        .collect();
    Json(serde_json::json!({ "nodes": nodes })).into_response()
}

async fn drain(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    let known = state
        .nodes
        .get(&ServiceKind::Conn)
        .is_some_and(|rx| rx.borrow().iter().any(|n| n.id == id));
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no conn node {id:?} is registered"),
        );
    }
    let requested_at_ms = common::time::now_ms();
    let value = serde_json::json!({ "requested_at_ms": requested_at_ms }).to_string();
    if let Err(e) = state.live.put(&keys::drain(&id), &value).await {
        tracing::warn!(node = %id, error = %e, "Cannot store the drain request.");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        );
    }
    tracing::info!(node = %id, requested_at_ms, "Drain requested through the admin API.");
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "node_id": id, "requested_at_ms": requested_at_ms })),
    )
        .into_response()
}

async fn undrain(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    let key = keys::drain(&id);
    let unavailable = |e: common::live_config::LiveConfigError| {
        tracing::warn!(node = %id, error = %e, "Cannot withdraw the drain request.");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    };
    let pending = match state.live.get(&key).await {
        Ok(value) => value.is_some(),
        Err(e) => return unavailable(e),
    };
    if pending && let Err(e) = state.live.delete(&key).await {
        return unavailable(e);
    }
    let draining = state
        .nodes
        .get(&ServiceKind::Conn)
        .is_some_and(|rx| rx.borrow().iter().any(|n| n.id == id && n.draining));
    tracing::info!(node = %id, withdrawn = pending, draining, "Drain request withdrawn through the admin API.");
    Json(serde_json::json!({ "node_id": id, "withdrawn": pending, "draining": draining }))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_and_compared_exactly() {
        assert_eq!(bearer("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer("bearer  s3cret "), Some("s3cret"));
        assert_eq!(bearer("Basic czNjcmV0"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("s3cret"), None);
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
