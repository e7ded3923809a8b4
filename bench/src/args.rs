//! Command-line arguments: the global flags (what to drive, how to spread the
//! load, where results go) and one subcommand per scenario with the issue's
//! figures as defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// Command-line arguments of `roomcast-bench`.
#[derive(Debug, Parser)]
#[command(
    name = "roomcast-bench",
    about = "Load-generate Roomcast through the real client protocol and report one JSON line per scenario",
    long_about = "Load-generate Roomcast through the real client protocol and report one JSON line per \
                  scenario.\n\nWithout a scenario it runs `room-latency` with the top-level \
                  --clients/--rooms/--rate/--duration flags."
)]
pub struct BenchArgs {
    /// What to drive.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How the load is spread and reported.
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// `room-latency` settings when no scenario is named.
    #[command(flatten)]
    pub latency: LatencyArgs,
    /// The scenario.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How the bench clients reach Roomcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// WebSocket, protobuf frames.
    Ws,
    /// QUIC (ALPN `roomcast/1`), length-delimited protobuf frames on one stream.
    Quic,
    /// HTTP long polling of room-biz (`GET /v1/rooms/{id}/messages`).
    Polling,
}

impl Transport {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => proto::transport::WS,
            Self::Quic => proto::transport::QUIC,
            Self::Polling => proto::transport::POLLING,
        }
    }

    /// The name in the report line.
    pub fn report_name(self) -> &'static str {
        match self {
            Self::Ws => "websocket-protobuf",
            Self::Quic => "quic-protobuf",
            Self::Polling => "http-long-polling",
        }
    }
}

/// The system under test.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Transport of the clients: `ws` (WebSocket), `quic` (QUIC, one UDP socket
    /// per worker) or `polling` (HTTP long polling of room-biz; room-latency,
    /// big-room and small-rooms only).
    #[arg(long, global = true, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
    /// WebSocket URL of a running conn node (with --biz-url).
    #[arg(long, global = true, env = "ROOMCAST_WS_URL")]
    pub ws_url: Option<String>,
    /// QUIC URL of a running conn node (`quic://host:port`), with --transport quic
    /// (instead of --router-url).
    #[arg(long, global = true, env = "ROOMCAST_QUIC_URL")]
    pub quic_url: Option<String>,
    /// Hex SHA-256 of that conn node's QUIC certificate, to pin it (without it the
    /// certificate must chain to the webpki roots).
    #[arg(long, global = true)]
    pub quic_cert_sha256: Option<String>,
    /// Room-biz client URL of a running system (with --ws-url, --quic-url or --router-url;
    /// alone with --transport polling).
    #[arg(long, global = true, env = "ROOMCAST_BIZ_URL")]
    pub biz_url: Option<String>,
    /// Room-biz backend API URL of a running system (rooms, publishing).
    #[arg(long, global = true, env = "ROOMCAST_BACKEND_URL")]
    pub backend_url: Option<String>,
    /// API key for the backend API (default: standalone's development key).
    #[arg(
        long,
        global = true,
        env = "ROOMCAST_API_KEY",
        default_value = roomcast::standalone::DEFAULT_DEV_API_KEY,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub api_key: String,
    /// Router URL of a running system: each client asks `GET /v1/route` for its
    /// conn node (instead of --ws-url).
    #[arg(long, global = true, env = "ROOMCAST_ROUTER_URL")]
    pub router_url: Option<String>,
    /// Prometheus endpoint of a running system (`http://host:port/metrics`), to
    /// report its counters (drops, lag, batches, store operations).
    #[arg(long, global = true)]
    pub metrics_url: Option<String>,
    /// Pids of the running system's server processes, to report their CPU and RSS.
    #[arg(long, global = true, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Start `roomcast standalone` as a separate process on free ports and measure it
    /// (instead of starting the services inside the bench process).
    #[arg(long, global = true)]
    pub spawn_server: bool,
    /// The `roomcast` binary --spawn-server starts (default: next to this binary).
    #[arg(long, global = true)]
    pub server_bin: Option<PathBuf>,
    /// Extra environment of the spawned server, `KEY=VALUE` (repeatable), e.g.
    /// `MALLOC_ARENA_MAX=2` or `RUST_LOG=warn`.
    #[arg(long, global = true)]
    pub server_env: Vec<String>,
    /// Where the spawned server's stderr goes.
    #[arg(long, global = true, default_value = "/tmp/roomcast-bench-server.log")]
    pub server_log: PathBuf,
    /// Token secret of the system (in-process and spawned servers use it too).
    #[arg(long, global = true, env = "ROOMCAST_SECRET", default_value = roomcast::standalone::DEFAULT_DEV_SECRET, hide_env_values = true)]
    pub secret: String,
    /// Members at which a room switches to broadcast (started servers only;
    /// default: the scenario's).
    #[arg(long, global = true)]
    pub broadcast_threshold: Option<u32>,
    /// Sessions of a room on the conn node at which its low-priority messages
    /// are sampled (started servers only; default: the server's, 1,000).
    #[arg(long, global = true)]
    pub sample_above_members: Option<u32>,
    /// Low-priority messages per second a sampled room's viewers get at most
    /// (started servers only; default: the server's, 20; 0: no sampling).
    #[arg(long, global = true)]
    pub sample_low_per_sec: Option<u32>,
}

/// Load spreading and reporting.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Worker processes holding the connections (0: one per 5,000 connections, at least 2).
    #[arg(long, global = true, default_value_t = 0)]
    pub workers: usize,
    /// Loopback source addresses the clients bind: 127.0.0.1 … 127.0.0.N (round
    /// robin per client; with QUIC, worker i's one UDP socket binds address i mod N).
    #[arg(long, global = true, default_value_t = 8)]
    pub source_ips: u8,
    /// Connects in flight at once, over all workers. The default (128) already
    /// saturates a 2-core server; more only adds connect latency. Servers older
    /// than the 4096 listen backlog (128 before) dropped handshakes beyond it,
    /// costing clients a 1 s SYN retransmit. With `--transport quic` the default
    /// is 32: a server whose UDP socket keeps the kernel's default receive buffer
    /// (~208 KiB) drops handshake datagrams of larger bursts, and each loss costs
    /// the client a ~1 s probe timeout.
    #[arg(long, global = true)]
    pub connect_concurrency: Option<usize>,
    /// Priority of published messages (`high` is never sampled, so every
    /// delivery is expected).
    #[arg(long, global = true, default_value = "high")]
    pub priority: String,
    /// Seconds a polling client's long poll waits on the server for news (`wait=`, 1–30).
    #[arg(long, global = true, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub poll_wait: u64,
    /// Polling clients poll again as soon as a reply arrives, ignoring its
    /// `poll_after_ms` (by default they wait it out, as the protocol asks and the
    /// SDK does).
    #[arg(long, global = true)]
    pub poll_ignore_pause: bool,
    /// Seconds to wait for the last deliveries after publishing stops.
    #[arg(long, global = true, default_value_t = 10)]
    pub settle: u64,
    /// Runs of the scenario (a fresh server each run when the bench starts it);
    /// with more than one, a last line gives the medians.
    #[arg(long, global = true, default_value_t = 1)]
    pub runs: usize,
    /// Directory the JSON lines are appended to.
    #[arg(long, global = true, default_value = "bench-results")]
    pub results_dir: PathBuf,
    /// Print only; do not append to the results directory.
    #[arg(long, global = true)]
    pub no_save: bool,
    /// Free text stored with the result (e.g. "load 2.3: a build was running").
    #[arg(long, global = true)]
    pub note: Option<String>,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One room, 10,000 subscribers, 20 messages/s for 60 s (broadcast mode).
    BigRoom(BigRoomArgs),
    /// 2,000 rooms × 5 subscribers × 1 message/s (notify/pull mode).
    SmallRooms(SmallRoomsArgs),
    /// 15,000 clients connect, authenticate and join as fast as possible.
    ConnectRamp(ConnectRampArgs),
    /// 15,000 connected, joined, idle clients: server RSS per connection.
    Idle(IdleArgs),
    /// 100,000 likes/s into one room of 2,000 subscribers.
    LikesStorm(LikesArgs),
    /// 500 clients/s joining and leaving a 5,000-subscriber room while it publishes.
    Churn(ChurnArgs),
    /// 5,000 viewers of one room, 100 low-priority comments/s + 2 high-priority
    /// gifts/s: gifts reach everyone, comments are sampled per viewer and covered.
    DanmakuStorm(DanmakuArgs),
    /// N clients in R rooms, a fixed publish rate: latency and correctness.
    RoomLatency(LatencyArgs),
    /// Internal: hold connections for a coordinator (stdin commands, stdout events).
    #[command(hide = true)]
    Worker,
}

/// `room-latency` (also the flags when no scenario is named).
#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    /// Connected clients.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Rooms the clients are spread over.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Messages per second per room.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
}

/// `big-room`.
#[derive(Debug, Clone, Args)]
pub struct BigRoomArgs {
    /// Subscribers of the room.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
}

/// `small-rooms`.
#[derive(Debug, Clone, Args)]
pub struct SmallRoomsArgs {
    /// Rooms.
    #[arg(long, default_value_t = 2_000)]
    pub rooms: usize,
    /// Subscribers per room.
    #[arg(long, default_value_t = 5)]
    pub per_room: usize,
    /// Messages per second per room.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
}

/// `connect-ramp`.
#[derive(Debug, Clone, Args)]
pub struct ConnectRampArgs {
    /// Clients that connect, authenticate and join.
    #[arg(long, default_value_t = 15_000)]
    pub clients: usize,
    /// Rooms they join (spread evenly).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Idle clients.
    #[arg(long, default_value_t = 15_000)]
    pub clients: usize,
    /// Rooms they join (spread evenly).
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Seconds to hold them idle before measuring.
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
}

/// `likes-storm`.
#[derive(Debug, Clone, Args)]
pub struct LikesArgs {
    /// Subscribers of the room (they send the likes).
    #[arg(long, default_value_t = 2_000)]
    pub clients: usize,
    /// Likes (taps) per second over all clients.
    #[arg(long, default_value_t = 100_000.0)]
    pub likes_per_sec: f64,
    /// Taps one `like` action carries (clients batch taps; room-biz takes 1–100).
    #[arg(long, default_value_t = 10)]
    pub per_action: u32,
    /// Seconds of liking.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// The client action name.
    #[arg(long, default_value = "like")]
    pub action: String,
    /// The action payload (JSON; default `{"count": <per-action>}`).
    #[arg(long)]
    pub payload: Option<String>,
}

/// `danmaku-storm`.
#[derive(Debug, Clone, Args)]
pub struct DanmakuArgs {
    /// Viewers of the room.
    #[arg(long, default_value_t = 5_000)]
    pub clients: usize,
    /// Comments per second (published with priority `low`).
    #[arg(long, default_value_t = 100.0)]
    pub comments_per_sec: f64,
    /// Gifts per second (published with priority `high`: never sampled).
    #[arg(long, default_value_t = 2.0)]
    pub gifts_per_sec: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
}

/// `churn`.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// Subscribers that stay for the whole run.
    #[arg(long, default_value_t = 5_000)]
    pub clients: usize,
    /// Clients per second that join (and, after --dwell-ms, leave).
    #[arg(long, default_value_t = 500.0)]
    pub churn_per_sec: f64,
    /// How long a churning client stays, in ms.
    #[arg(long, default_value_t = 2_000)]
    pub dwell_ms: u64,
    /// Share of churning clients that send `Leave` before closing (the others
    /// just close the socket).
    #[arg(long, default_value_t = 0.5)]
    pub leave_ratio: f64,
    /// Messages per second in the room.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds of publishing and churning.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
}

/// Default of `--connect-concurrency` over TCP (WebSocket, polling).
const CONNECT_CONCURRENCY_TCP: usize = 128;
/// Default of `--connect-concurrency` over QUIC.
const CONNECT_CONCURRENCY_QUIC: usize = 32;

impl BenchArgs {
    /// Connects in flight at once over all workers: the flag, or the
    /// transport's default.
    pub fn connect_concurrency(&self) -> usize {
        self.fleet
            .connect_concurrency
            .unwrap_or(match self.target.transport {
                Transport::Quic => CONNECT_CONCURRENCY_QUIC,
                Transport::Ws | Transport::Polling => CONNECT_CONCURRENCY_TCP,
            })
    }
}

impl LikesArgs {
    /// The payload each `like` action carries.
    pub fn payload(&self) -> String {
        self.payload
            .clone()
            .unwrap_or_else(|| format!(r#"{{"count":{}}}"#, self.per_action))
    }

    /// Actions per second over all clients.
    pub fn actions_per_sec(&self) -> f64 {
        self.likes_per_sec / f64::from(self.per_action.max(1))
    }
}
