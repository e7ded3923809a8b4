//! The router: tells a client SDK how to reach Roomcast (`GET /v1/route`),
//! decides long or short connections by the rollout policy, and gives SREs an
//! admin API to steer the rollout and drain nodes.
//!
//! It holds no client sockets. It watches the live nodes in discovery and the
//! rollout policy in live configuration, and answers with a conn node's
//! endpoints (long) or the HTTP polling URL (short).
//!
//! # Layout
//! - [`config`]: [`Config`] and its `DEFAULT_*` values.
//! - [`policy`]: the rollout policy (JSON) and its decision, sans-IO.
//! - `balancer`: node choice (zone, power of two choices on reported load
//!   plus hand-outs in flight), sans-IO.
//! - `route`: query validation and the route answer, sans-IO.
//! - `rollout`: the policy in force, followed from live configuration.
//! - `stats`: client-reported connection stats → metrics.
//! - `http`: the public listener (`/v1/route`, `/v1/client-stats`).
//! - `admin`: the admin listener (bearer token): policy, nodes, drain.
//! - `metrics`: `roomcast_router_*` series.
//! - [`error`]: every error type.
//! - [`process`]: the `roomcast-router` binary: config, etcd, listeners.

pub mod config;
pub mod error;
pub mod policy;
pub mod process;

mod admin;
mod balancer;
mod http;
mod metrics;
mod rollout;
mod route;
mod stats;

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use common::auth::TokenVerifier;
use common::discovery::{Discovery, NodeInfo, ServiceKind};
use common::live_config::{LiveConfig, keys};
use common::ops::Readiness;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::config::Config;
pub use crate::error::{Error, PolicyError};

use crate::admin::AdminState;
use crate::http::RouterState;
use crate::metrics::Metrics;
use crate::route::Hints;

/// Admin tokens shorter than this are accepted with a warning.
const WEAK_TOKEN_BYTES: usize = 16;

/// What the router runs on.
pub struct Deps {
    /// Node registry: the router registers itself and watches every kind.
    pub discovery: Arc<dyn Discovery>,
    /// Where the rollout policy lives (watched) and admin writes go.
    pub live_config: Arc<dyn LiveConfig>,
    /// Where metrics are registered.
    pub registry: prometheus::Registry,
    /// More routes for the public listener, served beside the router's own
    /// (standalone's demo page); `None` in the router binary.
    pub pages: Option<axum::Router>,
}

/// The router's bound listeners.
pub struct Listeners {
    /// Public API: `/v1/route`, `/v1/client-stats`.
    pub http: TcpListener,
    /// Admin API. `None`, or an empty [`Config::admin_token`], disables it.
    pub admin: Option<TcpListener>,
    /// `/metrics`, `/livez`, `/readyz` (`None`: the caller serves them, as
    /// standalone does for all its services). Never on the public listener.
    pub ops: Option<TcpListener>,
}

/// Serve the router until `shutdown` is cancelled.
///
/// Reads the rollout policy before serving (the default when none is stored),
/// then follows it. On shutdown the node leaves discovery first, then stops
/// accepting and returns once in-flight requests finished or
/// `shutdown_grace_ms` passed.
pub async fn run(
    cfg: Config,
    deps: Deps,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    cfg.validate()?;
    let addr = listeners.http.local_addr().map_err(Error::LocalAddr)?;
    let metrics = Metrics::new(&deps.registry);

    let mut stored_rx = deps.live_config.watch(keys::ROLLOUT);
    let (policy_tx, policy_rx) = watch::channel(Arc::default());
    let stored = rollout::initial(&*deps.live_config, &mut stored_rx).await;
    rollout::update(&policy_tx, &metrics, stored);
    let follow_stop = CancellationToken::new();
    let follower = tokio::spawn(rollout::follow(
        stored_rx,
        policy_tx,
        metrics.clone(),
        follow_stop.clone(),
    ));

    let stats_tokens = if cfg.token_secret.is_empty() && cfg.token_eddsa_public_pem.is_none() {
        tracing::warn!(
            "No client token key: POST /v1/client-stats takes anonymous reports, which anyone \
             can use to skew the client failure metrics. Set node.token_secret."
        );
        None
    } else {
        Some(
            TokenVerifier::new(
                Some(&cfg.token_secret),
                cfg.token_eddsa_public_pem.as_deref(),
            )
            .map_err(|e| Error::Config(format!("client token keys: {e}")))?,
        )
    };
    let state = Arc::new(RouterState {
        hints: Hints {
            heartbeat_ms: cfg.heartbeat_ms,
            retry_ms: cfg.retry_ms,
        },
        conns: deps.discovery.watch(ServiceKind::Conn),
        bizs: deps.discovery.watch(ServiceKind::Biz),
        policy: policy_rx.clone(),
        metrics,
        hand_outs: Default::default(),
        stats_tokens,
        stats_quota: governor::RateLimiter::keyed(governor::Quota::per_minute(
            std::num::NonZeroU32::new(cfg.client_stats_per_min)
                .unwrap_or(std::num::NonZeroU32::MIN),
        )),
    });
    let admin = admin_app(&cfg, &deps, listeners.admin, policy_rx)?;

    let readiness = Readiness::default();
    // Cancelled only after deregistering, so nothing is routed to a stopped router.
    let drain = CancellationToken::new();
    let app = http::app(state, &cfg.cors_origins);
    let app = match deps.pages.clone() {
        Some(pages) => app.merge(pages),
        None => app,
    };
    let tls = common::tls::ServerTls::start(&cfg.tls).map_err(|e| Error::Config(e.to_string()))?;
    let scheme = common::advertise::scheme(tls.is_some(), "http", "https");
    let admin_tls = tls.clone().filter(|_| cfg.admin_tls);
    let public = common::http::serve_http_tls(
        listeners.http,
        app,
        "router_http",
        &cfg.http,
        tls,
        &deps.registry,
        drain.clone(),
    );
    let admin = async {
        match admin {
            Some((listener, app)) => {
                common::http::serve_http_tls(
                    listener,
                    app,
                    "router_admin",
                    &cfg.admin_http,
                    admin_tls,
                    &deps.registry,
                    drain.clone(),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let ops = async {
        match listeners.ops {
            Some(listener) => {
                let app = common::ops::router(deps.registry.clone(), readiness.clone());
                let limits = common::http::HttpLimits::ops();
                common::http::serve_http(
                    listener,
                    app,
                    "ops",
                    &limits,
                    &deps.registry,
                    drain.clone(),
                )
                .await
            }
            None => Ok(()),
        }
    };
    // Any server failing stops the router; all stop on `drain`.
    let mut serving = pin!(async { tokio::try_join!(public, admin, ops).map(|_| ()) });

    let url = common::advertise::listener_url(
        cfg.public_url.as_deref(),
        scheme,
        addr,
        &cfg.advertise_host,
        "",
    );
    let node = NodeInfo {
        id: cfg.node_id.clone(),
        endpoints: BTreeMap::from([("http".to_owned(), url)]),
        ..NodeInfo::default()
    };
    deps.discovery.register(ServiceKind::Router, node).await?;
    readiness.set(true);
    tracing::info!(node = %cfg.node_id, %addr, "Router serving.");

    let stopped_early = tokio::select! {
        result = &mut serving => Some(result),
        () = shutdown.cancelled() => None,
    };
    readiness.set(false);
    if let Err(error) = deps
        .discovery
        .deregister(ServiceKind::Router, &cfg.node_id)
        .await
    {
        tracing::warn!(%error, "Cannot deregister from discovery; the entry will expire.");
    }
    drain.cancel();
    follow_stop.cancel();
    if let Err(error) = follower.await {
        tracing::warn!(%error, "The rollout policy task failed.");
    }
    if let Some(result) = stopped_early {
        return result.map_err(Error::Http);
    }
    let grace = Duration::from_millis(cfg.shutdown_grace_ms);
    match tokio::time::timeout(grace, serving).await {
        Ok(result) => result.map_err(Error::Http),
        Err(_) => {
            tracing::warn!(
                ?grace,
                "Requests still running after the grace period; dropping them."
            );
            Ok(())
        }
    }
}

/// The admin listener and its routes, or `None` when the admin API is off.
fn admin_app(
    cfg: &Config,
    deps: &Deps,
    listener: Option<TcpListener>,
    policy: watch::Receiver<Arc<rollout::PolicyView>>,
) -> Result<Option<(TcpListener, axum::Router)>, Error> {
    let Some(listener) = listener else {
        tracing::info!("Admin API disabled: no admin listener.");
        return Ok(None);
    };
    if cfg.admin_token.is_empty() {
        tracing::warn!("Admin API disabled: admin_token is empty.");
        return Ok(None);
    }
    if cfg.admin_token.len() < WEAK_TOKEN_BYTES {
        tracing::warn!(
            "The admin token is shorter than {WEAK_TOKEN_BYTES} bytes; use a long random one."
        );
    }
    let addr = listener.local_addr().map_err(Error::LocalAddr)?;
    let state = Arc::new(AdminState {
        token: cfg.admin_token.clone(),
        live: deps.live_config.clone(),
        policy,
        nodes: ServiceKind::ALL
            .into_iter()
            .map(|k| (k, deps.discovery.watch(k)))
            .collect(),
    });
    tracing::info!(%addr, "Admin API serving.");
    Ok(Some((listener, admin::app(state))))
}

#[cfg(test)]
mod tests;
