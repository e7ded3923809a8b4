//! One client connection: handshake, then a single task that reads client
//! frames, writes queued frames in per-room seq order, and keeps heartbeats.
//!
//! Each room the client joined has a [`Cursor`]; it decides, the session does
//! the I/O. Shared batches from the room feed are written as-is when they
//! continue the cursor; a hole (dropped under lag) is pulled from history
//! first; an overlap is trimmed. So the client sees every durable message
//! once, in order, or is told it cannot (`Joined{recovered: false}` with a
//! fresh snapshot).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::auth::{AuthError, Claims};
use futures::{Sink, SinkExt, Stream, StreamExt};
use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use proto::client::v1::{
    ClientFrame, Code, Error as ErrorFrame, GoAway, Join, Joined, Lagged, Leave, Left, Pong,
    Publish, Refresh, Refreshed, Reply, RoomMessage, ServerFrame, TokenExpiring, Welcome,
    client_frame, server_frame,
};
use proto::internal::v1::JoinPurpose;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tracing::Instrument;

use crate::Ctx;
use crate::codec::{self, Inbound, Message, SharedFrame, Wire};
use crate::commands::UpstreamCmd;
use crate::cursor::{self, Cursor, History, Place, Start};
use crate::direct::DirectSocket;
use crate::handle::{Rooms, SessionHandle, Wake};
use crate::outbound::{Outbound, Removal, RoomBatch, delivery_frame};
use crate::pull::pull_range;
use crate::registry::TooMany;
use crate::sampling::ReplayThinner;

/// WebSocket close codes (RFC 6455 §7.4.1).
mod close {
    pub(super) const GOING_AWAY: u16 = 1001;
    pub(super) const INVALID_PAYLOAD: u16 = 1007;
    pub(super) const POLICY: u16 = 1008;
    pub(super) const TOO_BIG: u16 = 1009;
}
/// Longest room id.
const MAX_ROOM_ID: usize = 128;
/// Longest action name.
const MAX_ACTION: usize = 64;
/// Messages per Delivery frame when replaying history.
const REPLAY_CHUNK: usize = 200;
/// Attempts to re-authorize a room after its stream reset, with doubling delays.
const RESET_RETRIES: u32 = 4;
/// Time allowed for a final error or close frame to leave (and for the
/// client's close to come back).
const LAST_WORDS: Duration = Duration::from_millis(500);
/// Queued items handled per wakeup before the socket is flushed: what piled
/// up while the session waited leaves in one write, not one per frame.
const DRAIN_PER_WAKEUP: usize = 64;

/// A transport's outgoing half: WebSocket messages (QUIC maps them onto
/// length-delimited frames).
pub(crate) trait Outgoing: Sink<Message, Error = Self::Failure> + Unpin + Send {
    type Failure: std::fmt::Display;

    /// Like `start_send` with the frame's message for `wire`; a transport
    /// that writes WebSocket frames itself takes the pre-built frame.
    fn start_send_shared(
        self: Pin<&mut Self>,
        frame: &SharedFrame,
        wire: Wire,
    ) -> Result<(), Self::Failure> {
        self.start_send(frame.message(wire))
    }

    /// Bytes are committed but not written (a flush is due).
    fn backlogged(&self) -> bool {
        false
    }

    /// The plain socket the fan-out may write to directly.
    fn direct(&self) -> Option<&Arc<DirectSocket>> {
        None
    }
}

/// Why a transport could not deliver the next client message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// A frame or message over the limit: its size, or the size its header
    /// claimed. The transport skipped it; the connection is still readable.
    #[error("frame of {0} bytes over the limit")]
    TooLarge(u64),
    /// A text message that is not UTF-8.
    #[error("text message is not UTF-8")]
    NotUtf8,
    /// The socket failed or the peer broke the transport's rules.
    #[error("{0}")]
    Transport(String),
}

/// A transport's incoming half.
pub(crate) trait Incoming: Stream<Item = Result<Message, ReadError>> + Unpin + Send {}
impl<T> Incoming for T where T: Stream<Item = Result<Message, ReadError>> + Unpin + Send {}

/// Serve one connection, whatever carries it.
///
/// Not an `async fn`: what the connection starts with is boxed before the
/// future exists, so the future that lives as long as the connection holds
/// a pointer to it rather than its own copy (an `async fn` keeps its
/// arguments for its whole life).
pub(crate) fn serve<S: Outgoing, R: Incoming>(
    ctx: Arc<Ctx>,
    sink: S,
    stream: R,
    wire: Wire,
    peer: SocketAddr,
) -> impl Future<Output = ()> {
    ctx.metrics.connections_total.inc();
    let span = tracing::debug_span!("session", %peer, session = tracing::field::Empty);
    let start = Box::new(Opening {
        ctx: CountedCtx::new(ctx),
        sink,
        stream,
        wire,
    });
    run(start).instrument(span)
}

/// The node's context as a connection holds it: counts the connection in
/// `connections` while it lives, however its task ends. (The count rides on
/// the pointer the connection needs anyway: no field of its own in every
/// session's future.)
struct CountedCtx(Arc<Ctx>);

impl CountedCtx {
    fn new(ctx: Arc<Ctx>) -> Self {
        ctx.metrics.connections.inc();
        Self(ctx)
    }
}

impl std::ops::Deref for CountedCtx {
    type Target = Arc<Ctx>;

    fn deref(&self) -> &Arc<Ctx> {
        &self.0
    }
}

impl Drop for CountedCtx {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
    }
}

/// What a connection starts with.
struct Opening<S, R> {
    ctx: CountedCtx,
    sink: S,
    stream: R,
    wire: Wire,
}

/// Why the loop ends.
enum Exit {
    /// The peer went away or the socket failed: nothing more to say.
    Gone,
    /// Say this (an error frame, then a close frame) and stop.
    Close {
        code: u16,
        reason: String,
        error: Option<ErrorFrame>,
    },
}

fn error(code: Code, message: impl Into<String>, r#ref: u32, room: &str) -> ErrorFrame {
    ErrorFrame {
        code: code as i32,
        message: message.into(),
        r#ref,
        room: room.to_string(),
    }
}

fn frame(f: server_frame::Frame) -> ServerFrame {
    ServerFrame { frame: Some(f) }
}

/// The connection's one task. Its future lives as long as the connection, so
/// it holds only the session and the main loop: opening (handshake,
/// registration, welcome) and closing (cleanup, last words) are boxed steps
/// whose memory is freed when they end. `tests::session_future_stays_small`
/// keeps the size in check.
async fn run<S: Outgoing, R: Incoming>(start: Box<Opening<S, R>>) {
    let Some((mut session, mut stream, rx)) = Box::pin(open(start)).await else {
        return;
    };
    let exit = session.main_loop(&mut stream, rx).await;
    Box::pin(session.close(exit, stream)).await;
}

/// Handshake, registration and welcome: the session, or `None` once the
/// client was told why not.
async fn open<S: Outgoing, R: Incoming>(
    start: Box<Opening<S, R>>,
) -> Option<(Session<S>, R, crate::handle::Receiver)> {
    let Opening {
        ctx,
        mut sink,
        mut stream,
        wire,
    } = *start;
    let claims = handshake(&ctx, &mut sink, &mut stream, wire).await?;
    let session_id: Arc<str> = Arc::from(uuid::Uuid::new_v4().simple().to_string());
    tracing::Span::current().record("session", &*session_id);
    let uid: Arc<str> = Arc::from(claims.sub.as_str());
    let direct = sink.direct().map(Arc::downgrade);
    let (handle, rx) = SessionHandle::new(
        session_id.clone(),
        uid.clone(),
        ctx.cfg.outbound_queue,
        direct,
    );
    handle.set_token_iat(claims.iat);
    match ctx
        .registry
        .add(handle.clone(), ctx.cfg.max_sessions_per_uid)
    {
        Ok(true) => {
            let _ = ctx
                .upstream
                .send(UpstreamCmd::UserOnline(uid.clone()))
                .await;
        }
        Ok(false) => {}
        Err(TooMany) => {
            ctx.metrics
                .bad_frames
                .with_label_values(&["too_many_sessions"])
                .inc();
            let max = ctx.cfg.max_sessions_per_uid;
            let e = error(
                Code::TooManySessions,
                format!("this user already holds {max} connections to this node"),
                0,
                "",
            );
            last_words(
                &mut sink,
                &mut stream,
                wire,
                Some(e),
                close::POLICY,
                "too many sessions",
                LAST_WORDS,
            )
            .await;
            return None;
        }
    }
    // The drain signals the sessions registered when it started; a later
    // one looks for itself.
    if ctx.sessions_stop.is_cancelled() {
        handle.drain();
    }
    let rate = NonZeroU32::new(ctx.cfg.upstream_rate_per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(ctx.cfg.upstream_burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let mut session = Session {
        ctx,
        wire,
        sink,
        handle,
        rooms: Rooms::default(),
        limiter: RateLimiter::direct_with_clock(
            Quota::per_second(rate).allow_burst(burst),
            MonotonicClock,
        ),
        strikes: 0,
        unflushed: false,
        token_expires_at_ms: claims.exp.saturating_mul(1000),
        token_received_at_ms: common::time::now_ms(),
        expiry_warned: false,
    };
    let welcome = frame(server_frame::Frame::Welcome(Welcome {
        session_id: session_id.to_string(),
        uid: uid.to_string(),
        heartbeat_ms: session.ctx.cfg.heartbeat_ms as u32,
        max_frame_bytes: session.ctx.cfg.max_frame_bytes as u32,
        node_id: session.ctx.cfg.node_id.clone(),
    }));
    if session.write_own(&welcome).await.is_err() {
        Box::pin(session.close(Exit::Gone, stream)).await;
        return None;
    }
    Some((session, stream, rx))
}

/// Wait for the hello and verify its token: the token's claims, or `None`
/// once the client was told why not.
async fn handshake<S: Outgoing, R: Incoming>(
    ctx: &Ctx,
    sink: &mut S,
    stream: &mut R,
    wire: Wire,
) -> Option<Claims> {
    let hello_timeout = Duration::from_millis(ctx.cfg.hello_timeout_ms);
    let first = tokio::time::timeout(
        hello_timeout,
        next_inbound(stream, ctx.cfg.max_frame_bytes, wire),
    )
    .await;
    let hello = match first {
        Err(_) => {
            let e = error(
                Code::HelloRequired,
                "no hello within the handshake timeout",
                0,
                "",
            );
            last_words(
                sink,
                stream,
                wire,
                Some(e),
                close::POLICY,
                "hello timeout",
                LAST_WORDS,
            )
            .await;
            return None;
        }
        Ok(None) => return None,
        Ok(Some(Inbound::Frame(ClientFrame {
            frame: Some(client_frame::Frame::Hello(h)),
        }))) => h,
        Ok(Some(other)) => {
            let (code, reason, e) = reject_pre_hello(ctx, other);
            last_words(sink, stream, wire, Some(e), code, reason, LAST_WORDS).await;
            return None;
        }
    };
    match verify_token(ctx, &hello.token) {
        Ok(claims) => Some(claims),
        Err(err) => {
            ctx.metrics.bad_frames.with_label_values(&["auth"]).inc();
            tracing::debug!(error = %err, "Hello refused.");
            let e = error(auth_code(&err), err.public_reason(), 0, "");
            last_words(
                sink,
                stream,
                wire,
                Some(e),
                close::POLICY,
                "unauthenticated",
                LAST_WORDS,
            )
            .await;
            None
        }
    }
}

/// Verify a token (hello or refresh): signature and rules, then the
/// revocations this node remembers.
fn verify_token(ctx: &Ctx, token: &str) -> Result<Claims, AuthError> {
    let claims = ctx.verifier.verify(token)?;
    let now = common::time::now_ms() / 1000;
    match ctx.revocations.revoked_before(&claims.sub, now) {
        Some(revoked_before) if claims.iat < revoked_before => Err(AuthError::Revoked {
            iat: claims.iat,
            revoked_before,
        }),
        _ => Ok(claims),
    }
}

/// The client-facing code of a refused token.
fn auth_code(err: &AuthError) -> Code {
    match err {
        AuthError::Expired => Code::TokenExpired,
        AuthError::Revoked { .. } => Code::TokenRevoked,
        _ => Code::Unauthenticated,
    }
}

/// The answer to a first frame that is not a hello: undecodable or
/// oversized bytes get what they get after the hello too (MALFORMED + 1007,
/// TOO_LARGE + 1009); a well-formed frame of another kind gets HELLO_REQUIRED.
fn reject_pre_hello(ctx: &Ctx, inbound: Inbound) -> (u16, &'static str, ErrorFrame) {
    match bad_frame(ctx, inbound) {
        Ok(answer) => answer,
        Err(_) => (
            close::POLICY,
            "hello required",
            error(
                Code::HelloRequired,
                "the first frame must be a hello with a token",
                0,
                "",
            ),
        ),
    }
}

/// A malformed or oversized frame: counted, with the close code, close
/// reason and error frame that answer it. Anything else comes back as is.
fn bad_frame(ctx: &Ctx, inbound: Inbound) -> Result<(u16, &'static str, ErrorFrame), Inbound> {
    let (label, answer) = match inbound {
        Inbound::Malformed(why) => (
            "malformed",
            (
                close::INVALID_PAYLOAD,
                "malformed frame",
                error(Code::Malformed, why, 0, ""),
            ),
        ),
        Inbound::TooLarge(n) => {
            let max = ctx.cfg.max_frame_bytes;
            let msg = format!("frame of {n} bytes exceeds the limit of {max} bytes");
            (
                "too_large",
                (
                    close::TOO_BIG,
                    "frame too large",
                    error(Code::TooLarge, msg, 0, ""),
                ),
            )
        }
        other => return Err(other),
    };
    ctx.metrics.bad_frames.with_label_values(&[label]).inc();
    Ok(answer)
}

/// The next data message (pings and pongs are answered by the WebSocket layer).
async fn next_inbound<R: Incoming>(stream: &mut R, max: usize, wire: Wire) -> Option<Inbound> {
    loop {
        match classify(stream.next().await?, max, wire) {
            Inbound::Control => continue,
            Inbound::Close => return None,
            other => return Some(other),
        }
    }
}

/// What one read means for the session: a failed transport reads as the
/// peer gone; an oversized or non-UTF-8 message as the bad frame it is.
fn classify(read: Result<Message, ReadError>, max: usize, wire: Wire) -> Inbound {
    match read {
        Ok(message) => codec::decode(message, max, wire),
        Err(ReadError::TooLarge(size)) => Inbound::TooLarge(size),
        Err(ReadError::NotUtf8) => {
            Inbound::Malformed("a text message must be valid UTF-8 (RFC 6455 §8.1)".into())
        }
        Err(ReadError::Transport(error)) => {
            tracing::debug!(%error, "Socket read failed.");
            Inbound::Close
        }
    }
}

/// Say why (an error frame, then a close frame) within `patience`, then read
/// until the peer closes too, for at most [`LAST_WORDS`] more. Dropping a TCP socket with unread
/// bytes (a flooding client's frames) makes the kernel send a reset, which can
/// destroy the error and close frames before the client reads them.
async fn last_words<S: Outgoing, R: Incoming>(
    sink: &mut S,
    stream: &mut R,
    wire: Wire,
    error: Option<ErrorFrame>,
    code: u16,
    reason: &str,
    patience: Duration,
) {
    let deadline = tokio::time::Instant::now() + patience;
    let words = async {
        if let Some(e) = error {
            sink.send(codec::encode(wire, &frame(server_frame::Frame::Error(e))))
                .await?;
        }
        sink.send(Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        })))
        .await
    };
    if !matches!(tokio::time::timeout_at(deadline, words).await, Ok(Ok(()))) {
        return;
    }
    let drain = async { while let Some(Ok(_)) = stream.next().await {} };
    let _ = tokio::time::timeout(LAST_WORDS, drain).await;
}

/// What the loop does after an event.
enum Step {
    Next,
    /// The queue drain stopped at its bound: read the socket before the rest.
    ReadNext,
    Exit(Exit),
}

/// What woke a waiting session.
enum Event {
    GoAway,
    Wake(Wake),
    Inbound(Option<Result<Message, ReadError>>),
}

struct Session<S> {
    ctx: CountedCtx,
    wire: Wire,
    sink: S,
    handle: SessionHandle,
    /// Per joined room, what this client has been sent. Lent to the
    /// fan-out while the session waits (see `handle`): empty then.
    rooms: Rooms,
    /// On the standard clock: the node's `QuantaClock` is 40 bytes a copy,
    /// and every session holds its limiter for life.
    limiter: RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<Instant>>,
    strikes: u32,
    /// Frames were fed to the sink since the last flush.
    unflushed: bool,
    /// When the session's token expires (Unix ms): checked on the heartbeat
    /// tick, a deadline per session rather than a timer.
    token_expires_at_ms: u64,
    /// When the session got its current token (Unix ms).
    token_received_at_ms: u64,
    /// `TokenExpiring` was sent for the current token.
    expiry_warned: bool,
}

impl<S: Outgoing> Session<S> {
    /// Not an `async fn`: its arguments would be kept twice in the future
    /// (once as passed, once as moved into the body), which every idle
    /// session holds.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice in the future"
    )]
    fn main_loop<'a, R: Incoming>(
        &'a mut self,
        stream: &'a mut R,
        mut rx: crate::handle::Receiver,
    ) -> impl Future<Output = Exit> + 'a {
        async move {
            // No timer of its own: the node's heartbeat sweep (`heartbeat`)
            // flags every session once a heartbeat and the loop's top acts on it.
            let mut last_in = Instant::now();
            // Boxed and created only when draining: every idle session's loop
            // future would otherwise carry a timer.
            let mut go_away_at: Option<Pin<Box<tokio::time::Sleep>>> = None;
            // What is left of the drain window after this session's go-away.
            let mut window_left_ms = 1;
            // The queue is served before the socket is read (deliveries are the
            // hot path, and a wakeup that finds an item then polls nothing else);
            // after a full drain the socket gets a turn, so a client that is sent
            // a lot is still read.
            let mut inbound_turn = false;
            loop {
                // Everything written since the last wakeup leaves in one flush
                // before the session waits again. Boxed, like every step below
                // that may wait: the loop's future is what an idle session holds.
                if self.flush_due() && Box::pin(self.flush()).await.is_err() {
                    return Exit::Gone;
                }
                if rx.killed()
                    && let Some(exit) = self.killed_exit()
                {
                    return exit;
                }
                if rx.take_heartbeat()
                    && let Some(exit) = Box::pin(self.on_heartbeat(last_in)).await
                {
                    return exit;
                }
                // Draining: keep serving until this session's moment in the drain
                // window, so reconnects are spread out.
                if go_away_at.is_none() && rx.draining() {
                    let window = self.ctx.cfg.drain_window_ms.max(1);
                    let delay = rand::random::<u64>() % window;
                    window_left_ms = window - delay;
                    go_away_at = Some(Box::pin(tokio::time::sleep(Duration::from_millis(delay))));
                }
                let event = if std::mem::take(&mut inbound_turn)
                    && let Poll::Ready(inbound) = futures::poll!(stream.next())
                {
                    Event::Inbound(inbound)
                } else {
                    // Waiting: batches that continue the cursors may go straight
                    // to the socket meanwhile; whatever wakes the session takes
                    // the cursors back before it acts.
                    rx.lend(&mut self.rooms);
                    let event = tokio::select! {
                        biased;
                        _ = sleep_until(&mut go_away_at) => Event::GoAway,
                        wake = rx.recv() => Event::Wake(wake),
                        inbound = stream.next() => Event::Inbound(inbound),
                    };
                    rx.reclaim(&mut self.rooms);
                    event
                };
                // A signal: the loop's top looks at it (and flushes what a
                // partial direct write left), with no step to allocate (the
                // heartbeat sweep signals every session).
                if matches!(event, Event::Wake(Wake::Signal)) {
                    continue;
                }
                // The event moves into a boxed step: no part of it stays in
                // the loop's future across the wait.
                match Box::pin(self.on_event(event, &mut rx, &mut last_in, window_left_ms)).await {
                    Step::Next => {}
                    Step::ReadNext => inbound_turn = true,
                    Step::Exit(exit) => return exit,
                }
            }
        }
    }

    /// Act on what woke the loop.
    async fn on_event(
        &mut self,
        event: Event,
        rx: &mut crate::handle::Receiver,
        last_in: &mut Instant,
        window_left_ms: u64,
    ) -> Step {
        match event {
            Event::GoAway => {
                // The client waits a random part of what is left of the
                // window: reconnects spread even where go-aways bunch up
                // (a client reconnects no later than the window's end).
                let reconnect_after_ms = 1 + rand::random::<u64>() % window_left_ms;
                Step::Exit(self.go_away(reconnect_after_ms).await)
            }
            // Handled by the loop before it boxes a step.
            Event::Wake(Wake::Signal) => Step::Next,
            Event::Wake(Wake::Item(out)) => match self.serve_queue(out, rx).await {
                Ok(true) => Step::ReadNext,
                Ok(false) => Step::Next,
                Err(()) => Step::Exit(Exit::Gone),
            },
            Event::Inbound(inbound) => match self.on_inbound(inbound, last_in).await {
                Some(exit) => Step::Exit(exit),
                None => Step::Next,
            },
        }
    }

    /// Once a heartbeat: close a client silent for `idle_heartbeats`
    /// heartbeats, and look at its token's expiry.
    async fn on_heartbeat(&mut self, last_in: Instant) -> Option<Exit> {
        let idle_limit =
            crate::heartbeat::period(&self.ctx.cfg) * self.ctx.cfg.idle_heartbeats.max(1);
        if last_in.elapsed() > idle_limit {
            return Some(Exit::Close {
                code: close::GOING_AWAY,
                reason: "idle timeout".into(),
                error: None,
            });
        }
        self.check_token_expiry().await
    }

    /// A wakeup's share of the queue: `first` and up to
    /// [`DRAIN_PER_WAKEUP`] items in all. True when it stopped at that
    /// bound (the socket gets a turn before the rest).
    async fn serve_queue(
        &mut self,
        first: Outbound,
        rx: &mut crate::handle::Receiver,
    ) -> Result<bool, ()> {
        self.ctx.metrics.queue_depth.observe(rx.remaining() as f64);
        self.on_outbound(first).await?;
        let mut served = 1;
        while served < DRAIN_PER_WAKEUP {
            let Some(more) = rx.try_recv() else {
                return Ok(false);
            };
            self.on_outbound(more).await?;
            served += 1;
        }
        Ok(true)
    }

    /// One read from the socket: a frame to act on, or the end.
    async fn on_inbound(
        &mut self,
        inbound: Option<Result<Message, ReadError>>,
        last_in: &mut Instant,
    ) -> Option<Exit> {
        let Some(read) = inbound else {
            return Some(Exit::Gone);
        };
        *last_in = Instant::now();
        match bad_frame(
            &self.ctx,
            classify(read, self.ctx.cfg.max_frame_bytes, self.wire),
        ) {
            Ok((code, reason, e)) => Some(Exit::Close {
                code,
                reason: reason.into(),
                error: Some(e),
            }),
            // Boxed: joins and pulls are rare but their futures are large,
            // and every idle session would carry one.
            Err(Inbound::Frame(f)) => Box::pin(self.on_frame(f)).await,
            Err(Inbound::Close) => Some(Exit::Gone),
            // Pings and pongs (answered by the WebSocket layer).
            Err(_) => None,
        }
    }

    /// The close a disconnect asked for ([`SessionHandle::disconnect`]).
    fn killed_exit(&self) -> Option<Exit> {
        let (code, reason) = self.handle.shared.kill_reason.get().copied()?;
        Some(Exit::Close {
            code: close::POLICY,
            reason: reason.to_string(),
            error: Some(error(code, reason, 0, "")),
        })
    }

    /// On the heartbeat tick: close a session whose token expired unrenewed,
    /// or warn it once to refresh: `token_expiry_warning_secs` ahead, but
    /// never before half of what was left of the token when the session got
    /// it (a short-lived token is not warned about the moment it arrives).
    async fn check_token_expiry(&mut self) -> Option<Exit> {
        let now = common::time::now_ms();
        let expires_at_ms = self.token_expires_at_ms;
        if now >= expires_at_ms {
            self.ctx
                .metrics
                .bad_frames
                .with_label_values(&["token_expired"])
                .inc();
            return Some(Exit::Close {
                code: close::POLICY,
                reason: "token expired".into(),
                error: Some(error(
                    Code::TokenExpired,
                    "token expired; send Refresh before it does",
                    0,
                    "",
                )),
            });
        }
        let left_at_receipt = expires_at_ms.saturating_sub(self.token_received_at_ms);
        let lead_ms = self
            .ctx
            .cfg
            .token_expiry_warning_secs
            .saturating_mul(1000)
            .min(left_at_receipt / 2);
        if !self.expiry_warned && now.saturating_add(lead_ms) >= expires_at_ms {
            self.expiry_warned = true;
            let warning = TokenExpiring { expires_at_ms };
            let sent = self
                .write_own(&frame(server_frame::Frame::TokenExpiring(warning)))
                .await;
            return sent.err().map(|()| Exit::Gone);
        }
        None
    }

    /// `Refresh`: a new token for the same uid replaces the session's; any
    /// refusal leaves the current one in place.
    async fn refresh(&mut self, r: Refresh) -> Result<(), ()> {
        let claims = match verify_token(&self.ctx, &r.token) {
            Ok(claims) => claims,
            Err(err) => {
                tracing::debug!(error = %err, "Refresh refused.");
                let e = error(auth_code(&err), err.public_reason(), r.r#ref, "");
                return self.write_error(e).await;
            }
        };
        if *claims.sub != **self.handle.uid() {
            let e = error(
                Code::Forbidden,
                "the new token is for another uid; the session keeps its token",
                r.r#ref,
                "",
            );
            return self.write_error(e).await;
        }
        self.token_expires_at_ms = claims.exp.saturating_mul(1000);
        self.token_received_at_ms = common::time::now_ms();
        self.expiry_warned = false;
        self.handle.set_token_iat(claims.iat);
        let done = Refreshed {
            r#ref: r.r#ref,
            expires_at_ms: self.token_expires_at_ms,
        };
        self.write_own(&frame(server_frame::Frame::Refreshed(done)))
            .await
    }

    async fn go_away(&mut self, reconnect_after_ms: u64) -> Exit {
        let go = GoAway {
            reason: "server shutting down".into(),
            reconnect_after_ms: u32::try_from(reconnect_after_ms).unwrap_or(u32::MAX),
        };
        let _ = tokio::time::timeout(
            LAST_WORDS,
            self.write_own(&frame(server_frame::Frame::GoAway(go))),
        )
        .await;
        Exit::Close {
            code: close::GOING_AWAY,
            reason: "going away".into(),
            error: None,
        }
    }

    // === writing ===

    /// Queue a frame on the socket; it leaves at the next [`Self::flush`].
    async fn write(&mut self, message: Message) -> Result<(), ()> {
        // The write first: the disconnect is waited for (and its lock taken) only
        // when the socket is full and the write has to wait.
        let shared = &self.handle.shared;
        tokio::select! {
            biased;
            r = self.sink.feed(message) => {
                self.ctx.metrics.frames_out.inc();
                self.unflushed = true;
                r.map_err(|e| tracing::debug!(error = %e, "Socket write failed."))
            }
            () = shared.disconnected() => Err(()),
        }
    }

    /// Queue a frame built once for many sockets; it leaves at the next
    /// [`Self::flush`].
    async fn write_shared(&mut self, frame: &SharedFrame) -> Result<(), ()> {
        let wire = self.wire;
        let sink = &mut self.sink;
        let feed = std::future::poll_fn(|cx| {
            std::task::ready!(sink.poll_ready_unpin(cx))?;
            Poll::Ready(Pin::new(&mut *sink).start_send_shared(frame, wire))
        });
        let shared = &self.handle.shared;
        tokio::select! {
            biased;
            r = feed => {
                self.ctx.metrics.frames_out.inc();
                self.unflushed = true;
                r.map_err(|e| tracing::debug!(error = %e, "Socket write failed."))
            }
            () = shared.disconnected() => Err(()),
        }
    }

    /// Frames were queued, or a direct write left bytes behind.
    fn flush_due(&self) -> bool {
        self.unflushed || self.sink.backlogged()
    }

    /// Write what was queued (and what a direct write left), in one socket
    /// write when it fits the buffer.
    async fn flush(&mut self) -> Result<(), ()> {
        if !self.flush_due() {
            return Ok(());
        }
        self.unflushed = false;
        let shared = &self.handle.shared;
        tokio::select! {
            biased;
            r = self.sink.flush() => {
                self.ctx.metrics.flushes.inc();
                r.map_err(|e| tracing::debug!(error = %e, "Socket write failed."))
            }
            () = shared.disconnected() => Err(()),
        }
    }

    async fn write_own(&mut self, f: &ServerFrame) -> Result<(), ()> {
        let message = codec::encode(self.wire, f);
        self.write(message).await
    }

    async fn write_error(&mut self, e: ErrorFrame) -> Result<(), ()> {
        self.write_own(&frame(server_frame::Frame::Error(e))).await
    }

    async fn write_messages(
        &mut self,
        room: &str,
        epoch: u64,
        messages: Vec<RoomMessage>,
    ) -> Result<(), ()> {
        // Replay to a session of a sampling room is thinned like its live
        // frames; each page still covers its whole range.
        let mut thinner = self
            .ctx
            .feeds
            .get(room)
            .filter(|feed| feed.sampled())
            .map(|_| ReplayThinner::new(self.ctx.cfg.sample_low_per_sec));
        // Pages bounded by bytes too: a history of large messages must not
        // become one frame larger than a client can decode.
        for chunk in proto::paging::split_pages(messages, REPLAY_CHUNK, proto::paging::PAGE_BYTES) {
            let (first, last) = match (chunk.first(), chunk.last()) {
                (Some(f), Some(l)) => (f.seq, l.seq),
                _ => break,
            };
            let n = chunk.len() as u64;
            let chunk = match &mut thinner {
                Some(thinner) => thinner.thin(chunk),
                None => chunk,
            };
            self.write_own(&delivery_frame(room, epoch, first, last, chunk))
                .await?;
            self.ctx.metrics.deliveries.inc_by(n);
        }
        Ok(())
    }

    // === client frames ===

    async fn on_frame(&mut self, f: ClientFrame) -> Option<Exit> {
        let kind = match &f.frame {
            Some(client_frame::Frame::Hello(_)) => "hello",
            Some(client_frame::Frame::Join(_)) => "join",
            Some(client_frame::Frame::Leave(_)) => "leave",
            Some(client_frame::Frame::Publish(_)) => "publish",
            Some(client_frame::Frame::Ping(_)) => "ping",
            Some(client_frame::Frame::Refresh(_)) => "refresh",
            None => "unknown",
        };
        self.ctx.metrics.frames_in.with_label_values(&[kind]).inc();
        if self.limiter.check().is_err() {
            self.strikes += 1;
            self.ctx
                .metrics
                .bad_frames
                .with_label_values(&["rate_limited"])
                .inc();
            if self.strikes > self.ctx.cfg.rate_limit_strikes {
                return Some(Exit::Close {
                    code: close::POLICY,
                    reason: "rate limit exceeded".into(),
                    error: Some(error(
                        Code::RateLimited,
                        "too many frames; connection closed",
                        0,
                        "",
                    )),
                });
            }
            let (r#ref, room) = frame_ref(&f);
            let e = error(
                Code::RateLimited,
                "too many frames; slow down",
                r#ref,
                &room,
            );
            return self.write_error(e).await.err().map(|()| Exit::Gone);
        }
        self.strikes = 0;
        let result = match f.frame {
            None => {
                self.ctx
                    .metrics
                    .bad_frames
                    .with_label_values(&["unknown"])
                    .inc();
                self.write_error(error(
                    Code::UnknownFrame,
                    "unknown frame type for roomcast v1",
                    0,
                    "",
                ))
                .await
            }
            Some(client_frame::Frame::Hello(_)) => {
                self.write_error(error(Code::BadRequest, "already authenticated", 0, ""))
                    .await
            }
            Some(client_frame::Frame::Join(j)) => {
                let span = common::span!("conn.join", room = %j.room);
                self.join(j).instrument(span).await
            }
            Some(client_frame::Frame::Leave(l)) => self.leave(l).await,
            Some(client_frame::Frame::Publish(p)) => self.publish(p).await,
            Some(client_frame::Frame::Refresh(r)) => self.refresh(r).await,
            Some(client_frame::Frame::Ping(p)) => {
                let pong = Pong {
                    client_time_ms: p.client_time_ms,
                    server_time_ms: common::time::now_ms(),
                };
                self.write_own(&frame(server_frame::Frame::Pong(pong)))
                    .await
            }
        };
        result.err().map(|()| Exit::Gone)
    }

    fn check_room(&self, room: &str) -> Result<(), String> {
        if room.is_empty() || room.len() > MAX_ROOM_ID || room.chars().any(char::is_control) {
            return Err(format!(
                "room id must be 1..={MAX_ROOM_ID} bytes without control characters"
            ));
        }
        Ok(())
    }

    async fn join(&mut self, j: Join) -> Result<(), ()> {
        if let Err(why) = self.check_room(&j.room) {
            return self
                .write_error(error(Code::BadRequest, why, j.r#ref, &j.room))
                .await;
        }
        let room: Arc<str> = Arc::from(j.room.as_str());
        if !self.rooms.contains_key(&room) && self.rooms.len() >= self.ctx.cfg.max_rooms_per_session
        {
            let msg = format!(
                "a connection may join at most {} rooms",
                self.ctx.cfg.max_rooms_per_session
            );
            return self
                .write_error(error(Code::BadRequest, msg, j.r#ref, &j.room))
                .await;
        }
        let ctx = self.ctx.clone();
        let snapshot = match ctx
            .biz
            .authorize(
                self.handle.uid(),
                &room,
                self.handle.id(),
                JoinPurpose::Join,
                self.handle.token_iat(),
            )
            .await
        {
            Ok(s) => s,
            Err(refusal) => {
                ctx.metrics.joins.with_label_values(&["refused"]).inc();
                return self
                    .write_error(error(refusal.code, refusal.message, j.r#ref, &j.room))
                    .await;
            }
        };
        let timeout = Duration::from_millis(ctx.cfg.request_timeout_ms);
        let feed = ctx.feeds.join(&ctx, &room, self.handle.clone()).await;
        let start = match feed.ready(timeout).await {
            Some(_) => {
                self.start_position(&feed, &room, j.resume.as_ref(), timeout)
                    .await
            }
            None => Err("the push layer did not acknowledge the room in time".to_string()),
        };
        let (start, recovered, missed) = match start {
            Ok(s) => s,
            Err(why) => {
                if !self.rooms.contains_key(&room) {
                    ctx.feeds.leave(&ctx, &room, self.handle.id()).await;
                    ctx.biz
                        .member_left(self.handle.uid(), &room, self.handle.id())
                        .await;
                }
                ctx.metrics.joins.with_label_values(&["unavailable"]).inc();
                return self
                    .write_error(error(Code::Unavailable, why, j.r#ref, &j.room))
                    .await;
            }
        };
        // The feed's room id, shared by every member: the fan-out finds a
        // member's cursor by pointer, without reading a copy of the id.
        self.rooms.insert(feed.room.clone(), start);
        ctx.metrics
            .joins
            .with_label_values(&[if recovered { "resumed" } else { "ok" }])
            .inc();
        let joined = Joined {
            r#ref: j.r#ref,
            room: j.room,
            epoch: start.epoch,
            start_seq: start.seq,
            recovered,
            snapshot: Some(snapshot),
        };
        self.write_own(&frame(server_frame::Frame::Joined(joined)))
            .await?;
        self.write_messages(&room, start.epoch, missed).await
    }

    /// Where a joining client starts (the cursor decides; history is read
    /// only when the feed's position cannot tell), whether it recovered, and
    /// the messages it missed.
    async fn start_position(
        &self,
        feed: &crate::feeds::Feed,
        room: &str,
        resume: Option<&proto::client::v1::Resume>,
        timeout: Duration,
    ) -> Result<(Cursor, bool, Vec<RoomMessage>), String> {
        let position = feed.position();
        let after = match cursor::resume_start(position, resume) {
            Start::Resumed(start) => return Ok((start, true, Vec::new())),
            Start::Fresh(start) => return Ok((start, false, Vec::new())),
            Start::ReadHistory { after } => after,
        };
        let range = pull_range(
            &self.ctx.directory,
            room,
            after,
            None,
            self.ctx.cfg.pull_batch,
            timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        let facts = range.facts();
        match resume.map(|r| cursor::resume_from_history(position, r, &facts)) {
            Some(Start::Resumed(start)) => Ok((start, true, range.messages)),
            _ => Ok((position, false, Vec::new())),
        }
    }

    async fn leave(&mut self, l: Leave) -> Result<(), ()> {
        let Some((room, _)) = self.rooms.remove_entry(l.room.as_str()) else {
            return self
                .write_error(error(Code::NotJoined, "not in this room", l.r#ref, &l.room))
                .await;
        };
        self.ctx
            .feeds
            .leave(&self.ctx, &room, self.handle.id())
            .await;
        self.ctx
            .biz
            .member_left(self.handle.uid(), &room, self.handle.id())
            .await;
        let left = Left {
            r#ref: l.r#ref,
            room: l.room,
            reason: String::new(),
        };
        self.write_own(&frame(server_frame::Frame::Left(left)))
            .await
    }

    async fn publish(&mut self, p: Publish) -> Result<(), ()> {
        if !self.rooms.contains_key(p.room.as_str()) {
            let e = error(
                Code::NotJoined,
                "join the room before publishing to it",
                p.r#ref,
                &p.room,
            );
            return self.write_error(e).await;
        }
        if p.action.is_empty() || p.action.len() > MAX_ACTION {
            let e = error(
                Code::BadRequest,
                format!("action must be 1..={MAX_ACTION} bytes"),
                p.r#ref,
                &p.room,
            );
            return self.write_error(e).await;
        }
        // The reply comes back through the queue so a slow room-biz never
        // stalls this connection's reads or deliveries.
        let ctx = self.ctx.clone();
        let handle = self.handle.clone();
        let span = common::span!("conn.action", room = %p.room, action = %p.action);
        let action = async move {
            let reply = ctx
                .biz
                .action(handle.uid(), &p.room, p.action, p.payload, handle.id())
                .await;
            let reply = Reply {
                r#ref: p.r#ref,
                code: reply.code,
                message: reply.message,
                body: reply.body,
            };
            handle
                .send(Outbound::Own(Box::new(frame(server_frame::Frame::Reply(
                    reply,
                )))))
                .await;
        };
        self.ctx.tracker.spawn(action.instrument(span));
        Ok(())
    }

    // === queued frames ===

    async fn on_outbound(&mut self, out: Outbound) -> Result<(), ()> {
        if self.handle.lag_started() {
            Box::pin(self.recover_from_lag()).await?;
        }
        match out {
            Outbound::Batch(batch) => self.on_batch(batch).await,
            Outbound::Shared(shared) => self.write_shared(&shared).await,
            Outbound::Own(f) => self.write_own(&f).await,
            Outbound::Remove(removal) => Box::pin(self.on_removal(*removal)).await,
        }
    }

    async fn on_removal(&mut self, removal: Removal) -> Result<(), ()> {
        let Removal { room, reason } = removal;
        if self.rooms.remove(&room).is_none() {
            return Ok(());
        }
        // room-biz already dropped the membership; only the fan-out goes.
        self.ctx
            .feeds
            .leave(&self.ctx, &room, self.handle.id())
            .await;
        let left = Left {
            r#ref: 0,
            room: room.to_string(),
            reason,
        };
        self.write_own(&frame(server_frame::Frame::Left(left)))
            .await
    }

    /// Frames were dropped: say so, then pull every room up to its head.
    async fn recover_from_lag(&mut self) -> Result<(), ()> {
        // Clear first: a drop after this point starts a new episode.
        self.handle.lag_recovered();
        let rooms: Vec<(Arc<str>, u64)> =
            self.rooms.iter().map(|(r, c)| (r.clone(), c.seq)).collect();
        for (room, seq) in rooms {
            let lagged = Lagged {
                room: room.to_string(),
                resume_after_seq: seq,
            };
            self.write_own(&frame(server_frame::Frame::Lagged(lagged)))
                .await?;
            self.fill(&room, None).await?;
        }
        Ok(())
    }

    async fn on_batch(&mut self, batch: Arc<RoomBatch>) -> Result<(), ()> {
        let Some(cursor) = self.rooms.get(&batch.room) else {
            return Ok(());
        };
        match cursor.place(batch.epoch, batch.first_seq, batch.last_seq) {
            // The fresh snapshot covers this batch: start after it.
            Place::OtherEpoch => {
                let start = Cursor::new(batch.epoch, batch.last_seq);
                Box::pin(self.reset_room(&batch.room, start)).await?;
            }
            Place::Gap { upto, .. } => Box::pin(self.fill(&batch.room, Some(upto))).await?,
            Place::Covered | Place::Next | Place::Overlap { .. } => {}
        }
        let Some(cursor) = self.rooms.get_mut(&batch.room) else {
            return Ok(());
        };
        let message = match cursor.place(batch.epoch, batch.first_seq, batch.last_seq) {
            // As is: the frame built once for every socket.
            Place::Next => None,
            // Overlap after a join or a fill: send only what is new.
            Place::Overlap { from } => {
                let fresh = cursor.fresh(batch.messages().to_vec());
                Some(codec::encode(
                    self.wire,
                    &delivery_frame(&batch.room, batch.epoch, from, batch.last_seq, fresh),
                ))
            }
            // Covered, or a fill or reset that could not complete: the next
            // batch or lag recovery tries again.
            Place::Covered | Place::Gap { .. } | Place::OtherEpoch => return Ok(()),
        };
        let count = batch.last_seq - cursor.seq;
        cursor.advance(batch.last_seq);
        // The end of a traced message's trace: its frame handed to this socket.
        let span = if batch.trace.is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(parent: &batch.trace, "conn.socket_write", room = %batch.room, last_seq = batch.last_seq)
        };
        match message {
            None => self.write_shared(&batch.frame).instrument(span).await?,
            Some(message) => self.write(message).instrument(span).await?,
        }
        self.ctx.metrics.deliveries.inc_by(count);
        Ok(())
    }

    /// Pull from the cursor up to `upto` (or the head) and write it. A stream
    /// reset or a hole history cannot fill re-joins the room.
    async fn fill(&mut self, room: &Arc<str>, upto: Option<u64>) -> Result<(), ()> {
        let Some(cursor) = self.rooms.get(room) else {
            return Ok(());
        };
        let (epoch, after) = (cursor.epoch, cursor.seq);
        let cursor = *cursor;
        // What is already written (a Lagged frame) leaves before the pull waits.
        self.flush().await?;
        let timeout = Duration::from_millis(self.ctx.cfg.request_timeout_ms);
        let range = match pull_range(
            &self.ctx.directory,
            room,
            after,
            upto,
            self.ctx.cfg.pull_batch,
            timeout,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                // Leave the cursor: the next batch or lag recovery tries again.
                tracing::warn!(%room, error = %e, "Cannot fill a gap.");
                return Ok(());
            }
        };
        match cursor.history(&range.facts()) {
            History::Continues => {}
            // The read already says where the stream is: no second read.
            History::NewEpoch | History::Truncated => {
                return self
                    .reset_room(room, Cursor::new(range.epoch, range.head))
                    .await;
            }
        }
        if let Some(last) = range.messages.last().map(|m| m.seq)
            && let Some(c) = self.rooms.get_mut(room)
        {
            c.advance(last);
        }
        self.write_messages(room, epoch, range.messages).await
    }

    /// The room's stream restarted or history no longer covers the client:
    /// send a fresh snapshot with `recovered = false` and continue from
    /// `start`, which the batch or read that revealed the reset gives. The
    /// snapshot is re-read without a join (no `member_joined`, no join count).
    async fn reset_room(&mut self, room: &Arc<str>, start: Cursor) -> Result<(), ()> {
        self.flush().await?;
        let ctx = self.ctx.clone();
        let mut attempt = 0u32;
        let snapshot = loop {
            match ctx
                .biz
                .authorize(
                    self.handle.uid(),
                    room,
                    self.handle.id(),
                    JoinPurpose::Resync,
                    self.handle.token_iat(),
                )
                .await
            {
                Ok(s) => break Ok(s),
                // Backends recovering from the incident that reset the stream:
                // retry a little, then leave the cursor for the next batch.
                Err(refusal) if refusal.code == Code::Unavailable && attempt < RESET_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(refusal) => break Err(refusal),
            }
        };
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(refusal) if refusal.code == Code::Unavailable => {
                tracing::warn!(%room, reason = %refusal.message, "Cannot re-join after a stream reset yet.");
                return Ok(());
            }
            Err(refusal) => {
                self.rooms.remove(room);
                ctx.feeds.leave(&ctx, room, self.handle.id()).await;
                let left = Left {
                    r#ref: 0,
                    room: room.to_string(),
                    reason: refusal.message,
                };
                return self
                    .write_own(&frame(server_frame::Frame::Left(left)))
                    .await;
            }
        };
        self.rooms.insert(room.clone(), start);
        let joined = Joined {
            r#ref: 0,
            room: room.to_string(),
            epoch: start.epoch,
            start_seq: start.seq,
            recovered: false,
            snapshot: Some(snapshot),
        };
        self.write_own(&frame(server_frame::Frame::Joined(joined)))
            .await
    }

    /// After the main loop: out of the rooms, then the last words the exit
    /// asks for.
    async fn close<R: Incoming>(mut self, exit: Exit, mut stream: R) {
        // A write cut short by a disconnect (a slow consumer's full socket)
        // still owes the client its reason.
        let killed = self.killed_exit();
        let exit = match exit {
            Exit::Gone => killed.unwrap_or(Exit::Gone),
            close => close,
        };
        // Out of its rooms first: nothing more is delivered or held for it
        // while the last words wait for the socket.
        self.cleanup().await;
        let Exit::Close {
            code,
            reason,
            error,
        } = exit
        else {
            return;
        };
        // A slow consumer's socket is full: its error and close frame leave
        // only when the client reads again, so they get longer. A drain ends
        // the wait.
        let patience = if self.handle.shared.kill_reason.get().is_some() {
            Duration::from_millis(self.ctx.cfg.slow_close_grace_ms)
        } else {
            LAST_WORDS
        };
        let stop = self.ctx.sessions_stop.clone();
        let words = last_words(
            &mut self.sink,
            &mut stream,
            self.wire,
            error,
            code,
            &reason,
            patience,
        );
        tokio::select! {
            () = words => {}
            () = stop.cancelled(), if patience > LAST_WORDS => {}
        }
    }

    async fn cleanup(&mut self) {
        let ctx = self.ctx.clone();
        for (room, _) in std::mem::take(&mut self.rooms) {
            ctx.feeds.leave(&ctx, &room, self.handle.id()).await;
            ctx.biz
                .member_left(self.handle.uid(), &room, self.handle.id())
                .await;
        }
        if ctx.registry.remove(self.handle.uid(), self.handle.id()) {
            let _ = ctx
                .upstream
                .send(UpstreamCmd::UserOffline(self.handle.uid().clone()))
                .await;
        }
    }
}

async fn sleep_until(at: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match at {
        Some(at) => at.as_mut().await,
        None => std::future::pending().await,
    }
}

fn frame_ref(f: &ClientFrame) -> (u32, String) {
    match &f.frame {
        Some(client_frame::Frame::Join(j)) => (j.r#ref, j.room.clone()),
        Some(client_frame::Frame::Leave(l)) => (l.r#ref, l.room.clone()),
        Some(client_frame::Frame::Publish(p)) => (p.r#ref, p.room.clone()),
        Some(client_frame::Frame::Refresh(r)) => (r.r#ref, String::new()),
        _ => (0, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{WsOut, WsStream};

    /// The size of the future `f` returns, without calling it.
    fn future_size<Args, F: Future>(_: impl FnOnce(Args) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The session's task lives as long as its connection; at 10,000 idle
    /// connections every byte of its future is 10 kB of server memory (see
    /// docs/benchmarks.md, idle). A step that may wait is boxed to stay out
    /// of it, and so is anything an event carries.
    ///
    /// The bound is the task's allocation class: tokio's task cell is its
    /// 32-byte header, scheduler and task id (16), the stage's tag (8), the
    /// task tracker's token (8), this future and a 48-byte trailer, padded to
    /// a multiple of 128 bytes. Up to 400 bytes the cell is 512 bytes (it was
    /// 896 with a 736-byte future, 640 with 472); one byte more costs 128 per
    /// connection.
    #[test]
    fn session_future_stays_small() {
        type Args = (Arc<Ctx>, WsOut, WsStream, Wire, SocketAddr);
        let size = future_size(|(ctx, sink, stream, wire, peer): Args| {
            serve(ctx, sink, stream, wire, peer)
        });
        println!("a WebSocket session's future: {size} bytes");
        assert!(size <= 400, "a WebSocket session's future is {size} bytes");
    }
}
