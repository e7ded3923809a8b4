//! The scenarios as plans (clients, rooms, rate, churn, likes…) and the one
//! procedure that runs any plan: start the target, create rooms, start the
//! workers, connect, publish, settle, tally, report.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use proto::client::v1::{Code, Publish, client_frame, server_frame};
use tokio::time::Instant;

use crate::args::{BenchArgs, ChurnArgs, Command, DanmakuArgs, LikesArgs, Transport};
use crate::client;
use crate::conn::{self, Endpoint, Incoming, QuicDialer};
use crate::fleet::Fleet;
use crate::proc::{self, ProcSample};
use crate::publish;
use crate::report::{
    self, BudgetLine, ChurnReport, ConnectReport, DanmakuReport, GeneratorReport, IdleReport,
    Latency, LikesReport, Machine, PerViewerSecond, PollingReport, Report, ServerReport, cores,
    cpu_delta, round3,
};
use crate::target::{Kind, Target};
use crate::wire::{self, ChurnSpec, Cmd, Event, LikesSpec, Tally, WorkerSpec};

/// Connections per worker process when `--workers` is 0.
const CONNS_PER_WORKER: usize = 5_000;
/// Seconds between client pings (the server's heartbeat is 25 s).
const PING_SECS: u64 = 20;
/// Default members at which a room goes broadcast (the standalone default).
const DEFAULT_BROADCAST_THRESHOLD: u32 = 500;
/// How long presence may take to settle after the last churner left.
const PRESENCE_WAIT: Duration = Duration::from_secs(15);
/// Server counters reported over the publish window.
const METRICS: &[&str] = &[
    "roomcast_conn_drops_total",
    "roomcast_conn_lagged_total",
    "roomcast_conn_slow_disconnects_total",
    "roomcast_conn_frames_out_total",
    "roomcast_conn_socket_flushes_total",
    "roomcast_conn_deliveries_total",
    "roomcast_conn_sampled_out_total",
    "roomcast_push_broadcast_batches_total",
    "roomcast_push_notifies_total",
    "roomcast_push_pulls_total",
    "roomcast_push_notifies_inline_total",
    "roomcast_push_conn_frames_total",
    "roomcast_push_conn_frame_entries_total",
    "roomcast_conn_inline_applied_total",
    "roomcast_conn_feed_pulls_total",
    "roomcast_conn_push_frames_total",
    "roomcast_conn_push_entries_total",
    "roomcast_push_published_total",
    "roomcast_biz_likes_received_total",
    "roomcast_biz_counter_flushes_total",
    "roomcast_biz_store_ops_total",
    "roomcast_biz_actions_total",
];
/// Comments per second a viewer reads: the median viewer-second of a
/// danmaku storm must stay at it (the server's default rate).
const DANMAKU_READABLE_PER_SEC: f64 = 20.0;
/// The most comments one viewer may receive in one second of a danmaku
/// storm: the rate, the token bucket's quarter-second burst, and delivery
/// jitter that moves a message into the next second on the client's clock.
const DANMAKU_MAX_PER_SEC: f64 = 30.0;
/// How long the likes storm waits after the last like for the last totals push.
const LIKES_SETTLE: Duration = Duration::from_millis(1500);
/// The connect phase's time limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a scenario does.
#[derive(Clone, Debug)]
struct Plan {
    scenario: &'static str,
    /// Holders: clients that stay connected and joined for the whole run.
    clients: usize,
    rooms: usize,
    rate_per_room: f64,
    duration: Duration,
    broadcast_threshold: u32,
    idle_hold: Option<Duration>,
    churn: Option<ChurnArgs>,
    likes: Option<LikesArgs>,
    /// Comments (low) and gifts (high) instead of one kind of message.
    danmaku: Option<DanmakuArgs>,
}

impl Plan {
    fn of(args: &BenchArgs) -> Self {
        let base = |scenario, clients, rooms, rate_per_room, secs| Plan {
            scenario,
            clients,
            rooms,
            rate_per_room,
            duration: Duration::from_secs(secs),
            broadcast_threshold: DEFAULT_BROADCAST_THRESHOLD,
            idle_hold: None,
            churn: None,
            likes: None,
            danmaku: None,
        };
        let mut plan = match &args.command {
            None | Some(Command::Worker) => {
                let a = &args.latency;
                base("room-latency", a.clients, a.rooms, a.rate, a.duration)
            }
            Some(Command::RoomLatency(a)) => {
                base("room-latency", a.clients, a.rooms, a.rate, a.duration)
            }
            Some(Command::BigRoom(a)) => base("big-room", a.clients, 1, a.rate, a.duration),
            Some(Command::SmallRooms(a)) => base(
                "small-rooms",
                a.rooms * a.per_room,
                a.rooms,
                a.rate,
                a.duration,
            ),
            Some(Command::ConnectRamp(a)) => base("connect-ramp", a.clients, a.rooms, 0.0, 0),
            Some(Command::Idle(a)) => Plan {
                idle_hold: Some(Duration::from_secs(a.hold)),
                ..base("idle", a.clients, a.rooms, 0.0, 0)
            },
            Some(Command::LikesStorm(a)) => Plan {
                likes: Some(a.clone()),
                ..base("likes-storm", a.clients, 1, 0.0, a.duration)
            },
            Some(Command::Churn(a)) => Plan {
                churn: Some(a.clone()),
                ..base("churn", a.clients, 1, a.rate, a.duration)
            },
            Some(Command::DanmakuStorm(a)) => Plan {
                danmaku: Some(a.clone()),
                ..base(
                    "danmaku-storm",
                    a.clients,
                    1,
                    a.comments_per_sec + a.gifts_per_sec,
                    a.duration,
                )
            },
        };
        if let Some(t) = args.target.broadcast_threshold {
            plan.broadcast_threshold = t;
        }
        plan
    }

    /// Connections open at once at the peak.
    fn peak_connections(&self) -> usize {
        let churning = self.churn.as_ref().map_or(0, |c| {
            (c.churn_per_sec * (c.dwell_ms as f64 / 1000.0 + 0.5)).ceil() as usize
        });
        self.clients + churning
    }

    /// Whether the scenario can run over `transport`; `Err` says why not and
    /// which transports it runs over.
    fn supports(&self, transport: Transport) -> anyhow::Result<()> {
        let why = match (transport, self.scenario) {
            (Transport::Ws | Transport::Quic, _)
            | (Transport::Polling, "room-latency" | "big-room" | "small-rooms") => return Ok(()),
            (Transport::Polling, "connect-ramp") => {
                "a poller holds no connection to ramp up (its \"join\" is one HTTP request)"
            }
            (Transport::Polling, "idle") => {
                "an idle poller holds no session on the conn node, so there is no memory per connection to measure"
            }
            (Transport::Polling, "likes-storm") => {
                "the storm is client actions on a long connection (pollers would go through POST /v1/rooms/{id}/actions, not measured here)"
            }
            (Transport::Polling, "churn") => {
                "churn joins and leaves long connections (a poller has no Leave; it just stops polling and ages out after 60 s)"
            }
            (Transport::Polling, _) => "not implemented for polling",
        };
        bail!(
            "{} cannot run over --transport {}: {why}; it runs over: ws, quic",
            self.scenario,
            transport.as_str()
        )
    }

    /// Holders of room `r`.
    fn members(&self, r: usize) -> u64 {
        (self.clients / self.rooms + usize::from(r < self.clients % self.rooms)) as u64
    }
}

/// Run the scenario the arguments name (`--runs` times) and report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = Plan::of(&args);
    plan.supports(args.target.transport)?;
    if plan.rooms == 0 || plan.clients == 0 {
        bail!("a scenario needs at least one room and one client");
    }
    if plan.clients < plan.rooms {
        bail!(
            "fewer clients ({}) than rooms ({})",
            plan.clients,
            plan.rooms
        );
    }
    let nofile = proc::raise_nofile();
    let mut lines = Vec::new();
    for _ in 0..args.fleet.runs.max(1) {
        let report = execute(&plan, &args, nofile).await?;
        let stop = report.not_runnable.is_some();
        report::emit(
            &report,
            plan.scenario,
            &args.fleet.results_dir,
            !args.fleet.no_save,
        )?;
        lines.push(serde_json::to_value(&report)?);
        if stop {
            break;
        }
    }
    if lines.len() > 1 {
        let median = report::median(&lines);
        report::emit(
            &median,
            plan.scenario,
            &args.fleet.results_dir,
            !args.fleet.no_save,
        )?;
    }
    Ok(())
}

/// One run of a plan.
async fn execute(plan: &Plan, args: &BenchArgs, nofile: u64) -> anyhow::Result<Report> {
    let loadavg_start = proc::loadavg();
    let target = Target::start(&args.target, plan.broadcast_threshold).await?;
    let outcome = drive(plan, args, &target).await;
    let stopped = target.stop().await;
    let mut report = outcome?;
    stopped?;
    report.machine = Machine {
        cpus: proc::cpus(),
        loadavg_start,
        loadavg_end: proc::loadavg(),
        nofile,
        ..report.machine
    };
    Ok(report)
}

/// CPU/RSS of the load generator: workers, plus the coordinator unless the
/// server runs inside it (then it is counted as server).
/// Server CPU under which the system counts as quiet, in cores (an idle
/// server holding 15,000 connections uses a few hundredths).
const QUIET_CORES: f64 = 0.1;
/// How often the server's CPU is looked at while waiting for quiet.
const QUIET_STEP: Duration = Duration::from_millis(250);
/// The longest wait for quiet; the publish window starts anyway after it.
const QUIET_MAX: Duration = Duration::from_secs(15);

/// Wait until the server's processes use less than [`QUIET_CORES`] over one
/// [`QUIET_STEP`] (at most [`QUIET_MAX`]); how long that took.
async fn wait_for_quiet(target: &Target) -> Duration {
    let started = Instant::now();
    let mut last = target.sample();
    while started.elapsed() < QUIET_MAX {
        tokio::time::sleep(QUIET_STEP).await;
        let now = target.sample();
        if now.cpu_s - last.cpu_s < QUIET_CORES * QUIET_STEP.as_secs_f64() {
            break;
        }
        last = now;
    }
    started.elapsed()
}

fn generator_sample(target: &Target, fleet: &Fleet) -> ProcSample {
    let coordinator = if target.kind == Kind::InProcess {
        ProcSample::default()
    } else {
        proc::sample(None)
    };
    ProcSample::sum([coordinator, fleet.sample()])
}

#[expect(
    clippy::too_many_lines,
    reason = "one run, phase by phase, reads best in one place"
)]
async fn drive(plan: &Plan, args: &BenchArgs, target: &Target) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .build()?;
    let backend = backend_client(target)?;
    let rooms = publish::create_rooms(&backend, &target.backend_url, plan.rooms).await?;
    let mut report = empty_report(plan, args, target);
    report.rooms = rooms.len();

    // Likes: a probe before the storm says whether the action exists at all.
    let mut likes_report = None;
    if let Some(likes) = &plan.likes {
        let probe = probe_action(
            &http,
            target,
            args.target.transport,
            &args.target.secret,
            &rooms[0],
            likes,
        );
        match probe.await {
            Ok(probe) => {
                likes_report = Some(LikesReport {
                    action: likes.action.clone(),
                    target_taps_per_sec: likes.likes_per_sec,
                    per_action: likes.per_action,
                    probe,
                    ..LikesReport::default()
                });
            }
            Err(reason) => {
                report.not_runnable = Some(reason);
                report.budget = vec![];
                return Ok(report);
            }
        }
    }

    // Workers.
    let workers = if args.fleet.workers > 0 {
        args.fleet.workers
    } else {
        plan.peak_connections().div_ceil(CONNS_PER_WORKER).max(2)
    };
    let source_ips: Vec<Ipv4Addr> = (1..=args.fleet.source_ips.max(1))
        .map(|i| Ipv4Addr::new(127, 0, 0, i))
        .collect();
    let specs = (0..workers)
        .map(|index| {
            let first = plan.clients * index / workers;
            let next = plan.clients * (index + 1) / workers;
            WorkerSpec {
                index,
                transport: args.target.transport,
                ws_url: target.ws_url.clone(),
                quic_url: target.quic_url.clone(),
                quic_cert_sha256: target.quic_cert_sha256.clone(),
                biz_url: target.biz_url.clone(),
                poll_wait_secs: args.fleet.poll_wait,
                poll_ignore_pause: args.fleet.poll_ignore_pause,
                router_url: target.router_url.clone(),
                secret: args.target.secret.clone(),
                source_ips: source_ips.clone(),
                rooms: rooms.clone(),
                first,
                count: next - first,
                connect_concurrency: args.connect_concurrency().div_ceil(workers),
                ping_secs: PING_SECS,
                churn: plan.churn.as_ref().map(|c| ChurnSpec {
                    room: rooms[0].clone(),
                    per_sec: c.churn_per_sec / workers as f64,
                    dwell_ms: c.dwell_ms,
                    leave_ratio: c.leave_ratio,
                }),
                likes: plan.likes.as_ref().map(|l| LikesSpec {
                    action: l.action.clone(),
                    payload: l.payload(),
                    per_sec_per_client: l.actions_per_sec() / plan.clients as f64,
                }),
            }
        })
        .collect();
    let mut fleet = Fleet::start(specs).await?;
    report.workers = workers;
    report.generator.worker_pids = fleet.pids();

    // Connect phase.
    let (s0, g0) = (target.sample(), generator_sample(target, &fleet));
    let metrics_start = target.metrics(&http, METRICS).await;
    let busy0 = proc::machine_busy_s();
    fleet.send(Cmd::Connect).await?;
    let joined = fleet
        .expect("joined", CONNECT_TIMEOUT, |e| match e {
            Event::Joined(j) => Some(*j),
            _ => None,
        })
        .await?;
    let (s1, g1) = (target.sample(), generator_sample(target, &fleet));
    let busy1 = proc::machine_busy_s();
    let mut connect_hist = wire::histogram();
    let mut connect = ConnectReport {
        attempted: plan.clients as u64,
        ..ConnectReport::default()
    };
    let (mut start_us, mut end_us) = (u64::MAX, 0u64);
    for j in &joined {
        connect.ok += j.ok;
        connect.failed += j.failed;
        if connect.first_error.is_none() {
            connect.first_error.clone_from(&j.first_error);
        }
        start_us = start_us.min(j.start_us);
        end_us = end_us.max(j.end_us);
        j.connect_us.merge_into(&mut connect_hist);
    }
    connect.seconds = round3(end_us.saturating_sub(start_us) as f64 / 1e6);
    connect.per_sec = if connect.seconds > 0.0 {
        round3(connect.ok as f64 / connect.seconds)
    } else {
        0.0
    };
    connect.latency_ms = Latency::of_us(&connect_hist);
    let server_connect_cpu = cpu_delta(s0, s1);
    connect.per_server_cpu_s =
        (server_connect_cpu > 0.0).then(|| round3(connect.ok as f64 / server_connect_cpu));
    report.connections = connect.ok;
    if connect.ok == 0 {
        bail!(
            "no client could join: {}",
            connect
                .first_error
                .as_deref()
                .unwrap_or("no error reported")
        );
    }

    // Idle: hold, then measure memory.
    if let Some(hold) = plan.idle_hold {
        tokio::time::sleep(hold).await;
        let (si, gi) = (target.sample(), generator_sample(target, &fleet));
        let n = connect.ok as f64;
        report.idle = Some(IdleReport {
            hold_s: hold.as_secs(),
            server_rss_before_kib: s0.rss_kib,
            server_rss_after_kib: si.rss_kib,
            server_rss_per_conn_bytes: round3((si.rss_kib as f64 - s0.rss_kib as f64) * 1024.0 / n),
            generator_rss_per_conn_bytes: round3(
                (gi.rss_kib as f64 - g0.rss_kib as f64) * 1024.0 / n,
            ),
        });
    }
    // What the joins set off (presence events of the rooms just filled)
    // finishes before the window that measures messages starts.
    let quiet = wait_for_quiet(target).await;
    report.quiet_wait_ms = quiet.as_millis() as u64;
    let run_start = (target.sample(), generator_sample(target, &fleet));
    let busy_run_start = proc::machine_busy_s();

    // Publish (and churn / like) phase.
    let metrics_before = target.metrics(&http, METRICS).await;
    report.server_metrics_connect = delta(&metrics_start, &metrics_before);
    fleet.send(Cmd::Start).await?;
    let started = Instant::now();
    let rate_total = plan.rate_per_room * rooms.len() as f64;
    // Warm the publisher's HTTP connection so the first message does not pay for it.
    let _ = members(&backend, &target.backend_url, &rooms[0]).await;
    // Danmaku: comments and gifts side by side, each marked as the room's
    // own actions mark them (comments low, gifts high).
    let mut danmaku_published = None;
    let published = if let Some(d) = &plan.danmaku {
        let (comments, gifts) = tokio::join!(
            publish::run(
                &backend,
                &target.backend_url,
                &rooms,
                d.comments_per_sec,
                plan.duration,
                ("comment", "low"),
            ),
            publish::run(
                &backend,
                &target.backend_url,
                &rooms,
                d.gifts_per_sec,
                plan.duration,
                ("gift", "high"),
            ),
        );
        danmaku_published = Some((comments.messages, gifts.messages));
        comments.merge(gifts)
    } else if rate_total > 0.0 {
        publish::run(
            &backend,
            &target.backend_url,
            &rooms,
            rate_total,
            plan.duration,
            ("bench", &args.fleet.priority),
        )
        .await
    } else {
        tokio::time::sleep(plan.duration).await;
        publish::Published::default()
    };
    fleet.send(Cmd::Stop).await?;
    fleet
        .expect("stopped", Duration::from_secs(120), |e| {
            matches!(e, Event::Stopped).then_some(())
        })
        .await?;
    let expected: u64 = published
        .max_seq
        .iter()
        .enumerate()
        .map(|(r, &seq)| plan.members(r) * seq)
        .sum();
    let settle_until = Instant::now() + Duration::from_secs(args.fleet.settle);
    while fleet.covered() < expected && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if plan.likes.is_some() {
        // The last aggregation window's totals push.
        tokio::time::sleep(LIKES_SETTLE).await;
    }
    let run_seconds = started.elapsed().as_secs_f64();
    let metrics_after = target.metrics(&http, METRICS).await;
    report.server_metrics = delta(&metrics_before, &metrics_after);
    let (s2, g2) = (target.sample(), generator_sample(target, &fleet));
    let busy2 = proc::machine_busy_s();

    // Presence after churn: only the stayers should be members.
    let mut churn_report = None;
    if let Some(c) = &plan.churn {
        let mut r = ChurnReport {
            per_sec: c.churn_per_sec,
            dwell_ms: c.dwell_ms,
            presence_expected: plan.clients as u64,
            ..ChurnReport::default()
        };
        let waited = Instant::now();
        loop {
            r.presence_observed = members(&backend, &target.backend_url, &rooms[0])
                .await
                .unwrap_or(u64::MAX);
            r.presence_ok = r.presence_observed == r.presence_expected;
            if r.presence_ok || waited.elapsed() > PRESENCE_WAIT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        r.presence_settled_ms = waited.elapsed().as_millis() as u64;
        churn_report = Some(r);
    }

    // Final tallies.
    fleet.send(Cmd::Finish).await?;
    let finals = fleet
        .expect("final", Duration::from_secs(120), |e| match e {
            Event::Final(f) => Some(*f),
            _ => None,
        })
        .await?;
    fleet.wait().await;
    let s3 = target.sample();
    let mut holders = Tally::default();
    let mut latency = wire::histogram();
    let mut low_per_holder_sec = wire::histogram();
    let mut churn_tally = wire::ChurnTally::default();
    let mut churn_join: Histogram<u64> = wire::histogram();
    let mut likes_tally = wire::LikesTally::default();
    for f in &finals {
        holders.add(&f.holders);
        f.latency_us.merge_into(&mut latency);
        f.low_per_holder_sec.merge_into(&mut low_per_holder_sec);
        churn_tally.started += f.churn.started;
        churn_tally.joined += f.churn.joined;
        churn_tally.join_failed += f.churn.join_failed;
        churn_tally.left_with_leave += f.churn.left_with_leave;
        churn_tally.left_with_close += f.churn.left_with_close;
        churn_tally.deliveries.add(&f.churn.deliveries);
        if churn_tally.first_error.is_none() {
            churn_tally.first_error.clone_from(&f.churn.first_error);
        }
        f.churn.join_us.merge_into(&mut churn_join);
        likes_tally.sent += f.likes.sent;
        likes_tally.ok += f.likes.ok;
        likes_tally.refused += f.likes.refused;
        if likes_tally.first_refusal.is_none() {
            likes_tally.first_refusal.clone_from(&f.likes.first_refusal);
        }
        for (kind, n) in &f.likes.ephemeral_kinds {
            *likes_tally.ephemeral_kinds.entry(kind.clone()).or_insert(0) += n;
        }
        if likes_tally.last_ephemeral.is_none() {
            likes_tally
                .last_ephemeral
                .clone_from(&f.likes.last_ephemeral);
        }
    }

    // The report.
    report.publish_rate_total = round3(rate_total);
    report.publish_seconds = round3(if rate_total > 0.0 {
        published.seconds
    } else {
        plan.duration.as_secs_f64()
    });
    report.messages_published = published.messages;
    report.publish_errors = published.errors;
    report.publish_first_error = published.first_error.clone();
    report.push_api_ms = published.api_ms;
    report.deliveries_expected = expected;
    report.deliveries_received = holders.received;
    report.gaps = holders.gaps;
    report.duplicates = holders.duplicates;
    report.out_of_order = holders.out_of_order;
    report.sampled = holders.sampled;
    report.lagged = holders.lagged;
    report.disconnects = holders.disconnects;
    report.error_frames = holders.errors;
    report.stream_resets = holders.resets;
    report.first_error = holders.first_error.clone();
    report.deliveries_per_sec = if run_seconds > 0.0 {
        round3(holders.received as f64 / run_seconds)
    } else {
        0.0
    };
    report.latency_ms = Latency::of_us(&latency);

    // CPU: the measured window is the connect phase for connect-ramp and idle,
    // the publish window otherwise.
    let connect_window = plan.rate_per_room <= 0.0 && plan.churn.is_none() && plan.likes.is_none();
    let server_run_cpu = cpu_delta(run_start.0, s2);
    let gen_run_cpu = cpu_delta(run_start.1, g2);
    let gen_connect_cpu = cpu_delta(g0, g1);
    let (server_cores, gen_cores, busy_cores) = if connect_window {
        // The busy counter spans the whole connect command; close enough.
        (
            cores(server_connect_cpu, connect.seconds),
            cores(gen_connect_cpu, connect.seconds),
            cores(busy1 - busy0, connect.seconds),
        )
    } else {
        (
            cores(server_run_cpu, run_seconds),
            cores(gen_run_cpu, run_seconds),
            cores(busy2 - busy_run_start, run_seconds),
        )
    };
    let other_cores = round3((busy_cores - server_cores - gen_cores).max(0.0));
    report.machine.busy_cores = busy_cores;
    report.machine.other_cores = other_cores;
    report.server = ServerReport {
        pids: target.pids.clone(),
        cpu_s_connect: server_connect_cpu,
        cpu_s_run: server_run_cpu,
        cores: server_cores,
        cpu_s_total: cpu_delta(s0, s3),
        rss_start_kib: s0.rss_kib,
        rss_joined_kib: s1.rss_kib,
        rss_end_kib: s2.rss_kib,
        peak_rss_kib: s3.peak_rss_kib.max(s2.peak_rss_kib),
        shares_process_with_coordinator: target.kind == Kind::InProcess,
    };
    report.generator = GeneratorReport {
        worker_pids: report.generator.worker_pids.clone(),
        cpu_s_connect: gen_connect_cpu,
        cpu_s_run: gen_run_cpu,
        cores: gen_cores,
        cpu_s_total: cpu_delta(g0, g2),
        workers_peak_rss_kib: g2.peak_rss_kib,
    };
    report.deliveries_per_server_cpu_s = (server_run_cpu > 0.0 && holders.received > 0)
        .then(|| round3(holders.received as f64 / server_run_cpu));
    report.bound = bound(server_cores, gen_cores, other_cores, target.pids.is_empty());
    report.connect = connect;
    if let Some(mut c) = churn_report {
        let presence = (
            c.presence_expected,
            c.presence_observed,
            c.presence_ok,
            c.presence_settled_ms,
        );
        c = ChurnReport {
            per_sec: c.per_sec,
            dwell_ms: c.dwell_ms,
            ..ChurnReport::from_tally(&churn_tally, &churn_join)
        };
        (
            c.presence_expected,
            c.presence_observed,
            c.presence_ok,
            c.presence_settled_ms,
        ) = presence;
        report.churn = Some(c);
    }
    if let Some(probe) = likes_report {
        let mut l = LikesReport::from_tally(&likes_tally, probe.per_action);
        l.action = probe.action;
        l.target_taps_per_sec = probe.target_taps_per_sec;
        l.probe = probe.probe;
        let secs = plan.duration.as_secs_f64().max(0.001);
        l.taps_ok_per_sec = round3(l.taps_ok as f64 / secs);
        l.pushes_per_client_per_sec =
            round3(holders.ephemeral as f64 / secs / report.connections.max(1) as f64);
        report.likes = Some(l);
    }
    if let (Some(d), Some((comments, gifts))) = (&plan.danmaku, danmaku_published) {
        let gifts_expected = report.connections * gifts;
        let covered = holders.received + holders.sampled;
        let per_cpu = |n: u64| (server_run_cpu > 0.0).then(|| round3(n as f64 / server_run_cpu));
        report.danmaku = Some(DanmakuReport {
            viewers: report.connections,
            comments_per_sec: d.comments_per_sec,
            gifts_per_sec: d.gifts_per_sec,
            comments_published: comments,
            gifts_published: gifts,
            gifts_expected,
            gifts_received: holders.high_received,
            gifts_missing: gifts_expected.saturating_sub(holders.high_received),
            coverage_gaps: holders.gaps,
            covered_expected: expected,
            covered,
            comments_received: holders.low_received,
            comments_per_viewer_sec: PerViewerSecond::of(&low_per_holder_sec),
            covered_per_server_cpu_s: per_cpu(covered),
            delivered_per_server_cpu_s: per_cpu(holders.received),
        });
    }
    report.budget = budget(plan, &report);
    Ok(report)
}

/// Counter increases between two scrapes.
fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(series, v)| {
            let was = before.get(series).copied().unwrap_or(0.0);
            (series.clone(), round3(v - was))
        })
        .collect()
}

/// Which side the CPU went to: the machine is CPU-bound once it is busy on
/// most of its cores (the server, the load generator, and whatever else runs).
fn bound(server: f64, generator: f64, others: f64, server_unknown: bool) -> String {
    let cpus = proc::cpus() as f64;
    if server_unknown {
        return format!("unknown (no server pid); generator {generator:.2} cores");
    }
    let side = if server >= generator && server >= others {
        "server"
    } else if generator >= others {
        "generator"
    } else {
        "other processes"
    };
    let busy = server + generator + others;
    let what = if busy >= 0.85 * cpus {
        format!("cpu-saturated, mostly {side}")
    } else {
        "not cpu-saturated".to_owned()
    };
    format!(
        "{what}: server {server:.2} + generator {generator:.2} + others {others:.2} of {cpus} cores"
    )
}

/// The budget for the scenario, next to the figures.
fn budget(plan: &Plan, r: &Report) -> Vec<BudgetLine> {
    let mut lines = Vec::new();
    let delivers = r.messages_published > 0;
    if delivers {
        lines.push(BudgetLine::at_most("gaps", r.gaps as f64, 0.0, ""));
        lines.push(BudgetLine::at_most(
            "duplicates",
            r.duplicates as f64,
            0.0,
            "",
        ));
        lines.push(BudgetLine::at_most(
            "out_of_order",
            r.out_of_order as f64,
            0.0,
            "",
        ));
        if plan.danmaku.is_none() {
            lines.push(BudgetLine::at_least(
                "deliveries_received",
                r.deliveries_received as f64,
                r.deliveries_expected as f64,
                "(expected)",
            ));
        }
    }
    let per_cpu = r.deliveries_per_server_cpu_s.unwrap_or(0.0);
    match plan.scenario {
        "big-room" => {
            lines.push(BudgetLine::at_most(
                "latency_p99_ms",
                r.latency_ms.p99,
                50.0,
                "ms",
            ));
            lines.push(BudgetLine::at_least(
                "deliveries_per_server_cpu_s",
                per_cpu,
                2_000_000.0,
                "/CPU-s",
            ));
        }
        "small-rooms" => {
            lines.push(BudgetLine::at_most(
                "latency_p99_ms",
                r.latency_ms.p99,
                50.0,
                "ms",
            ));
            lines.push(BudgetLine::at_least(
                "deliveries_per_server_cpu_s",
                per_cpu,
                250_000.0,
                "/CPU-s",
            ));
        }
        "danmaku-storm" => {
            if let Some(d) = &r.danmaku {
                lines.push(BudgetLine::at_most(
                    "gifts_missing",
                    d.gifts_missing as f64,
                    0.0,
                    "",
                ));
                lines.push(BudgetLine::at_most(
                    "coverage_gaps",
                    d.coverage_gaps as f64,
                    0.0,
                    "",
                ));
                lines.push(BudgetLine::at_least(
                    "covered",
                    d.covered as f64,
                    d.covered_expected as f64,
                    "(viewers × seqs published)",
                ));
                lines.push(BudgetLine::at_most(
                    "comments_per_viewer_sec_p50",
                    d.comments_per_viewer_sec.p50 as f64,
                    DANMAKU_READABLE_PER_SEC,
                    "/s (what a person reads)",
                ));
                lines.push(BudgetLine::at_most(
                    "comments_per_viewer_sec_max",
                    d.comments_per_viewer_sec.max as f64,
                    DANMAKU_MAX_PER_SEC,
                    "/s (the rate + its burst + jitter)",
                ));
                lines.push(BudgetLine::at_most(
                    "latency_p99_ms",
                    r.latency_ms.p99,
                    100.0,
                    "ms",
                ));
                lines.push(BudgetLine::at_least(
                    "covered_per_server_cpu_s",
                    d.covered_per_server_cpu_s.unwrap_or(0.0),
                    2_000_000.0,
                    "/CPU-s",
                ));
            }
        }
        "room-latency" => {
            lines.push(BudgetLine::at_most(
                "latency_p99_ms",
                r.latency_ms.p99,
                50.0,
                "ms",
            ));
        }
        "connect-ramp" => {
            lines.push(BudgetLine::at_least(
                "connects_per_sec",
                r.connect.per_sec,
                15_000.0,
                "/s",
            ));
            lines.push(BudgetLine::at_most(
                "connect_failures",
                r.connect.failed as f64,
                0.0,
                "",
            ));
        }
        "idle" => {
            let per_conn = r.idle.as_ref().map_or(0.0, |i| i.server_rss_per_conn_bytes);
            lines.push(BudgetLine::at_most(
                "server_rss_per_conn_bytes",
                per_conn,
                6144.0,
                "bytes",
            ));
        }
        "churn" => {
            if let Some(c) = &r.churn {
                lines.push(BudgetLine::at_least(
                    "presence_ok",
                    f64::from(u8::from(c.presence_ok)),
                    1.0,
                    "",
                ));
                lines.push(BudgetLine::at_most(
                    "churn_join_failed",
                    c.join_failed as f64,
                    0.0,
                    "",
                ));
            }
        }
        "likes-storm" => {
            if let Some(l) = &r.likes {
                lines.push(BudgetLine::at_most(
                    "likes_refused",
                    l.actions_refused as f64,
                    0.0,
                    "actions",
                ));
                lines.push(BudgetLine::at_least(
                    "taps_ok_per_sec",
                    l.taps_ok_per_sec,
                    round3(l.target_taps_per_sec * 0.99),
                    "/s (99 % of the target rate)",
                ));
                lines.push(BudgetLine::at_least(
                    "pushed_likes_total",
                    l.pushed_likes_total.unwrap_or(0) as f64,
                    l.taps_ok as f64,
                    "(taps accepted: all counted)",
                ));
                lines.push(BudgetLine::at_most(
                    "pushes_per_client_per_sec",
                    l.pushes_per_client_per_sec,
                    5.0,
                    "/s",
                ));
                // Counters cover the storm and the settle wait after it.
                let windows = ((r.publish_seconds + LIKES_SETTLE.as_secs_f64()) / 0.25).ceil();
                let flushes = r
                    .server_metrics
                    .iter()
                    .filter(|(k, _)| k.starts_with("roomcast_biz_counter_flushes_total"))
                    .map(|(_, v)| v)
                    .sum::<f64>();
                lines.push(BudgetLine::at_most(
                    "counter_flushes_per_250ms_window",
                    round3(flushes / windows),
                    1.0,
                    "(per room and biz node)",
                ));
            }
        }
        _ => {}
    }
    lines
}

fn empty_report(plan: &Plan, args: &BenchArgs, target: &Target) -> Report {
    Report {
        scenario: plan.scenario.to_owned(),
        commit: proc::commit_id(),
        date: proc::utc_date(),
        unix_ms: common::time::now_ms(),
        transport: args.target.transport.report_name(),
        target: target.kind,
        connections: 0,
        rooms: plan.rooms,
        workers: 0,
        source_ips: args.fleet.source_ips,
        publish_rate_per_room: plan.rate_per_room,
        publish_rate_total: 0.0,
        publish_seconds: 0.0,
        quiet_wait_ms: 0,
        messages_published: 0,
        publish_errors: 0,
        publish_first_error: None,
        push_api_ms: [0.0; 3],
        deliveries_expected: 0,
        deliveries_received: 0,
        gaps: 0,
        duplicates: 0,
        out_of_order: 0,
        sampled: 0,
        lagged: 0,
        disconnects: 0,
        error_frames: 0,
        stream_resets: 0,
        first_error: None,
        deliveries_per_sec: 0.0,
        latency_ms: Latency::default(),
        connect: ConnectReport::default(),
        server: ServerReport {
            pids: target.pids.clone(),
            ..ServerReport::default()
        },
        generator: GeneratorReport::default(),
        deliveries_per_server_cpu_s: None,
        bound: String::new(),
        server_metrics: BTreeMap::new(),
        server_metrics_connect: BTreeMap::new(),
        idle: None,
        churn: None,
        likes: None,
        danmaku: None,
        polling: (args.target.transport == Transport::Polling).then_some(PollingReport {
            wait_s: args.fleet.poll_wait,
            honors_poll_after: !args.fleet.poll_ignore_pause,
        }),
        not_runnable: None,
        budget: Vec::new(),
        machine: Machine::default(),
        note: args.fleet.note.clone(),
    }
}

/// An HTTP client for the backend API: the target's API key on every request.
fn backend_client(target: &Target) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {}", target.api_key)
        .parse()
        .context("the API key is not a valid header value")?;
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .default_headers(headers)
        .build()?)
}

/// The room's live member count.
async fn members(http: &reqwest::Client, biz_url: &str, room: &str) -> anyhow::Result<u64> {
    let v: serde_json::Value = http
        .get(format!("{biz_url}/v1/rooms/{room}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    v["members"].as_u64().context("no members in the room")
}

/// Try the action once, over HTTP (`POST /v1/rooms/{id}/actions`) and as a
/// client `Publish`. `Ok(what happened)` if either accepts it, `Err(why not)`
/// if both refuse.
async fn probe_action(
    http: &reqwest::Client,
    target: &Target,
    transport: Transport,
    secret: &str,
    room: &str,
    likes: &LikesArgs,
) -> Result<String, String> {
    let payload: serde_json::Value = serde_json::from_str(&likes.payload())
        .map_err(|e| format!("--payload is not JSON: {e}"))?;
    let body =
        serde_json::json!({ "action": likes.action, "uid": "bench-probe", "payload": payload });
    let http_said = match http
        .post(format!("{}/v1/rooms/{room}/actions", target.biz_url))
        .json(&body)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if status.is_success() {
                return Ok(format!(
                    "HTTP POST /v1/rooms/{{id}}/actions accepted: {status} {text}"
                ));
            }
            format!("HTTP POST /v1/rooms/{{id}}/actions → {status} {text}")
        }
        Err(e) => format!("HTTP POST /v1/rooms/{{id}}/actions failed: {e}"),
    };
    let client_said = match probe_publish(target, transport, secret, room, likes).await {
        Ok((true, what)) => return Ok(format!("client Publish accepted: {what}; {http_said}")),
        Ok((false, what)) => format!("client Publish{{action: {:?}}} → {what}", likes.action),
        Err(e) => format!("client probe failed: {e:#}"),
    };
    Err(format!(
        "the `{}` action is refused: {client_said}; {http_said}",
        likes.action
    ))
}

/// Join as a probe client (over the run's transport) and publish the action
/// once; (accepted, reply text).
async fn probe_publish(
    target: &Target,
    transport: Transport,
    secret: &str,
    room: &str,
    likes: &LikesArgs,
) -> anyhow::Result<(bool, String)> {
    let (endpoint, dialer) = match transport {
        Transport::Quic => {
            let url = target
                .quic_url
                .as_deref()
                .context("no --quic-url to probe with")?;
            let endpoint = Endpoint::resolve(url, target.quic_cert_sha256.as_deref()).await?;
            (endpoint, Some(QuicDialer::bind(Ipv4Addr::LOCALHOST)?))
        }
        Transport::Ws | Transport::Polling => {
            if target.ws_url.is_empty() {
                bail!("no --ws-url to probe with");
            }
            (Endpoint::resolve(&target.ws_url, None).await?, None)
        }
    };
    let mut conn = conn::connect(&endpoint, Ipv4Addr::LOCALHOST, dialer.as_ref()).await?;
    let token = common::auth::mint_hs256(secret, "bench-probe", 600)?;
    client::hello_join(&mut conn, token, room).await?;
    conn.send(client_frame::Frame::Publish(Publish {
        r#ref: 7,
        room: room.to_owned(),
        action: likes.action.clone(),
        payload: likes.payload().into_bytes().into(),
    }))
    .await?;
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = match conn.recv().await {
                Incoming::Frame(frame) => frame,
                Incoming::Skip => continue,
                Incoming::Closed(_) => return Ok((false, "closed without a reply".to_owned())),
            };
            match frame.frame {
                Some(server_frame::Frame::Reply(r)) if r.r#ref == 7 => {
                    let code = Code::try_from(r.code).map_or("unknown", |c| c.as_str_name());
                    let ok = r.code == Code::Ok as i32;
                    return anyhow::Ok((
                        ok,
                        format!("{code}: {} {}", r.message, String::from_utf8_lossy(&r.body)),
                    ));
                }
                Some(server_frame::Frame::Error(e)) => {
                    let code = Code::try_from(e.code).map_or("unknown", |c| c.as_str_name());
                    return Ok((false, format!("error {code}: {}", e.message)));
                }
                _ => {}
            }
        }
    })
    .await
    .context("no reply within 5 s")??;
    conn.close().await;
    Ok(answer)
}
