//! The public listener: `GET /v1/route` and `POST /v1/client-stats` (the ops
//! routes have their own listener). Errors are JSON:
//! `{"error":{"code":"…","message":"…","field"?:"…"}}`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::auth::{AuthError, TokenVerifier};
use common::discovery::NodeSet;
use governor::DefaultKeyedRateLimiter;
use tokio::sync::watch;

use crate::balancer::{HandOuts, Picker};
use crate::error::RouteError;
use crate::metrics::{MODE_NONE, Metrics};
use crate::rollout::PolicyView;
use crate::route::{self, Hints, Route, RouteQuery};
use crate::stats::{self, ClientStats};

/// Uids the stats quota remembers before it forgets idle ones.
const STATS_QUOTA_KEYS: usize = 100_000;

/// What the handlers read.
pub(crate) struct RouterState {
    /// Hints sent with every route.
    pub(crate) hints: Hints,
    /// Live conn nodes.
    pub(crate) conns: watch::Receiver<NodeSet>,
    /// Live biz nodes.
    pub(crate) bizs: watch::Receiver<NodeSet>,
    /// The rollout policy in force.
    pub(crate) policy: watch::Receiver<Arc<PolicyView>>,
    /// Prometheus series.
    pub(crate) metrics: Metrics,
    /// Routes handed out that the conn nodes' load reports may not show yet.
    pub(crate) hand_outs: Mutex<HandOuts>,
    /// Client tokens of stats reports (`None`: reports are anonymous).
    pub(crate) stats_tokens: Option<TokenVerifier>,
    /// Stats reports per uid.
    pub(crate) stats_quota: DefaultKeyedRateLimiter<String>,
}

/// The router's public routes (open to pages of `cors_origins`).
pub(crate) fn app(state: Arc<RouterState>, cors_origins: &[String]) -> Router {
    Router::new()
        .route("/v1/route", get(get_route))
        .route(
            "/v1/client-stats",
            post(post_client_stats).layer(DefaultBodyLimit::max(stats::MAX_BODY_BYTES)),
        )
        .layer(common::cors::layer(cors_origins))
        .with_state(state)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route") })
}

/// A JSON error response.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        Json(serde_json::json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// A 400 naming the parameter at fault.
pub(crate) fn bad_request(e: &RouteError) -> Response {
    let mut body = serde_json::json!({
        "error": { "code": "bad_request", "message": e.to_string() }
    });
    if let Some(field) = e.field() {
        body["error"]["field"] = field.into();
    }
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn get_route(
    State(state): State<Arc<RouterState>>,
    query: Result<Query<RouteQuery>, QueryRejection>,
) -> Result<Json<Route>, Response> {
    let Query(query) =
        query.map_err(|e| error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let client = query.validate().map_err(|e| bad_request(&e))?;
    // Clone the Arcs out so no watch guard is held while routing.
    let conns = state.conns.borrow().clone();
    let bizs = state.bizs.borrow().clone();
    let policy = state.policy.borrow().rollout.clone();
    let routed = {
        // Held for one choice, no await inside: concurrent routes each see
        // the others' hand-outs.
        let mut hand_outs = state.hand_outs.lock().unwrap_or_else(|p| p.into_inner());
        hand_outs.retain_live(&conns);
        let mut picker = Picker {
            hand_outs: &mut hand_outs,
            now: Instant::now(),
            rng: &mut rand::rng(),
        };
        route::route(&client, &policy, &conns, &bizs, state.hints, &mut picker)
    };
    match routed {
        Ok((route, decision)) => {
            let m = &state.metrics;
            m.routes.with_label_values(&[route.mode.as_str()]).inc();
            m.decisions
                .with_label_values(&[decision.reason.as_str()])
                .inc();
            Ok(Json(route))
        }
        Err(RouteError::NoNodes) => {
            state.metrics.routes.with_label_values(&[MODE_NONE]).inc();
            tracing::warn!("No conn or biz node can take this client; answering 503.");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                RouteError::NoNodes.to_string(),
            ))
        }
        Err(e) => Err(bad_request(&e)),
    }
}

/// Why a stats report was refused before reading it.
struct Refused {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

/// The uid of a stats report's bearer token, when reports need one.
fn stats_reporter(state: &RouterState, headers: &HeaderMap) -> Result<Option<String>, Refused> {
    let Some(verifier) = &state.stats_tokens else {
        return Ok(None);
    };
    let unauthenticated = |message| Refused {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthenticated",
        message,
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            unauthenticated("client stats need the client's token (Authorization: Bearer)")
        })?;
    match verifier.verify(token) {
        Ok(claims) => Ok(Some(claims.sub)),
        Err(AuthError::Expired) => Err(Refused {
            status: StatusCode::UNAUTHORIZED,
            code: "token_expired",
            message: "token expired",
        }),
        Err(_) => Err(unauthenticated("invalid token")),
    }
}

async fn post_client_stats(
    State(state): State<Arc<RouterState>>,
    headers: HeaderMap,
    body: Result<Json<ClientStats>, JsonRejection>,
) -> Response {
    let reporter = match stats_reporter(&state, &headers) {
        Ok(reporter) => reporter,
        Err(refused) => return error(refused.status, refused.code, refused.message),
    };
    if state.stats_quota.len() > STATS_QUOTA_KEYS {
        state.stats_quota.retain_recent();
    }
    if let Some(uid) = &reporter
        && state.stats_quota.check_key(uid).is_err()
    {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many client stats reports from this user",
        );
    }
    let Json(stats) = match body {
        Ok(body) => body,
        Err(e) => {
            // axum says 422 for well-formed JSON of the wrong shape; to SDKs
            // both are the same client bug.
            let status = match e.status() {
                StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                other => other,
            };
            return error(status, "bad_request", e.body_text());
        }
    };
    match stats.validate() {
        Ok(report) => {
            report.record(&state.metrics);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::debug!(error = %e, uid = ?stats.uid, platform = ?stats.platform, "Refused client stats.");
            bad_request(&e)
        }
    }
}
