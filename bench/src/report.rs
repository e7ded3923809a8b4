//! The JSON line a scenario reports, where it is kept, and the median line of
//! several runs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::proc::ProcSample;
use crate::target::Kind;
use crate::wire::{ChurnTally, LikesTally, Tally};

/// One scenario's result: one JSON line.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub commit: String,
    pub date: String,
    pub unix_ms: u64,
    /// The transport every client used: `websocket-protobuf`, `quic-protobuf` or
    /// `http-long-polling` (`--transport ws|quic|polling`).
    pub transport: &'static str,
    pub target: Kind,
    /// Holders joined (the connections the figures are about).
    pub connections: u64,
    pub rooms: usize,
    pub workers: usize,
    pub source_ips: u8,
    pub publish_rate_per_room: f64,
    pub publish_rate_total: f64,
    pub publish_seconds: f64,
    /// How long the bench waited after the joins for the server to go quiet
    /// (what the joins set off, such as presence events, finished) before
    /// the publish window began.
    pub quiet_wait_ms: u64,
    pub messages_published: u64,
    pub publish_errors: u64,
    pub publish_first_error: Option<String>,
    /// Push API request → answer, ms: p50, p99, max.
    pub push_api_ms: [f64; 3],
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub sampled: u64,
    pub lagged: u64,
    pub disconnects: u64,
    pub error_frames: u64,
    pub stream_resets: u64,
    pub first_error: Option<String>,
    /// Deliveries over the publish window (first publish → last delivery).
    pub deliveries_per_sec: f64,
    /// Publish → receive, every holder delivery.
    pub latency_ms: Latency,
    pub connect: ConnectReport,
    pub server: ServerReport,
    pub generator: GeneratorReport,
    /// Holder deliveries per server CPU-second of the publish window.
    pub deliveries_per_server_cpu_s: Option<f64>,
    /// Which side used the CPU during the measured window.
    pub bound: String,
    /// Server counters over the publish window (Prometheus, when reachable).
    pub server_metrics: BTreeMap<String, f64>,
    /// Server counters over the connect phase.
    pub server_metrics_connect: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likes: Option<LikesReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub danmaku: Option<DanmakuReport>,
    /// How the clients polled (`--transport polling` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polling: Option<PollingReport>,
    /// Why the scenario could not run (then most figures are zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_runnable: Option<String>,
    /// The budget, figure by figure.
    pub budget: Vec<BudgetLine>,
    pub machine: Machine,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Latency percentiles, ms.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

impl Latency {
    /// Percentiles of a µs histogram.
    pub fn of_us(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            count: h.len(),
        }
    }
}

/// The connect phase: every holder connects, authenticates and joins.
#[derive(Debug, Default, Serialize)]
pub struct ConnectReport {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    /// Joined holders per second (first connect → last `Joined`, all workers).
    pub per_sec: f64,
    /// Connect → `Joined` per client.
    pub latency_ms: Latency,
    /// Joined holders per server CPU-second of the connect phase.
    pub per_server_cpu_s: Option<f64>,
}

/// The server processes (summed when several).
#[derive(Debug, Default, Serialize)]
pub struct ServerReport {
    pub pids: Vec<u32>,
    /// CPU seconds during the connect phase.
    pub cpu_s_connect: f64,
    /// CPU seconds during the publish window (publish start → settle).
    pub cpu_s_run: f64,
    /// Cores used during the measured window (connect phase for connect-ramp).
    pub cores: f64,
    /// CPU seconds from start to end of the run.
    pub cpu_s_total: f64,
    pub rss_start_kib: u64,
    pub rss_joined_kib: u64,
    pub rss_end_kib: u64,
    pub peak_rss_kib: u64,
    /// In-process: the server shares its process with the coordinator.
    pub shares_process_with_coordinator: bool,
}

/// The load generator: coordinator and worker processes.
#[derive(Debug, Default, Serialize)]
pub struct GeneratorReport {
    pub worker_pids: Vec<u32>,
    pub cpu_s_connect: f64,
    pub cpu_s_run: f64,
    pub cores: f64,
    pub cpu_s_total: f64,
    pub workers_peak_rss_kib: u64,
}

/// `idle`: memory per idle connection.
#[derive(Debug, Default, Serialize)]
pub struct IdleReport {
    pub hold_s: u64,
    pub server_rss_before_kib: u64,
    pub server_rss_after_kib: u64,
    /// (RSS after − RSS before) / connections.
    pub server_rss_per_conn_bytes: f64,
    /// The same for the worker processes (the client side), for context.
    pub generator_rss_per_conn_bytes: f64,
}

/// `danmaku-storm`: gifts (high priority) must reach every viewer; comments
/// (low priority) may be sampled per viewer but every seq must be covered.
#[derive(Debug, Default, Serialize)]
pub struct DanmakuReport {
    pub viewers: u64,
    pub comments_per_sec: f64,
    pub gifts_per_sec: f64,
    pub comments_published: u64,
    pub gifts_published: u64,
    /// Viewers × gifts published.
    pub gifts_expected: u64,
    pub gifts_received: u64,
    pub gifts_missing: u64,
    /// Seqs never covered by any frame, over all viewers (must be 0).
    pub coverage_gaps: u64,
    /// Viewers × seqs published: what the frames must cover.
    pub covered_expected: u64,
    /// Seqs covered: received, or sampled out by the server.
    pub covered: u64,
    pub comments_received: u64,
    /// Comments one viewer received in one whole second of the publish window.
    pub comments_per_viewer_sec: PerViewerSecond,
    /// Covered seqs per server CPU-second of the publish window.
    pub covered_per_server_cpu_s: Option<f64>,
    /// Delivered messages per server CPU-second of the publish window.
    pub delivered_per_server_cpu_s: Option<f64>,
}

/// A count per viewer and second: its distribution.
#[derive(Debug, Default, Serialize)]
pub struct PerViewerSecond {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    /// Viewer-seconds measured.
    pub samples: u64,
}

impl PerViewerSecond {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            samples: h.len(),
        }
    }
}

/// `churn`: the clients that came and went, and presence at the end.
#[derive(Debug, Default, Serialize)]
pub struct ChurnReport {
    pub per_sec: f64,
    pub dwell_ms: u64,
    pub started: u64,
    pub joined: u64,
    pub join_failed: u64,
    pub left_with_leave: u64,
    pub left_with_close: u64,
    pub first_error: Option<String>,
    pub join_latency_ms: Latency,
    /// Their deliveries while in the room (gaps here are theirs, not the stayers').
    pub deliveries: Tally,
    /// Members `GET /v1/rooms/{id}` should show at the end (the stayers).
    pub presence_expected: u64,
    pub presence_observed: u64,
    pub presence_ok: bool,
    /// How long after the last churner left the count was right (or the wait gave up).
    pub presence_settled_ms: u64,
}

impl ChurnReport {
    /// Fill the client-side figures from the workers' tallies.
    pub fn from_tally(t: &ChurnTally, join: &Histogram<u64>) -> Self {
        Self {
            started: t.started,
            joined: t.joined,
            join_failed: t.join_failed,
            left_with_leave: t.left_with_leave,
            left_with_close: t.left_with_close,
            first_error: t.first_error.clone(),
            join_latency_ms: Latency::of_us(join),
            deliveries: t.deliveries.clone(),
            ..Self::default()
        }
    }
}

/// HTTP long polling settings of the clients.
#[derive(Debug, Default, Serialize)]
pub struct PollingReport {
    /// `wait=` of each long poll, seconds.
    pub wait_s: u64,
    /// Whether clients paused `poll_after_ms` between polls (the protocol's
    /// rule, the SDK's behaviour) or polled again at once.
    pub honors_poll_after: bool,
}

/// `likes-storm`.
#[derive(Debug, Default, Serialize)]
pub struct LikesReport {
    pub action: String,
    /// Taps per second asked for, over all clients.
    pub target_taps_per_sec: f64,
    /// Taps per action.
    pub per_action: u32,
    pub actions_sent: u64,
    pub actions_ok: u64,
    pub actions_refused: u64,
    pub first_refusal: Option<String>,
    /// Taps in accepted actions.
    pub taps_ok: u64,
    pub taps_ok_per_sec: f64,
    /// Ephemeral frames (pushed totals) per holder per second.
    pub pushes_per_client_per_sec: f64,
    /// The last pushed event one client saw.
    pub last_pushed: Option<String>,
    /// The likes total in that event.
    pub pushed_likes_total: Option<u64>,
    /// Ephemeral frames the holders received, by kind.
    pub ephemeral_kinds: BTreeMap<String, u64>,
    /// What the probe (one like before the storm) got back.
    pub probe: String,
}

impl LikesReport {
    /// From the workers' tallies.
    pub fn from_tally(t: &LikesTally, per_action: u32) -> Self {
        let pushed_likes_total = t.last_ephemeral.as_deref().and_then(|text| {
            let at = text.find("\"likes\"")? + "\"likes\"".len();
            let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        });
        Self {
            per_action,
            actions_sent: t.sent,
            actions_ok: t.ok,
            actions_refused: t.refused,
            first_refusal: t.first_refusal.clone(),
            taps_ok: t.ok * u64::from(per_action),
            last_pushed: t.last_ephemeral.clone(),
            pushed_likes_total,
            ephemeral_kinds: t.ephemeral_kinds.clone(),
            ..Self::default()
        }
    }
}

/// One budget figure of the issue next to the measured value.
#[derive(Debug, Serialize)]
pub struct BudgetLine {
    pub figure: &'static str,
    pub budget: String,
    pub value: f64,
    pub met: bool,
}

impl BudgetLine {
    /// `value` must be at most `limit`.
    pub fn at_most(figure: &'static str, value: f64, limit: f64, unit: &str) -> Self {
        Self {
            figure,
            budget: format!("<= {limit} {unit}").trim_end().to_owned(),
            value,
            met: value <= limit,
        }
    }

    /// `value` must be at least `limit`.
    pub fn at_least(figure: &'static str, value: f64, limit: f64, unit: &str) -> Self {
        Self {
            figure,
            budget: format!(">= {limit} {unit}").trim_end().to_owned(),
            value,
            met: value >= limit,
        }
    }
}

/// The conditions of the run.
#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub cpus: usize,
    /// `/proc/loadavg` (1, 5, 15 min) before the run.
    pub loadavg_start: [f64; 3],
    pub loadavg_end: [f64; 3],
    /// Soft open-files limit of the bench (and of its workers and server).
    pub nofile: u64,
    /// Cores the whole machine was busy during the measured window.
    pub busy_cores: f64,
    /// Of which neither the server nor the load generator (other work on
    /// the machine: builds, tests).
    pub other_cores: f64,
}

/// Cores used over `seconds` by a CPU delta.
pub fn cores(cpu_s: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        round3(cpu_s / seconds)
    } else {
        0.0
    }
}

/// Round to 3 decimals (the JSON stays readable).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// CPU delta between two samples.
pub fn cpu_delta(a: ProcSample, b: ProcSample) -> f64 {
    round3((b.cpu_s - a.cpu_s).max(0.0))
}

/// Print the line and append it to `<dir>/<date>-<scenario>.jsonl`.
pub fn emit(line: &impl Serialize, scenario: &str, dir: &Path, save: bool) -> anyhow::Result<()> {
    let text = serde_json::to_string(line)?;
    println!("{text}");
    if save {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}-{scenario}.jsonl", crate::proc::utc_date()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot append to {}", path.display()))?;
        writeln!(file, "{text}")?;
    }
    Ok(())
}

/// The median of several runs' lines: every number is the median of that
/// number over the runs; everything else comes from the first run.
pub fn median(runs: &[serde_json::Value]) -> serde_json::Value {
    use serde_json::Value;
    fn go(values: &[&Value]) -> Value {
        match values[0] {
            Value::Number(_) => {
                let mut nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                if nums.len() != values.len() {
                    return values[0].clone();
                }
                nums.sort_by(f64::total_cmp);
                let mid = nums.len() / 2;
                let m = if nums.len() % 2 == 1 {
                    nums[mid]
                } else {
                    (nums[mid - 1] + nums[mid]) / 2.0
                };
                serde_json::Number::from_f64(round3(m)).map_or(Value::Null, Value::Number)
            }
            Value::Object(first) => Value::Object(
                first
                    .keys()
                    .map(|k| {
                        let sub: Vec<&Value> = values.iter().map(|v| &v[k]).collect();
                        (k.clone(), go(&sub))
                    })
                    .collect(),
            ),
            Value::Array(first)
                if values
                    .iter()
                    .all(|v| v.as_array().is_some_and(|a| a.len() == first.len())) =>
            {
                Value::Array(
                    (0..first.len())
                        .map(|i| go(&values.iter().map(|v| &v[i]).collect::<Vec<_>>()))
                        .collect(),
                )
            }
            Value::Bool(_) => {
                let yes = values.iter().filter(|v| v.as_bool() == Some(true)).count();
                Value::Bool(yes * 2 > values.len())
            }
            other => other.clone(),
        }
    }
    let refs: Vec<&Value> = runs.iter().collect();
    let mut m = go(&refs);
    if let Value::Object(map) = &mut m {
        map.insert(
            "aggregate".into(),
            Value::String(format!("median of {} runs", runs.len())),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_numbers_and_nested() {
        let runs = vec![
            serde_json::json!({"a": 1, "b": {"c": 10.0}, "s": "x", "v": [1, 5]}),
            serde_json::json!({"a": 3, "b": {"c": 30.0}, "s": "y", "v": [2, 6]}),
            serde_json::json!({"a": 2, "b": {"c": 20.0}, "s": "z", "v": [3, 7]}),
        ];
        let m = median(&runs);
        assert_eq!(m["a"], 2.0);
        assert_eq!(m["b"]["c"], 20.0);
        assert_eq!(m["s"], "x");
        assert_eq!(m["v"][1], 6.0);
        assert!(m["aggregate"].as_str().is_some_and(|s| s.contains('3')));
    }
}
