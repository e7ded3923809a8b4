//! The conn layer: holds client sockets and nothing else. It authenticates the
//! hello locally, keeps a local room index for fan-out, queues every frame per
//! connection with a bound, and forwards client actions to room-biz untouched.
//!
//! # Layout
//! - [`config`]: settings and defaults.
//! - `codec`: frames ↔ WebSocket messages (protobuf or JSON), encoded once.
//! - `cursor`: where a reader is in a room's stream and what each fact about
//!   the stream means for it (order, holes, overlaps, resets, resume): pure,
//!   used by the feeds and the sessions alike.
//! - `outbound`: what is queued for a connection (`Outbound`) and room
//!   batches encoded once.
//! - `session`: one task per connection.
//! - `handle`: the cheap handle fan-out uses (bounded queue, lag flags).
//! - `registry`: sessions by user (capped per user).
//! - `revocations`: token revocations this node was told of.
//! - `feeds`: the local room index and the per-room feed task.
//! - `sampling`: which low-priority messages a big room's frames carry, and
//!   the seq range each frame covers (pure).
//! - `commands`: what the upstream actor is told (`UpstreamCmd`).
//! - `upstream`: Attach streams to the push nodes.
//! - `pull`: reading a room's stream from its push node.
//! - `ws`: the WebSocket transport (the HTTP upgrade, and a guard that keeps
//!   oversized client frames out of the WebSocket layer).
//! - `quic`: the QUIC transport (TLS, length-delimited frames on one stream).
//! - `biz`: join authorization and the action stream to room-biz.
//! - `metrics`: Prometheus series.
//! - [`process`]: the `roomcast-conn` binary: config, discovery, listeners.

pub mod config;
pub mod error;
pub mod process;

mod attach;
mod biz;
mod codec;
mod commands;
mod cursor;
mod direct;
mod feeds;
mod handle;
mod heartbeat;
mod intake;
mod local;
mod metrics;
mod outbound;
mod pull;
mod quic;
mod registry;
mod revocations;
mod room_cursors;
mod sampling;
mod session;
mod upstream;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::advertise::advertised;
use common::auth::{TokenRules, TokenVerifier};
use common::discovery::{Discovery, NodeInfo, ServiceKind};
use common::live_config::LiveConfig;
use common::push_directory::PushDirectory;
use proto::transport;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use error::Error;
pub use local::{ActionReplies, LocalBizNode, LocalPushNode, PushFrames};

/// What a conn node needs from its environment.
pub struct Deps {
    /// Node registry.
    pub discovery: Arc<dyn Discovery>,
    /// Live configuration: the node watches its drain request there.
    pub live_config: Arc<dyn LiveConfig>,
    /// Where metrics are registered.
    pub registry: prometheus::Registry,
    /// A push node in this process (standalone): links to it skip gRPC.
    pub local_push: Option<Arc<dyn LocalPushNode>>,
    /// A room-biz node in this process (standalone): its action stream skips gRPC.
    pub local_biz: Option<Arc<dyn LocalBizNode>>,
}

/// The sockets a conn node serves, bound by the caller (port 0 in tests).
pub struct Listeners {
    /// WebSocket (HTTP upgrade at `/v1/ws`).
    pub ws: TcpListener,
    /// QUIC (UDP); `None` disables QUIC.
    pub quic: Option<std::net::UdpSocket>,
}

/// Queued commands for the upstream actor (joins wait when it is full).
const UPSTREAM_QUEUE: usize = 65_536;
/// How often the node's load is written to discovery.
const LOAD_REPORT_INTERVAL: Duration = Duration::from_secs(2);
/// Per-connection socket read buffer, held for the connection's life. Client
/// frames are small (hello, join, publish); a bigger one only grows when a
/// bigger frame arrives. (256 was tried: a hello with its token grew it back
/// past 512 on the first read.)
const READ_BUFFER_BYTES: usize = 512;
/// Why a node drains when its drain request (live configuration) arrived.
const DRAIN_REQUESTED: &str = "drain requested";
/// The path clients connect to (its wire name lives in `proto`).
pub use proto::transport::WS_PATH;

/// Everything a session and a feed reach for.
pub(crate) struct Ctx {
    pub(crate) cfg: Config,
    pub(crate) verifier: TokenVerifier,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) feeds: feeds::Feeds,
    pub(crate) registry: registry::Registry,
    pub(crate) revocations: revocations::Revocations,
    pub(crate) directory: PushDirectory,
    /// The push node in this process, if any (see [`local`]).
    pub(crate) local_push: Option<Arc<dyn LocalPushNode>>,
    pub(crate) biz: biz::BizLink,
    pub(crate) upstream: mpsc::Sender<commands::UpstreamCmd>,
    /// Cancelled when draining starts: sessions say go-away (spread over the
    /// drain window) and close.
    pub(crate) sessions_stop: CancellationToken,
    /// True once draining started (reported to discovery).
    pub(crate) draining: std::sync::atomic::AtomicBool,
    pub(crate) tracker: TaskTracker,
    /// One clock for every session's rate limiter: building a clock per
    /// session calibrates it (CPUID, which traps to the hypervisor in a VM).
    pub(crate) limiter_clock: governor::clock::QuantaClock,
}

/// Run a conn node until `shutdown` or a drain request, then drain and return.
///
/// Draining: the node is marked draining in discovery (the router stops
/// handing it out), every client gets a go-away at a random moment within
/// `drain_window_ms` (deliveries continue until then), and the node returns
/// when its last session ended or at `drain_deadline_ms`, deregistering last.
/// A drain request (`drain/{node_id}` in live configuration) is consumed when
/// the drain ends; one found at start was left by an earlier process with
/// this node id and is cleared, so a restarted node serves.
pub async fn run(
    cfg: Config,
    deps: Deps,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let verifier = TokenVerifier::new(
        Some(&cfg.token_secret),
        cfg.token_eddsa_public_pem.as_deref(),
    )?
    .with_rules(TokenRules::new(
        cfg.token_audience.as_deref(),
        cfg.token_issuer.as_deref(),
        cfg.token_max_lifetime_secs,
    ));
    let internal_auth = common::grpc::InternalAuth::new(&cfg.internal_token)
        .map_err(|e| Error::Config(e.to_string()))?;
    let local = listeners.ws.local_addr().map_err(Error::Bind)?;
    if let Some(url) = &cfg.public_ws_url {
        common::advertise::check_public_url("public_ws_url", url, &["ws", "wss"])
            .map_err(Error::Config)?;
    }
    let tls = common::tls::ServerTls::start(&cfg.tls).map_err(|e| Error::Tls(e.to_string()))?;
    let ws_url = common::advertise::listener_url(
        cfg.public_ws_url.as_deref(),
        common::advertise::scheme(tls.is_some(), "ws", "wss"),
        local,
        &cfg.advertise_host,
        WS_PATH,
    );
    let (upstream_tx, upstream_rx) = mpsc::channel(UPSTREAM_QUEUE);
    let timeout = Duration::from_millis(cfg.request_timeout_ms);
    let quic = match listeners.quic {
        Some(socket) => {
            quic::size_receive_buffer(&socket);
            let quic_tls = quic::tls(&cfg, tls.as_ref())?;
            let quic_addr = socket.local_addr().map_err(Error::Quic)?;
            let endpoint = quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                Some(quic_tls.server),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(Error::Quic)?;
            Some((
                endpoint,
                format!("quic://{}", advertised(quic_addr, &cfg.advertise_host)),
                quic_tls.cert_sha256,
            ))
        }
        None => None,
    };
    let ctx = Arc::new(Ctx {
        verifier,
        metrics: metrics::Metrics::new(&deps.registry),
        limiter_clock: governor::clock::QuantaClock::default(),
        feeds: feeds::Feeds::default(),
        registry: registry::Registry::default(),
        revocations: revocations::Revocations::new(
            cfg.revocations_max,
            cfg.token_max_lifetime_secs,
        ),
        directory: PushDirectory::new(deps.discovery.as_ref(), internal_auth.clone()),
        local_push: deps.local_push,
        biz: biz::BizLink::new(
            deps.discovery.as_ref(),
            cfg.node_id.clone(),
            timeout,
            internal_auth,
            deps.local_biz,
        ),
        upstream: upstream_tx.clone(),
        sessions_stop: CancellationToken::new(),
        draining: std::sync::atomic::AtomicBool::new(false),
        tracker: TaskTracker::new(),
        cfg,
    });

    let links_stop = CancellationToken::new();
    let upstream_task = tokio::spawn(upstream::run(
        ctx.clone(),
        upstream_tx,
        upstream_rx,
        links_stop.clone(),
    ));
    let heartbeat_task = tokio::spawn(heartbeat::run(ctx.clone(), links_stop.clone()));

    let mut node = NodeInfo {
        id: ctx.cfg.node_id.clone(),
        zone: ctx.cfg.zone.clone(),
        ..NodeInfo::default()
    };
    node.endpoints.insert(transport::WS.into(), ws_url.clone());
    let listeners_stop = CancellationToken::new();
    let quic_task = match quic {
        Some((endpoint, url, fingerprint)) => {
            tracing::info!(node_id = %ctx.cfg.node_id, quic_url = %url, cert_sha256 = ?fingerprint, "QUIC serving.");
            node.endpoints.insert(transport::QUIC.into(), url);
            // Only a development certificate is pinned; a configured one is
            // verified by clients like any certificate.
            if let Some(fingerprint) = fingerprint {
                node.endpoints
                    .insert(transport::QUIC_CERT_SHA256.into(), fingerprint);
            }
            Some(tokio::spawn(quic::serve(
                ctx.clone(),
                endpoint,
                listeners_stop.clone(),
            )))
        }
        None => None,
    };
    // A drain request is for the process that was asked: one left from an
    // earlier run of this node id (killed while draining, or etcd away when
    // it finished) must not drain this one the moment it starts.
    let drain_key = common::live_config::keys::drain(&ctx.cfg.node_id);
    if deps.live_config.get(&drain_key).await?.is_some() {
        deps.live_config.delete(&drain_key).await?;
        tracing::info!(node_id = %ctx.cfg.node_id, "Cleared a drain request left from an earlier run of this node id.");
    }
    deps.discovery
        .register(ServiceKind::Conn, node.clone())
        .await?;
    let reporter_stop = CancellationToken::new();
    let reporter = tokio::spawn(report_load(
        ctx.clone(),
        deps.discovery.clone(),
        node,
        reporter_stop.clone(),
    ));
    tracing::info!(node_id = %ctx.cfg.node_id, %ws_url, "Conn node serving.");

    let app = Router::new()
        .route(WS_PATH, get(upgrade))
        .with_state(ctx.clone());
    let server = tokio::spawn(common::http::serve_http_tls(
        listeners.ws,
        app,
        "conn_ws",
        &ctx.cfg.http,
        tls,
        &deps.registry,
        listeners_stop.clone(),
    ));

    let mut drain_request = deps.live_config.watch(&drain_key);
    let reason = tokio::select! {
        _ = shutdown.cancelled() => "shutdown",
        _ = drain_request.wait_for(|v| v.is_some()) => DRAIN_REQUESTED,
    };
    tracing::info!(node_id = %ctx.cfg.node_id, reason, "Draining.");
    ctx.draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    reporter_stop.cancel();
    let _ = reporter.await;
    report_once(&ctx, deps.discovery.as_ref(), &ctx.cfg.node_id).await;
    ctx.sessions_stop.cancel();
    // A session registered after this sees `sessions_stop` itself.
    for session in ctx.registry.sessions() {
        session.drain();
    }
    let deadline = Duration::from_millis(ctx.cfg.drain_deadline_ms.max(ctx.cfg.drain_window_ms));
    let all_gone = async {
        while ctx.metrics.connections.get() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(deadline, all_gone).await.is_err() {
        tracing::warn!(
            left = ctx.metrics.connections.get(),
            "Drain deadline reached with sessions still open."
        );
    }
    if let Err(error) = deps
        .discovery
        .deregister(ServiceKind::Conn, &ctx.cfg.node_id)
        .await
    {
        tracing::warn!(%error, "Could not deregister conn node.");
    }
    if reason == DRAIN_REQUESTED {
        // The request is done: consume it, so the next process with this
        // node id serves (it would clear a leftover anyway).
        if let Err(error) = deps.live_config.delete(&drain_key).await {
            tracing::warn!(%error, "Could not clear the drain request; the next start clears it.");
        }
    }
    listeners_stop.cancel();
    ctx.tracker.close();
    if tokio::time::timeout(Duration::from_secs(3), ctx.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("Sessions did not finish within the grace period.");
    }
    links_stop.cancel();
    ctx.feeds.close_all();
    let _ = upstream_task.await;
    let _ = heartbeat_task.await;
    if let Some(task) = quic_task {
        let _ = task.await;
    }
    match server.await {
        Ok(result) => result.map_err(Error::Serve),
        Err(join) => Err(Error::Serve(std::io::Error::other(join))),
    }
}

async fn upgrade(
    State(ctx): State<Arc<Ctx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: ws::Upgrade,
) -> Response {
    if ctx.sessions_stop.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "conn node is shutting down",
        )
            .into_response();
    }
    if ctx.metrics.connections.get() as usize >= ctx.cfg.max_connections {
        return (StatusCode::SERVICE_UNAVAILABLE, "conn node is full").into_response();
    }
    // Every frame over the limit, whatever size its header claims, is
    // answered with TOO_LARGE and close 1009 (see `ws`).
    let wire = ws.wire();
    let (max_frame_bytes, tracker) = (ctx.cfg.max_frame_bytes, ctx.tracker.clone());
    ws.respond(
        max_frame_bytes,
        READ_BUFFER_BYTES,
        &tracker,
        move |sink, stream| session::serve(ctx, sink, stream, wire, peer),
    )
}

async fn report_load(
    ctx: Arc<Ctx>,
    discovery: Arc<dyn Discovery>,
    node: NodeInfo,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(LOAD_REPORT_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut node = node.clone();
        fill_load(&ctx, &mut node);
        if let Err(error) = discovery.register(ServiceKind::Conn, node).await {
            tracing::warn!(%error, "Could not report conn node load.");
        }
    }
}

fn fill_load(ctx: &Ctx, node: &mut NodeInfo) {
    node.connections = ctx.metrics.connections.get().max(0) as u64;
    node.rooms = ctx.feeds.len() as u64;
    node.draining = ctx.draining.load(std::sync::atomic::Ordering::Relaxed);
}

/// Publish the draining flag at once (the router must stop choosing us now).
async fn report_once(ctx: &Ctx, discovery: &dyn Discovery, node_id: &str) {
    let Some(mut node) = discovery
        .watch(ServiceKind::Conn)
        .borrow()
        .iter()
        .find(|n| n.id == node_id)
        .cloned()
    else {
        return;
    };
    fill_load(ctx, &mut node);
    if let Err(error) = discovery.register(ServiceKind::Conn, node).await {
        tracing::warn!(%error, "Could not mark the node draining.");
    }
}
