//! The `roomcast-push` process: configuration, engines, listeners.

use std::sync::Arc;
use std::time::Duration;

use common::discovery::{Discovery, ServiceKind};
use common::ops::Readiness;
use common::process::{CommonArgs, DiscoveryConfig, RedisConfig, StartError};
use message_log::HistoryLimits;
use message_log::redis::RedisLogConfig;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Config;

/// Environment prefix (`ROOMCAST_PUSH_LISTEN`, `ROOMCAST_PUSH_NODE__RING_SIZE`, …).
pub const ENV_PREFIX: &str = "ROOMCAST_PUSH";

/// History bounds of the message log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Messages kept per room.
    pub max_len: usize,
    /// Seconds a message is kept.
    pub max_age_secs: u64,
    /// TTL of every room key, refreshed on writes (72 h).
    pub key_ttl_secs: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_len: 1000,
            max_age_secs: 3600,
            key_ttl_secs: 72 * 3600,
        }
    }
}

/// Everything `roomcast-push` reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// gRPC listener (push API, conn-node streams).
    pub listen: String,
    /// `/metrics`, `/livez`, `/readyz`.
    pub ops_listen: String,
    /// Request-head deadline and connection cap of the ops listener.
    pub ops_http: common::http::HttpLimits,
    /// Push node settings.
    pub node: Config,
    /// etcd.
    pub discovery: DiscoveryConfig,
    /// Redis holding the message logs.
    pub redis: RedisConfig,
    /// History bounds.
    pub history: HistoryConfig,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            // Internal gRPC: loopback unless told otherwise (docs/security.md).
            listen: "127.0.0.1:8610".into(),
            ops_http: common::http::HttpLimits::ops(),
            ops_listen: "0.0.0.0:8611".into(),
            node: Config::default(),
            discovery: DiscoveryConfig::default(),
            redis: RedisConfig::default(),
            history: HistoryConfig::default(),
        }
    }
}

/// Command line of `roomcast-push`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "roomcast-push",
    version,
    about = "Roomcast push node: room subscriptions, per-room seqs through the Redis message log, fan-out to conn nodes",
    after_help = "Every setting can come from the TOML file (--config), from ROOMCAST_PUSH_<KEY> \
(nested keys joined by __, e.g. ROOMCAST_PUSH_NODE__BROADCAST_THRESHOLD=800) or from flags. \
Run with --print-config to see every key with its effective value; docs/deploy.md explains each."
)]
pub struct Args {
    /// Flags shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Redis URLs, comma separated; several = Cluster seeds [config: redis.urls].
    #[arg(long, value_delimiter = ',')]
    pub redis: Vec<String>,
    /// Shared secret of internal gRPC calls, the same on every service
    /// [config: node.internal_token].
    #[arg(long, env = "ROOMCAST_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
}

/// Load the configuration, connect the engines, serve until `shutdown`.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), StartError> {
    let mut overlay = serde_json::Map::new();
    if !args.redis.is_empty() {
        overlay.insert("redis".into(), serde_json::json!({ "urls": args.redis }));
    }
    if let Some(token) = &args.internal_token {
        overlay.insert(
            "node".into(),
            serde_json::json!({ "internal_token": token }),
        );
    }
    let cfg: ProcessConfig = common::process::load(&args.common, ENV_PREFIX, overlay.into())?;
    if let Some(outcome) = common::process::start_checks(&args.common, &cfg, check) {
        return outcome;
    }
    let grpc = common::process::bind(&cfg.listen, "push gRPC API").await?;
    let ops = common::process::bind(&cfg.ops_listen, "ops endpoint").await?;
    let discovery = common::process::connect_discovery(&cfg.discovery).await?;
    let log = message_log::redis::connect(RedisLogConfig {
        urls: cfg.redis.urls.clone(),
        key_prefix: cfg.redis.key_prefix.clone(),
        history: HistoryLimits {
            max_len: cfg.history.max_len,
            max_age: Duration::from_secs(cfg.history.max_age_secs),
        },
        key_ttl_secs: cfg.history.key_ttl_secs,
        tls: cfg.redis.tls.clone(),
    })
    .await
    .map_err(|e| StartError::Unavailable(e.to_string()))?;

    let registry = prometheus::Registry::new();
    let readiness = Readiness::default();
    let discovery: Arc<dyn Discovery> = discovery;
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
        ServiceKind::Push,
        cfg.node.node_id.clone(),
        &[],
        readiness,
        node_stopped.clone(),
    );
    let deps = crate::Deps {
        discovery,
        log: Arc::new(log),
        registry,
        local: None,
    };
    let result = crate::run(cfg.node, deps, grpc, shutdown).await;
    node_stopped.cancel();
    let _ = ready_task.await;
    let _ = ops_task.await;
    result.map_err(|e| StartError::Unavailable(e.to_string()))
}

/// What a start refuses: a missing or weak shared secret.
fn check(cfg: &ProcessConfig) -> Result<(), StartError> {
    common::process::require_strong(
        "node.internal_token",
        &cfg.node.internal_token,
        common::process::MIN_SHARED_TOKEN_BYTES,
    )
}
