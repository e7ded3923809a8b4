//! `roomcast standalone`: every service in one process on embedded defaults:
//! in-memory message log and room store, in-process discovery. The services
//! call each other in process on the hot paths (`local_push`: room-biz's
//! publishes, the conn node's push stream and its joins, leaves and actions:
//! no gRPC per publish, notify or join); the rest (pulls, unary fallbacks)
//! is still gRPC, over in-memory pipes instead of loopback sockets
//! (`common::grpc::InProcessListener`), so it is the distributed code path
//! with the engines and the transport swapped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use common::advertise::advertised;
use common::api_keys::Keyring;
use common::discovery::{Discovery, MemoryDiscovery};
use common::live_config::{LiveConfig, MemoryLiveConfig, keys};
use common::ops::Readiness;
use message_log::{HistoryLimits, MemoryBudget, MemoryLog, MessageLog};
use proto::transport;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Default public ports of standalone mode (documented in the README).
pub const DEFAULT_ROUTER_PORT: u16 = 8600;
/// WebSocket port of the conn node.
pub const DEFAULT_WS_PORT: u16 = 8601;
/// Room-biz client HTTP port (long polling, actions, reads with a token).
pub const DEFAULT_BIZ_PORT: u16 = 8602;
/// Room-biz backend API port (room creation, system messages; API keys).
pub const DEFAULT_BACKEND_PORT: u16 = 8605;
/// The API key standalone mode accepts unless told otherwise. For development only.
pub const DEFAULT_DEV_API_KEY: &str = "rck_dev_roomcastDevelopmentKey";
/// Backend API URL the CLI uses by default.
pub const DEFAULT_BACKEND_URL: &str = "http://127.0.0.1:8605";
/// Prometheus metrics, liveness and readiness of all services.
pub const DEFAULT_METRICS_PORT: u16 = 8609;
/// QUIC (UDP) port of the conn node.
pub const DEFAULT_QUIC_PORT: u16 = 8604;
/// Router admin API port.
pub const DEFAULT_ADMIN_PORT: u16 = 8603;
/// The admin bearer token standalone mode uses unless told otherwise. For development only.
pub const DEFAULT_DEV_ADMIN_TOKEN: &str = "roomcast-dev-admin";
/// Admin URL `roomcast ctl` uses by default.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8603";
/// The HS256 secret standalone mode uses unless told otherwise. For development only.
pub const DEFAULT_DEV_SECRET: &str = "roomcast-dev-secret";
/// Router URL the CLI uses by default.
pub const DEFAULT_ROUTER_URL: &str = "http://127.0.0.1:8600";
/// Room-biz URL the CLI uses by default.
pub const DEFAULT_BIZ_URL: &str = "http://127.0.0.1:8602";

/// Standalone settings. The top-level fields are the ones a user sets; the
/// per-service configs hold everything else (tests tune them).
#[derive(Clone, Debug)]
pub struct StandaloneConfig {
    /// Address every public listener binds (default 127.0.0.1).
    pub bind_host: String,
    /// Router HTTP port (0 = ephemeral).
    pub router_port: u16,
    /// Conn node WebSocket port (0 = ephemeral).
    pub ws_port: u16,
    /// Room-biz client HTTP port (0 = ephemeral).
    pub biz_port: u16,
    /// Room-biz backend API port (0 = ephemeral).
    pub backend_port: u16,
    /// The API key the backend API accepts (all scopes).
    pub api_key: String,
    /// Metrics port (0 = ephemeral).
    pub metrics_port: u16,
    /// QUIC (UDP) port (0 = ephemeral; `None` disables QUIC).
    pub quic_port: Option<u16>,
    /// Router admin API port (0 = ephemeral).
    pub admin_port: u16,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// HS256 token secret.
    pub secret: String,
    /// Members at or above which a room switches to broadcast mode (it
    /// switches back below half of it).
    pub broadcast_threshold: u32,
    /// Message history bounds of the in-memory log.
    pub history: HistoryLimits,
    /// Bytes the in-memory log keeps per room and in all.
    pub log_budget: MemoryBudget,
    /// Conn node settings (secret and node id are filled in).
    pub conn: conn_layer::Config,
    /// Push node settings (thresholds are filled in).
    pub push: push_layer::Config,
    /// Room-biz settings.
    pub biz: room_biz::Config,
    /// Router settings.
    pub router: router::Config,
    /// Request-head deadline and connection cap of the metrics listener.
    pub metrics_http: common::http::HttpLimits,
    /// Origins allowed to call the router and room API from a browser,
    /// besides standalone's own (the router's URL, and `localhost` for a
    /// loopback bind), which serves the demo page.
    pub cors_origins: Vec<String>,
    /// Serve the live-room demo page at `/demo/` on the router port.
    pub demo: bool,
    /// CA certificates (PEM) the demo page trusts when it calls the backend
    /// API over `https://` ([`Self::serve_tls`]); unset: the webpki roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for StandaloneConfig {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".into(),
            router_port: DEFAULT_ROUTER_PORT,
            ws_port: DEFAULT_WS_PORT,
            biz_port: DEFAULT_BIZ_PORT,
            backend_port: DEFAULT_BACKEND_PORT,
            api_key: DEFAULT_DEV_API_KEY.into(),
            metrics_port: DEFAULT_METRICS_PORT,
            quic_port: Some(DEFAULT_QUIC_PORT),
            admin_port: DEFAULT_ADMIN_PORT,
            admin_token: DEFAULT_DEV_ADMIN_TOKEN.into(),
            secret: DEFAULT_DEV_SECRET.into(),
            broadcast_threshold: push_layer::config::DEFAULT_BROADCAST_THRESHOLD,
            history: HistoryLimits::default(),
            log_budget: MemoryBudget::default(),
            conn: conn_layer::Config::default(),
            push: push_layer::Config::default(),
            biz: room_biz::Config::default(),
            router: router::Config::default(),
            metrics_http: common::http::HttpLimits::ops(),
            cors_origins: Vec::new(),
            demo: true,
            ca_file: None,
        }
    }
}

/// The embedded archive's file in a `--data-dir`.
pub const ARCHIVE_FILE: &str = "archive.db";

/// The archive URL of the SQLite file in data folder `dir`.
pub fn archive_url_in(dir: &std::path::Path) -> String {
    format!("sqlite:{}", dir.join(ARCHIVE_FILE).display())
}

impl StandaloneConfig {
    /// Serve `files` (certificate chain and key) on every listener clients
    /// and tools reach: `wss://` and QUIC on the conn node, `https://` on the
    /// router, its admin API, room-biz's client routes and backend API. The
    /// metrics endpoint stays plain (loopback scrapes).
    pub fn serve_tls(&mut self, files: &common::tls::TlsFiles) {
        self.conn.tls = files.clone();
        self.router.tls = files.clone();
        self.router.admin_tls = true;
        self.biz.tls = files.clone();
        self.biz.backend_tls = true;
    }
}

/// The origins of standalone's own pages: the router's URL, and its
/// `localhost` twin when bound to loopback (browsers send the host as typed).
fn own_origins(router_url: &str, listener: &TcpListener) -> anyhow::Result<Vec<String>> {
    let addr = listener.local_addr()?;
    let mut origins = vec![router_url.to_owned()];
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        let scheme = router_url.split("://").next().unwrap_or("http");
        origins.push(format!("{scheme}://localhost:{}", addr.port()));
    }
    Ok(origins)
}

/// A running standalone system.
pub struct Standalone {
    /// `http://host:port` of the router (`https://` with TLS, likewise below).
    pub router_url: String,
    /// `ws://host:port/v1/ws` (or `wss://`) of the conn node.
    pub ws_url: String,
    /// `http://host:port` of room-biz's client routes.
    pub biz_url: String,
    /// `http://host:port` of room-biz's backend API.
    pub backend_url: String,
    /// The internal token of this run's services (tests call them directly).
    pub internal_auth: common::grpc::InternalAuth,
    /// The same token as text, for a node a test starts beside these.
    pub internal_token: String,
    /// `http://host:port` of the metrics endpoint.
    pub metrics_url: String,
    /// `http://host:port` (or `https://`) of the router's admin API.
    pub admin_url: String,
    /// `quic://host:port` of the conn node, when QUIC is on.
    pub quic_url: Option<String>,
    /// SHA-256 of the conn node's QUIC certificate (hex), for pinning.
    pub quic_cert_sha256: Option<String>,
    /// The discovery every service registered in (tests inspect it).
    pub discovery: Arc<dyn Discovery>,
    /// Live configuration (rollout policy, drain requests).
    pub live_config: Arc<dyn LiveConfig>,
    front: JoinSet<anyhow::Result<()>>,
    back: JoinSet<anyhow::Result<()>>,
    back_stop: CancellationToken,
    shutdown: CancellationToken,
}

async fn bind(host: &str, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    common::process::listen(&addr)
        .await
        .with_context(|| format!("cannot listen for the {what} on {host}:{port}"))
}

/// 32 random hex digits.
fn random_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn http_url(host: &str, listener: &TcpListener) -> anyhow::Result<String> {
    url_of(false, host, listener)
}

/// `https://host:port` when `tls`, else `http://host:port`.
fn url_of(tls: bool, host: &str, listener: &TcpListener) -> anyhow::Result<String> {
    Ok(format!(
        "{}://{}",
        if tls { "https" } else { "http" },
        advertised(listener.local_addr()?, host)
    ))
}

impl Standalone {
    /// Bind every listener and start every service. Fails with a clear message
    /// if a port is taken.
    pub async fn start(cfg: StandaloneConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let host = cfg.bind_host.as_str();
        let router_listener = bind(host, cfg.router_port, "router HTTP API").await?;
        let ws_listener = bind(host, cfg.ws_port, "WebSocket endpoint").await?;
        let quic_socket = match cfg.quic_port {
            Some(port) => Some(
                std::net::UdpSocket::bind((host, port))
                    .with_context(|| format!("cannot listen for QUIC on {host}:{port} (udp)"))?,
            ),
            None => None,
        };
        let biz_listener = bind(host, cfg.biz_port, "room client HTTP").await?;
        let backend_listener = bind(host, cfg.backend_port, "room backend API").await?;
        let metrics_listener = bind(host, cfg.metrics_port, "metrics endpoint").await?;
        let admin_listener = bind(host, cfg.admin_port, "router admin API").await?;
        // Internal gRPC stays in the process: no port, nothing to reach
        // from outside, no kernel TCP path per internal message.
        let push_grpc = common::grpc::InProcessListener::bind();
        let biz_grpc = common::grpc::InProcessListener::bind();

        let advertise = match host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() && ip.is_ipv6() => "::1",
            Ok(ip) if ip.is_unspecified() => "127.0.0.1",
            _ => host,
        }
        .to_string();
        // A service given certificate files serves TLS: its URL says so.
        let router_url = url_of(cfg.router.tls.enabled(), &advertise, &router_listener)?;
        let biz_url = url_of(cfg.biz.tls.enabled(), &advertise, &biz_listener)?;
        let backend_url = url_of(cfg.biz.backend_tls, &advertise, &backend_listener)?;
        let metrics_url = http_url(&advertise, &metrics_listener)?;
        let admin_url = url_of(cfg.router.admin_tls, &advertise, &admin_listener)?;
        let ws_url = format!(
            "{}://{}{}",
            if cfg.conn.tls.enabled() { "wss" } else { "ws" },
            advertised(ws_listener.local_addr()?, &advertise),
            conn_layer::WS_PATH
        );

        common::cors::validate(&cfg.cors_origins).context("bad --cors-origin")?;
        let cors_origins = own_origins(&router_url, &router_listener)?
            .into_iter()
            .chain(cfg.cors_origins.iter().cloned())
            .collect::<Vec<_>>();

        let discovery: Arc<dyn Discovery> = Arc::new(MemoryDiscovery::new());
        let live_config: Arc<dyn LiveConfig> = Arc::new(MemoryLiveConfig::default());
        let mut keyring = Keyring::default();
        keyring
            .insert(&cfg.api_key, "standalone", &[], common::time::now_ms())
            .map_err(|_| {
                anyhow::anyhow!("the API key must read rck_<id>_<secret of 16+ letters and digits>")
            })?;
        live_config
            .put(keys::API_KEYS, &keyring.to_stored())
            .await
            .context("cannot store the API key")?;
        let log: Arc<dyn MessageLog> =
            Arc::new(MemoryLog::with_budget(cfg.history, cfg.log_budget));
        let store: Arc<dyn room_biz::RoomStore> = Arc::new(room_biz::MemoryRoomStore::default());
        let registry = prometheus::Registry::new();

        // Internal calls stay on loopback, but still carry a token: one per
        // start, so nothing else on the machine can call them.
        let internal_token = random_token();
        let mut push_cfg = cfg.push.clone();
        push_cfg.internal_token = internal_token.clone();
        push_cfg.broadcast_threshold = cfg.broadcast_threshold;
        push_cfg.broadcast_exit_threshold = cfg.broadcast_threshold / 2;
        let mut conn_cfg = cfg.conn.clone();
        conn_cfg.internal_token = internal_token.clone();
        conn_cfg.token_secret = cfg.secret.clone();
        conn_cfg.advertise_host = advertise.clone();
        let mut biz_cfg = cfg.biz.clone();
        biz_cfg.internal_token = internal_token.clone();
        biz_cfg.advertise_host = advertise.clone();
        biz_cfg.token_secret = cfg.secret.clone();
        biz_cfg.cors_origins.extend(cors_origins.iter().cloned());
        let mut router_cfg = cfg.router.clone();
        router_cfg.cors_origins.extend(cors_origins);
        router_cfg.advertise_host = advertise.clone();
        router_cfg.admin_token = cfg.admin_token.clone();
        router_cfg.token_secret = cfg.secret.clone();

        // Push and room-biz stop after conn and router, so sessions can still
        // report leaves while they close.
        let back_stop = CancellationToken::new();
        let front_stop = shutdown.child_token();
        let mut back = JoinSet::new();
        let mut front = JoinSet::new();

        // The embedded archive: the biz `archive_url` if set (an SQLite
        // file, say), else in-memory SQLite, gone with the process like the
        // rest of standalone's state. No server either way.
        let archive_url = if cfg.biz.archive_url.is_empty() {
            archive::open::SQLITE_MEMORY
        } else {
            cfg.biz.archive_url.as_str()
        };
        let archiving = room_biz::Archiving {
            archive: archive::open(archive_url)
                .await
                .context("cannot open the embedded archive")?,
            queue: Arc::new(room_biz::MemoryQueue::default()),
            log: log.clone(),
        };
        let local_push = push_layer::LocalPushSlot::default();
        let deps = push_layer::Deps {
            discovery: discovery.clone(),
            log,
            registry: registry.clone(),
            local: Some(local_push.clone()),
        };
        back.spawn(run_named(
            "push",
            push_layer::run(push_cfg, deps, push_grpc, back_stop.clone()),
        ));
        // Room-biz publishes through the push node in process, and the conn
        // node attaches to it in process (no gRPC between them).
        let local_push = started(&local_push, "the push layer").await?;
        let pusher = crate::local_push::LocalPusher::new(
            local_push.clone(),
            Duration::from_millis(biz_cfg.push_timeout_ms),
        );
        let local_biz = room_biz::LocalBizSlot::default();
        let deps = room_biz::Deps {
            discovery: discovery.clone(),
            registry: registry.clone(),
            store,
            live_config: live_config.clone(),
            archiving: Some(archiving),
            pusher: Some(Arc::new(pusher)),
            local: Some(local_biz.clone()),
        };
        let listeners = room_biz::Listeners {
            http: biz_listener,
            backend: backend_listener,
            grpc: biz_grpc.into(),
            ops: None,
        };
        back.spawn(run_named(
            "room-biz",
            room_biz::run(biz_cfg, deps, listeners, back_stop.clone()),
        ));
        // The conn node sends joins, leaves and actions to room-biz in process.
        let local_biz = started(&local_biz, "room-biz").await?;
        let deps = conn_layer::Deps {
            discovery: discovery.clone(),
            live_config: live_config.clone(),
            registry: registry.clone(),
            local_push: Some(Arc::new(crate::local_push::LocalAttach::new(local_push))),
            local_biz: Some(Arc::new(crate::local_push::LocalActions::new(local_biz))),
        };
        let listeners = conn_layer::Listeners {
            ws: ws_listener,
            quic: quic_socket,
        };
        front.spawn(run_named(
            "conn",
            conn_layer::run(conn_cfg, deps, listeners, front_stop.clone()),
        ));
        let deps = router::Deps {
            discovery: discovery.clone(),
            live_config: live_config.clone(),
            registry: registry.clone(),
            pages: if cfg.demo {
                let trust = roomcast_client::TlsTrust::new(cfg.ca_file.as_deref())
                    .context("the demo page's --ca-file")?;
                Some(crate::demo::routes(
                    cfg.secret.clone(),
                    backend_url.clone(),
                    cfg.api_key.clone(),
                    roomcast_client::HttpClient::new(&trust),
                ))
            } else {
                None
            },
        };
        let listeners = router::Listeners {
            http: router_listener,
            admin: Some(admin_listener),
            ops: None,
        };
        front.spawn(run_named(
            "router",
            router::run(router_cfg, deps, listeners, front_stop.clone()),
        ));
        let readiness = Readiness::default();
        readiness.set(true);
        let ops = common::ops::router(registry.clone(), readiness);
        let metrics_stop = front_stop.clone();
        let metrics = common::http::serve_http(
            metrics_listener,
            ops,
            "ops",
            &cfg.metrics_http,
            &registry,
            metrics_stop,
        );
        front.spawn(async move { metrics.await.context("metrics endpoint failed") });

        let mut standalone = Self {
            router_url,
            ws_url,
            biz_url,
            backend_url,
            internal_auth: common::grpc::InternalAuth::new(&internal_token)?,
            internal_token: internal_token.clone(),
            metrics_url,
            admin_url,
            quic_url: None,
            quic_cert_sha256: None,
            discovery,
            live_config,
            front,
            back,
            back_stop,
            shutdown,
        };
        standalone.wait_until_discoverable().await?;
        let conns = standalone
            .discovery
            .watch(common::discovery::ServiceKind::Conn);
        if let Some(conn) = conns.borrow().first() {
            standalone.quic_url = conn.endpoints.get(transport::QUIC).cloned();
            standalone.quic_cert_sha256 = conn.endpoints.get(transport::QUIC_CERT_SHA256).cloned();
        }
        Ok(standalone)
    }

    /// Every service registers itself as it starts; wait until they all have,
    /// so the first client finds a complete system.
    async fn wait_until_discoverable(&self) -> anyhow::Result<()> {
        use common::discovery::ServiceKind;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let missing: Vec<&str> = ServiceKind::ALL
                .into_iter()
                .filter(|k| self.discovery.watch(*k).borrow().is_empty())
                .map(|k| k.as_str())
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("services did not start: {}", missing.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop everything (same as the shutdown token being cancelled).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Wait until every service has stopped (after the shutdown token is
    /// cancelled, or when a service fails).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(done) = self.front.join_next().await {
            if let Some(e) = flatten(done) {
                tracing::error!(error = %e, "A service failed; shutting down.");
                self.shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        self.back_stop.cancel();
        while let Some(done) = self.back.join_next().await {
            if let Some(e) = flatten(done) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn flatten(done: Result<anyhow::Result<()>, tokio::task::JoinError>) -> Option<anyhow::Error> {
    match done {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(join) => Some(anyhow::anyhow!("service task panicked: {join}")),
    }
}

async fn run_named<E>(
    name: &'static str,
    service: impl Future<Output = Result<(), E>>,
) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    service.await.with_context(|| format!("{name} failed"))
}

/// A service's in-process calls, once its `run` has built them (at its very
/// start; a service that fails before that never will).
pub(crate) async fn started<T: Clone>(
    slot: &std::sync::OnceLock<T>,
    service: &str,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(calls) = slot.get() {
            return Ok(calls.clone());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{service} did not start within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
