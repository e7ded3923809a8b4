//! Coordinator ↔ worker messages: one JSON object per line, commands on the
//! worker's stdin, events on its stdout. Histograms travel as `(value, count)`
//! pairs of their recorded buckets, so merging them loses nothing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::args::Transport;

/// Highest latency a histogram records, µs (60 s); 3 significant digits.
pub const HIST_MAX_US: u64 = 60_000_000;

/// A fresh latency histogram (µs).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// What a worker does: the first line on its stdin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Worker number (for uids and logs).
    pub index: usize,
    /// How the clients connect.
    pub transport: Transport,
    /// Conn node WebSocket URL (empty: ask the router per client).
    pub ws_url: String,
    /// Conn node QUIC URL (`None`: ask the router per client).
    pub quic_url: Option<String>,
    /// Pin of the QUIC certificate (hex SHA-256).
    pub quic_cert_sha256: Option<String>,
    /// Room-biz URL (polling clients poll it).
    pub biz_url: String,
    /// Seconds a long poll waits for news.
    pub poll_wait_secs: u64,
    /// Poll again at once instead of after the reply's `poll_after_ms`.
    pub poll_ignore_pause: bool,
    /// Router URL when clients route themselves.
    pub router_url: Option<String>,
    /// HS256 secret to mint the clients' tokens.
    pub secret: String,
    /// Source addresses the clients bind, round robin.
    pub source_ips: Vec<Ipv4Addr>,
    /// Rooms of the run; holder `i` joins `rooms[i % rooms.len()]`.
    pub rooms: Vec<String>,
    /// First global holder index of this worker.
    pub first: usize,
    /// Holders of this worker.
    pub count: usize,
    /// Connects in flight at once.
    pub connect_concurrency: usize,
    /// Seconds between client pings.
    pub ping_secs: u64,
    /// Churning clients, if any.
    pub churn: Option<ChurnSpec>,
    /// Likes the holders send, if any.
    pub likes: Option<LikesSpec>,
}

/// Clients that join, stay a while and leave, at a rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChurnSpec {
    /// The room they join.
    pub room: String,
    /// Joins per second (this worker's share).
    pub per_sec: f64,
    /// How long each stays, ms.
    pub dwell_ms: u64,
    /// Share that sends `Leave` before closing; the rest just close.
    pub leave_ratio: f64,
}

/// Client actions the holders publish, at a rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LikesSpec {
    /// Action name.
    pub action: String,
    /// Payload (JSON text).
    pub payload: String,
    /// Actions per second per holder.
    pub per_sec_per_client: f64,
}

/// A coordinator command.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    /// Connect, authenticate and join every holder; answer `Joined`.
    Connect,
    /// Start churning / liking; report progress.
    Start,
    /// Stop churning / liking; answer `Stopped` once every churner left.
    Stop,
    /// Close everything; answer `Final` and exit.
    Finish,
}

/// A worker event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// Spec read, tokens minted.
    Ready {
        /// The worker's pid.
        pid: u32,
    },
    /// Every holder is joined (or failed).
    Joined(Box<JoinedReport>),
    /// Deliveries received by holders so far.
    Progress {
        /// Holder deliveries so far.
        received: u64,
        /// Holder seqs covered so far: received, or sampled out.
        #[serde(default)]
        covered: u64,
    },
    /// Every churner has left.
    Stopped,
    /// Final tallies.
    Final(Box<FinalReport>),
}

/// The connect phase of one worker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JoinedReport {
    /// Holders joined.
    pub ok: u64,
    /// Holders that failed to connect or join.
    pub failed: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Wall clock when the first connect started, µs.
    pub start_us: u64,
    /// Wall clock when the last holder was joined, µs.
    pub end_us: u64,
    /// Connect → `Joined` time per holder, µs.
    pub connect_us: Hist,
}

/// What one worker saw.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FinalReport {
    /// Holder deliveries.
    pub holders: Tally,
    /// Publish → receive latency of holder deliveries, µs.
    pub latency_us: Hist,
    /// Low-priority messages one holder received in one whole second of the
    /// publish window, one value per holder and second.
    #[serde(default)]
    pub low_per_holder_sec: Hist,
    /// Churning clients.
    pub churn: ChurnTally,
    /// Client actions (likes).
    pub likes: LikesTally,
}

/// Delivery counts of a group of clients.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Messages received.
    pub received: u64,
    /// Seqs never covered by any delivery (holes left at the end).
    pub gaps: u64,
    /// Seqs received again.
    pub duplicates: u64,
    /// Seqs that arrived after a higher one (late hole fills).
    pub out_of_order: u64,
    /// Seqs covered by a delivery range but left out of it (sampling).
    pub sampled: u64,
    /// Of `received`: high-priority messages.
    #[serde(default)]
    pub high_received: u64,
    /// Of `received`: low-priority messages.
    #[serde(default)]
    pub low_received: u64,
    /// `Lagged` frames.
    pub lagged: u64,
    /// `Error` frames.
    pub errors: u64,
    /// Connections closed by the server.
    pub disconnects: u64,
    /// `Joined{ref: 0}`: the room's stream restarted.
    pub resets: u64,
    /// `Ephemeral` frames received after `Start`.
    pub ephemeral: u64,
    /// The first `Error` or close seen.
    pub first_error: Option<String>,
}

impl Tally {
    /// Add another tally.
    pub fn add(&mut self, o: &Tally) {
        self.received += o.received;
        self.gaps += o.gaps;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.sampled += o.sampled;
        self.high_received += o.high_received;
        self.low_received += o.low_received;
        self.lagged += o.lagged;
        self.errors += o.errors;
        self.disconnects += o.disconnects;
        self.resets += o.resets;
        self.ephemeral += o.ephemeral;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
    }
}

/// Churning clients.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChurnTally {
    /// Churn cycles started.
    pub started: u64,
    /// Joined.
    pub joined: u64,
    /// Failed to connect or join.
    pub join_failed: u64,
    /// Left with a `Leave` frame (answered with `Left`).
    pub left_with_leave: u64,
    /// Left by closing the socket.
    pub left_with_close: u64,
    /// Their deliveries while in the room.
    pub deliveries: Tally,
    /// Connect → `Joined`, µs.
    pub join_us: Hist,
    /// The first failure.
    pub first_error: Option<String>,
}

/// Client actions sent by the holders.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LikesTally {
    /// Actions sent.
    pub sent: u64,
    /// Answered `OK`.
    pub ok: u64,
    /// Answered with another code.
    pub refused: u64,
    /// The first refusal (`CODE: message`).
    pub first_refusal: Option<String>,
    /// The last ephemeral body one client saw (the pushed total).
    pub last_ephemeral: Option<String>,
    /// Ephemeral frames the holders received, by kind.
    pub ephemeral_kinds: BTreeMap<String, u64>,
}

/// A histogram as `(value, count)` pairs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Hist(pub Vec<(u64, u64)>);

impl Hist {
    /// Encode the recorded buckets.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Add the buckets into `into`.
    pub fn merge_into(&self, into: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            let _ = into.record_n(value.clamp(1, HIST_MAX_US), count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_round_trip_keeps_quantiles() {
        let mut h = histogram();
        for v in 1..=10_000u64 {
            h.record(v * 7).expect("in range");
        }
        let json = serde_json::to_string(&Hist::of(&h)).expect("json");
        let back: Hist = serde_json::from_str(&json).expect("parse");
        let mut merged = histogram();
        back.merge_into(&mut merged);
        assert_eq!(merged.len(), h.len());
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(merged.value_at_quantile(q), h.value_at_quantile(q), "q {q}");
        }
    }

    #[test]
    fn events_are_tagged_lines() {
        let line = serde_json::to_string(&Event::Progress {
            received: 3,
            covered: 5,
        })
        .expect("json");
        assert_eq!(line, r#"{"ev":"progress","received":3,"covered":5}"#);
        let cmd: Cmd = serde_json::from_str(r#"{"cmd":"finish"}"#).expect("parse");
        assert!(matches!(cmd, Cmd::Finish));
    }
}
