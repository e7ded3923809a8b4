//! Serving an axum app on a bound listener with the limits a socket open to
//! the world needs. Every HTTP listener of every service goes through
//! [`serve_http`] (WebSocket upgrades, room API, router, admin, ops).
//!
//! # What it bounds
//! - **Request heads.** A connection must send a complete request head within
//!   [`HttpLimits::header_read_timeout_ms`] of opening, and again of the end
//!   of its previous response: the same timer is the idle timeout of a
//!   keep-alive connection. Late: the connection is closed without an answer.
//! - **Open connections.** At most [`HttpLimits::max_connections`] HTTP
//!   connections per listener: idle, sending a head, or in a request. A
//!   WebSocket stops counting here once upgraded (the conn node admits
//!   sessions against its own `max_connections`). At the cap, a new
//!   connection evicts the oldest one that has not sent a request head yet
//!   (a client that is really there sends its head within a round trip); if
//!   every open connection is in a request, the new one is closed at once.
//!
//! - **TLS handshakes.** On a TLS listener ([`serve_http_tls`]) the
//!   handshake happens inside the connection's slot (evictable like a
//!   connection that sent no head) and must end within the same head
//!   deadline; a plain-HTTP request to it fails the handshake and is closed.
//!
//! HTTP/1.1 only (with upgrades): nothing Roomcast serves needs HTTP/2, and
//! HTTP/2 has no deadline for a silent peer.
//!
//! # Metrics
//! `roomcast_http_connections{listener}` (open now) and
//! `roomcast_http_connections_dropped_total{listener, reason}` with reason
//! `header_timeout`, `evicted`, `refused` or `tls_handshake`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use crate::tls::ServerTls;

/// Default deadline for a request head (and idle keep-alive).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default cap of open connections on a public listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default cap of an ops (`/metrics`, `/livez`, `/readyz`) or admin listener:
/// a scraper and a few probes.
pub const DEFAULT_MAX_OPS_CONNECTIONS: usize = 64;
/// Pause after an accept error that is not about one connection (out of
/// file descriptors): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Limits of one HTTP listener (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// A connection is closed when a complete request head has not arrived
    /// this long after it opened or after its previous response ended.
    pub header_read_timeout_ms: u64,
    /// Open HTTP connections on the listener, not yet upgraded ones included.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl HttpLimits {
    /// Limits of an ops or admin listener.
    pub fn ops() -> Self {
        Self {
            max_connections: DEFAULT_MAX_OPS_CONNECTIONS,
            ..Self::default()
        }
    }

    /// Why these limits cannot be used, if they cannot.
    pub fn problem(&self) -> Option<&'static str> {
        if self.header_read_timeout_ms == 0 {
            Some("header_read_timeout_ms must be at least 1")
        } else if self.max_connections == 0 {
            Some("max_connections must be at least 1")
        } else {
            None
        }
    }
}

/// Serve `app` on `listener` until `shutdown`, then close idle connections
/// and those that sent no request yet, let requests in flight finish, and
/// return once every connection closed (callers bound that with their grace).
///
/// `name` labels the metrics (`conn_ws`, `biz_http`, `router_admin`, …).
/// Requests carry [`ConnectInfo<SocketAddr>`] of the peer.
pub fn serve_http(
    listener: TcpListener,
    app: Router,
    name: &'static str,
    limits: &HttpLimits,
    registry: &Registry,
    shutdown: CancellationToken,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    serve_http_tls(listener, app, name, limits, None, registry, shutdown)
}

/// [`serve_http`], speaking TLS (`https://`, `wss://`) when `tls` is given.
pub fn serve_http_tls(
    listener: TcpListener,
    app: Router,
    name: &'static str,
    limits: &HttpLimits,
    tls: Option<ServerTls>,
    registry: &Registry,
    shutdown: CancellationToken,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let metrics = Metrics::new(registry, name);
    let limits = limits.clone();
    run(listener, app, name, limits, tls, metrics, shutdown)
}

async fn run(
    listener: TcpListener,
    app: Router,
    name: &'static str,
    limits: HttpLimits,
    tls: Option<ServerTls>,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let head_deadline = Duration::from_millis(limits.header_read_timeout_ms.max(1));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(head_deadline)
        .keep_alive(true);
    let max = limits.max_connections.max(1);
    let open = Arc::new(AtomicUsize::new(0));
    let waiting = Arc::new(Mutex::new(VecDeque::<Weak<Slot>>::new()));
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(listener = name, %error, "Cannot accept a connection.");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        if open.load(Ordering::Acquire) >= max && !evict_oldest_waiting(&waiting) {
            metrics.refused.inc();
            tracing::debug!(listener = name, %peer, "Connection refused: every slot is in a request.");
            drop(stream);
            continue;
        }
        // Small responses and deliveries must leave at once: no Nagle delay.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "Cannot set TCP_NODELAY.");
        }
        let slot = Arc::new(Slot::default());
        remember_waiting(&waiting, &slot, max);
        let open_guard = OpenGuard::new(open.clone(), metrics.open.clone());
        let conn = Connection {
            http1: http1.clone(),
            peer,
            app: app.clone(),
            slot,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        let tls = tls.clone();
        tracker.spawn(async move {
            let _open = open_guard;
            match tls {
                None => conn.serve(stream).await,
                Some(tls) => {
                    if let Some(stream) = conn.handshake(&tls, stream, head_deadline).await {
                        conn.serve(stream).await;
                    }
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Connection {
    http1: hyper::server::conn::http1::Builder,
    peer: SocketAddr,
    app: Router,
    slot: Arc<Slot>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl Connection {
    /// The TLS handshake, inside the connection's slot: evicted like a
    /// connection that sent no head, bounded by the head deadline.
    async fn handshake(
        &self,
        tls: &ServerTls,
        stream: tokio::net::TcpStream,
        deadline: Duration,
    ) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        let peer = self.peer;
        let handshake = tokio::time::timeout(deadline, tls.acceptor().accept(stream));
        tokio::select! {
            result = handshake => match result {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(error)) => {
                    self.metrics.tls_handshake.inc();
                    tracing::debug!(%peer, %error, "TLS handshake failed.");
                    None
                }
                Err(_) => {
                    self.metrics.tls_handshake.inc();
                    tracing::debug!(%peer, "TLS handshake not finished in time.");
                    None
                }
            },
            () = self.slot.evict.cancelled() => {
                self.metrics.evicted.inc();
                tracing::debug!(%peer, "Connection evicted in its TLS handshake: the listener is full.");
                None
            }
            () = self.shutdown.cancelled() => None,
        }
    }

    /// Serve HTTP on `stream` until it ends, is evicted, or `shutdown`.
    async fn serve<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let Self {
            http1,
            peer,
            app,
            slot,
            metrics,
            shutdown,
        } = self;
        let evicted = slot.evict.clone();
        let state = slot.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            slot.mark_active();
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
        });
        let conn = http1
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = evicted.cancelled() => {
                metrics.evicted.inc();
                tracing::debug!(%peer, "Connection evicted: no request head and the listener is full.");
                return;
            }
            () = shutdown.cancelled() => {
                // Nothing asked yet, nothing to finish: close now rather than
                // wait out the head deadline.
                if state.is_waiting() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(error) = result {
            if error.is_timeout() {
                metrics.header_timeout.inc();
                tracing::debug!(%peer, "Connection closed: no request head in time.");
            } else {
                tracing::debug!(%peer, %error, "Connection ended with an error.");
            }
        }
    }
}

/// Errors about one connection that leave the listener healthy.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

const WAITING: u8 = 0;
const ACTIVE: u8 = 1;
const EVICTED: u8 = 2;

/// A connection's place in the eviction order.
struct Slot {
    /// `WAITING` until its first request head, then `ACTIVE`; `EVICTED` once
    /// chosen to make room (it never serves a request then).
    state: AtomicU8,
    evict: CancellationToken,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(WAITING),
            evict: CancellationToken::new(),
        }
    }
}

impl Slot {
    fn mark_active(&self) {
        let _ = self
            .state
            .compare_exchange(WAITING, ACTIVE, Ordering::AcqRel, Ordering::Acquire);
    }

    fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// Claim this slot for eviction; false if it already sent a head.
    fn try_evict(&self) -> bool {
        let claimed = self
            .state
            .compare_exchange(WAITING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if claimed {
            self.evict.cancel();
        }
        claimed
    }
}

/// Queue a new connection, oldest first. Entries of connections that ended
/// or sent a head are skipped when evicting and pruned when the queue grows
/// past twice the cap, so it stays bounded.
fn remember_waiting(waiting: &Mutex<VecDeque<Weak<Slot>>>, slot: &Arc<Slot>, max: usize) {
    let mut queue = waiting.lock().unwrap_or_else(|p| p.into_inner());
    if queue.len() >= max.saturating_mul(2) {
        queue.retain(|w| w.upgrade().is_some_and(|s| s.is_waiting()));
    }
    queue.push_back(Arc::downgrade(slot));
}

/// Evict the oldest connection that sent no request head; false if none.
fn evict_oldest_waiting(waiting: &Mutex<VecDeque<Weak<Slot>>>) -> bool {
    let mut queue = waiting.lock().unwrap_or_else(|p| p.into_inner());
    while let Some(oldest) = queue.pop_front() {
        if oldest.upgrade().is_some_and(|slot| slot.try_evict()) {
            return true;
        }
    }
    false
}

/// Counts a connection open until dropped.
struct OpenGuard {
    open: Arc<AtomicUsize>,
    gauge: prometheus::IntGauge,
}

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>, gauge: prometheus::IntGauge) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        gauge.inc();
        Self { open, gauge }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// The series of one listener.
#[derive(Clone)]
struct Metrics {
    open: prometheus::IntGauge,
    header_timeout: prometheus::IntCounter,
    evicted: prometheus::IntCounter,
    refused: prometheus::IntCounter,
    tls_handshake: prometheus::IntCounter,
}

/// One set of collectors per process: services sharing a registry (or a
/// process) share the series, told apart by the `listener` label.
struct Collectors {
    open: IntGaugeVec,
    dropped: IntCounterVec,
}

fn collectors() -> &'static Collectors {
    static COLLECTORS: OnceLock<Collectors> = OnceLock::new();
    COLLECTORS.get_or_init(|| Collectors {
        open: IntGaugeVec::new(
            Opts::new(
                "roomcast_http_connections",
                "HTTP connections open on a listener (not yet upgraded ones included).",
            ),
            &["listener"],
        )
        .expect("valid metric"),
        dropped: IntCounterVec::new(
            Opts::new(
                "roomcast_http_connections_dropped_total",
                "HTTP connections closed by the server: header_timeout, evicted (listener full, no request head yet), refused (listener full), tls_handshake (failed or too slow).",
            ),
            &["listener", "reason"],
        )
        .expect("valid metric"),
    })
}

impl Metrics {
    fn new(registry: &Registry, listener: &str) -> Self {
        let all = collectors();
        crate::ops::register(registry, &all.open);
        crate::ops::register(registry, &all.dropped);
        Self {
            open: all.open.with_label_values(&[listener]),
            header_timeout: all.dropped.with_label_values(&[listener, "header_timeout"]),
            evicted: all.dropped.with_label_values(&[listener, "evicted"]),
            refused: all.dropped.with_label_values(&[listener, "refused"]),
            tls_handshake: all.dropped.with_label_values(&[listener, "tls_handshake"]),
        }
    }
}
