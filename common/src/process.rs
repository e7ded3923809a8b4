//! What every service binary shares: common flags, layered config loading,
//! engine connections with clear errors, listeners, and exit codes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::discovery::{Discovery, ServiceKind};
use crate::ops::Readiness;

/// Exit code for bad flags or configuration (sysexits `EX_USAGE`).
pub const EX_USAGE: u8 = 64;
/// Exit code when a required server (etcd, Redis) is unreachable at start (`EX_UNAVAILABLE`).
pub const EX_UNAVAILABLE: u8 = 69;
/// Exit code when a listener cannot be bound (`EX_OSERR`).
pub const EX_OSERR: u8 = 71;

/// Flags every service binary accepts. Precedence: built-in defaults < config
/// file < environment (`<PREFIX>_<KEY>`, nested keys joined by `__`) < flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// TOML configuration file; every key is optional (see docs/deploy.md).
    #[arg(long, short = 'c', env = "ROOMCAST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Unique node id in discovery [config: node.node_id; default: kind + random].
    #[arg(long)]
    pub node_id: Option<String>,
    /// etcd endpoints, comma separated [config: discovery.etcd_endpoints; default 127.0.0.1:2379].
    #[arg(long, value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Address of the service's main listener [config: listen].
    #[arg(long)]
    pub listen: Option<String>,
    /// Address of /metrics, /livez and /readyz [config: ops_listen].
    #[arg(long)]
    pub ops_listen: Option<String>,
    /// Host other services and clients use to reach this node [config: node.advertise_host].
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// Print the effective configuration as TOML (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Check the effective configuration as a start would (settings, required
    /// and weak secrets) and exit: 0 when the service would start with it, 64
    /// and the reason when it would refuse. With --print-config: print, then check.
    #[arg(long)]
    pub check_config: bool,
    /// Log line format on stderr.
    #[arg(long, env = crate::telemetry::LOG_FORMAT_ENV, value_enum, default_value_t)]
    pub log_format: crate::telemetry::LogFormat,
    /// Threads running the service's tasks [default: the CPUs this process may
    /// use, a cgroup CPU limit included]. Set it to the CPUs the process
    /// should use when that is fewer (pods with a CPU request and no limit,
    /// several services on one machine): spare workers cost a cross-thread
    /// wakeup per event.
    #[arg(long, env = "ROOMCAST_WORKER_THREADS")]
    pub worker_threads: Option<std::num::NonZeroUsize>,
}

impl CommonArgs {
    /// The flags as a config overlay (only those given).
    pub fn overlay(&self) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        let mut node = serde_json::Map::new();
        if let Some(id) = &self.node_id {
            node.insert("node_id".into(), id.clone().into());
        }
        if let Some(host) = &self.advertise_host {
            node.insert("advertise_host".into(), host.clone().into());
        }
        if !node.is_empty() {
            root.insert("node".into(), node.into());
        }
        if !self.etcd.is_empty() {
            root.insert(
                "discovery".into(),
                serde_json::json!({ "etcd_endpoints": self.etcd }),
            );
        }
        if let Some(l) = &self.listen {
            root.insert("listen".into(), l.clone().into());
        }
        if let Some(l) = &self.ops_listen {
            root.insert("ops_listen".into(), l.clone().into());
        }
        root.into()
    }
}

/// TLS flags of a service with public listeners (the `node.tls` settings).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// PEM certificate chain of the public listeners; with --tls-key they
    /// speak TLS, reloaded when the files change [config: node.tls.cert].
    #[arg(long, env = "ROOMCAST_TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert [config: node.tls.key].
    #[arg(long, env = "ROOMCAST_TLS_KEY")]
    pub tls_key: Option<String>,
}

impl TlsArgs {
    /// Put the given flags into the `node` overlay (as `tls.cert`, `tls.key`).
    pub fn overlay(&self, node: &mut serde_json::Map<String, serde_json::Value>) {
        let mut tls = serde_json::Map::new();
        if let Some(cert) = &self.tls_cert {
            tls.insert("cert".into(), cert.clone().into());
        }
        if let Some(key) = &self.tls_key {
            tls.insert("key".into(), key.clone().into());
        }
        if !tls.is_empty() {
            node.insert("tls".into(), tls.into());
        }
    }
}

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration or flags.
    #[error("{0}")]
    Config(String),
    /// A required server is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// A listener could not be bound.
    #[error("{0}")]
    Bind(String),
}

/// Credentials published in Roomcast's docs and used by standalone mode:
/// the distributed services refuse them.
pub const DEVELOPMENT_CREDENTIALS: &[&str] = &[
    "roomcast-dev-secret",
    "roomcast-dev-admin",
    "rck_dev_roomcastDevelopmentKey",
];
/// Shortest HS256 secret accepted (RFC 7518: a key as long as the hash).
pub const MIN_TOKEN_SECRET_BYTES: usize = 32;
/// Shortest admin or internal token accepted.
pub const MIN_SHARED_TOKEN_BYTES: usize = 16;

/// Refuse a development credential or one shorter than `min_bytes` for
/// `setting` (named in the error, never the value).
pub fn require_strong(setting: &str, value: &str, min_bytes: usize) -> Result<(), StartError> {
    if DEVELOPMENT_CREDENTIALS.contains(&value) {
        return Err(StartError::Config(format!(
            "{setting} is a published development credential: set a random one \
             (e.g. `openssl rand -hex 32`)"
        )));
    }
    if value.len() < min_bytes {
        return Err(StartError::Config(format!(
            "{setting} is shorter than {min_bytes} bytes: set a random one \
             (e.g. `openssl rand -hex 32`)"
        )));
    }
    Ok(())
}

/// [`require_strong`] for a setting that may be left empty (unset: no check).
pub fn require_strong_if_set(
    setting: &str,
    value: &str,
    min_bytes: usize,
) -> Result<(), StartError> {
    if value.is_empty() {
        return Ok(());
    }
    require_strong(setting, value, min_bytes)
}

impl StartError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => EX_USAGE,
            Self::Unavailable(_) => EX_UNAVAILABLE,
            Self::Bind(_) => EX_OSERR,
        }
    }
}

/// Load `T`: defaults, then `args.config`, then `<env_prefix>_*`, then the
/// common flags, then `overlay` (the binary's own flags).
pub fn load<T>(
    args: &CommonArgs,
    env_prefix: &str,
    overlay: serde_json::Value,
) -> Result<T, StartError>
where
    T: Serialize + DeserializeOwned + Default,
{
    crate::config::load(
        args.config.as_deref(),
        env_prefix,
        &[args.overlay(), overlay],
    )
    .map_err(|e| StartError::Config(e.to_string()))
}

/// The start's checks of `cfg` (`check`), run first, as `--print-config` and
/// `--check-config` ask: `Some(outcome)` when the process should exit with it
/// (after printing, after checking), `None` to go on and start.
pub fn start_checks<T: Serialize>(
    args: &CommonArgs,
    cfg: &T,
    check: impl FnOnce(&T) -> Result<(), StartError>,
) -> Option<Result<(), StartError>> {
    if args.print_config {
        print!("{}", to_toml(cfg));
        if !args.check_config {
            return Some(Ok(()));
        }
    }
    match check(cfg) {
        Err(refused) => Some(Err(refused)),
        Ok(()) if args.check_config => Some(Ok(())),
        Ok(()) => None,
    }
}

/// Render a config as TOML with its secrets redacted (for `--print-config`).
pub fn to_toml<T: Serialize>(cfg: &T) -> String {
    crate::redact::to_redacted_toml(cfg)
        .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
}

/// Where nodes register and find each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// etcd client endpoints (`host:port`).
    pub etcd_endpoints: Vec<String>,
    /// Key prefix shared by one Roomcast installation.
    pub prefix: String,
    /// Registration lease TTL: a dead node disappears after about this long.
    pub lease_ttl_secs: i64,
    /// TLS (CA, client certificate) and user/password of the etcd connections.
    pub etcd: crate::discovery::etcd::EtcdSecurity,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            etcd_endpoints: vec!["127.0.0.1:2379".into()],
            prefix: "/roomcast/".into(),
            lease_ttl_secs: 10,
            etcd: crate::discovery::etcd::EtcdSecurity::default(),
        }
    }
}

/// Redis for message logs or room state. `Debug` hides URL passwords.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// One URL for a standalone server; several for Redis Cluster seed nodes.
    pub urls: Vec<String>,
    /// Prefix of every key, so installations can share a server.
    pub key_prefix: String,
    /// CA and client certificate files of `rediss://` URLs (credentials go
    /// in the URLs: `rediss://user:password@host:6380`).
    pub tls: crate::redis_conn::RedisTls,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::redact::fmt_config(self, "RedisConfig", f)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            urls: vec!["redis://127.0.0.1:6379".into()],
            key_prefix: "rc:".into(),
            tls: crate::redis_conn::RedisTls::default(),
        }
    }
}

/// Connect to etcd; an unreachable etcd is one clear error.
pub async fn connect_discovery(
    cfg: &DiscoveryConfig,
) -> Result<Arc<crate::discovery::etcd::EtcdDiscovery>, StartError> {
    let etcd = crate::discovery::etcd::EtcdConfig {
        endpoints: cfg.etcd_endpoints.clone(),
        prefix: cfg.prefix.clone(),
        lease_ttl_secs: cfg.lease_ttl_secs,
        security: cfg.etcd.clone(),
        ..Default::default()
    };
    crate::discovery::etcd::EtcdDiscovery::connect(etcd)
        .await
        .map(Arc::new)
        .map_err(|e| StartError::Unavailable(e.to_string()))
}

/// Connect the live configuration store (etcd, under the discovery prefix).
pub async fn connect_live_config(
    cfg: &DiscoveryConfig,
) -> Result<Arc<dyn crate::live_config::LiveConfig>, StartError> {
    crate::live_config::etcd::EtcdLiveConfig::connect_with(
        cfg.etcd_endpoints.clone(),
        &cfg.prefix,
        &cfg.etcd,
    )
    .await
    .map(|live| Arc::new(live) as Arc<dyn crate::live_config::LiveConfig>)
    .map_err(|e| StartError::Unavailable(e.to_string()))
}

/// Bind `addr`, naming what it is for in the error.
pub async fn bind(addr: &str, what: &str) -> Result<TcpListener, StartError> {
    listen(addr)
        .await
        .map_err(|e| StartError::Bind(format!("cannot listen for the {what} on {addr}: {e}")))
}

/// Pending connections a listener queues before the kernel drops SYNs. The
/// 128 that `TcpListener::bind` uses overflows when thousands of clients
/// reconnect at once (each overflow costs a client a 1 s SYN retransmit);
/// the kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listen on the first address `addr` resolves to, with [`LISTEN_BACKLOG`].
pub async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for resolved in tokio::net::lookup_host(addr).await? {
        let socket = if resolved.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // Like std's bind: a restarted node may take its port while old
        // connections sit in TIME_WAIT (a live listener still refuses).
        socket.set_reuseaddr(true)?;
        match socket.bind(resolved) {
            Ok(()) => return socket.listen(LISTEN_BACKLOG),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// Serve `/metrics`, `/livez`, `/readyz` until `shutdown`.
pub fn spawn_ops(
    listener: TcpListener,
    limits: &crate::http::HttpLimits,
    registry: prometheus::Registry,
    readiness: Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let app = crate::ops::router(registry.clone(), readiness);
    tokio::spawn(crate::http::serve_http(
        listener, app, "ops", limits, &registry, shutdown,
    ))
}

/// Keep `readiness` true while node `node_id` of `kind` can serve traffic:
/// it has been listed in discovery (it finished starting), it is not marked
/// draining there, `shutdown` is not cancelled, and every kind in `needs`
/// has at least one node in this process's view (checked on every change
/// and every second).
///
/// Reaching etcd is not a condition: while etcd is away the views keep their
/// last value and the node keeps serving (docs/operations.md, "Readiness").
pub fn track_readiness(
    discovery: Arc<dyn Discovery>,
    kind: ServiceKind,
    node_id: String,
    needs: &[ServiceKind],
    readiness: Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut needed: Vec<_> = needs.iter().map(|k| discovery.watch(*k)).collect();
    tokio::spawn(async move {
        let mut view = discovery.watch(kind);
        // A lease lost while etcd was away drops the entry until the node
        // re-registers; that is not a reason to stop serving.
        let mut started = false;
        let mut draining = false;
        loop {
            if let Some(me) = view.borrow_and_update().iter().find(|n| n.id == node_id) {
                started = true;
                draining = me.draining;
            }
            let peers = needed.iter_mut().all(|v| !v.borrow_and_update().is_empty());
            readiness.set(started && !draining && peers && !shutdown.is_cancelled());
            tokio::select! {
                _ = shutdown.cancelled() => { readiness.set(false); return; }
                changed = view.changed() => if changed.is_err() { return; },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

/// A node id for `kind` when none is configured.
pub fn default_node_id(kind: ServiceKind) -> String {
    format!("{}-{:08x}", kind.as_str(), rand::random::<u32>())
}

/// A service's runtime: `worker_threads` workers, or tokio's default (the
/// CPUs this process may use).
pub fn service_runtime(
    worker_threads: Option<std::num::NonZeroUsize>,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = worker_threads {
        builder.worker_threads(workers.get());
    }
    builder.enable_all().build()
}

/// The body of every service `main`: a runtime sized by `args.worker_threads`,
/// logging in `args.log_format` and trace export when `OTEL_*` asks for it,
/// one shutdown token for SIGINT/SIGTERM, and one clear error line with a
/// sysexits code.
pub fn run_main<F, Fut>(service: &str, args: &CommonArgs, body: F) -> std::process::ExitCode
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), StartError>>,
{
    let log_format = args.log_format;
    let runtime = match service_runtime(args.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {service}: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The trace exporter is built inside the runtime and flushed before it stops.
    let telemetry = {
        let _inside = runtime.enter();
        crate::telemetry::init_service(service, "info", log_format)
    };
    let result = runtime.block_on(async {
        let shutdown = crate::shutdown::signal_token();
        body(shutdown).await
    });
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {service}: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_the_workers_asked_for_or_one_per_cpu() {
        let one = service_runtime(std::num::NonZeroUsize::new(1)).expect("runtime");
        assert_eq!(one.metrics().num_workers(), 1);
        let three = service_runtime(std::num::NonZeroUsize::new(3)).expect("runtime");
        assert_eq!(three.metrics().num_workers(), 3);
        let default = service_runtime(None).expect("runtime");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // TOKIO_WORKER_THREADS, when set, is tokio's own override of the default.
        if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
            assert_eq!(default.metrics().num_workers(), cpus);
        }
        // The flag and its environment variable.
        let parsed =
            <CommonArgsParser as clap::Parser>::parse_from(["svc", "--worker-threads", "2"]);
        assert_eq!(parsed.common.worker_threads.map(|n| n.get()), Some(2));
        assert!(
            <CommonArgsParser as clap::Parser>::try_parse_from(["svc", "--worker-threads", "0"])
                .is_err()
        );
    }

    #[derive(clap::Parser)]
    struct CommonArgsParser {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn start_checks_exit_or_go_on_as_the_flags_say() {
        let flags = |print_config, check_config| CommonArgs {
            print_config,
            check_config,
            ..CommonArgs::default()
        };
        let refuse = |_: &u8| Err(StartError::Config("refused".into()));
        let accept = |_: &u8| Ok(());
        // A start: refused, or on.
        assert!(matches!(
            start_checks(&flags(false, false), &0, refuse),
            Some(Err(_))
        ));
        assert!(start_checks(&flags(false, false), &0, accept).is_none());
        // --check-config: exits either way, with the check's outcome.
        assert!(matches!(
            start_checks(&flags(false, true), &0, refuse),
            Some(Err(_))
        ));
        assert!(matches!(
            start_checks(&flags(false, true), &0, accept),
            Some(Ok(()))
        ));
        // --print-config alone: exits after printing, without checking.
        let unchecked = |_: &u8| -> Result<(), StartError> { panic!("checked") };
        assert!(matches!(
            start_checks(&flags(true, false), &0, unchecked),
            Some(Ok(()))
        ));
        // Both: prints, then refuses.
        assert!(matches!(
            start_checks(&flags(true, true), &0, refuse),
            Some(Err(_))
        ));
    }

    #[test]
    fn development_and_short_credentials_are_refused_without_echoing_them() {
        for dev in DEVELOPMENT_CREDENTIALS {
            let error = require_strong("node.token_secret", dev, 8).expect_err("dev");
            assert!(error.to_string().contains("development"), "{error}");
            assert!(!error.to_string().contains(dev), "the value is not echoed");
        }
        // An optional setting left empty is not checked; set, it is.
        assert!(require_strong_if_set("node.admin_token", "", 16).is_ok());
        assert!(require_strong_if_set("node.admin_token", "short", 16).is_err());
        let error = require_strong("node.admin_token", "short", 16).expect_err("short");
        assert!(error.to_string().contains("shorter than 16"), "{error}");
        assert_eq!(error.exit_code(), EX_USAGE);
        require_strong("node.admin_token", "0123456789abcdef", 16).expect("long enough");
    }

    #[test]
    fn tls_flags_become_the_node_tls_settings() {
        let mut node = serde_json::Map::new();
        TlsArgs::default().overlay(&mut node);
        assert!(node.is_empty(), "no flags, no settings");
        let args = TlsArgs {
            tls_cert: Some("/tls/tls.crt".into()),
            tls_key: Some("/tls/tls.key".into()),
        };
        args.overlay(&mut node);
        let files: crate::tls::TlsFiles =
            serde_json::from_value(node["tls"].clone()).expect("tls settings");
        assert_eq!(files.cert.as_deref(), Some("/tls/tls.crt"));
        assert_eq!(files.key.as_deref(), Some("/tls/tls.key"));
        assert_eq!(
            files.reload_interval_ms,
            crate::tls::DEFAULT_RELOAD_INTERVAL_MS
        );
    }

    #[test]
    fn etcd_and_redis_credentials_are_redacted_in_print_config() {
        let mut discovery = DiscoveryConfig::default();
        discovery.etcd.username = Some("roomcast".into());
        discovery.etcd.password = Some("etcd-hunter2".into());
        discovery.etcd.ca_file = Some("/etc/roomcast/etcd/ca.crt".into());
        let redis = RedisConfig {
            urls: vec!["rediss://roomcast:redis-hunter2@cache:6380".into()],
            ..RedisConfig::default()
        };
        #[derive(Serialize)]
        struct Both {
            discovery: DiscoveryConfig,
            redis: RedisConfig,
        }
        let text = to_toml(&Both {
            discovery: discovery.clone(),
            redis,
        });
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("/etc/roomcast/etcd/ca.crt"), "{text}");
        assert!(text.contains("roomcast"), "{text}");
        assert!(!format!("{discovery:?}").contains("hunter2"));
    }
}
