//! The `roomcast-biz` process: configuration, engines, listeners.

use std::sync::Arc;

use common::discovery::Discovery;
use common::process::{CommonArgs, DiscoveryConfig, RedisConfig, StartError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Config;

/// Environment prefix (`ROOMCAST_BIZ_LISTEN`, `ROOMCAST_BIZ_NODE__COMMENT_MAX_CHARS`, …).
pub const ENV_PREFIX: &str = "ROOMCAST_BIZ";

/// Everything `roomcast-biz` reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// Client HTTP routes (long polling, actions, reads under the read rule).
    pub listen: String,
    /// Backend HTTP API (API keys). Loopback by default: expose it to your
    /// app backends only (a private network, a Kubernetes Service).
    pub backend_listen: String,
    /// `/metrics`, `/livez`, `/readyz`.
    pub ops_listen: String,
    /// Internal gRPC (join authorization, action streams from conn nodes).
    pub grpc_listen: String,
    /// Room-biz settings.
    pub node: Config,
    /// etcd.
    pub discovery: DiscoveryConfig,
    /// Redis holding room state.
    pub redis: RedisConfig,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8602".into(),
            backend_listen: "127.0.0.1:8605".into(),
            ops_listen: "0.0.0.0:8614".into(),
            // Internal gRPC: loopback unless told otherwise (docs/security.md).
            grpc_listen: "127.0.0.1:8613".into(),
            node: Config::default(),
            discovery: DiscoveryConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

/// Command line of `roomcast-biz`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "roomcast-biz",
    version,
    about = "Roomcast room-biz: rooms, join authorization, room actions, the room HTTP API",
    after_help = "Every setting can come from the TOML file (--config), from ROOMCAST_BIZ_<KEY> \
(nested keys joined by __, e.g. ROOMCAST_BIZ_NODE__COMMENT_MAX_CHARS=300) or from flags. \
Run with --print-config to see every key with its effective value; docs/deploy.md explains each."
)]
pub struct Args {
    /// Flags shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Backend HTTP API listener [config: backend_listen].
    #[arg(long)]
    pub backend_listen: Option<String>,
    /// Internal gRPC listener [config: grpc_listen].
    #[arg(long)]
    pub grpc_listen: Option<String>,
    /// Redis URLs, comma separated; several = Cluster seeds [config: redis.urls].
    #[arg(long, value_delimiter = ',')]
    pub redis: Vec<String>,
    /// HS256 secret of client tokens, for polling clients [config: node.token_secret].
    #[arg(long, env = "ROOMCAST_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Shared secret of internal gRPC calls, the same on every service
    /// [config: node.internal_token].
    #[arg(long, env = "ROOMCAST_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// Certificate files of the client HTTP listener (`https://`).
    #[command(flatten)]
    pub tls: common::process::TlsArgs,
    /// Polling base URL advertised to clients [config: node.public_http_url].
    #[arg(long)]
    pub public_http_url: Option<String>,
}

/// The archive at `node.archive_url` (schema migrated), the archive queue
/// (a Redis Stream) and the message log, both in the room store's Redis.
async fn connect_archiving(cfg: &ProcessConfig) -> Result<crate::Archiving, StartError> {
    let unavailable = |e: &dyn std::fmt::Display| StartError::Unavailable(e.to_string());
    let archive = archive::open(&cfg.node.archive_url)
        .await
        .map_err(|e| unavailable(&e))?;
    let queue =
        crate::RedisQueue::connect_with(&cfg.redis.urls, &cfg.redis.key_prefix, &cfg.redis.tls)
            .await
            .map_err(|e| unavailable(&e))?;
    // Only read and deleted here: the history bounds and TTL of appends are
    // the push layer's.
    let log = message_log::redis::connect(message_log::redis::RedisLogConfig {
        urls: cfg.redis.urls.clone(),
        key_prefix: cfg.redis.key_prefix.clone(),
        tls: cfg.redis.tls.clone(),
        ..message_log::redis::RedisLogConfig::default()
    })
    .await
    .map_err(|e| unavailable(&e))?;
    Ok(crate::Archiving {
        archive,
        queue: Arc::new(queue),
        log: Arc::new(log),
    })
}

/// Load the configuration, connect the engines, serve until `shutdown`.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), StartError> {
    let mut overlay = serde_json::Map::new();
    if let Some(backend) = &args.backend_listen {
        overlay.insert("backend_listen".into(), backend.clone().into());
    }
    if let Some(grpc) = &args.grpc_listen {
        overlay.insert("grpc_listen".into(), grpc.clone().into());
    }
    if !args.redis.is_empty() {
        overlay.insert("redis".into(), serde_json::json!({ "urls": args.redis }));
    }
    let mut node = serde_json::Map::new();
    if let Some(secret) = &args.token_secret {
        node.insert("token_secret".into(), secret.clone().into());
    }
    if let Some(token) = &args.internal_token {
        node.insert("internal_token".into(), token.clone().into());
    }
    if let Some(url) = &args.public_http_url {
        node.insert("public_http_url".into(), url.clone().into());
    }
    args.tls.overlay(&mut node);
    if !node.is_empty() {
        overlay.insert("node".into(), node.into());
    }
    let cfg: ProcessConfig = common::process::load(&args.common, ENV_PREFIX, overlay.into())?;
    if let Some(outcome) = common::process::start_checks(&args.common, &cfg, check) {
        return outcome;
    }
    let http = common::process::bind(&cfg.listen, "client HTTP").await?;
    let backend = common::process::bind(&cfg.backend_listen, "backend HTTP API").await?;
    let grpc = common::process::bind(&cfg.grpc_listen, "room-biz gRPC").await?;
    let ops = common::process::bind(&cfg.ops_listen, "ops endpoint").await?;
    let discovery: Arc<dyn Discovery> = common::process::connect_discovery(&cfg.discovery).await?;
    let live_config = common::process::connect_live_config(&cfg.discovery).await?;
    let store =
        crate::RedisRoomStore::connect_with(&cfg.redis.urls, &cfg.redis.key_prefix, &cfg.redis.tls)
            .await
            .map_err(|e| StartError::Unavailable(e.to_string()))?;
    let archiving = if cfg.node.archive_url.is_empty() {
        tracing::warn!(
            "No archive_url: ended rooms are not archived; their keys expire after 72 h."
        );
        None
    } else {
        Some(connect_archiving(&cfg).await?)
    };
    let deps = crate::Deps {
        discovery,
        registry: prometheus::Registry::new(),
        store: Arc::new(store),
        live_config,
        archiving,
        pusher: None,
        local: None,
    };
    let listeners = crate::Listeners {
        http,
        backend,
        grpc: grpc.into(),
        ops: Some(ops),
    };
    crate::run(cfg.node, deps, listeners, shutdown)
        .await
        .map_err(|e| StartError::Unavailable(e.to_string()))
}

/// What a start refuses: invalid settings, a missing or weak shared secret.
fn check(cfg: &ProcessConfig) -> Result<(), StartError> {
    cfg.node
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    common::process::require_strong(
        "node.internal_token",
        &cfg.node.internal_token,
        common::process::MIN_SHARED_TOKEN_BYTES,
    )?;
    common::process::require_strong_if_set(
        "node.token_secret",
        &cfg.node.token_secret,
        common::process::MIN_TOKEN_SECRET_BYTES,
    )?;
    Ok(())
}
