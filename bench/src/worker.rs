//! The hidden `worker` subcommand: one process holding a share of the
//! connections. It reads its [`WorkerSpec`] and then [`Cmd`]s on stdin, and
//! writes [`Event`]s on stdout, one JSON line each. It runs on one thread
//! (a `LocalSet`), so the per-worker tallies need no locks.
//!
//! Its clients are long connections (WebSocket or QUIC, the same frames: see
//! [`crate::conn`]) or HTTP long pollers ([`crate::polling`]); either way
//! every delivery goes through the same [`SeqCheck`] and latency histogram.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use proto::client::v1::{Code, Leave, Ping, Publish, ServerFrame, client_frame, server_frame};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::Transport;
use crate::client::{self, JoinedRoom, PerSecond, SeqCheck};
use crate::conn::{self, Conn, Endpoint, Incoming, QuicDialer};
use crate::polling;
use crate::wire::{
    self, ChurnSpec, ChurnTally, Cmd, Event, FinalReport, Hist, JoinedReport, LikesTally, Tally,
    WorkerSpec,
};

/// Lifetime of the tokens workers mint.
const TOKEN_TTL_SECS: i64 = 6 * 3600;
/// How often progress is reported after `Start`.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How long a churning client waits for `Left` after `Leave`.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between polls, whatever `poll_after_ms` says.
const MAX_POLL_PAUSE: Duration = Duration::from_secs(5);
/// First retry delay after a failed poll (doubling up to [`MAX_POLL_PAUSE`]).
const POLL_RETRY: Duration = Duration::from_millis(100);

/// Run a worker until `Finish` (or until the coordinator goes away).
pub fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run())
}

/// What the worker's clients saw.
struct Stats {
    holders: Tally,
    latency: Histogram<u64>,
    /// Low-priority messages per holder per whole second of the publish window.
    low_per_holder_sec: Histogram<u64>,
    churn: ChurnTally,
    churn_join: Histogram<u64>,
    likes: LikesTally,
}

/// Shared by every task of the worker.
struct Worker {
    spec: WorkerSpec,
    /// Where long connections go (`None`: ask the router per client).
    endpoint: Option<Endpoint>,
    /// The worker's one QUIC endpoint (with `--transport quic`).
    quic: Option<QuicDialer>,
    /// Polling HTTP clients, one per source address (with `--transport polling`).
    pollers: Vec<reqwest::Client>,
    /// Router calls.
    http: reqwest::Client,
    stats: RefCell<Stats>,
    /// Cancelled at `Start`.
    started: CancellationToken,
    /// Cancelled at `Stop`.
    stopped: CancellationToken,
    /// Cancelled at `Finish`.
    finish: CancellationToken,
}

/// Which tally a connection counts in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Holder { reports_ephemeral: bool },
    Churner,
}

fn emit(event: &Event) {
    let Ok(line) = serde_json::to_string(event) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn mint(secret: &str, uid: &str) -> anyhow::Result<String> {
    Ok(common::auth::mint_hs256(secret, uid, TOKEN_TTL_SECS)?)
}

async fn run() -> anyhow::Result<()> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let first = lines
        .next_line()
        .await?
        .context("no worker spec on stdin")?;
    let spec: WorkerSpec = serde_json::from_str(&first).context("bad worker spec")?;
    anyhow::ensure!(!spec.rooms.is_empty(), "no rooms");
    anyhow::ensure!(!spec.source_ips.is_empty(), "no source addresses");
    let endpoint = match spec.transport {
        Transport::Ws if !spec.ws_url.is_empty() => {
            Some(Endpoint::resolve(&spec.ws_url, None).await?)
        }
        Transport::Quic => match &spec.quic_url {
            Some(url) => Some(Endpoint::resolve(url, spec.quic_cert_sha256.as_deref()).await?),
            None => None,
        },
        _ => None,
    };
    // One UDP socket per worker, on one of the loopback addresses.
    let quic = match spec.transport {
        Transport::Quic => Some(QuicDialer::bind(
            spec.source_ips[spec.index % spec.source_ips.len()],
        )?),
        _ => None,
    };
    let pollers = match spec.transport {
        Transport::Polling => spec
            .source_ips
            .iter()
            .map(|&ip| polling::http_client(ip))
            .collect::<anyhow::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    let tokens = (spec.first..spec.first + spec.count)
        .map(|i| mint(&spec.secret, &format!("bench-{i}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let w = Rc::new(Worker {
        endpoint,
        quic,
        pollers,
        http: reqwest::Client::new(),
        stats: RefCell::new(Stats {
            holders: Tally::default(),
            latency: wire::histogram(),
            low_per_holder_sec: wire::histogram(),
            churn: ChurnTally::default(),
            churn_join: wire::histogram(),
            likes: LikesTally::default(),
        }),
        started: CancellationToken::new(),
        stopped: CancellationToken::new(),
        finish: CancellationToken::new(),
        spec,
    });
    emit(&Event::Ready {
        pid: std::process::id(),
    });

    let mut tokens = Some(tokens);
    let mut holders = Vec::new();
    let mut churn = None;
    let mut progress = None;
    while let Some(line) = lines.next_line().await? {
        match serde_json::from_str::<Cmd>(&line).context("bad command")? {
            Cmd::Connect => {
                let report = connect_all(&w, tokens.take().unwrap_or_default(), &mut holders).await;
                emit(&Event::Joined(Box::new(report)));
            }
            Cmd::Start => {
                w.started.cancel();
                progress = Some(tokio::task::spawn_local(report_progress(w.clone())));
                if let Some(spec) = w.spec.churn.clone().filter(|c| c.per_sec > 0.0) {
                    churn = Some(tokio::task::spawn_local(run_churn(w.clone(), spec)));
                }
            }
            Cmd::Stop => {
                w.stopped.cancel();
                if let Some(task) = churn.take() {
                    let _ = task.await;
                }
                emit(&Event::Stopped);
            }
            Cmd::Finish => {
                w.stopped.cancel();
                w.finish.cancel();
                for task in holders.drain(..) {
                    let _ = task.await;
                }
                if let Some(task) = progress.take() {
                    task.abort();
                }
                let stats = w.stats.borrow();
                let mut churn = stats.churn.clone();
                churn.join_us = Hist::of(&stats.churn_join);
                emit(&Event::Final(Box::new(FinalReport {
                    holders: stats.holders.clone(),
                    latency_us: Hist::of(&stats.latency),
                    low_per_holder_sec: Hist::of(&stats.low_per_holder_sec),
                    churn,
                    likes: stats.likes.clone(),
                })));
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Connect every holder, `connect_concurrency` at a time; each then stays in
/// its read loop (a task in `holders`) until `Finish`.
async fn connect_all(
    w: &Rc<Worker>,
    tokens: Vec<String>,
    holders: &mut Vec<JoinHandle<()>>,
) -> JoinedReport {
    let gate = Rc::new(Semaphore::new(w.spec.connect_concurrency.max(1)));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(tokens.len().max(1));
    let start_us = common::time::now_us();
    let n = tokens.len();
    for (k, token) in tokens.into_iter().enumerate() {
        let index = w.spec.first + k;
        let room = w.spec.rooms[index % w.spec.rooms.len()].clone();
        let source = w.spec.source_ips[index % w.spec.source_ips.len()];
        let (w, gate, done) = (w.clone(), gate.clone(), done_tx.clone());
        holders.push(tokio::task::spawn_local(async move {
            let Ok(permit) = gate.acquire().await else {
                return;
            };
            let started = Instant::now();
            let uid = format!("bench-{index}");
            let opened = if w.spec.transport == Transport::Polling {
                let http = w.pollers[index % w.pollers.len()].clone();
                first_poll(&w, http, token, &room).await
            } else {
                open_and_join(&w, source, &uid, token, &room)
                    .await
                    .map(|(conn, joined)| (Session::Long(conn), joined))
            };
            drop(permit);
            match opened {
                Ok((session, joined)) => {
                    let _ = done.send(Ok(started.elapsed())).await;
                    drop(done);
                    let role = Role::Holder {
                        reports_ephemeral: k == 0,
                    };
                    match session {
                        Session::Long(conn) => hold(w, conn, joined, room, index, role).await,
                        Session::Poll(p) => hold_polling(w, p, joined, room, role).await,
                    }
                }
                Err(error) => {
                    let _ = done.send(Err(format!("{error:#}"))).await;
                }
            }
        }));
    }
    drop(done_tx);
    let mut report = JoinedReport {
        start_us,
        ..JoinedReport::default()
    };
    let mut hist = wire::histogram();
    for _ in 0..n {
        // Every holder task sends exactly one outcome (the channel stays open
        // while the joined ones hold their connections).
        let Some(outcome) = done_rx.recv().await else {
            break;
        };
        match outcome {
            Ok(took) => {
                report.ok += 1;
                let _ = hist.record((took.as_micros() as u64).clamp(1, wire::HIST_MAX_US));
            }
            Err(error) => {
                report.failed += 1;
                report.first_error.get_or_insert(error);
            }
        }
    }
    report.end_us = common::time::now_us();
    report.connect_us = Hist::of(&hist);
    report
}

/// Where `uid` connects: the fixed endpoint, or the router's endpoint of the
/// worker's transport (`ws` or `quic`, with the router's certificate pin).
async fn endpoint_for(w: &Worker, uid: &str) -> anyhow::Result<Endpoint> {
    if let Some(endpoint) = &w.endpoint {
        return Ok(endpoint.clone());
    }
    let router = w
        .spec
        .router_url
        .as_deref()
        .context("no endpoint and no router")?;
    let route: serde_json::Value = w
        .http
        // Bench uids are `[a-z0-9-]`: no escaping needed.
        .get(format!("{router}/v1/route?uid={uid}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let transport = w.spec.transport.as_str();
    let url = route["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["transport"] == transport))
        .and_then(|e| e["url"].as_str())
        .with_context(|| format!("the router gave {uid} no {transport} endpoint: {route}"))?;
    Endpoint::resolve(url, route[proto::transport::QUIC_CERT_SHA256].as_str()).await
}

/// A joined client: a long connection, or a poller's position.
enum Session {
    Long(Conn),
    Poll(Poller),
}

/// A polling client between polls.
struct Poller {
    http: reqwest::Client,
    token: String,
    epoch: u64,
}

async fn open_and_join(
    w: &Worker,
    source: Ipv4Addr,
    uid: &str,
    token: String,
    room: &str,
) -> anyhow::Result<(Conn, JoinedRoom)> {
    let endpoint = endpoint_for(w, uid).await?;
    let mut conn = conn::connect(&endpoint, source, w.quic.as_ref()).await?;
    let joined = client::hello_join(&mut conn, token, room).await?;
    Ok((conn, joined))
}

/// A polling client's "join": the first poll, without a position, answers at
/// the head (`recovered: false`), like a socket join without resume.
async fn first_poll(
    w: &Worker,
    http: reqwest::Client,
    token: String,
    room: &str,
) -> anyhow::Result<(Session, JoinedRoom)> {
    let reply = polling::poll(&http, &w.spec.biz_url, room, &token, (0, 0), Duration::ZERO).await?;
    let joined = JoinedRoom {
        start_seq: reply.next_after,
    };
    let poller = Poller {
        http,
        token,
        epoch: reply.epoch,
    };
    Ok((Session::Poll(poller), joined))
}

/// A polling holder's life after its first poll: poll from the position,
/// check each reply as a delivery, pause `poll_after_ms`, until `Finish`.
async fn hold_polling(w: Rc<Worker>, p: Poller, joined: JoinedRoom, room: String, role: Role) {
    let wait = Duration::from_secs(w.spec.poll_wait_secs);
    let mut check = SeqCheck::new(joined.start_seq);
    let (mut after, mut epoch) = (joined.start_seq, p.epoch);
    let mut retry = POLL_RETRY;
    loop {
        let polled = tokio::select! {
            biased;
            _ = w.finish.cancelled() => break,
            polled = polling::poll(&p.http, &w.spec.biz_url, &room, &p.token, (after, epoch), wait) => polled,
        };
        let pause = match polled {
            Ok(reply) => {
                retry = POLL_RETRY;
                if reply.recovered && reply.epoch == epoch {
                    let frame = ServerFrame {
                        frame: Some(server_frame::Frame::Delivery(reply.delivery(&room))),
                    };
                    let _ = on_frame(&w, role, &mut check, frame);
                } else {
                    // The position could not be resumed: the stream restarted
                    // (whatever was missing stays missing), as `Joined{ref: 0}`.
                    let mut stats = w.stats.borrow_mut();
                    let tally = tally_of(&mut stats, role);
                    tally.resets += 1;
                    tally.gaps += check.open_gaps();
                    check = SeqCheck::new(reply.next_after);
                }
                (after, epoch) = (reply.next_after, reply.epoch);
                if w.spec.poll_ignore_pause {
                    Duration::ZERO
                } else {
                    Duration::from_millis(reply.poll_after_ms).min(MAX_POLL_PAUSE)
                }
            }
            Err(error) => {
                let mut stats = w.stats.borrow_mut();
                let tally = tally_of(&mut stats, role);
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("{error:#}"));
                let pause = retry;
                retry = (retry * 2).min(MAX_POLL_PAUSE);
                pause
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                biased;
                _ = w.finish.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
    let mut stats = w.stats.borrow_mut();
    tally_of(&mut stats, role).gaps += check.open_gaps();
}

/// A holder's life after joining: read, check, ping, like, until `Finish`.
async fn hold(
    w: Rc<Worker>,
    mut conn: Conn,
    joined: JoinedRoom,
    room: String,
    index: usize,
    role: Role,
) {
    let mut check = SeqCheck::new(joined.start_seq);
    let ping_every = Duration::from_secs(w.spec.ping_secs.max(1));
    // Spread the pings over the interval so they do not all fire at once.
    let offset = ping_every.mul_f64((index % 1000) as f64 / 1000.0);
    let mut ping = tokio::time::interval_at(Instant::now() + offset, ping_every);
    let likes = w
        .spec
        .likes
        .as_ref()
        .filter(|l| l.per_sec_per_client > 0.0)
        .map(|l| {
            (
                Duration::from_secs_f64(1.0 / l.per_sec_per_client),
                Bytes::from(l.payload.clone().into_bytes()),
                l.action.clone(),
            )
        });
    let mut like_tick = likes.as_ref().map(|(every, _, _)| {
        let offset = every.mul_f64((index % 997) as f64 / 997.0);
        let mut tick = tokio::time::interval_at(Instant::now() + offset, *every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let mut next_ref = 2u32;
    let mut low_rate = PerSecond::default();
    loop {
        let liking = like_tick.is_some() && w.started.is_cancelled() && !w.stopped.is_cancelled();
        let waiting_to_like = like_tick.is_some() && !w.started.is_cancelled();
        let incoming = tokio::select! {
            biased;
            _ = w.finish.cancelled() => break,
            _ = w.started.cancelled(), if waiting_to_like => continue,
            _ = w.stopped.cancelled(), if liking => continue,
            _ = ping.tick() => {
                let ping = client_frame::Frame::Ping(Ping { client_time_ms: common::time::now_ms() });
                if conn.send(ping).await.is_err() {
                    disconnected(&w, role, "ping failed");
                    break;
                }
                continue;
            }
            _ = async { like_tick.as_mut().expect("liking").tick().await }, if liking => {
                let Some((_, payload, action)) = &likes else { continue };
                next_ref = next_ref.wrapping_add(1).max(2);
                let publish = client_frame::Frame::Publish(Publish {
                    r#ref: next_ref,
                    room: room.clone(),
                    action: action.clone(),
                    payload: payload.clone(),
                });
                w.stats.borrow_mut().likes.sent += 1;
                if conn.send(publish).await.is_err() {
                    disconnected(&w, role, "send failed");
                    break;
                }
                continue;
            }
            incoming = conn.recv() => incoming,
        };
        match incoming {
            Incoming::Frame(frame) => {
                let low = on_frame(&w, role, &mut check, frame);
                if w.started.is_cancelled() && !w.stopped.is_cancelled() {
                    low_rate.add(common::time::now_ms() / 1000, low);
                }
            }
            Incoming::Skip => {}
            Incoming::Closed(why) => {
                disconnected(&w, role, &why);
                break;
            }
        }
    }
    let mut stats = w.stats.borrow_mut();
    tally_of(&mut stats, role).gaps += check.open_gaps();
    for &n in low_rate.whole_seconds() {
        let _ = stats.low_per_holder_sec.record(n);
    }
}

fn tally_of(stats: &mut Stats, role: Role) -> &mut Tally {
    match role {
        Role::Holder { .. } => &mut stats.holders,
        Role::Churner => &mut stats.churn.deliveries,
    }
}

fn disconnected(w: &Worker, role: Role, why: &str) {
    let mut stats = w.stats.borrow_mut();
    let tally = tally_of(&mut stats, role);
    tally.disconnects += 1;
    tally.first_error.get_or_insert_with(|| why.to_owned());
}

/// Account one server frame; the low-priority messages it newly delivered.
fn on_frame(w: &Worker, role: Role, check: &mut SeqCheck, frame: ServerFrame) -> u64 {
    let mut low = 0;
    let mut stats = w.stats.borrow_mut();
    let Stats {
        holders,
        latency,
        churn,
        likes,
        ..
    } = &mut *stats;
    let tally = match role {
        Role::Holder { .. } => holders,
        Role::Churner => &mut churn.deliveries,
    };
    match frame.frame {
        Some(server_frame::Frame::Delivery(d)) => {
            if matches!(role, Role::Holder { .. }) {
                let now = common::time::now_us();
                low = check.delivery(&d, tally, |body| {
                    if let Some(sent) = client::stamp(body) {
                        let _ =
                            latency.record(now.saturating_sub(sent).clamp(1, wire::HIST_MAX_US));
                    }
                });
            } else {
                low = check.delivery(&d, tally, |_| {});
            }
        }
        Some(server_frame::Frame::Joined(j)) if j.r#ref == 0 => {
            // The room's stream restarted: whatever was missing stays missing.
            tally.resets += 1;
            tally.gaps += check.open_gaps();
            *check = SeqCheck::new(j.start_seq);
        }
        Some(server_frame::Frame::Lagged(_)) => tally.lagged += 1,
        Some(server_frame::Frame::Error(e)) => {
            tally.errors += 1;
            tally
                .first_error
                .get_or_insert_with(|| format!("error frame {}: {}", e.code, e.message));
        }
        // Ephemeral frames count from `Start` on (joins push presence before).
        Some(server_frame::Frame::Ephemeral(e)) if w.started.is_cancelled() => {
            tally.ephemeral += 1;
            *likes.ephemeral_kinds.entry(e.kind.clone()).or_insert(0) += 1;
            if role
                == (Role::Holder {
                    reports_ephemeral: true,
                })
            {
                likes.last_ephemeral =
                    Some(format!("{}: {}", e.kind, String::from_utf8_lossy(&e.body)));
            }
        }
        Some(server_frame::Frame::Reply(r)) => {
            if r.code == Code::Ok as i32 {
                likes.ok += 1;
            } else {
                likes.refused += 1;
                likes.first_refusal.get_or_insert_with(|| {
                    let code = Code::try_from(r.code).map_or("unknown", |c| c.as_str_name());
                    format!("{code}: {}", r.message)
                });
            }
        }
        _ => {}
    }
    low
}

/// Report holder deliveries every [`PROGRESS_EVERY`].
async fn report_progress(w: Rc<Worker>) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tick.tick().await;
        let (received, covered) = {
            let stats = w.stats.borrow();
            let h = &stats.holders;
            (h.received, h.received + h.sampled)
        };
        emit(&Event::Progress { received, covered });
    }
}

/// Start churning clients at the rate until `Stop`, then wait for all of them
/// to have left.
async fn run_churn(w: Rc<Worker>, spec: ChurnSpec) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / spec.per_sec));
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut k = 0usize;
    loop {
        tokio::select! {
            _ = w.stopped.cancelled() => break,
            _ = tick.tick() => {}
        }
        k += 1;
        tasks.push(tokio::task::spawn_local(churner(
            w.clone(),
            spec.clone(),
            k,
        )));
        if tasks.len() >= 1024 {
            tasks.retain(|t| !t.is_finished());
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// One churn cycle: connect, join, stay `dwell_ms`, leave (with `Leave` or by
/// closing the socket).
async fn churner(w: Rc<Worker>, spec: ChurnSpec, k: usize) {
    w.stats.borrow_mut().churn.started += 1;
    let uid = format!("churn-{}-{k}", w.spec.index);
    let source = w.spec.source_ips[(k + w.spec.index) % w.spec.source_ips.len()];
    let started = Instant::now();
    let opened = match mint(&w.spec.secret, &uid) {
        Ok(token) => open_and_join(&w, source, &uid, token, &spec.room).await,
        Err(error) => Err(error),
    };
    let (mut conn, joined) = match opened {
        Ok(v) => v,
        Err(error) => {
            let mut stats = w.stats.borrow_mut();
            stats.churn.join_failed += 1;
            stats
                .churn
                .first_error
                .get_or_insert_with(|| format!("{error:#}"));
            return;
        }
    };
    {
        let mut stats = w.stats.borrow_mut();
        stats.churn.joined += 1;
        let took = (started.elapsed().as_micros() as u64).clamp(1, wire::HIST_MAX_US);
        let _ = stats.churn_join.record(took);
    }
    let mut check = SeqCheck::new(joined.start_seq);
    let dwell = tokio::time::sleep(Duration::from_millis(spec.dwell_ms));
    tokio::pin!(dwell);
    let role = Role::Churner;
    let ok = loop {
        tokio::select! {
            _ = &mut dwell => break true,
            incoming = conn.recv() => match incoming {
                Incoming::Frame(frame) => {
                    let _ = on_frame(&w, role, &mut check, frame);
                }
                Incoming::Skip => {}
                Incoming::Closed(why) => {
                    disconnected(&w, role, &format!("closed while churning: {why}"));
                    break false;
                }
            }
        }
    };
    if ok {
        let with_leave = (k % 100) as f64 / 100.0 < spec.leave_ratio;
        if with_leave {
            let leave = client_frame::Frame::Leave(Leave {
                r#ref: 2,
                room: spec.room.clone(),
            });
            let left = async {
                conn.send(leave).await?;
                loop {
                    match conn.recv().await {
                        Incoming::Frame(frame) => {
                            if matches!(frame.frame, Some(server_frame::Frame::Left(_))) {
                                return anyhow::Ok(true);
                            }
                            let _ = on_frame(&w, role, &mut check, frame);
                        }
                        Incoming::Skip => {}
                        Incoming::Closed(why) => anyhow::bail!("{why}"),
                    }
                }
            };
            match tokio::time::timeout(LEAVE_TIMEOUT, left).await {
                Ok(Ok(true)) => w.stats.borrow_mut().churn.left_with_leave += 1,
                other => {
                    let mut stats = w.stats.borrow_mut();
                    stats
                        .churn
                        .first_error
                        .get_or_insert_with(|| format!("no Left after Leave: {other:?}"));
                }
            }
            conn.close().await;
        } else {
            drop(conn);
            w.stats.borrow_mut().churn.left_with_close += 1;
        }
    }
    let mut stats = w.stats.borrow_mut();
    stats.churn.deliveries.gaps += check.open_gaps();
}
