//! Conn node settings.

use serde::{Deserialize, Serialize};

/// Largest client frame accepted, in bytes.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Client heartbeat interval announced in Welcome.
pub const DEFAULT_HEARTBEAT_MS: u64 = 25_000;
/// Frames queued per connection before it counts as lagging.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 256;

/// Conn node configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Unique node id.
    pub node_id: String,
    /// Shared secret every internal gRPC call carries and every internal
    /// server requires (`x-roomcast-internal-token`). Required by the
    /// binary; empty (in-process tests) disables the check.
    pub internal_token: String,
    /// Host clients use to reach this node's listeners bound to `0.0.0.0`/`::`
    /// (goes into the advertised endpoints, see `common::advertise`).
    pub advertise_host: String,
    /// Placement zone.
    pub zone: String,
    /// HS256 secret for client tokens.
    pub token_secret: String,
    /// Optional EdDSA public key (PEM) for client tokens.
    pub token_eddsa_public_pem: Option<String>,
    /// Largest client frame, bytes; larger frames close the connection (1009).
    pub max_frame_bytes: usize,
    /// Heartbeat interval clients are told to ping at.
    pub heartbeat_ms: u64,
    /// Idle connections are closed after this many missed heartbeats.
    pub idle_heartbeats: u32,
    /// Time allowed for the Hello after the socket opens.
    pub hello_timeout_ms: u64,
    /// Outbound frames queued per connection.
    pub outbound_queue: usize,
    /// A connection still lagging this long after its first drop is disconnected.
    pub lag_disconnect_ms: u64,
    /// How long a disconnected slow consumer's socket is kept open so its
    /// `Error{SLOW_CONSUMER}` and close frame (queued behind everything its
    /// full socket holds) reach a client that reads again; then it is dropped.
    /// Its rooms and queue are released at once.
    pub slow_close_grace_ms: u64,
    /// Client frames per second per connection (sustained).
    pub upstream_rate_per_sec: u32,
    /// Client frames allowed in a burst.
    pub upstream_burst: u32,
    /// Rate-limited frames in a row after which the connection is closed.
    pub rate_limit_strikes: u32,
    /// How long a notify waits for more before pulling.
    pub coalesce_ms: u64,
    /// Rooms one connection may join.
    pub max_rooms_per_session: usize,
    /// Connections (sessions) this node accepts.
    pub max_connections: usize,
    /// The WebSocket listener's HTTP limits: the deadline for the upgrade
    /// request's head, and the cap of sockets not upgraded yet (handshakes),
    /// counted apart from `max_connections` (see `common::http`).
    pub http: common::http::HttpLimits,
    /// Go-aways to clients are spread over this window when draining.
    pub drain_window_ms: u64,
    /// Time to wait for a room subscription or a room-biz answer.
    pub request_timeout_ms: u64,
    /// Messages per pull when catching up from history.
    pub pull_batch: u32,
    /// PEM certificate chain for QUIC; with `quic_key_path`. Neither: a
    /// self-signed development certificate is generated at start.
    pub quic_cert_path: Option<String>,
    /// PEM private key for QUIC.
    pub quic_key_path: Option<String>,
    /// A draining node exits at the latest this long after the drain began.
    pub drain_deadline_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: common::process::default_node_id(common::discovery::ServiceKind::Conn),
            internal_token: String::new(),
            advertise_host: "127.0.0.1".into(),
            zone: "local".into(),
            token_secret: String::new(),
            token_eddsa_public_pem: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            idle_heartbeats: 3,
            hello_timeout_ms: 10_000,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            lag_disconnect_ms: 10_000,
            slow_close_grace_ms: 30_000,
            upstream_rate_per_sec: 20,
            upstream_burst: 40,
            rate_limit_strikes: 50,
            coalesce_ms: 2,
            max_rooms_per_session: 32,
            max_connections: 100_000,
            http: common::http::HttpLimits::default(),
            drain_window_ms: 2_000,
            request_timeout_ms: 10_000,
            pull_batch: 500,
            quic_cert_path: None,
            quic_key_path: None,
            drain_deadline_ms: 30_000,
        }
    }
}
