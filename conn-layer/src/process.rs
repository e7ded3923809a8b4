//! The `roomcast-conn` process: configuration, discovery, listeners.

use std::sync::Arc;

use common::discovery::{Discovery, ServiceKind};
use common::ops::Readiness;
use common::process::{CommonArgs, DiscoveryConfig, StartError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Config;

/// Environment prefix (`ROOMCAST_CONN_LISTEN`, `ROOMCAST_CONN_NODE__OUTBOUND_QUEUE`, …).
pub const ENV_PREFIX: &str = "ROOMCAST_CONN";

/// Everything `roomcast-conn` reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// WebSocket listener (clients connect to `/v1/ws`).
    pub listen: String,
    /// QUIC listener (UDP); empty disables QUIC.
    pub quic_listen: String,
    /// `/metrics`, `/livez`, `/readyz`.
    pub ops_listen: String,
    /// Request-head deadline and connection cap of the ops listener.
    pub ops_http: common::http::HttpLimits,
    /// Conn node settings (`node.token_secret` is required).
    pub node: Config,
    /// etcd.
    pub discovery: DiscoveryConfig,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8601".into(),
            quic_listen: "0.0.0.0:8604".into(),
            ops_http: common::http::HttpLimits::ops(),
            ops_listen: "0.0.0.0:8612".into(),
            node: Config::default(),
            discovery: DiscoveryConfig::default(),
        }
    }
}

/// Command line of `roomcast-conn`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "roomcast-conn",
    version,
    about = "Roomcast conn node: holds client WebSocket connections and fans room messages out to them",
    after_help = "Every setting can come from the TOML file (--config), from ROOMCAST_CONN_<KEY> \
(nested keys joined by __, e.g. ROOMCAST_CONN_NODE__OUTBOUND_QUEUE=512) or from flags. \
Run with --print-config to see every key with its effective value; docs/deploy.md explains each."
)]
pub struct Args {
    /// Flags shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
    /// HS256 secret of client tokens [config: node.token_secret].
    #[arg(long, env = "ROOMCAST_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Placement zone reported to the router [config: node.zone].
    #[arg(long)]
    pub zone: Option<String>,
    /// QUIC listener address; empty disables QUIC [config: quic_listen].
    #[arg(long)]
    pub quic_listen: Option<String>,
    /// Shared secret of internal gRPC calls, the same on every service
    /// [config: node.internal_token].
    #[arg(long, env = "ROOMCAST_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// Certificate files of the public listeners (`wss://`, QUIC).
    #[command(flatten)]
    pub tls: common::process::TlsArgs,
    /// WebSocket URL advertised to clients, e.g. `wss://lb.example/v1/ws`
    /// behind a TLS-terminating load balancer [config: node.public_ws_url].
    #[arg(long)]
    pub public_ws_url: Option<String>,
}

/// Load the configuration, connect discovery, serve until `shutdown`.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), StartError> {
    let mut overlay = serde_json::Map::new();
    if let Some(secret) = &args.token_secret {
        overlay.insert("token_secret".into(), secret.clone().into());
    }
    if let Some(zone) = &args.zone {
        overlay.insert("zone".into(), zone.clone().into());
    }
    if let Some(token) = &args.internal_token {
        overlay.insert("internal_token".into(), token.clone().into());
    }
    if let Some(url) = &args.public_ws_url {
        overlay.insert("public_ws_url".into(), url.clone().into());
    }
    args.tls.overlay(&mut overlay);
    let mut root = serde_json::Map::new();
    root.insert("node".into(), overlay.into());
    if let Some(quic) = &args.quic_listen {
        root.insert("quic_listen".into(), quic.clone().into());
    }
    let cfg: ProcessConfig = common::process::load(&args.common, ENV_PREFIX, root.into())?;
    if let Some(outcome) = common::process::start_checks(&args.common, &cfg, check) {
        return outcome;
    }

    if !cfg.quic_listen.is_empty() && !cfg.node.tls.enabled() {
        tracing::warn!(
            "QUIC serves a self-signed development certificate pinned through discovery: \
             set node.tls.cert and node.tls.key (--tls-cert/--tls-key) for a real one."
        );
    }
    let ws = common::process::bind(&cfg.listen, "WebSocket endpoint").await?;
    let quic = if cfg.quic_listen.is_empty() {
        None
    } else {
        Some(std::net::UdpSocket::bind(&cfg.quic_listen).map_err(|e| {
            StartError::Bind(format!(
                "cannot listen for QUIC on {}: {e}",
                cfg.quic_listen
            ))
        })?)
    };
    let ops = common::process::bind(&cfg.ops_listen, "ops endpoint").await?;
    let discovery: Arc<dyn Discovery> = common::process::connect_discovery(&cfg.discovery).await?;
    let registry = prometheus::Registry::new();
    let readiness = Readiness::default();
    if let Some(problem) = cfg.ops_http.problem() {
        return Err(StartError::Config(format!("ops_http: {problem}")));
    }
    // Stops the ops endpoint and the readiness task when the node stops,
    // whether on a signal or by itself (a drain requested through the admin
    // API): the process then exits.
    let node_stopped = shutdown.child_token();
    let ops_task = common::process::spawn_ops(
        ops,
        &cfg.ops_http,
        registry.clone(),
        readiness.clone(),
        node_stopped.clone(),
    );
    let ready_task = common::process::track_readiness(
        discovery.clone(),
        ServiceKind::Conn,
        cfg.node.node_id.clone(),
        &[ServiceKind::Push, ServiceKind::Biz],
        readiness,
        node_stopped.clone(),
    );
    let live_config = common::process::connect_live_config(&cfg.discovery).await?;
    let deps = crate::Deps {
        discovery,
        live_config,
        registry,
        // A conn node process reaches push and room-biz nodes over gRPC.
        local_push: None,
        local_biz: None,
    };
    let listeners = crate::Listeners { ws, quic };
    let result = crate::run(cfg.node, deps, listeners, shutdown).await;
    node_stopped.cancel();
    let _ = ready_task.await;
    let _ = ops_task.await;
    result.map_err(|e| match e {
        crate::Error::Auth(a) => StartError::Config(a.to_string()),
        crate::Error::Tls(t) => StartError::Config(format!("TLS: {t}")),
        other => StartError::Unavailable(other.to_string()),
    })
}

/// What a start refuses: no token key, a weak token secret or shared secret.
fn check(cfg: &ProcessConfig) -> Result<(), StartError> {
    if cfg.node.token_secret.is_empty() && cfg.node.token_eddsa_public_pem.is_none() {
        return Err(StartError::Config(
            "no token key: set node.token_secret (or ROOMCAST_TOKEN_SECRET) or node.token_eddsa_public_pem".into(),
        ));
    }
    common::process::require_strong_if_set(
        "node.token_secret",
        &cfg.node.token_secret,
        common::process::MIN_TOKEN_SECRET_BYTES,
    )?;
    common::process::require_strong(
        "node.internal_token",
        &cfg.node.internal_token,
        common::process::MIN_SHARED_TOKEN_BYTES,
    )
}
