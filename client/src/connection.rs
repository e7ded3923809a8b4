//! The connection task: owns the long connection (or the polling loop), answers requests,
//! reconnects and resumes, falls back to HTTP polling and comes back.
//!
//! One task per [`Client`](crate::Client). It owns every piece of state (the link, the
//! rooms and their cursors, the requests in flight), so nothing is shared behind a lock:
//! handles talk to it through a bounded command queue and it reports through a bounded
//! event queue (nats.rs `ConnectionHandler`).
//!
//! The task is always in one of two modes, and the rooms' cursors carry over between
//! them, which is what makes a switch gapless and duplicate-free:
//!
//! - **long**: one session over QUIC or WebSocket ([`Link`]); on loss, re-route and
//!   reconnect with backoff, trying the router's endpoints in order;
//! - **polling**: one long poll per room plus HTTP actions; every
//!   `long_retry_interval` one background attempt at a long connection.
//!
//! [`Fallback`] counts failed endpoints and decides the switches.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use proto::client::v1::{
    ClientFrame, Code, Delivery, Hello, Join, Joined, Leave, Ping, Publish, Refresh, ServerFrame,
    Welcome, client_frame, server_frame,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::cursor::{Accept, RoomCursor};
use crate::error::{Error, code_from_wire, is_auth_code};
use crate::event::{Event, JoinedRoom, ReplyInfo};
use crate::fallback::{Fallback, Outcome};
use crate::history::{self, HistoryPage, PageRequest};
use crate::http::HttpClient;
use crate::inbox::{self, Inbox};
use crate::link::{Inbound, Link};
use crate::options::{ConnectOptions, FALLBACK_PING_INTERVAL};
use crate::polling::{self, PollError, PollReply};
use crate::read_state;
use crate::room_types::Snapshot;
use crate::route::{self, Route};
use crate::stats::{StatsHandle, StatsUpdate};
use crate::tls::TlsTrust;
use crate::transport::Transport;
use crate::transport_memory::TransportMemory;

/// Sent as `Hello.client_version`.
const SDK_VERSION: &str = concat!("roomcast-client-rs/", env!("CARGO_PKG_VERSION"));
/// Heartbeat ticks without a single inbound frame before the link counts as dead.
const MAX_SILENT_TICKS: u32 = 3;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a [`Client`](crate::Client) handle asks the task to do.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        room: String,
        reply: Reply<JoinedRoom>,
    },
    Leave {
        room: String,
        reply: Reply<()>,
    },
    Publish {
        room: String,
        action: String,
        payload: Bytes,
        reply: Reply<ReplyInfo>,
    },
    /// Replace the session's token (a `Refresh` on a live session).
    SetToken {
        token: String,
        reply: Reply<()>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// `GET /v1/rooms/{room}/state` with the client's token (the room-state refetch).
    ReadState {
        room: String,
        reply: Reply<Snapshot>,
    },
    /// `GET /v1/me/inbox` with the client's token.
    ReadInbox {
        after_ms: u64,
        reply: Reply<Inbox>,
    },
    /// `GET /v1/rooms/{room}/history` or `/replay` with the client's token.
    ReadPage {
        room: String,
        request: PageRequest,
        reply: Reply<HistoryPage>,
    },
}

/// A link that completed the hello.
pub(crate) struct Session {
    link: Link,
    welcome: Welcome,
    /// Transport connect + hello → welcome, for the stats.
    connect_ms: u64,
}

/// Send the hello on a fresh link and wait for the welcome.
async fn handshake(mut link: Link, opts: &ConnectOptions, token: &str) -> Result<Session, Error> {
    let hello = Hello {
        token: token.to_owned(),
        client_version: SDK_VERSION.to_owned(),
        device_id: opts.device_id.clone(),
    };
    link.send(&ClientFrame {
        frame: Some(client_frame::Frame::Hello(hello)),
    })
    .await?;
    loop {
        let frame = match link.recv().await {
            Inbound::Frame(frame) => frame,
            Inbound::Closed { code, reason } => {
                return Err(Error::Protocol(format!(
                    "closed before the welcome ({code} {reason})"
                )));
            }
            Inbound::Failed(what) => {
                return Err(Error::Protocol(format!("{what} before the welcome")));
            }
            Inbound::Undecodable(what) => return Err(Error::Protocol(what)),
            Inbound::Nothing => continue,
        };
        match frame.frame {
            Some(server_frame::Frame::Welcome(welcome)) => {
                return Ok(Session {
                    link,
                    welcome,
                    connect_ms: 0,
                });
            }
            Some(server_frame::Frame::Error(e)) => {
                let code = code_from_wire(e.code);
                return Err(if is_auth_code(code) {
                    Error::Auth {
                        code,
                        message: e.message,
                    }
                } else {
                    Error::Refused {
                        code,
                        message: e.message,
                    }
                });
            }
            other => debug!(?other, "Ignoring a frame before the welcome."),
        }
    }
}

/// One pass over a fresh route: ask the router, then try its endpoints in order.
struct LongAttempt {
    route: Option<Route>,
    /// Each endpoint that failed, in order: one failed attempt each.
    failures: Vec<(Transport, Error)>,
    result: AttemptResult,
}

enum AttemptResult {
    Connected(Box<Session>),
    /// Short mode, or no endpoint this client may use.
    Short {
        mode: String,
        retry_after: Option<Duration>,
    },
    /// Every endpoint tried failed (or the failure budget ran out).
    Exhausted,
    /// The token was refused: no point in trying anything else.
    Auth(Error),
    /// The router could not be asked.
    RouteFailed(Error),
}

/// Route and try the endpoints. With `budget = Some(n)` stop after `n` failures, so the
/// failure that reaches the fallback threshold is the last one tried. Borrows nothing
/// from the actor, so it can run beside the polling loop.
async fn try_long(
    http: HttpClient,
    trust: TlsTrust,
    opts: Arc<ConnectOptions>,
    token: String,
    budget: Option<u32>,
    memory: SharedMemory,
) -> LongAttempt {
    let route = match route::fetch(&http, &opts).await {
        Ok(route) => route,
        Err(e) => {
            return LongAttempt {
                route: None,
                failures: Vec::new(),
                result: AttemptResult::RouteFailed(e),
            };
        }
    };
    let endpoints = route.long_endpoints(&opts.transports);
    // Skip a transport that failed on this network lately (never the last one left).
    let endpoints = lock(&memory).filter(&endpoints, Instant::now());
    if endpoints.is_empty() {
        let mode = if route.mode == "long" {
            "long (no usable endpoint)".to_owned()
        } else {
            route.mode.clone()
        };
        let retry_after = route
            .retry_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        return LongAttempt {
            route: Some(route),
            failures: Vec::new(),
            result: AttemptResult::Short { mode, retry_after },
        };
    }
    let pin = opts
        .quic_cert_sha256
        .clone()
        .or_else(|| route.quic_cert_sha256.clone());
    let mut failures = Vec::new();
    for (transport, url) in endpoints {
        debug!(%transport, %url, node_id = %route.node_id, "Connecting.");
        let started = Instant::now();
        let connect = async {
            let link = Link::open(transport, &url, pin.as_deref(), &trust).await?;
            handshake(link, &opts, &token).await
        };
        let result = time::timeout(opts.connect_timeout, connect)
            .await
            .unwrap_or(Err(Error::Timeout));
        match result {
            Ok(mut session) => {
                session.connect_ms = millis(started.elapsed());
                lock(&memory).succeeded(transport);
                return LongAttempt {
                    route: Some(route),
                    failures,
                    result: AttemptResult::Connected(Box::new(session)),
                };
            }
            Err(e @ Error::Auth { .. }) => {
                return LongAttempt {
                    route: Some(route),
                    failures,
                    result: AttemptResult::Auth(e),
                };
            }
            Err(e) => {
                lock(&memory).failed(transport, Instant::now());
                failures.push((transport, e));
                if budget.is_some_and(|left| failures.len() >= left as usize) {
                    break;
                }
            }
        }
    }
    LongAttempt {
        route: Some(route),
        failures,
        result: AttemptResult::Exhausted,
    }
}

/// The transport memory, shared with attempts that run beside the polling loop.
type SharedMemory = Arc<std::sync::Mutex<TransportMemory>>;

/// Lock the memory; a panic elsewhere while holding it leaves plain data, still usable.
fn lock(memory: &SharedMemory) -> std::sync::MutexGuard<'_, TransportMemory> {
    memory
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a [`LongAttempt`] means, once counted.
enum Settled {
    Long(Box<Session>),
    /// Poll (switch to it, or stay in it).
    Poll,
    /// Try the long connection again after a backoff.
    Retry {
        error: Option<Error>,
    },
    /// No long connection on offer and nothing to poll.
    Unavailable {
        mode: String,
        retry_after: Option<Duration>,
    },
    Auth(Error),
    RouteFailed(Error),
}

/// What the task does next.
pub(crate) enum Next {
    Long(Box<Session>),
    Polling,
    Stop {
        reason: String,
        reply: Option<oneshot::Sender<()>>,
    },
}

impl Next {
    fn closed(reply: Option<oneshot::Sender<()>>) -> Self {
        Self::Stop {
            reason: "closed by the client".into(),
            reply,
        }
    }
}

/// The link of the current session.
struct Conn {
    link: Link,
    /// The server's `max_frame_bytes` (0: unknown).
    max_frame: usize,
    /// The last error frame without a ref, to explain the close that usually follows.
    last_error: Option<String>,
}

impl Conn {
    async fn send(&mut self, frame: client_frame::Frame) -> Result<(), Error> {
        self.link.send(&ClientFrame { frame: Some(frame) }).await
    }

    async fn close(&mut self) {
        self.link.close().await;
    }

    fn explain(&self, what: String) -> String {
        match &self.last_error {
            Some(error) => format!("{what} (after server error {error})"),
            None => what,
        }
    }
}

/// A room the app wants to be in.
#[derive(Debug, Default)]
struct RoomState {
    /// Position in the stream; `None` until the first `Joined` (or first poll reply).
    cursor: Option<RoomCursor>,
    /// The epoch before the last stream reset: its late deliveries are stale.
    previous_epoch: Option<u64>,
    /// Ref of the join in flight on this session.
    joining: Option<u32>,
    /// Whether the join in flight carries a resume.
    resumed: bool,
    /// App calls waiting for the join in flight (or the next one, or the next poll).
    waiters: Vec<Reply<JoinedRoom>>,
}

/// A request waiting for its answer, by ref.
#[derive(Debug)]
enum Pending {
    Join {
        room: String,
    },
    Leave {
        reply: Reply<()>,
    },
    Publish {
        reply: Reply<ReplyInfo>,
    },
    /// A `Refresh` in flight: its token becomes the client's when accepted.
    Refresh {
        token: String,
        reply: Reply<()>,
    },
}

impl Pending {
    /// The caller gave up (timed out); the answer would go nowhere.
    fn abandoned(&self) -> bool {
        match self {
            Self::Join { .. } => false,
            Self::Leave { reply } => reply.is_closed(),
            Self::Publish { reply } => reply.is_closed(),
            Self::Refresh { .. } => false,
        }
    }
}

/// How a session ended.
enum End {
    /// The app closed the client (with its reply), or dropped every handle (`None`).
    Closed(Option<oneshot::Sender<()>>),
    /// The link is gone: reconnect, first waiting `retry_after` if the server asked.
    Lost {
        reason: String,
        retry_after: Option<Duration>,
    },
}

fn lost(reason: String) -> End {
    End::Lost {
        reason,
        retry_after: None,
    }
}

/// The polls of one polling period.
struct Polls {
    /// Dropping the set aborts every poll still running.
    tasks: JoinSet<PollDone>,
    rooms: HashMap<String, RoomPoll>,
    /// Generation of the next poll: a result of an older one is ignored.
    next_gen: u64,
}

/// A room's poll.
struct RoomPoll {
    generation: u64,
    abort: Option<AbortHandle>,
    /// The next reply announces the room with `Joined` (first poll after the switch, or
    /// an app `join`), so it is asked without waiting.
    announce: bool,
    /// Retry delays after failed polls.
    backoff: Backoff,
}

struct PollDone {
    room: String,
    generation: u64,
    result: Result<PollReply, PollError>,
}

/// A long attempt running beside the polls.
type Attempting = Pin<Box<dyn Future<Output = LongAttempt> + Send>>;

/// The connection task.
pub(crate) struct Actor {
    opts: Arc<ConnectOptions>,
    http: HttpClient,
    /// Whom TLS connections (WSS, QUIC) trust.
    trust: TlsTrust,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    rtt: watch::Sender<Option<Duration>>,
    transport: watch::Sender<Transport>,
    rooms: HashMap<String, RoomState>,
    pending: HashMap<u32, Pending>,
    next_ref: u32,
    backoff: Backoff,
    fallback: Fallback,
    /// Transports that failed lately, skipped on the next attempts.
    memory: SharedMemory,
    /// The latest polling base URL a route gave.
    polling_url: Option<String>,
    /// The transport announced with the last `TransportChanged`.
    current: Option<Transport>,
    stats: Option<StatsHandle>,
    /// The token of the next hello and of HTTP polls (the latest accepted).
    token: String,
    /// This actor's own command queue, for renewals from the token provider
    /// (weak: the client still closes when its last handle drops).
    self_commands: mpsc::WeakSender<Command>,
}

/// The parts of an [`Actor`] that come from [`Client::connect`](crate::Client::connect).
pub(crate) struct Channels {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) self_commands: mpsc::WeakSender<Command>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) rtt: watch::Sender<Option<Duration>>,
    pub(crate) transport: watch::Sender<Transport>,
}

impl Actor {
    pub(crate) fn new(
        opts: Arc<ConnectOptions>,
        http: HttpClient,
        trust: TlsTrust,
        channels: Channels,
        stats: Option<StatsHandle>,
    ) -> Self {
        let backoff = Backoff::new(opts.backoff_min, opts.backoff_max);
        let fallback = Fallback::new(opts.fallback_after_failures);
        let memory = TransportMemory::new(opts.remember_failed_transport);
        Self {
            token: opts.token.clone(),
            self_commands: channels.self_commands,
            opts,
            http,
            trust,
            commands: channels.commands,
            events: channels.events,
            rtt: channels.rtt,
            transport: channels.transport,
            rooms: HashMap::new(),
            pending: HashMap::new(),
            next_ref: 0,
            backoff,
            fallback,
            memory: Arc::new(std::sync::Mutex::new(memory)),
            polling_url: None,
            current: None,
            stats,
        }
    }

    /// The first connect, before any handle exists (so it emits no events): a long
    /// session, or polling when the router says short or every long attempt failed
    /// `fallback_after_failures` times. Fails only when the token is refused, the router
    /// cannot be reached, or there is neither a long connection nor anything to poll.
    pub(crate) async fn start(&mut self) -> Result<Next, Error> {
        loop {
            let budget = self.fallback.failures_left();
            let attempt = try_long(
                self.http.clone(),
                self.trust.clone(),
                self.opts.clone(),
                self.token.clone(),
                budget,
                self.memory.clone(),
            )
            .await;
            match self.settle(attempt) {
                Settled::Long(session) => {
                    self.backoff.reset();
                    self.transport.send_replace(session.link.transport());
                    return Ok(Next::Long(session));
                }
                Settled::Poll => {
                    self.backoff.reset();
                    self.transport.send_replace(Transport::Polling);
                    return Ok(Next::Polling);
                }
                Settled::Retry { error } => {
                    // No fallback will come (threshold 0, or nothing to poll): report the
                    // failure now rather than retry forever inside `connect`.
                    if self.opts.fallback_after_failures == 0 || self.fallback.is_polling() {
                        return Err(error.unwrap_or(Error::Timeout));
                    }
                    time::sleep(self.backoff.next_delay(&mut rand::rng())).await;
                }
                Settled::Unavailable { mode, retry_after } => {
                    return Err(Error::LongUnavailable { mode, retry_after });
                }
                Settled::Auth(e) | Settled::RouteFailed(e) => return Err(e),
            }
        }
    }

    /// Serve until the client is closed or can no longer authenticate.
    pub(crate) async fn run(mut self, start: Next) {
        let mut next = start;
        loop {
            next = match next {
                Next::Long(session) => self.serve_long(*session).await,
                Next::Polling => self.serve_polling().await,
                Next::Stop { reason, reply } => {
                    self.shutdown(reason).await;
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                }
            };
        }
    }

    /// Count an attempt's outcomes (stats, fallback) and decide.
    fn settle(&mut self, attempt: LongAttempt) -> Settled {
        if let Some(url) = attempt
            .route
            .as_ref()
            .and_then(|route| route.polling_url.as_ref())
            .filter(|url| !url.is_empty())
        {
            self.polling_url = Some(url.clone());
        }
        let mut last_error = None;
        for (transport, error) in attempt.failures {
            debug!(%transport, %error, "Long-connection attempt failed.");
            self.stat(StatsUpdate::Failure(transport));
            self.fallback.record(Outcome::Failed(transport));
            last_error = Some(error);
        }
        match attempt.result {
            AttemptResult::Connected(session) => {
                let transport = session.link.transport();
                self.stat(StatsUpdate::Connected {
                    transport,
                    connect_ms: session.connect_ms,
                });
                self.fallback.record(Outcome::Connected(transport));
                Settled::Long(session)
            }
            AttemptResult::Short { mode, retry_after } => {
                if self.polling_url.is_none() {
                    return Settled::Unavailable { mode, retry_after };
                }
                debug!(%mode, "Router offers no long connection.");
                self.fallback.record(Outcome::Short);
                Settled::Poll
            }
            AttemptResult::Exhausted => {
                if self.fallback.is_polling() && self.polling_url.is_some() {
                    Settled::Poll
                } else {
                    Settled::Retry { error: last_error }
                }
            }
            AttemptResult::Auth(e) => Settled::Auth(e),
            AttemptResult::RouteFailed(e) => Settled::RouteFailed(e),
        }
    }

    fn stat(&self, update: StatsUpdate) {
        if let Some(stats) = &self.stats {
            stats.send(update);
        }
    }

    /// Announce the transport when it differs from the last one announced.
    async fn switch_to(&mut self, transport: Transport) {
        self.transport.send_replace(transport);
        if self.current == Some(transport) {
            return;
        }
        let previous = self.current.replace(transport);
        info!(%transport, ?previous, "Transport changed.");
        if transport == Transport::Polling {
            self.stat(StatsUpdate::Polling);
        }
        self.emit(Event::TransportChanged { transport }).await;
    }

    async fn emit(&self, event: Event) {
        // A dropped `Events` only means nobody listens; the client keeps working.
        let _ = self.events.send(event).await;
    }

    fn next_ref(&mut self) -> u32 {
        self.next_ref = self.next_ref.checked_add(1).unwrap_or(1);
        self.next_ref
    }

    // === long mode ===

    async fn serve_long(&mut self, session: Session) -> Next {
        self.switch_to(session.link.transport()).await;
        let started = Instant::now();
        let end = self.run_session(session).await;
        self.fail_in_flight();
        match end {
            End::Closed(reply) => Next::closed(reply),
            End::Lost {
                reason,
                retry_after,
            } => {
                // Only a session that lasted resets the backoff, so a node that accepts
                // and drops at once is not hammered at the minimum delay.
                if started.elapsed() >= self.opts.backoff_max {
                    self.backoff.reset();
                }
                info!(%reason, "Disconnected.");
                self.emit(Event::Disconnected { reason }).await;
                self.reconnect(retry_after).await
            }
        }
    }

    async fn run_session(&mut self, session: Session) -> End {
        let Session { link, welcome, .. } = session;
        let interval = self.ping_interval(&welcome);
        info!(
            transport = %link.transport(),
            node_id = %welcome.node_id,
            session_id = %welcome.session_id,
            ping_ms = interval.as_millis() as u64,
            "Connected."
        );
        let mut conn = Conn {
            link,
            max_frame: welcome.max_frame_bytes as usize,
            last_error: None,
        };
        self.emit(Event::Connected {
            node_id: welcome.node_id,
            session_id: welcome.session_id,
        })
        .await;

        // Re-join every room, resuming where each one left off (on a socket or by polling).
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            if let Err(e) = self.send_join(&mut conn, &room).await {
                return lost(format!("send failed: {e}"));
            }
        }

        let mut ticker = time::interval_at(Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heard = false;
        let mut silent_ticks = 0u32;
        loop {
            tokio::select! {
                inbound = conn.link.recv() => {
                    heard = true;
                    if let Some(end) = self.on_inbound(&mut conn, inbound).await {
                        return end;
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        // Every handle is gone: nobody can use this client any more.
                        conn.close().await;
                        return End::Closed(None);
                    };
                    if let Some(end) = self.on_command(&mut conn, command).await {
                        return end;
                    }
                }
                _ = ticker.tick() => {
                    // Counting silent ticks (rather than time since the last frame) keeps
                    // a task stalled on a full event queue from declaring its link dead.
                    silent_ticks = if heard { 0 } else { silent_ticks + 1 };
                    heard = false;
                    if silent_ticks >= MAX_SILENT_TICKS {
                        return lost(format!(
                            "heartbeat timeout: nothing from the server for {:?}",
                            interval * MAX_SILENT_TICKS
                        ));
                    }
                    self.pending.retain(|_, pending| !pending.abandoned());
                    let ping = Ping { client_time_ms: now_ms() };
                    if let Err(e) = conn.send(client_frame::Frame::Ping(ping)).await {
                        return lost(format!("send failed: {e}"));
                    }
                }
            }
        }
    }

    fn ping_interval(&self, welcome: &Welcome) -> Duration {
        let interval = self
            .opts
            .ping_interval
            .unwrap_or(if welcome.heartbeat_ms > 0 {
                Duration::from_millis(u64::from(welcome.heartbeat_ms) / 2)
            } else {
                FALLBACK_PING_INTERVAL
            });
        interval.max(Duration::from_millis(10))
    }

    async fn on_inbound(&mut self, conn: &mut Conn, inbound: Inbound) -> Option<End> {
        match inbound {
            Inbound::Frame(frame) => self.on_frame(conn, frame).await,
            Inbound::Closed { code, reason } => Some(lost(
                conn.explain(format!("closed by the server ({code} {reason})")),
            )),
            Inbound::Failed(what) => Some(lost(conn.explain(what))),
            Inbound::Undecodable(what) => {
                warn!(error = %what, "Dropping an undecodable server frame.");
                None
            }
            Inbound::Nothing => None,
        }
    }

    async fn on_frame(&mut self, conn: &mut Conn, frame: ServerFrame) -> Option<End> {
        use server_frame::Frame;
        match frame.frame? {
            Frame::Delivery(delivery) => return self.on_delivery(conn, delivery).await,
            Frame::Joined(joined) => self.on_joined(joined).await,
            Frame::Reply(reply) => {
                let code = code_from_wire(reply.code);
                self.answer(reply.r#ref, code, reply.message, reply.body)
                    .await;
            }
            Frame::Error(error) => return self.on_error(conn, error).await,
            Frame::Ephemeral(e) => {
                let event = Event::Ephemeral {
                    room: e.room,
                    kind: e.kind,
                    body: e.body,
                    ts_ms: e.ts_ms,
                };
                self.emit(event).await;
            }
            Frame::Lagged(lagged) => {
                debug!(room = %lagged.room, resume_after_seq = lagged.resume_after_seq, "Lagged.");
                let event = Event::Lagged {
                    room: lagged.room,
                    resume_after_seq: lagged.resume_after_seq,
                };
                self.emit(event).await;
            }
            Frame::GoAway(go_away) => {
                conn.close().await;
                return Some(End::Lost {
                    reason: format!("server going away: {}", go_away.reason),
                    retry_after: Some(Duration::from_millis(go_away.reconnect_after_ms.into())),
                });
            }
            Frame::Pong(pong) => {
                let rtt = now_ms().saturating_sub(pong.client_time_ms);
                self.rtt.send_replace(Some(Duration::from_millis(rtt)));
            }
            Frame::Left(left) => self.on_left(left.r#ref, left.room, left.reason).await,
            Frame::Refreshed(done) => {
                self.answer(done.r#ref, Code::Ok, String::new(), Bytes::new())
                    .await;
            }
            Frame::TokenExpiring(warning) => self.on_token_expiring(warning.expires_at_ms).await,
            Frame::Welcome(_) => debug!("Ignoring a second welcome."),
        }
        None
    }

    async fn on_delivery(&mut self, conn: &mut Conn, delivery: Delivery) -> Option<End> {
        let room = delivery.room.clone();
        let Some(state) = self.rooms.get_mut(&room) else {
            return None; // left, or never asked for
        };
        let Some(cursor) = state.cursor.as_mut() else {
            return None; // nothing before the first Joined
        };
        let epoch = cursor.epoch;
        let delivery_epoch = delivery.epoch;
        let rejoin = match cursor.accept(delivery) {
            Accept::Deliver(messages) => {
                for message in messages {
                    self.emit(Event::Message {
                        room: room.clone(),
                        epoch,
                        message,
                    })
                    .await;
                }
                false
            }
            Accept::Gap {
                last_seq,
                first_seq,
            } => {
                debug!(%room, last_seq, first_seq, "Gap in deliveries; re-joining with resume.");
                state.joining.is_none()
            }
            Accept::OtherEpoch => {
                // Late frames of the epoch before a reset are stale. Any other epoch without
                // a join in flight means the stream changed under us: re-join so the server
                // answers with the new epoch rather than leaving the room silent.
                let stale = state.previous_epoch == Some(delivery_epoch);
                debug!(%room, epoch, delivery_epoch, stale, "Delivery of another epoch ignored.");
                !stale && state.joining.is_none()
            }
        };
        if rejoin && let Err(e) = self.send_join(conn, &room).await {
            return Some(lost(format!("send failed: {e}")));
        }
        None
    }

    async fn on_joined(&mut self, joined: Joined) {
        // `ref` 0 is the server re-joining us by itself after the room's stream
        // restarted (new epoch): a reset of a room we are in.
        if joined.r#ref == 0 {
            return self.on_server_rejoin(joined).await;
        }
        let room = match self.pending.remove(&joined.r#ref) {
            Some(Pending::Join { room }) => room,
            Some(other) => {
                warn!(
                    r#ref = joined.r#ref,
                    "Joined answers a request that was not a join."
                );
                self.pending.insert(joined.r#ref, other);
                return;
            }
            None => {
                debug!(r#ref = joined.r#ref, room = %joined.room, "Joined for an unknown ref.");
                return;
            }
        };
        let Some(state) = self.rooms.get_mut(&room) else {
            return; // left while the join was in flight
        };
        state.joining = None;
        let resumed = std::mem::take(&mut state.resumed);
        let cursor = RoomCursor::joined(
            state.cursor,
            joined.epoch,
            joined.start_seq,
            joined.recovered,
        );
        if let Some(previous) = state.cursor
            && previous.epoch != cursor.epoch
        {
            state.previous_epoch = Some(previous.epoch);
        }
        state.cursor = Some(cursor);
        let waiters = std::mem::take(&mut state.waiters);
        let info = JoinedRoom {
            room: room.clone(),
            epoch: joined.epoch,
            start_seq: joined.start_seq,
            recovered: joined.recovered,
            snapshot: joined.snapshot,
        };
        debug!(%room, epoch = info.epoch, start_seq = info.start_seq, recovered = info.recovered, "Joined.");
        if resumed && !joined.recovered {
            self.emit(Event::StreamReset {
                room,
                epoch: joined.epoch,
            })
            .await;
        }
        self.emit(Event::Joined(info.clone())).await;
        for waiter in waiters {
            let _ = waiter.send(Ok(info.clone()));
        }
    }

    /// The server moved a joined room to a new stream (`Joined{ref: 0}`):
    /// adopt the new position and tell the app to take the snapshot as truth.
    async fn on_server_rejoin(&mut self, joined: Joined) {
        let Some(state) = self.rooms.get_mut(&joined.room) else {
            debug!(room = %joined.room, "Server re-join for a room we are not in.");
            return;
        };
        if let Some(previous) = state.cursor
            && previous.epoch != joined.epoch
        {
            state.previous_epoch = Some(previous.epoch);
        }
        state.cursor = Some(RoomCursor::joined(
            state.cursor,
            joined.epoch,
            joined.start_seq,
            joined.recovered,
        ));
        let info = JoinedRoom {
            room: joined.room.clone(),
            epoch: joined.epoch,
            start_seq: joined.start_seq,
            recovered: joined.recovered,
            snapshot: joined.snapshot,
        };
        if !joined.recovered {
            self.emit(Event::StreamReset {
                room: joined.room,
                epoch: joined.epoch,
            })
            .await;
        }
        self.emit(Event::Joined(info)).await;
    }

    /// Settle the request `r#ref` with a reply or error code.
    async fn answer(&mut self, r#ref: u32, code: Code, message: String, body: Bytes) {
        let Some(pending) = self.pending.remove(&r#ref) else {
            debug!(
                r#ref,
                code = code.as_str_name(),
                "Answer for an unknown ref."
            );
            return;
        };
        let refused = || Error::Refused {
            code,
            message: message.clone(),
        };
        match pending {
            Pending::Publish { reply } => {
                let result = if code == Code::Ok {
                    Ok(ReplyInfo {
                        code,
                        message: message.clone(),
                        body,
                    })
                } else {
                    Err(refused())
                };
                let _ = reply.send(result);
            }
            Pending::Leave { reply } => {
                let _ = reply.send(if code == Code::Ok {
                    Ok(())
                } else {
                    Err(refused())
                });
            }
            Pending::Refresh { token, reply } => {
                let result = if code == Code::Ok {
                    self.token = token;
                    Ok(())
                } else {
                    Err(refused())
                };
                let _ = reply.send(result);
            }
            Pending::Join { room } => {
                if code == Code::Ok {
                    // A join is answered by Joined, never by an OK reply; keep waiting.
                    self.pending.insert(r#ref, Pending::Join { room });
                    return;
                }
                self.join_refused(room, code, message).await;
            }
        }
    }

    /// The session's token expires soon: tell the app, and renew it through the
    /// token provider if there is one (beside the task: the provider may be slow).
    async fn on_token_expiring(&mut self, expires_at_ms: u64) {
        info!(expires_at_ms, "The session's token expires soon.");
        if let Some(provider) = self.opts.token_provider.clone() {
            let commands = self.self_commands.clone();
            tokio::spawn(async move {
                let token = match provider.fetch().await {
                    Ok(token) => token,
                    Err(error) => {
                        warn!(%error, "The token provider gave no token; the session will close at expiry.");
                        return;
                    }
                };
                let Some(commands) = commands.upgrade() else {
                    return;
                };
                let (reply, answer) = oneshot::channel();
                if commands
                    .send(Command::SetToken { token, reply })
                    .await
                    .is_err()
                {
                    return;
                }
                match answer.await {
                    Ok(Ok(())) => debug!("Token renewed."),
                    Ok(Err(error)) => warn!(%error, "Token renewal refused."),
                    Err(_) => {}
                }
            });
        }
        self.emit(Event::TokenExpiring { expires_at_ms }).await;
    }

    /// The server refused a join: stop tracking the room.
    async fn join_refused(&mut self, room: String, code: Code, message: String) {
        let Some(state) = self.rooms.remove(&room) else {
            return;
        };
        debug!(%room, code = code.as_str_name(), %message, "Join refused.");
        for waiter in state.waiters {
            let _ = waiter.send(Err(Error::Refused {
                code,
                message: message.clone(),
            }));
        }
        if state.cursor.is_some() {
            // The app was in the room: tell event consumers it is over.
            let reason = format!("re-join refused ({}): {message}", code.as_str_name());
            self.emit(Event::Left { room, reason }).await;
        }
    }

    async fn on_error(&mut self, conn: &mut Conn, error: proto::client::v1::Error) -> Option<End> {
        let code = code_from_wire(error.code);
        if error.r#ref != 0 && self.pending.contains_key(&error.r#ref) {
            self.answer(error.r#ref, code, error.message, Bytes::new())
                .await;
            return None;
        }
        warn!(code = code.as_str_name(), message = %error.message, room = %error.room, "Server error.");
        conn.last_error = Some(format!("{}: {}", code.as_str_name(), error.message));
        // The server forgot a room we are in (e.g. after it lost state): join it again.
        if code == Code::NotJoined
            && let Some(state) = self.rooms.get(&error.room)
            && state.joining.is_none()
        {
            let room = error.room;
            if let Err(e) = self.send_join(conn, &room).await {
                return Some(lost(format!("send failed: {e}")));
            }
        }
        None
    }

    async fn on_left(&mut self, r#ref: u32, room: String, reason: String) {
        if r#ref != 0
            && let Some(Pending::Leave { .. }) = self.pending.get(&r#ref)
        {
            if let Some(Pending::Leave { reply }) = self.pending.remove(&r#ref) {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        let Some(state) = self.rooms.remove(&room) else {
            return;
        };
        info!(%room, %reason, "Removed from room.");
        for waiter in state.waiters {
            let message = format!("removed from the room: {reason}");
            let _ = waiter.send(Err(Error::Refused {
                code: Code::NotJoined,
                message,
            }));
        }
        self.emit(Event::Left { room, reason }).await;
    }

    async fn on_command(&mut self, conn: &mut Conn, command: Command) -> Option<End> {
        let sent = match command {
            Command::Join { room, reply } => {
                let state = self.rooms.entry(room.clone()).or_default();
                state.waiters.push(reply);
                if state.joining.is_some() {
                    return None; // answered with the join in flight
                }
                self.send_join(conn, &room).await
            }
            Command::Leave { room, reply } => {
                self.forget_room(&room);
                let r#ref = self.next_ref();
                self.pending.insert(r#ref, Pending::Leave { reply });
                conn.send(client_frame::Frame::Leave(Leave { r#ref, room }))
                    .await
            }
            Command::Publish {
                room,
                action,
                payload,
                reply,
            } => {
                let r#ref = self.next_ref();
                let frame = client_frame::Frame::Publish(Publish {
                    r#ref,
                    room,
                    action,
                    payload,
                });
                let size = ClientFrame {
                    frame: Some(frame.clone()),
                }
                .encoded_len();
                if conn.max_frame > 0 && size > conn.max_frame {
                    let _ = reply.send(Err(Error::TooLarge {
                        size,
                        max: conn.max_frame,
                    }));
                    return None;
                }
                self.pending.insert(r#ref, Pending::Publish { reply });
                conn.send(frame).await
            }
            Command::SetToken { token, reply } => {
                let r#ref = self.next_ref();
                let frame = client_frame::Frame::Refresh(Refresh {
                    r#ref,
                    token: token.clone(),
                });
                self.pending
                    .insert(r#ref, Pending::Refresh { token, reply });
                conn.send(frame).await
            }
            Command::Close { reply } => {
                conn.close().await;
                return Some(End::Closed(Some(reply)));
            }
            Command::ReadState { room, reply } => {
                self.read_state(room, reply);
                return None;
            }
            Command::ReadInbox { after_ms, reply } => {
                self.read_inbox(after_ms, reply);
                return None;
            }
            Command::ReadPage {
                room,
                request,
                reply,
            } => {
                self.read_page(room, request, reply);
                return None;
            }
        };
        match sent {
            Ok(()) => None,
            Err(e) => Some(lost(format!("send failed: {e}"))),
        }
    }

    /// Stop tracking a room the app left; a join in flight for it fails.
    fn forget_room(&mut self, room: &str) {
        if let Some(state) = self.rooms.remove(room) {
            for waiter in state.waiters {
                let message = "left before the join completed".to_owned();
                let _ = waiter.send(Err(Error::Refused {
                    code: Code::NotJoined,
                    message,
                }));
            }
        }
    }

    /// Send a join for a tracked room, resuming from its cursor.
    async fn send_join(&mut self, conn: &mut Conn, room: &str) -> Result<(), Error> {
        let r#ref = self.next_ref();
        let Some(state) = self.rooms.get_mut(room) else {
            return Ok(());
        };
        let resume = state.cursor.map(|cursor| cursor.resume());
        state.joining = Some(r#ref);
        state.resumed = resume.is_some();
        self.pending.insert(
            r#ref,
            Pending::Join {
                room: room.to_owned(),
            },
        );
        conn.send(client_frame::Frame::Join(Join {
            r#ref,
            room: room.to_owned(),
            resume,
        }))
        .await
    }

    /// The socket dropped: requests in flight fail, joins are redone on the next session.
    fn fail_in_flight(&mut self) {
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Publish { reply } => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                // The session is gone, and with it the membership.
                Pending::Leave { reply } => {
                    let _ = reply.send(Ok(()));
                }
                // As while offline: the next hello carries it and is judged then.
                Pending::Refresh { token, reply } => {
                    self.token = token;
                    let _ = reply.send(Ok(()));
                }
                Pending::Join { .. } => {}
            }
        }
        for state in self.rooms.values_mut() {
            state.joining = None;
            state.resumed = false;
            for waiter in state.waiters.drain(..) {
                let _ = waiter.send(Err(Error::Disconnected));
            }
        }
    }

    /// The task ends: everything still waiting fails with `Closed`.
    async fn shutdown(&mut self, reason: String) {
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Publish { reply } => {
                    let _ = reply.send(Err(Error::Closed));
                }
                Pending::Leave { reply } => {
                    let _ = reply.send(Ok(()));
                }
                Pending::Refresh { reply, .. } => {
                    let _ = reply.send(Err(Error::Closed));
                }
                Pending::Join { .. } => {}
            }
        }
        for (_, state) in self.rooms.drain() {
            for waiter in state.waiters {
                let _ = waiter.send(Err(Error::Closed));
            }
        }
        debug!(%reason, "Client task stopping.");
        self.emit(Event::Disconnected { reason }).await;
    }

    // === between sessions ===

    /// Between sessions: back off, re-route and try the endpoints until a session is up,
    /// the fallback says poll, or the client stops.
    async fn reconnect(&mut self, mut hint: Option<Duration>) -> Next {
        loop {
            let jittered = self.backoff.next_delay(&mut rand::rng());
            let delay = hint.take().map_or(jittered, |hint| hint.max(jittered));
            let attempt = self.backoff.attempts();
            debug!(attempt, ?delay, "Reconnecting.");
            self.emit(Event::Reconnecting { attempt, delay }).await;

            let sleep = time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    command = self.commands.recv() => {
                        if let Some(reply) = self.offline_command(command) {
                            return Next::closed(reply);
                        }
                    }
                }
            }

            let budget = self.fallback.failures_left();
            let connecting = try_long(
                self.http.clone(),
                self.trust.clone(),
                self.opts.clone(),
                self.token.clone(),
                budget,
                self.memory.clone(),
            );
            tokio::pin!(connecting);
            let result = loop {
                tokio::select! {
                    result = &mut connecting => break result,
                    command = self.commands.recv() => {
                        if let Some(reply) = self.offline_command(command) {
                            return Next::closed(reply);
                        }
                    }
                }
            };
            match self.settle(result) {
                Settled::Long(session) => return Next::Long(session),
                Settled::Poll => {
                    info!(
                        failures = self.fallback.consecutive_failures(),
                        "Falling back to HTTP polling."
                    );
                    return Next::Polling;
                }
                Settled::Retry { error } => {
                    debug!(attempt, error = ?error.map(|e| e.to_string()), "Reconnect attempt failed.");
                }
                Settled::Unavailable { mode, retry_after } => {
                    debug!(%mode, "Router offers no long connection and no polling.");
                    self.emit(Event::LongUnavailable { mode }).await;
                    hint = retry_after;
                }
                Settled::Auth(e) => {
                    warn!(error = %e, "Reconnect refused; giving up.");
                    return Next::Stop {
                        reason: e.to_string(),
                        reply: None,
                    };
                }
                Settled::RouteFailed(e) => debug!(attempt, error = %e, "Router unreachable."),
            }
        }
    }

    /// A command while disconnected. Returns `Some(reply)` when the client must stop.
    fn offline_command(&mut self, command: Option<Command>) -> Option<Option<oneshot::Sender<()>>> {
        match command {
            None => Some(None),
            Some(Command::Close { reply }) => Some(Some(reply)),
            // Joins wait for the next session (bounded by the caller's timeout).
            Some(Command::Join { room, reply }) => {
                self.rooms.entry(room).or_default().waiters.push(reply);
                None
            }
            // Without a session there is no membership to leave.
            Some(Command::Leave { room, reply }) => {
                self.forget_room(&room);
                let _ = reply.send(Ok(()));
                None
            }
            // A publish is not replayed later: the app decides whether it is still wanted.
            Some(Command::Publish { reply, .. }) => {
                let _ = reply.send(Err(Error::Disconnected));
                None
            }
            // The state is read over HTTP: no session needed.
            Some(Command::ReadState { room, reply }) => {
                self.read_state(room, reply);
                None
            }
            Some(Command::ReadInbox { after_ms, reply }) => {
                self.read_inbox(after_ms, reply);
                None
            }
            Some(Command::ReadPage {
                room,
                request,
                reply,
            }) => {
                self.read_page(room, request, reply);
                None
            }
            // Used from the next hello on; the server judges it then.
            Some(Command::SetToken { token, reply }) => {
                self.token = token;
                let _ = reply.send(Ok(()));
                None
            }
        }
    }

    // === polling mode ===

    /// Poll every room from its cursor until the long connection is back or the client
    /// stops. Messages go through the same cursors as socket deliveries.
    async fn serve_polling(&mut self) -> Next {
        self.switch_to(Transport::Polling).await;
        let Some(base) = self.polling_url.clone() else {
            // `settle` only picks polling with a URL; stay safe all the same.
            return Next::Stop {
                reason: "polling without a polling URL".into(),
                reply: None,
            };
        };
        info!(%base, rooms = self.rooms.len(), "Polling.");
        let mut polls = Polls {
            tasks: JoinSet::new(),
            rooms: HashMap::new(),
            next_gen: 0,
        };
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.spawn_poll(&mut polls, &base, &room, Duration::ZERO);
        }
        let every = self.opts.long_retry_interval.max(Duration::from_millis(10));
        let mut retry = time::interval_at(Instant::now() + every, every);
        retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut attempt: Option<Attempting> = None;
        loop {
            tokio::select! {
                Some(done) = polls.tasks.join_next() => {
                    // An error here is a poll aborted because its room was left or re-polled.
                    let Ok(done) = done else { continue };
                    if let Some(next) = self.on_poll(&mut polls, &base, done).await {
                        return next;
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        return Next::closed(None);
                    };
                    if let Some(next) = self.on_poll_command(&mut polls, &base, command) {
                        return next;
                    }
                }
                _ = retry.tick(), if attempt.is_none() => {
                    debug!("Trying the long connection again.");
                    // No budget: failures while polling only feed the stats.
                    attempt = Some(Box::pin(try_long(
                        self.http.clone(),
                        self.trust.clone(),
                        self.opts.clone(),
                        self.token.clone(),
                        None,
                        self.memory.clone(),
                    )));
                }
                result = async {
                    match attempt.as_mut() {
                        Some(attempting) => attempting.await,
                        None => std::future::pending().await,
                    }
                }, if attempt.is_some() => {
                    attempt = None;
                    match self.settle(result) {
                        Settled::Long(session) => {
                            // The polls stop when `polls` drops; the session re-joins every
                            // room with resume from the polling cursors.
                            info!("Long connection is back; stopping polling.");
                            return Next::Long(session);
                        }
                        Settled::Auth(e) => {
                            warn!(error = %e, "Long connection refused the token; giving up.");
                            return Next::Stop { reason: e.to_string(), reply: None };
                        }
                        Settled::Poll
                        | Settled::Retry { .. }
                        | Settled::Unavailable { .. }
                        | Settled::RouteFailed(_) => debug!("Long connection still unavailable; polling on."),
                    }
                }
            }
        }
    }

    /// (Re)start a room's poll after `delay`, superseding the one in flight.
    fn spawn_poll(&self, polls: &mut Polls, base: &str, room: &str, delay: Duration) {
        let Some(state) = self.rooms.get(room) else {
            return;
        };
        let cursor = state.cursor;
        polls.next_gen += 1;
        let generation = polls.next_gen;
        let entry = polls
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| RoomPoll {
                generation,
                abort: None,
                announce: true,
                backoff: Backoff::new(self.opts.backoff_min, self.opts.backoff_max),
            });
        entry.generation = generation;
        if let Some(previous) = entry.abort.take() {
            previous.abort();
        }
        // An announcing poll stands for a join: answer it now, not after a long wait.
        let wait = if entry.announce {
            Duration::ZERO
        } else {
            self.opts.polling_wait
        };
        let (http, base, room) = (self.http.clone(), base.to_owned(), room.to_owned());
        let (token, timeout) = (self.token.clone(), self.opts.request_timeout);
        let abort = polls.tasks.spawn(async move {
            if !delay.is_zero() {
                time::sleep(delay).await;
            }
            let result = polling::poll(&http, &base, &room, &token, cursor, wait, timeout).await;
            PollDone {
                room,
                generation,
                result,
            }
        });
        entry.abort = Some(abort);
    }

    /// A poll finished: surface what it brought and poll again.
    async fn on_poll(&mut self, polls: &mut Polls, base: &str, done: PollDone) -> Option<Next> {
        let PollDone {
            room,
            generation,
            result,
        } = done;
        let entry = polls.rooms.get_mut(&room)?;
        if entry.generation != generation {
            return None; // superseded by a newer poll of the room
        }
        entry.abort = None;
        match result {
            Ok(reply) => {
                entry.backoff.reset();
                let announce = std::mem::take(&mut entry.announce);
                let Some(state) = self.rooms.get_mut(&room) else {
                    polls.rooms.remove(&room);
                    return None;
                };
                let delay = Duration::from_millis(reply.poll_after_ms);
                let applied = polling::apply(&room, &mut state.cursor, announce, reply);
                let waiters = if applied.joined.is_some() {
                    std::mem::take(&mut state.waiters)
                } else {
                    Vec::new()
                };
                for event in applied.events {
                    self.emit(event).await;
                }
                if let Some(joined) = applied.joined {
                    for waiter in waiters {
                        let _ = waiter.send(Ok(joined.clone()));
                    }
                }
                self.spawn_poll(polls, base, &room, delay);
            }
            Err(PollError::Auth(e)) => {
                warn!(error = %e, "Polling refused the token; giving up.");
                return Some(Next::Stop {
                    reason: e.to_string(),
                    reply: None,
                });
            }
            Err(PollError::Refused { code, message }) => {
                polls.rooms.remove(&room);
                self.join_refused(room, code, message).await;
            }
            Err(PollError::Retry(why)) => {
                let delay = entry.backoff.next_delay(&mut rand::rng());
                debug!(%room, %why, ?delay, "Poll failed; retrying.");
                self.spawn_poll(polls, base, &room, delay);
            }
        }
        None
    }

    fn on_poll_command(&mut self, polls: &mut Polls, base: &str, command: Command) -> Option<Next> {
        match command {
            Command::Join { room, reply } => {
                self.rooms
                    .entry(room.clone())
                    .or_default()
                    .waiters
                    .push(reply);
                if let Some(entry) = polls.rooms.get_mut(&room) {
                    entry.announce = true;
                }
                self.spawn_poll(polls, base, &room, Duration::ZERO);
            }
            Command::Leave { room, reply } => {
                // Polling holds no membership on the server: forgetting the room is all.
                self.forget_room(&room);
                if let Some(abort) = polls.rooms.remove(&room).and_then(|entry| entry.abort) {
                    abort.abort();
                }
                let _ = reply.send(Ok(()));
            }
            Command::Publish {
                room,
                action,
                payload,
                reply,
            } => {
                let (http, base) = (self.http.clone(), base.to_owned());
                let (token, timeout) = (self.token.clone(), self.opts.request_timeout);
                // Beside the task, so a slow action never holds up the polls; the caller's
                // own timeout bounds it, and the HTTP timeout ends it.
                tokio::spawn(async move {
                    let result =
                        polling::action(&http, &base, &room, &token, &action, &payload, timeout)
                            .await;
                    let _ = reply.send(result);
                });
            }
            // Polls carry the token per request: the next one uses it.
            Command::SetToken { token, reply } => {
                self.token = token;
                let _ = reply.send(Ok(()));
            }
            Command::Close { reply } => return Some(Next::closed(Some(reply))),
            Command::ReadState { room, reply } => self.read_state(room, reply),
            Command::ReadInbox { after_ms, reply } => self.read_inbox(after_ms, reply),
            Command::ReadPage {
                room,
                request,
                reply,
            } => self.read_page(room, request, reply),
        }
        None
    }

    /// Read a room's state over HTTP beside the task.
    fn read_state(&self, room: String, reply: Reply<Snapshot>) {
        self.read_beside(
            "the room state",
            reply,
            |http, base, token, timeout| async move {
                read_state::fetch(&http, &base, &room, &token, timeout).await
            },
        );
    }

    /// Read the user's inbox over HTTP beside the task.
    fn read_inbox(&self, after_ms: u64, reply: Reply<Inbox>) {
        self.read_beside(
            "the inbox",
            reply,
            move |http, base, token, timeout| async move {
                inbox::fetch(&http, &base, &token, after_ms, timeout).await
            },
        );
    }

    /// Read a history or replay page over HTTP (no session needed).
    fn read_page(&self, room: String, request: PageRequest, reply: Reply<HistoryPage>) {
        self.read_beside(
            "history",
            reply,
            move |http, base, token, timeout| async move {
                history::fetch(&http, &base, &room, request, &token, timeout).await
            },
        );
    }

    /// Run `read` beside the task (a slow read never holds it up) with the
    /// polling URL and the current token (a refreshed one once `set_token`
    /// replaced it), and send its result to `reply`.
    fn read_beside<T, F, Fut>(&self, what: &str, reply: Reply<T>, read: F)
    where
        T: Send + 'static,
        F: FnOnce(HttpClient, String, String, Duration) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let Some(base) = self.polling_url.clone() else {
            let _ = reply.send(Err(Error::Route(format!(
                "the router gave no polling URL to read {what} from"
            ))));
            return;
        };
        let (http, token, timeout) = (
            self.http.clone(),
            self.token.clone(),
            self.opts.request_timeout,
        );
        tokio::spawn(async move {
            let _ = reply.send(read(http, base, token, timeout).await);
        });
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Wall-clock milliseconds, echoed by the server in `Pong` (RTT = now − echo).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
