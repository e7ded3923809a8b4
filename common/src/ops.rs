//! Operational HTTP endpoints every service exposes: Prometheus `/metrics`,
//! liveness `/livez` and readiness `/readyz`.
//!
//! Every registry served here also carries the process series
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`, …; on
//! Linux) and `roomcast_build_info{version, git_sha}`, so each service shows
//! them without wiring of its own.
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
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

/// Name of the build gauge: 1, labelled with the version and the git commit.
pub const BUILD_INFO: &str = "roomcast_build_info";
/// The commit the binary was built from: `ROOMCAST_GIT_SHA` at compile time
/// (the Dockerfile's build argument), else `unknown`.
pub const GIT_SHA: &str = match option_env!("ROOMCAST_GIT_SHA") {
    Some(sha) => sha,
    None => "unknown",
};

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
/// serve alone with [`crate::http::serve_http`]. Registers the process and
/// build series in `registry` (once, however often it is called).
pub fn router(registry: Registry, readiness: Readiness) -> Router {
    register_process_metrics(&registry);
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

/// Register `process_*` (Linux) and [`BUILD_INFO`] in `registry`; already
/// registered ones are left as they are.
pub fn register_process_metrics(registry: &Registry) {
    #[cfg(target_os = "linux")]
    {
        let process = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(error) = registry.register(Box::new(process)) {
            tracing::debug!(%error, "Process metrics already registered.");
        }
    }
    let labels = ["version", "git_sha"];
    match IntGaugeVec::new(
        Opts::new(
            BUILD_INFO,
            "Build of this process: always 1, labelled with the version and git commit.",
        ),
        &labels,
    ) {
        Ok(build) => {
            build
                .with_label_values(&[env!("CARGO_PKG_VERSION"), GIT_SHA])
                .set(1);
            register(registry, &build);
        }
        Err(error) => tracing::warn!(%error, "Cannot define the build info gauge."),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn series(registry: &Registry) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .expect("encode");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn every_ops_registry_carries_build_info_and_process_series() {
        let registry = Registry::new();
        let _ = router(registry.clone(), Readiness::default());
        // A second ops router on the same registry (standalone serves several).
        let _ = router(registry.clone(), Readiness::default());
        let text = series(&registry);
        let build = format!(
            "{BUILD_INFO}{{git_sha=\"{GIT_SHA}\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{build} in\n{text}");
        assert_eq!(text.matches(&format!("# TYPE {BUILD_INFO} ")).count(), 1);
        if cfg!(target_os = "linux") {
            for name in [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
            ] {
                assert!(text.contains(&format!("\n{name} ")), "{name} in\n{text}");
            }
        }
    }
}
