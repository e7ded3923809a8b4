//! Connection settings.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::Transport;

/// What a [`TokenProvider`] returns: a fresh token, or why there is none.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Fetches a fresh token (from the app backend) when the server warns that the
/// session's token expires soon (`TokenExpiring`); the SDK then renews the session
/// with a `Refresh` frame, without reconnecting.
#[derive(Clone)]
pub struct TokenProvider(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl TokenProvider {
    /// A provider calling `fetch` for each renewal.
    pub fn new<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(fetch())))
    }

    /// A fresh token.
    pub(crate) fn fetch(&self) -> TokenFuture {
        (self.0)()
    }
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenProvider")
    }
}

/// Capacity of the command queue from [`Client`](crate::Client) handles to the connection task.
pub const DEFAULT_COMMAND_CAPACITY: usize = 256;
/// Capacity of the event queue from the connection task to [`Events`](crate::Events).
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;
/// Shortest reconnect delay.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a request (route, handshake, join, publish, leave) may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Ping interval used when neither the options nor the server give one.
pub const FALLBACK_PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long one endpoint may take to connect and answer the hello.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Consecutive failed long-connection attempts before switching to HTTP polling.
pub const DEFAULT_FALLBACK_AFTER_FAILURES: u32 = 3;
/// While polling, how often the long connection is tried again.
pub const DEFAULT_LONG_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// How long a transport that failed to connect is skipped on later reconnects.
pub const DEFAULT_REMEMBER_FAILED_TRANSPORT: Duration = Duration::from_secs(300);
/// How long one long poll may wait on the server for news.
pub const DEFAULT_POLLING_WAIT: Duration = Duration::from_secs(25);
/// How often client stats are reported (besides every connect and switch).
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(60);

/// Everything [`Client::connect`](crate::Client::connect) needs.
///
/// Every queue is bounded; the capacities are explicit here.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Router base URL, for example `http://127.0.0.1:8600`.
    pub router_url: String,
    /// App-issued JWT sent in the hello frame (replaced by
    /// [`Client::set_token`](crate::Client::set_token) and by the token provider).
    pub token: String,
    /// Called for a fresh token when the server warns the current one expires soon;
    /// `None`: the app renews with [`Client::set_token`](crate::Client::set_token) on
    /// [`Event::TokenExpiring`](crate::Event::TokenExpiring), or the session is closed
    /// when the token expires.
    pub token_provider: Option<TokenProvider>,
    /// User id, sent to the router (rollout decisions hash it).
    pub uid: String,
    /// Device id, sent to the router and in the hello frame.
    pub device_id: String,
    /// App version, sent to the router (rollout version ranges).
    pub app_version: String,
    /// Platform name (`linux`, `ios`, ...), sent to the router.
    pub platform: String,
    /// Bounded capacity of the handle → connection task queue.
    pub command_capacity: usize,
    /// Bounded capacity of the connection task → [`Events`](crate::Events) queue. When it
    /// is full the connection task waits, so a consumer that stops reading events
    /// eventually stalls the socket (and the server reports it lagged).
    pub event_capacity: usize,
    /// Shortest reconnect delay (lower bound of the jitter).
    pub backoff_min: Duration,
    /// Longest reconnect delay (upper bound of the jitter cap).
    pub backoff_max: Duration,
    /// Deadline for each request: routing, join, publish, leave, close, an HTTP action.
    pub request_timeout: Duration,
    /// Deadline for one endpoint: transport connect (TCP + WebSocket upgrade, or the QUIC
    /// handshake) plus hello → welcome. A QUIC endpoint behind a firewall that drops UDP
    /// never answers, so this bounds what each failed attempt costs.
    pub connect_timeout: Duration,
    /// Ping interval; `None` uses half the `heartbeat_ms` the server announces.
    pub ping_interval: Option<Duration>,
    /// Long-connection transports this client may use, among the router's endpoints. The
    /// router's order decides which is tried first (QUIC, then WebSocket);
    /// [`Transport::Polling`] here is ignored (polling is the fallback, not an endpoint).
    pub transports: Vec<Transport>,
    /// Hex SHA-256 of the QUIC server's DER certificate (colons allowed). Overrides the
    /// router's `quic_cert_sha256`. Without either, the certificate must chain to the
    /// webpki (Mozilla) roots.
    pub quic_cert_sha256: Option<String>,
    /// PEM file of the CA certificates to trust for `https://`, `wss://` and QUIC (a
    /// private CA); `None`: the webpki (Mozilla) roots. A server whose certificate does not
    /// chain to them fails with a certificate error.
    pub ca_file: Option<PathBuf>,
    /// Switch to HTTP polling after this many consecutive failed long-connection attempts
    /// (each endpoint tried counts as one). 0 never switches on failures; the router
    /// answering `mode: short` always switches.
    pub fallback_after_failures: u32,
    /// While polling, try the long connection again this often.
    pub long_retry_interval: Duration,
    /// After a transport (QUIC or WebSocket) fails to connect, skip it on the next
    /// reconnects for this long, so a network that blocks it does not cost a
    /// `connect_timeout` per reconnect; a success over it forgets the failure. Never skips
    /// the last transport left to try. Zero: always try every transport.
    pub remember_failed_transport: Duration,
    /// How long each long poll may wait on the server for news (`wait=`, whole seconds).
    pub polling_wait: Duration,
    /// Report connect time, failures per transport and RTT to the router
    /// (`POST /v1/client-stats`), best effort.
    pub stats: bool,
    /// How often stats are reported besides after each connect and each switch to polling.
    pub stats_interval: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            router_url: String::new(),
            token: String::new(),
            token_provider: None,
            uid: String::new(),
            device_id: String::new(),
            app_version: env!("CARGO_PKG_VERSION").to_string(),
            platform: std::env::consts::OS.to_string(),
            command_capacity: DEFAULT_COMMAND_CAPACITY,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ping_interval: None,
            transports: vec![Transport::Quic, Transport::Ws],
            quic_cert_sha256: None,
            ca_file: None,
            fallback_after_failures: DEFAULT_FALLBACK_AFTER_FAILURES,
            long_retry_interval: DEFAULT_LONG_RETRY_INTERVAL,
            remember_failed_transport: DEFAULT_REMEMBER_FAILED_TRANSPORT,
            polling_wait: DEFAULT_POLLING_WAIT,
            stats: true,
            stats_interval: DEFAULT_STATS_INTERVAL,
        }
    }
}

impl ConnectOptions {
    /// Options with defaults for everything but the router URL and the token.
    pub fn new(router_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            router_url: router_url.into(),
            token: token.into(),
            ..Self::default()
        }
    }

    /// Renew tokens with `provider` when the server warns of expiry (builder style).
    pub fn token_provider(mut self, provider: TokenProvider) -> Self {
        self.token_provider = Some(provider);
        self
    }

    /// Set the user id (builder style).
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = uid.into();
        self
    }

    /// Set the device id (builder style).
    pub fn device_id(mut self, device_id: impl Into<String>) -> Self {
        self.device_id = device_id.into();
        self
    }

    /// Restrict the long-connection transports (builder style), e.g. `[Transport::Ws]`.
    pub fn transports(mut self, transports: impl Into<Vec<Transport>>) -> Self {
        self.transports = transports.into();
        self
    }

    /// Trust the CA certificates of the PEM file at `path` instead of the webpki roots
    /// (builder style).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Pin the QUIC server certificate by the hex SHA-256 of its DER (builder style).
    pub fn quic_cert_sha256(mut self, fingerprint: impl Into<String>) -> Self {
        self.quic_cert_sha256 = Some(fingerprint.into());
        self
    }
}
