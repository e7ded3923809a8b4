//! The `roomcast-router` process: configuration, etcd (discovery and live
//! configuration), listeners.

use std::sync::Arc;

use common::discovery::Discovery;
use common::live_config::LiveConfig;
use common::process::{CommonArgs, DiscoveryConfig, StartError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{Config, Listeners};

/// Environment prefix (`ROOMCAST_ROUTER_LISTEN`, `ROOMCAST_ROUTER_NODE__RETRY_MS`, …).
pub const ENV_PREFIX: &str = "ROOMCAST_ROUTER";
/// Default public listener.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8600";
/// Default ops listener (`/metrics`, `/livez`, `/readyz`).
pub const DEFAULT_OPS_LISTEN: &str = "0.0.0.0:8615";
/// Default admin listener (used only when `node.admin_token` is set).
/// Loopback: the admin API is for SREs on the host or a port-forward
/// unless told otherwise (docs/security.md).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8603";

/// Everything `roomcast-router` reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// Public HTTP listener (`/v1/route`, `/v1/client-stats`).
    pub listen: String,
    /// `/metrics`, `/livez`, `/readyz`.
    pub ops_listen: String,
    /// Admin API listener. Bound only when `node.admin_token` is set; empty
    /// disables the admin API.
    pub admin_listen: String,
    /// Router settings.
    pub node: Config,
    /// etcd: node registry and live configuration (rollout policy, drain requests).
    pub discovery: DiscoveryConfig,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            ops_listen: DEFAULT_OPS_LISTEN.into(),
            admin_listen: DEFAULT_ADMIN_LISTEN.into(),
            node: Config::default(),
            discovery: DiscoveryConfig::default(),
        }
    }
}

/// Command line of `roomcast-router`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "roomcast-router",
    version,
    about = "Roomcast router: hands each client a conn node endpoint",
    after_help = "Every setting can come from the TOML file (--config), from ROOMCAST_ROUTER_<KEY> \
(nested keys joined by __, e.g. ROOMCAST_ROUTER_NODE__HEARTBEAT_MS=20000) or from flags. \
The admin API needs ROOMCAST_ROUTER_NODE__ADMIN_TOKEN (or node.admin_token). \
Run with --print-config to see every key with its effective value; docs/deploy.md explains each."
)]
pub struct Args {
    /// Flags shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Admin API listener [config: admin_listen; default 0.0.0.0:8603].
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// HS256 secret of client tokens: client stats reports then need one
    /// [config: node.token_secret].
    #[arg(long, env = "ROOMCAST_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Certificate files of the public listener (`https://`).
    #[command(flatten)]
    pub tls: common::process::TlsArgs,
    /// The router's URL as clients know it [config: node.public_url].
    #[arg(long)]
    pub public_url: Option<String>,
}

/// Load the configuration, connect etcd, serve until `shutdown`.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), StartError> {
    let mut overlay = serde_json::Map::new();
    if let Some(addr) = &args.admin_listen {
        overlay.insert("admin_listen".into(), addr.clone().into());
    }
    let mut node = serde_json::Map::new();
    if let Some(secret) = &args.token_secret {
        node.insert("token_secret".into(), secret.clone().into());
    }
    if let Some(url) = &args.public_url {
        node.insert("public_url".into(), url.clone().into());
    }
    args.tls.overlay(&mut node);
    if !node.is_empty() {
        overlay.insert("node".into(), node.into());
    }
    let overlay = serde_json::Value::Object(overlay);
    let cfg: ProcessConfig = common::process::load(&args.common, ENV_PREFIX, overlay)?;
    if let Some(outcome) = common::process::start_checks(&args.common, &cfg, check) {
        return outcome;
    }
    let http = common::process::bind(&cfg.listen, "router HTTP API").await?;
    let ops = common::process::bind(&cfg.ops_listen, "ops endpoint").await?;
    let admin = if cfg.node.admin_token.is_empty() || cfg.admin_listen.is_empty() {
        None
    } else {
        Some(common::process::bind(&cfg.admin_listen, "router admin API").await?)
    };
    let discovery: Arc<dyn Discovery> = common::process::connect_discovery(&cfg.discovery).await?;
    let live_config: Arc<dyn LiveConfig> =
        common::process::connect_live_config(&cfg.discovery).await?;
    let deps = crate::Deps {
        discovery,
        live_config,
        registry: prometheus::Registry::new(),
        pages: None,
    };
    let listeners = Listeners {
        http,
        admin,
        ops: Some(ops),
    };
    crate::run(cfg.node, deps, listeners, shutdown)
        .await
        .map_err(|e| StartError::Unavailable(e.to_string()))
}

/// What a start refuses: invalid settings, a weak token secret or admin token.
fn check(cfg: &ProcessConfig) -> Result<(), StartError> {
    cfg.node
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    common::process::require_strong_if_set(
        "node.token_secret",
        &cfg.node.token_secret,
        common::process::MIN_TOKEN_SECRET_BYTES,
    )?;
    common::process::require_strong_if_set(
        "node.admin_token",
        &cfg.node.admin_token,
        common::process::MIN_SHARED_TOKEN_BYTES,
    )?;
    Ok(())
}
