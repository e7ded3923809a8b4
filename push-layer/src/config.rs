//! Push node settings.

use serde::{Deserialize, Serialize};

/// Messages kept in memory per room for pulls.
pub const DEFAULT_RING_SIZE: usize = 512;
/// Members above which a room is broadcast in-stream.
pub const DEFAULT_BROADCAST_THRESHOLD: u32 = 500;
/// Members below which a broadcast room returns to notify/pull (hysteresis).
pub const DEFAULT_BROADCAST_EXIT_THRESHOLD: u32 = 250;
/// How long broadcast messages are gathered into one batch.
pub const DEFAULT_BROADCAST_WINDOW_MS: u64 = 5;
/// Largest appended batch (encoded message bytes) a notify carries inline.
pub const DEFAULT_NOTIFY_INLINE_MAX_BYTES: usize = 16 * 1024;

/// Push node configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Unique node id.
    pub node_id: String,
    /// Shared secret every internal gRPC call carries and every internal
    /// server requires (`x-roomcast-internal-token`). Required by the
    /// binary; empty (in-process tests) disables the check.
    pub internal_token: String,
    /// Host other services use to reach this node's gRPC port when it is bound
    /// to `0.0.0.0`/`::` (see `common::advertise`).
    pub advertise_host: String,
    /// Recent messages kept in memory per room.
    pub ring_size: usize,
    /// Members at or above which a room switches to broadcast.
    pub broadcast_threshold: u32,
    /// Members below which a broadcast room switches back to notify.
    pub broadcast_exit_threshold: u32,
    /// Broadcast batching window in milliseconds (0 sends each append at once).
    pub broadcast_window_ms: u64,
    /// A notify-mode room's appended batch whose encoded messages add up to
    /// at most this many bytes travels inside the notify, so a conn node that
    /// is continuous applies it without a pull (0: never inline, always pull).
    pub notify_inline_max_bytes: usize,
    /// Publishes appended to the log in one call at most.
    pub publish_batch_max: usize,
    /// Pending publishes per room before callers are refused.
    pub room_queue_capacity: usize,
    /// Pending frames per attached conn node before its stream is reset.
    pub conn_queue_capacity: usize,
    /// Largest pull answered, in messages.
    pub pull_limit_max: u32,
    /// Largest pull answered (and largest broadcast frame), in encoded
    /// message bytes (one message is sent even if larger). Keep it well
    /// under the 4 MiB a gRPC client decodes by default: a history of large
    /// messages is then read page after page instead of failing as one reply
    /// too large to decode.
    pub pull_bytes_max: usize,
    /// Seconds a room without subscribers or publishes is kept in memory.
    pub room_idle_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: common::process::default_node_id(common::discovery::ServiceKind::Push),
            internal_token: String::new(),
            advertise_host: "127.0.0.1".into(),
            ring_size: DEFAULT_RING_SIZE,
            broadcast_threshold: DEFAULT_BROADCAST_THRESHOLD,
            broadcast_exit_threshold: DEFAULT_BROADCAST_EXIT_THRESHOLD,
            broadcast_window_ms: DEFAULT_BROADCAST_WINDOW_MS,
            notify_inline_max_bytes: DEFAULT_NOTIFY_INLINE_MAX_BYTES,
            publish_batch_max: 256,
            room_queue_capacity: 4096,
            conn_queue_capacity: 16_384,
            pull_limit_max: 1000,
            pull_bytes_max: proto::paging::PAGE_BYTES,
            room_idle_secs: 300,
        }
    }
}
