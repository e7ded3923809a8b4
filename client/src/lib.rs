//! Roomcast client SDK: route → connect → join → resume, as typed events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), roomcast_client::Error> {
//! use roomcast_client::{Client, ConnectOptions, Event};
//!
//! let opts = ConnectOptions::new("http://127.0.0.1:8600", "<jwt>").uid("alice");
//! let (client, mut events) = Client::connect(opts).await?;
//! client.join("room-1").await?;
//! client.comment("room-1", "hello").await?;
//! while let Some(event) = events.next().await {
//!     if let Event::Message { message, .. } = event {
//!         println!("{} {}", message.seq, message.kind);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! [`Client`] is a cheap `Clone` handle over a bounded command queue to one connection
//! task that owns the connection (nats.rs style). The task asks the router for a node,
//! tries its endpoints in the router's order (QUIC first, then WebSocket; both carry the
//! same protobuf frames), sends the hello, pings on the server's heartbeat, and on any
//! loss re-routes and reconnects with jittered exponential backoff, re-joining every room
//! with `resume{epoch, last_seq}`. Messages are surfaced once each, in seq order, per
//! room ([`RoomCursor`]).
//!
//! # Transports and the polling fallback
//!
//! Each endpoint tried and failed (connect, TLS, hello; not a refused token) is one failed
//! attempt. After [`ConnectOptions::fallback_after_failures`] (default 3) consecutive
//! failed attempts, counted across transports and re-routes, or as soon as the router
//! answers `mode: short`, the client switches to HTTP long polling: every joined room is
//! polled from its cursor, `publish`/`comment` go through the HTTP action endpoint, and
//! the app keeps receiving the same [`Event::Message`]s with no gap and no duplicate.
//! Every [`ConnectOptions::long_retry_interval`] (default 30 s) the client tries the long
//! connection again; when it holds, polling stops and every room is re-joined with resume
//! from the polling cursor. Each switch is an [`Event::TransportChanged`] (the first
//! event of every client names the starting transport); [`Client::transport`] tells the
//! current one.
//!
//! [`Client::connect`] succeeds in polling mode too (router says short, or every attempt
//! failed): it fails only when the token is refused, the router cannot be reached, or
//! there is neither a long connection nor a polling URL.
//!
//! TLS (`https://` router and polling URLs, `wss://` and QUIC endpoints) trusts the
//! webpki (Mozilla) roots, or only the CA certificates of [`ConnectOptions::ca_file`]
//! ([`tls`]). QUIC server certificates are also accepted by a pin, the hex SHA-256 of the
//! DER certificate ([`ConnectOptions::quic_cert_sha256`], else the router's
//! `quic_cert_sha256`, advertised only by development nodes).
//!
//! With [`ConnectOptions::stats`] (default on) the client reports connect time, failed
//! attempts per transport and the last RTT to the router (`POST /v1/client-stats`) after
//! each connect, on a switch to polling and every [`ConnectOptions::stats_interval`];
//! best effort, it never holds up the connection.
//!
//! # Layout
//! - [`options`] — [`ConnectOptions`] and its defaults.
//! - `connection` — the connection task (link or polls, requests in flight, reconnect,
//!   resume, fallback).
//! - [`event`] — [`Event`], [`Events`], [`JoinedRoom`], [`ReplyInfo`].
//! - [`error`] — [`Error`].
//! - [`transport`] — [`Transport`].
//! - `link` — one long connection over WebSocket or QUIC, as frames.
//! - `ws` — the WebSocket transport: open, close codes, graceful close.
//! - [`quic`] — the QUIC transport: connect, the certificate pinning verifier, frames on
//!   one stream.
//! - [`close`] — close codes shared by both transports.
//! - `polling` — HTTP polling and actions, and poll replies → events.
//! - [`fallback`] — [`Fallback`], the pure rule for switching to polling and back.
//! - `stats` — the client-stats reporter.
//! - [`cursor`] — [`RoomCursor`], the pure dedup/gap logic.
//! - [`backoff`] — [`Backoff`], exponential backoff with full jitter.
//! - [`actions`] — [`Room`] (`client.room(id)`) and [`Action`]: typed actions and replies.
//! - [`room_event`] — [`RoomEvent`], [`UserPush`], [`TypedEvent`]: typed room events.
//! - [`room_types`] — the snapshot JSON, user state, polls.
//! - [`room_state`] — [`RoomStore`] (pure) and [`RoomWatcher`]: the room-state model.
//! - `read_state` — `GET /v1/rooms/{id}/state` for the model's refetch.
//! - [`transport_memory`] — skipping a transport that failed lately.
//! - [`route`] — the router call.
//! - [`http`] — [`HttpClient`], the HTTP/1.1 client over `http://` and `https://` (public
//!   for tools calling Roomcast's HTTP APIs with the SDK's trust).
//! - [`raw`] — [`RawConnection`] and [`RawQuicConnection`], bare frame-level connections
//!   for tests and tools (a leaf over `ws` and [`quic`]).
//!
//! Modules import downwards only: `connection` → `link` → `ws`/[`quic`] → [`close`],
//! [`error`]; [`raw`] sits beside `link` on the same transports; every module names the
//! module it imports from, not the crate root's re-exports.
//!
//! More: `README.md` next to this crate's `Cargo.toml`, and the runnable programs in
//! `examples/` (`listen`, `say`).

#![warn(missing_docs, unreachable_pub)]

pub mod actions;
pub mod backoff;
pub mod close;
mod connection;
pub mod cursor;
pub mod error;
pub mod event;
pub mod fallback;
pub mod history;
pub mod http;
pub mod inbox;
mod link;
pub mod options;
mod polling;
pub mod quic;
pub mod raw;
mod read_state;
pub mod room_event;
pub mod room_state;
pub mod room_types;
pub mod route;
mod stats;
pub mod tls;
pub mod transport;
pub mod transport_memory;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;

pub use actions::{Action, Room};
pub use backoff::Backoff;
pub use cursor::{Accept, RoomCursor};
pub use error::Error;
pub use event::{Event, Events, JoinedRoom, ReplyInfo};
pub use fallback::Fallback;
pub use history::{HistoryMessage, HistoryPage, PageRequest};
pub use http::{Auth, HttpClient, HttpFailure, HttpResponse};
pub use inbox::{Inbox, InboxItem};
pub use options::{ConnectOptions, TokenFuture, TokenProvider};
pub use proto::client::v1::{Code, RoomMessage, RoomSnapshot};
pub use raw::{RawConnection, RawEvent, RawQuicConnection};
pub use room_event::{RoomEvent, RoomUpdate, TypedEvent, UserPush};
pub use room_state::{RoomStore, RoomWatcher};
pub use room_types::Snapshot;
pub use tls::TlsTrust;
pub use transport::Transport;

use connection::{Actor, Channels, Command};

/// A handle to one connection (long, or polling). Cheap to clone; every clone drives the
/// same connection. The connection closes when [`close`](Self::close) is called or the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    rtt: watch::Receiver<Option<Duration>>,
    transport: watch::Receiver<Transport>,
    request_timeout: Duration,
}

impl Client {
    /// Route and connect: a long connection (QUIC or WebSocket, hello answered by a
    /// welcome), or polling when the router says short or every long attempt failed
    /// [`ConnectOptions::fallback_after_failures`] times. Then hand everything to a
    /// background task (spawned on the current Tokio runtime).
    ///
    /// Fails when the token is refused ([`Error::Auth`]), the router cannot be reached
    /// ([`Error::Route`]), there is neither a long connection nor a polling URL
    /// ([`Error::LongUnavailable`]), or, with `fallback_after_failures = 0`, when the
    /// first route's endpoints all fail (that endpoint's error). After that, every loss
    /// is retried by the task and reported as events; the first event is
    /// [`Event::TransportChanged`].
    pub async fn connect(opts: ConnectOptions) -> Result<(Self, Events), Error> {
        let opts = Arc::new(opts);
        let trust = TlsTrust::new(opts.ca_file.as_deref())?;
        let http = http::HttpClient::new(&trust);

        // mpsc::channel panics on 0: treat 0 as "as small as possible".
        let (commands_tx, commands_rx) = mpsc::channel(opts.command_capacity.max(1));
        let (events_tx, events_rx) = mpsc::channel(opts.event_capacity.max(1));
        let (rtt_tx, rtt_rx) = watch::channel(None);
        let (transport_tx, transport_rx) = watch::channel(Transport::Ws);
        let stats = opts
            .stats
            .then(|| stats::spawn(http.clone(), opts.clone(), rtt_rx.clone()));
        let request_timeout = opts.request_timeout;
        let span = tracing::debug_span!("roomcast_client", uid = %opts.uid);
        let channels = Channels {
            commands: commands_rx,
            self_commands: commands_tx.downgrade(),
            events: events_tx,
            rtt: rtt_tx,
            transport: transport_tx,
        };
        let mut actor = Actor::new(opts, http, trust, channels, stats);
        // The first connect runs here, before any handle or event reader exists, so the
        // app awaits it and it emits nothing.
        let start = actor.start().instrument(span.clone()).await?;
        tokio::spawn(actor.run(start).instrument(span));
        let client = Self {
            commands: commands_tx,
            rtt: rtt_rx,
            transport: transport_rx,
            request_timeout,
        };
        Ok((client, Events::new(events_rx)))
    }

    /// Join `room` (or re-join it with resume when already in it) and wait for the
    /// server's answer. The room is then tracked: its messages arrive as
    /// [`Event::Message`], and it is re-joined after every reconnect.
    ///
    /// A refusal is [`Error::Refused`]. [`Error::Disconnected`] means the socket dropped
    /// first; the room stays tracked and is joined on the next session (an
    /// [`Event::Joined`] tells when). While reconnecting, the join waits for the next
    /// session, up to the request timeout. While polling, the first poll of the room
    /// answers it (a fresh join starts at the head, like a socket join).
    pub async fn join(&self, room: impl Into<String>) -> Result<JoinedRoom, Error> {
        let room = room.into();
        self.request(|reply| Command::Join { room, reply }).await
    }

    /// Leave `room`: stop tracking it at once and tell the server. While disconnected
    /// this succeeds immediately (the membership ended with the session).
    pub async fn leave(&self, room: impl Into<String>) -> Result<(), Error> {
        let room = room.into();
        self.request(|reply| Command::Leave { room, reply }).await
    }

    /// Publish an action to `room` and wait for room-biz's reply. A non-OK code is
    /// [`Error::Refused`]; a frame over the server's limit is [`Error::TooLarge`]. Never
    /// retried by the SDK: while disconnected this fails with [`Error::Disconnected`].
    /// While polling it goes through the HTTP action endpoint with the same token and
    /// answers the same way (HTTP refusals become [`Error::Refused`] with their code).
    pub async fn publish(
        &self,
        room: impl Into<String>,
        action: impl Into<String>,
        payload: impl Into<Bytes>,
    ) -> Result<ReplyInfo, Error> {
        let (room, action, payload) = (room.into(), action.into(), payload.into());
        self.request(|reply| Command::Publish {
            room,
            action,
            payload,
            reply,
        })
        .await
    }

    /// Post a comment: action `comment` with payload `{"text": text}`. The reply body is
    /// `{"seq": N}`.
    pub async fn comment(&self, room: impl Into<String>, text: &str) -> Result<ReplyInfo, Error> {
        let payload = serde_json::to_vec(&serde_json::json!({ "text": text }))
            .map_err(|e| Error::Protocol(e.to_string()))?;
        self.publish(room, "comment", payload).await
    }

    /// Read `room`'s state as this client's user (`GET /v1/rooms/{id}/state` on the
    /// client listener, with the client's token): what a join answers. The room-state
    /// model calls it after a gap in `v`; works in every mode, connected or not, once a
    /// route gave a polling URL.
    pub async fn read_state(&self, room: impl Into<String>) -> Result<Snapshot, Error> {
        let room = room.into();
        self.request(|reply| Command::ReadState { room, reply })
            .await
    }

    /// Read this user's inbox (`GET /v1/me/inbox` beside the polling URL, with the
    /// client's token): notices kept while the user was not connected, such as
    /// `room_started` of rooms they were invited to or interested in, newest first.
    /// Pass the newest `at_ms` seen as `after_ms` to get only newer items (0: all).
    pub async fn inbox(&self, after_ms: u64) -> Result<Inbox, Error> {
        self.request(|reply| Command::ReadInbox { after_ms, reply })
            .await
    }

    /// A page of `room`'s durable messages by seq (`GET /v1/rooms/{id}/history` on the
    /// client listener, with the client's token): for late joiners and ended rooms,
    /// served from the live log while the room has it, from the archive after. See
    /// [`PageRequest::History`].
    pub async fn history(
        &self,
        room: impl Into<String>,
        before_seq: Option<u64>,
        after_seq: Option<u64>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, Error> {
        let request = PageRequest::History {
            before_seq,
            after_seq,
            limit,
        };
        self.read_page(room.into(), request).await
    }

    /// Replay `room` from `from_ms` after its start (`GET /v1/rooms/{id}/replay`): its
    /// messages with their offset from the start, for danmaku over a recording.
    pub async fn replay(
        &self,
        room: impl Into<String>,
        from_ms: i64,
        limit: Option<usize>,
    ) -> Result<HistoryPage, Error> {
        self.read_page(room.into(), PageRequest::Replay { from_ms, limit })
            .await
    }

    async fn read_page(&self, room: String, request: PageRequest) -> Result<HistoryPage, Error> {
        self.request(|reply| Command::ReadPage {
            room,
            request,
            reply,
        })
        .await
    }

    /// Replace the session's token without reconnecting: on a live session the server
    /// checks it (same uid, valid, not revoked) and answers; a refusal is
    /// [`Error::Refused`] and the session keeps its current token. While reconnecting or
    /// polling the token is kept for the next hello or poll. Call it on
    /// [`Event::TokenExpiring`], or set [`ConnectOptions::token_provider`] instead.
    pub async fn set_token(&self, token: impl Into<String>) -> Result<(), Error> {
        let token = token.into();
        self.request(|reply| Command::SetToken { token, reply })
            .await
    }

    /// Close the connection gracefully (close frame, short wait for the server's). Requests
    /// in flight fail with [`Error::Closed`], [`Events`] ends after a last
    /// [`Event::Disconnected`], and every clone of this handle stops working.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).await.is_ok() {
            let _ = tokio::time::timeout(self.request_timeout, done).await;
        }
    }

    /// Round-trip time measured by the last ping/pong (millisecond resolution), `None`
    /// before the first pong.
    pub fn last_rtt(&self) -> Option<Duration> {
        *self.rtt.borrow()
    }

    /// The transport in use now (the last [`Event::TransportChanged`], already set when
    /// [`connect`](Self::connect) returns).
    pub fn transport(&self) -> Transport {
        *self.transport.borrow()
    }

    /// Whether the connection task has stopped (closed, or authentication refused on a
    /// reconnect).
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            self.commands
                .send(command(reply))
                .await
                .map_err(|_| Error::Closed)?;
            answer.await.map_err(|_| Error::Closed)?
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| Error::Timeout)?
    }
}
