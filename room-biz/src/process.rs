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
    /// HTTP room API (also `/metrics`, `/livez`, `/readyz`).
    pub listen: String,
    /// Internal gRPC (join authorization, action streams from conn nodes).
    pub grpc_listen: String,
    /// `/metrics`, `/livez`, `/readyz` on a listener of their own as well;
    /// empty (the default): only on `listen`.
    pub ops_listen: String,
    /// Request-head deadline and connection cap of `ops_listen`.
    pub ops_http: common::http::HttpLimits,
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
            grpc_listen: "0.0.0.0:8613".into(),
            ops_listen: String::new(),
            ops_http: common::http::HttpLimits::ops(),
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
    /// Flags shared by every service (--ops-listen adds a listener for the
    /// ops routes, which are always on --listen too).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Internal gRPC listener [config: grpc_listen].
    #[arg(long)]
    pub grpc_listen: Option<String>,
    /// Redis URLs, comma separated; several = Cluster seeds [config: redis.urls].
    #[arg(long, value_delimiter = ',')]
    pub redis: Vec<String>,
    /// HS256 secret of client tokens, for polling clients [config: node.token_secret].
    #[arg(long, env = "ROOMCAST_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
}

/// Load the configuration, connect the engines, serve until `shutdown`.
pub async fn run(args: Args, shutdown: CancellationToken) -> Result<(), StartError> {
    let mut overlay = serde_json::Map::new();
    if let Some(grpc) = &args.grpc_listen {
        overlay.insert("grpc_listen".into(), grpc.clone().into());
    }
    if !args.redis.is_empty() {
        overlay.insert("redis".into(), serde_json::json!({ "urls": args.redis }));
    }
    if let Some(secret) = &args.token_secret {
        overlay.insert("node".into(), serde_json::json!({ "token_secret": secret }));
    }
    let cfg: ProcessConfig = common::process::load(&args.common, ENV_PREFIX, overlay.into())?;
    if args.common.print_config {
        print!("{}", common::process::to_toml(&cfg));
        return Ok(());
    }
    cfg.node
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let http = common::process::bind(&cfg.listen, "room HTTP API").await?;
    let grpc = common::process::bind(&cfg.grpc_listen, "room-biz gRPC").await?;
    let discovery: Arc<dyn Discovery> = common::process::connect_discovery(&cfg.discovery).await?;
    let store = crate::RedisRoomStore::connect(&cfg.redis.urls, &cfg.redis.key_prefix)
        .await
        .map_err(|e| StartError::Unavailable(e.to_string()))?;
    let registry = prometheus::Registry::new();
    let ops_stop = shutdown.child_token();
    let ops_tasks = spawn_ops(&cfg, &registry, &discovery, &ops_stop).await?;
    let deps = crate::Deps {
        discovery,
        registry,
        store: Arc::new(store),
    };
    let listeners = crate::Listeners { http, grpc };
    let result = crate::run(cfg.node, deps, listeners, shutdown).await;
    ops_stop.cancel();
    for task in ops_tasks {
        let _ = task.await;
    }
    result.map_err(|e| StartError::Unavailable(e.to_string()))
}

/// Serve the ops routes on `ops_listen` too, when set, until `stop`:
/// readiness follows discovery like on the push and conn nodes.
async fn spawn_ops(
    cfg: &ProcessConfig,
    registry: &prometheus::Registry,
    discovery: &Arc<dyn Discovery>,
    stop: &CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StartError> {
    if cfg.ops_listen.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(problem) = cfg.ops_http.problem() {
        return Err(StartError::Config(format!("ops_http: {problem}")));
    }
    let listener = common::process::bind(&cfg.ops_listen, "ops endpoint").await?;
    let readiness = common::ops::Readiness::default();
    let ops = common::process::spawn_ops(
        listener,
        &cfg.ops_http,
        registry.clone(),
        readiness.clone(),
        stop.clone(),
    );
    let ready = common::process::track_readiness(
        discovery.clone(),
        common::discovery::ServiceKind::Biz,
        cfg.node.node_id.clone(),
        &[],
        readiness,
        stop.clone(),
    );
    Ok(vec![
        tokio::spawn(async move {
            if let Ok(Err(error)) = ops.await {
                tracing::warn!(%error, "The ops endpoint stopped.");
            }
        }),
        ready,
    ])
}
