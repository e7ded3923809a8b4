//! Operational HTTP endpoints every service exposes: Prometheus `/metrics`,
//! liveness `/livez` and readiness `/readyz`.
//!
//! `/livez` answers 200 while the process runs. `/readyz` answers 200 while
//! the node can serve traffic now (docs/operations.md, "Readiness"): it
//! started serving and is not draining or stopping. Losing etcd does not make
//! a node unready: it keeps serving on its last view of the nodes, and
//! failing every pod's probe at once during an etcd blip would take the whole
//! installation out of its load balancers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// Readiness flag a service flips once it can take traffic and clears when draining.
#[derive(Clone, Default, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Mark ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    /// Current state.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct OpsState {
    registry: Registry,
    readiness: Readiness,
}

/// Routes for `/metrics`, `/livez`, `/readyz`; merge into a service's router or
/// serve alone with [`crate::http::serve_http`].
pub fn router(registry: Registry, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(OpsState {
            registry,
            readiness,
        })
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            buf,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Register `collector` in `registry`, ignoring "already registered" (a second
/// in-process instance of a service shares the first one's series).
pub fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: &C,
) {
    if let Err(error) = registry.register(Box::new(collector.clone())) {
        tracing::debug!(%error, "Metric already registered.");
    }
}
