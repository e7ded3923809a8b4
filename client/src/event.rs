//! What the connection task reports to the app.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use proto::client::v1::{Code, RoomMessage, RoomSnapshot};
use tokio::sync::mpsc;

use crate::transport::Transport;

/// A room the client is in, as the server confirmed it.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedRoom {
    /// Room id.
    pub room: String,
    /// The room stream's epoch; a new epoch means the stream was reset.
    pub epoch: u64,
    /// Live deliveries continue with `start_seq + 1`.
    pub start_seq: u64,
    /// True when a resume was asked for and history still reached back: the missed
    /// messages arrive as [`Event::Message`]s right after this.
    pub recovered: bool,
    /// The room state to start from.
    pub snapshot: Option<RoomSnapshot>,
}

/// The answer to a publish.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyInfo {
    /// Always [`Code::Ok`] in a successful result.
    pub code: Code,
    /// The server's message (usually empty).
    pub message: String,
    /// The action result from room-biz, UTF-8 JSON (may be empty), e.g. `{"seq":12}`.
    pub body: Bytes,
}

/// Something that happened on the connection.
///
/// Per room, events keep the server's order: `Joined` comes before the messages that
/// follow it, and `Message`s come one per message, in seq order, never twice, whatever
/// the transport and across switches between them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The transport changed: the first event of every client, then one per switch.
    ///
    /// - To [`Transport::Polling`] (after `fallback_after_failures` consecutive failed
    ///   long-connection attempts, or when the router assigns short mode): it takes the
    ///   place of [`Event::Connected`]. Each joined room is then polled from its cursor,
    ///   and its first poll reply brings an [`Event::Joined`] (`recovered: true`, or
    ///   [`Event::StreamReset`] + `Joined{recovered: false}` when the cursor could not be
    ///   resumed), followed by the messages missed since the last socket delivery.
    /// - From polling to [`Transport::Quic`] or [`Transport::Ws`] (a periodic retry
    ///   succeeded): [`Event::Connected`] follows, then the re-join of every room resumes
    ///   from the polling cursor, exactly like a reconnect.
    /// - Between QUIC and WebSocket on a reconnect (one of them failed), before
    ///   [`Event::Connected`].
    TransportChanged {
        /// The transport now in use.
        transport: Transport,
    },
    /// The session's token expires at `expires_at_ms` (Unix ms): renew it with
    /// [`Client::set_token`](crate::Client::set_token) before then (the token provider,
    /// if configured, is already fetching one), or the server closes the session.
    TokenExpiring {
        /// When the current token expires, Unix ms.
        expires_at_ms: u64,
    },
    /// A long-connection session is up (the first one, and after every reconnect).
    Connected {
        /// The conn node serving this session.
        node_id: String,
        /// The server's session id.
        session_id: String,
    },
    /// A join completed: the app's own joins and the automatic re-joins after a reconnect
    /// or a gap. With `recovered = false` after a resume, [`Event::StreamReset`] came
    /// right before it.
    Joined(JoinedRoom),
    /// One durable room message. Seqs of one epoch only increase; seqs skipped between
    /// two messages were sampled out by the server (never lost).
    Message {
        /// Room id.
        room: String,
        /// The stream epoch the seq belongs to.
        epoch: u64,
        /// The message.
        message: RoomMessage,
    },
    /// A best-effort message without seq (typing, reaction totals).
    Ephemeral {
        /// Room id (may be empty for user-targeted pushes).
        room: String,
        /// Message kind.
        kind: String,
        /// Payload.
        body: Bytes,
        /// Publish time, Unix milliseconds.
        ts_ms: u64,
    },
    /// The server dropped frames for this connection and is healing from history by
    /// itself. Informational: no message is skipped.
    Lagged {
        /// Room id.
        room: String,
        /// The server resumes after this seq.
        resume_after_seq: u64,
    },
    /// The session ended. Unless the client was closed, reconnecting follows.
    Disconnected {
        /// Why (transport error, server close, go-away, heartbeat timeout, ...).
        reason: String,
    },
    /// The next connect attempt starts after `delay`.
    Reconnecting {
        /// Attempts since the last stable session, starting at 1.
        attempt: u32,
        /// Wait before this attempt.
        delay: Duration,
    },
    /// The router assigned short (polling) mode or offered no usable endpoint, and gave no
    /// polling URL to fall back to. The client keeps retrying with backoff.
    LongUnavailable {
        /// The router's mode.
        mode: String,
    },
    /// The server removed the client from a room (not sent for [`Client::leave`]).
    /// The room is no longer tracked or re-joined.
    ///
    /// [`Client::leave`]: crate::Client::leave
    Left {
        /// Room id.
        room: String,
        /// Why (for example a kick, the room ended, or a refused re-join).
        reason: String,
    },
    /// A re-join could not resume (history too short or the epoch changed). Local room
    /// state must be dropped: the snapshot in the [`Event::Joined`] that follows is the
    /// truth, and messages continue from its `start_seq`.
    StreamReset {
        /// Room id.
        room: String,
        /// The new epoch.
        epoch: u64,
    },
}

/// The receiving end of the event queue. Ends (`None`) once the client is closed.
///
/// Read it continuously: the queue is bounded, and a full queue stalls the connection.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event, or `None` after the client was closed and every event was read.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl futures::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
