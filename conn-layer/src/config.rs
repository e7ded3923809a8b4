//! Conn node settings.

use serde::{Deserialize, Serialize};

/// Largest client frame accepted, in bytes.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Client heartbeat interval announced in Welcome.
pub const DEFAULT_HEARTBEAT_MS: u64 = 25_000;
/// Frames queued per connection before it counts as lagging.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 256;
/// Sessions one uid may hold on one conn node; the next hello is refused.
pub const DEFAULT_MAX_SESSIONS_PER_UID: usize = 8;
/// How long before its token expires a session is sent `TokenExpiring`.
pub const DEFAULT_TOKEN_EXPIRY_WARNING_SECS: u64 = 60;
/// QUIC handshakes in progress above which new clients must first answer a
/// stateless Retry.
pub const DEFAULT_QUIC_RETRY_ABOVE: usize = 256;
/// Revocations a conn node remembers (newest kept; older ones are still
/// enforced by room-biz at join).
pub const DEFAULT_REVOCATIONS_MAX: usize = 100_000;
/// Sessions of a room on one conn node at which its low-priority messages
/// are sampled (docs/protocol.md, "Sampling and coverage").
pub const DEFAULT_SAMPLE_ABOVE_MEMBERS: u32 = 1_000;
/// Low-priority messages per second each session of a sampled room gets at
/// most: about what a person can read.
pub const DEFAULT_SAMPLE_LOW_PER_SEC: u32 = 20;

/// Conn node configuration.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// Required `aud` of client tokens; unset: tokens naming an audience are refused.
    pub token_audience: Option<String>,
    /// Required `iss` of client tokens; unset: not checked.
    pub token_issuer: Option<String>,
    /// Longest client token lifetime (`exp - iat`, or `exp - now` without
    /// `iat`), seconds; 0: no limit.
    pub token_max_lifetime_secs: u64,
    /// A session is sent `TokenExpiring` this long before its token expires
    /// (checked on the heartbeat tick, so up to `heartbeat_ms` later); one
    /// not renewed by `Refresh` is closed when it expires.
    pub token_expiry_warning_secs: u64,
    /// Sessions one uid may hold on this node; the next hello is refused
    /// with `TOO_MANY_SESSIONS`. 0: no limit.
    pub max_sessions_per_uid: usize,
    /// Revoked uids remembered for refusing hellos and refreshes; room-biz
    /// also refuses revoked tokens at join (docs/protocol.md, "Revocation").
    pub revocations_max: usize,
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
    /// Certificate files of the public listeners: set, the WebSocket
    /// listener speaks `wss://` and QUIC serves this certificate (clients
    /// verify it, no pin). Unset: plain `ws://`, and QUIC generates a
    /// self-signed development certificate whose pin goes to discovery.
    /// Reloaded when the files change.
    pub tls: common::tls::TlsFiles,
    /// WebSocket URL advertised to clients instead of the listener's own
    /// (`wss://lb.example/v1/ws` behind a TLS-terminating load balancer).
    pub public_ws_url: Option<String>,
    /// QUIC handshakes in progress at or above which a new client is sent a
    /// stateless Retry (address validation; a spoofed flood then costs one
    /// packet each). 0: every client is validated first (one more round trip).
    pub quic_retry_above: usize,
    /// A draining node exits at the latest this long after the drain began.
    pub drain_deadline_ms: u64,
    /// Sessions of one room on this node at which the room's low-priority
    /// messages (plain comments) are sampled; it stops below nine tenths of
    /// it. 0: every room samples.
    pub sample_above_members: u32,
    /// Low-priority messages per second a sampled room's sessions get at most
    /// (a token bucket per room on this node; every frame still covers its
    /// whole seq range). 0: no sampling.
    pub sample_low_per_sec: u32,
}

/// Secrets (the token secret) are redacted, like in `--print-config`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        common::redact::fmt_config(self, "Config", f)
    }
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
            token_audience: None,
            token_issuer: None,
            token_max_lifetime_secs: common::auth::DEFAULT_TOKEN_MAX_LIFETIME_SECS,
            token_expiry_warning_secs: DEFAULT_TOKEN_EXPIRY_WARNING_SECS,
            max_sessions_per_uid: DEFAULT_MAX_SESSIONS_PER_UID,
            revocations_max: DEFAULT_REVOCATIONS_MAX,
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
            tls: common::tls::TlsFiles::default(),
            public_ws_url: None,
            quic_retry_above: DEFAULT_QUIC_RETRY_ABOVE,
            drain_deadline_ms: 30_000,
            sample_above_members: DEFAULT_SAMPLE_ABOVE_MEMBERS,
            sample_low_per_sec: DEFAULT_SAMPLE_LOW_PER_SEC,
        }
    }
}
