//! The WebSocket transport: the HTTP upgrade, and a guard under the
//! WebSocket layer that keeps oversized client frames out of it.
//!
//! Why a guard: the WebSocket layer can only refuse a frame whose header
//! claims more than its limit by failing the read, with the frame's payload
//! still on the wire; reading on would buffer the whole payload (a header may
//! claim 1 TiB), and dropping the socket with unread bytes makes the kernel
//! send a reset that can destroy the answer. So the guard follows the client's
//! frame boundaries in the raw bytes, withholds every frame over the limit from
//! the WebSocket layer, skips its payload as it arrives (the connection stays
//! readable, so the client's own close gets through afterwards), and tells the
//! session, which answers `Error{TOO_LARGE}` + close 1009.
//!
//! On a plain socket the session writes data frames itself, pre-built
//! (`direct`); the WebSocket layer keeps reading, pongs and the close
//! handshake. Over TLS it writes everything, as before.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header, request::Parts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::codec::{self, SharedFrame, Wire};
use crate::direct::{DirectSocket, HIGH_WATER, SocketIo};
use crate::session::{Outgoing, ReadError};

/// Longest WebSocket frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;
/// Bytes read from the socket per step.
const CHUNK: usize = 4096;
/// Bytes of an oversized frame skipped per poll before yielding to others.
const SKIP_PER_POLL: usize = 1 << 20;

/// A WebSocket upgrade request (HTTP/1.1 `GET` with the WebSocket headers).
pub(crate) struct Upgrade {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
    offered: Vec<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let refuse = |why: &'static str| (StatusCode::BAD_REQUEST, why).into_response();
        if parts.version != Version::HTTP_11 || parts.method != Method::GET {
            return Err(refuse("a WebSocket upgrade is an HTTP/1.1 GET"));
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !header_has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err((
                StatusCode::UPGRADE_REQUIRED,
                "this endpoint speaks WebSocket only",
            )
                .into_response());
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(refuse("Sec-WebSocket-Version must be 13"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| refuse("Sec-WebSocket-Key is missing"))?;
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| refuse("the connection cannot be upgraded"))?;
        let offered = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .filter_map(|p| HeaderValue::from_bytes(p.trim_ascii()).ok())
            .collect();
        Ok(Self {
            key,
            on_upgrade,
            offered,
        })
    }
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The WebSocket layer's outgoing half.
pub(crate) type WsSink = futures::stream::SplitSink<WebSocketStream<Guarded>, Message>;
/// The upgraded socket under its guard.
pub(crate) type Guarded = FrameGuard<SocketIo>;

impl Upgrade {
    /// The subprotocol chosen: the first of ours the client offered, in
    /// this order (protobuf when it offered none; JSON v2 over v1).
    fn selected(&self) -> Option<&'static str> {
        [
            proto::PROTOBUF_SUBPROTOCOL,
            proto::JSON_V2_SUBPROTOCOL,
            proto::JSON_SUBPROTOCOL,
        ]
        .into_iter()
        .find(|p| self.offered.iter().any(|o| o.as_bytes() == p.as_bytes()))
    }

    /// The encoding the connection will speak.
    pub(crate) fn wire(&self) -> Wire {
        match self.selected() {
            Some(p) if p == proto::JSON_SUBPROTOCOL => Wire::Json,
            Some(p) if p == proto::JSON_V2_SUBPROTOCOL => Wire::JsonV2,
            _ => Wire::Protobuf,
        }
    }

    /// Answer `101 Switching Protocols` and run `serve` on the socket once
    /// upgraded. Client frames over `max_frame_bytes` never reach the
    /// WebSocket layer (see the module docs).
    pub(crate) fn respond<F, Fut>(
        self,
        max_frame_bytes: usize,
        read_buffer_bytes: usize,
        tracker: &tokio_util::task::TaskTracker,
        serve: F,
    ) -> Response
    where
        F: FnOnce(WsOut, WsStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let selected = self.selected();
        let wire = self.wire();
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        let session_tracker = tracker.clone();
        tracker.spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(error) => {
                    tracing::debug!(%error, "WebSocket upgrade failed.");
                    return;
                }
            };
            let oversize = Arc::new(AtomicU64::new(0));
            let io = SocketIo::new(upgraded, wire);
            let direct = io.direct();
            let guard = FrameGuard::new(io, max_frame_bytes, oversize.clone());
            let config = WebSocketConfig::default()
                // Small reads are the norm; the 128 KiB default read buffer
                // would dominate the memory of an idle connection.
                .read_buffer_size(read_buffer_bytes)
                // The guard already withholds larger frames; a message of
                // several fragments is held to the same limit here.
                .max_frame_size(Some(max_frame_bytes))
                .max_message_size(Some(max_frame_bytes));
            let socket = WebSocketStream::from_raw_socket(guard, Role::Server, Some(config)).await;
            let (sink, stream) = socket.split();
            // The session gets a task of its own: this one's state (the
            // upgrade, the handshake above) is freed rather than carried for
            // the life of the connection.
            session_tracker.spawn(serve(
                WsOut::new(sink, direct),
                WsStream {
                    inner: stream,
                    oversize,
                },
            ));
        });
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        if let Some(p) = selected {
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        response
    }
}

/// The WebSocket side of a session: its incoming half. Reports a frame the
/// guard withheld as [`ReadError::TooLarge`] (once, in its place in the stream).
pub(crate) struct WsStream {
    inner: futures::stream::SplitStream<WebSocketStream<Guarded>>,
    /// The first oversized frame's length, [`REPORTED`] set once the
    /// session was told (a flag in the same word: one field less in every
    /// session's future).
    oversize: Arc<AtomicU64>,
}

/// Set in `oversize` once the withheld frame was reported. Lengths are
/// stored below it (RFC 6455 §5.2: a length's top bit is 0).
const REPORTED: u64 = 1 << 63;

impl Stream for WsStream {
    type Item = Result<Message, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(m))) => Poll::Ready(Some(Ok(m))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(read_error(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                // Everything before the withheld frame was delivered: its turn.
                // The guard writes once, from 0; only this side sets the flag.
                let size = self.oversize.load(Ordering::Acquire);
                if size > 0 && size & REPORTED == 0 {
                    self.oversize.store(size | REPORTED, Ordering::Release);
                    return Poll::Ready(Some(Err(ReadError::TooLarge(size))));
                }
                Poll::Pending
            }
        }
    }
}

fn read_error(e: tungstenite::Error) -> ReadError {
    match e {
        tungstenite::Error::Utf8(_) => ReadError::NotUtf8,
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            size,
            ..
        }) => ReadError::TooLarge(size as u64),
        other => ReadError::Transport(other.to_string()),
    }
}

/// Passes the client's bytes to the WebSocket layer except frames longer than
/// the limit, whose payload it skips; the first such frame's length is stored
/// in `oversize`.
pub(crate) struct FrameGuard<T> {
    inner: T,
    scanner: Scanner,
    /// Approved bytes that did not fit the reader's buffer.
    carry: Vec<u8>,
    oversize: Arc<AtomicU64>,
}

impl<T> FrameGuard<T> {
    fn new(inner: T, limit: usize, oversize: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            scanner: Scanner::new(limit as u64),
            carry: Vec::new(),
            oversize,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Self {
            inner,
            scanner,
            carry,
            oversize,
        } = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if !carry.is_empty() {
            let n = carry.len().min(buf.remaining());
            buf.put_slice(&carry[..n]);
            carry.drain(..n);
            if carry.is_empty() {
                *carry = Vec::new();
            }
            return Poll::Ready(Ok(()));
        }
        let mut skipped = 0;
        loop {
            let mut chunk = [0u8; CHUNK];
            let cap = if scanner.skipping() {
                CHUNK
            } else {
                buf.remaining().min(CHUNK)
            };
            let mut read = ReadBuf::new(&mut chunk[..cap]);
            std::task::ready!(Pin::new(&mut *inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            let before = buf.filled().len();
            let fed = scanner.feed(read.filled(), |bytes| {
                let n = bytes.len().min(buf.remaining());
                buf.put_slice(&bytes[..n]);
                carry.extend_from_slice(&bytes[n..]);
            });
            if let Some(size) = fed.oversize {
                // Only the first is reported: the session closes on it.
                let size = size.clamp(1, REPORTED - 1);
                let _ = oversize.compare_exchange(0, size, Ordering::AcqRel, Ordering::Acquire);
            }
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            skipped += fed.skipped;
            if skipped >= SKIP_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where the client's byte stream is, frame-wise (RFC 6455 §5.2).
#[derive(Debug)]
struct Scanner {
    limit: u64,
    state: Position,
    /// The header being read (held back until its length is known).
    header: [u8; MAX_HEADER],
    have: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Position {
    Header,
    /// Inside a frame within the limit: bytes left.
    Payload(u64),
    /// Inside a frame over the limit: bytes left to skip.
    Skip(u64),
}

/// What one chunk held.
#[derive(Debug, Default, PartialEq)]
struct Fed {
    /// The length a frame over the limit claimed.
    oversize: Option<u64>,
    /// Bytes skipped.
    skipped: usize,
}

impl Scanner {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            state: Position::Header,
            header: [0; MAX_HEADER],
            have: 0,
        }
    }

    fn skipping(&self) -> bool {
        matches!(self.state, Position::Skip(_))
    }

    /// The header length the bytes so far imply (2 until the second byte).
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let second = self.header[1];
        let extended = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(be)
            }
            n => u64::from(n),
        }
    }

    /// Follow `input`; pass what may reach the WebSocket layer to `out`.
    fn feed(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Fed {
        let mut fed = Fed::default();
        let mut rest = input;
        while !rest.is_empty() {
            match self.state {
                Position::Payload(left) => {
                    let n = left.min(rest.len() as u64) as usize;
                    out(&rest[..n]);
                    rest = &rest[n..];
                    self.state = after(left - n as u64, Position::Payload);
                }
                Position::Skip(left) => {
                    let n = left.min(rest.len() as u64) as usize;
                    fed.skipped += n;
                    rest = &rest[n..];
                    self.state = after(left - n as u64, Position::Skip);
                }
                Position::Header => {
                    let need = self.header_len();
                    let n = (need - self.have).min(rest.len());
                    self.header[self.have..self.have + n].copy_from_slice(&rest[..n]);
                    self.have += n;
                    rest = &rest[n..];
                    // The second byte may reveal a longer header.
                    if self.have < self.header_len() {
                        continue;
                    }
                    let len = self.payload_len();
                    if len > self.limit {
                        fed.oversize.get_or_insert(len);
                        self.state = Position::Skip(len);
                    } else {
                        out(&self.header[..self.have]);
                        self.state = after(len, Position::Payload);
                    }
                    self.have = 0;
                }
            }
        }
        fed
    }
}

fn after(left: u64, inside: fn(u64) -> Position) -> Position {
    if left == 0 {
        Position::Header
    } else {
        inside(left)
    }
}

/// A WebSocket session's outgoing half. On a plain socket, data frames are
/// written by this crate (pre-built, merged per flush) and only control
/// frames go through the WebSocket layer; on TLS, everything does.
pub(crate) struct WsOut {
    control: WsSink,
    direct: Option<Arc<DirectSocket>>,
    /// A control message was handed to the WebSocket layer and not flushed:
    /// it leaves before any data frame fed after it.
    control_pending: bool,
}

impl WsOut {
    pub(crate) fn new(control: WsSink, direct: Option<Arc<DirectSocket>>) -> Self {
        Self {
            control,
            direct,
            control_pending: false,
        }
    }

    fn poll_control_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tungstenite::Error>> {
        if self.control_pending {
            std::task::ready!(self.control.poll_flush_unpin(cx))?;
            self.control_pending = false;
        }
        Poll::Ready(Ok(()))
    }

    fn push(&mut self, frame: Bytes) -> Result<(), tungstenite::Error> {
        match &self.direct {
            Some(socket) => socket.push(frame).map_err(tungstenite::Error::Io),
            None => Err(tungstenite::Error::AlreadyClosed),
        }
    }
}

impl Sink<Message> for WsOut {
    type Error = tungstenite::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let Some(socket) = &this.direct else {
            return this.control.poll_ready_unpin(cx);
        };
        std::task::ready!(socket.poll_below(cx, HIGH_WATER))?;
        std::task::ready!(this.poll_control_flush(cx))?;
        // Cheap: the WebSocket layer's slot is empty after a flush.
        this.control.poll_ready_unpin(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if this.direct.is_some()
            && let Some(frame) = codec::data_frame(&message)
        {
            return this.push(frame);
        }
        if this.direct.is_some() {
            this.control_pending = true;
        }
        this.control.start_send_unpin(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let Some(socket) = &this.direct else {
            return this.control.poll_flush_unpin(cx);
        };
        std::task::ready!(socket.poll_drain(cx))?;
        this.poll_control_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if let Some(socket) = &this.direct {
            std::task::ready!(socket.poll_drain(cx))?;
        }
        this.control.poll_close_unpin(cx)
    }
}

impl Outgoing for WsOut {
    type Failure = tungstenite::Error;

    fn start_send_shared(
        self: Pin<&mut Self>,
        frame: &SharedFrame,
        wire: Wire,
    ) -> Result<(), Self::Failure> {
        let this = self.get_mut();
        if this.direct.is_some() {
            let frame = frame.ws_frame(wire);
            return this.push(frame);
        }
        this.control.start_send_unpin(frame.message(wire))
    }

    fn backlogged(&self) -> bool {
        self.direct.as_ref().is_some_and(|s| s.backlog_bytes() > 0)
    }

    fn direct(&self) -> Option<&Arc<DirectSocket>> {
        self.direct.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header for a binary frame of `len` bytes.
    fn header(len: u64) -> Vec<u8> {
        let mut h = vec![0x82];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len <= u64::from(u16::MAX) {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn run(scanner: &mut Scanner, input: &[u8], step: usize) -> (Vec<u8>, Fed) {
        let mut out = Vec::new();
        let mut total = Fed::default();
        for chunk in input.chunks(step) {
            let fed = scanner.feed(chunk, |b| out.extend_from_slice(b));
            total.skipped += fed.skipped;
            if total.oversize.is_none() {
                total.oversize = fed.oversize;
            }
        }
        (out, total)
    }

    #[test]
    fn frames_within_the_limit_pass_unchanged_however_split() {
        let mut input = header(5);
        input.extend_from_slice(b"hello");
        input.extend(header(300));
        input.extend(vec![7u8; 300]);
        input.extend(header(0));
        for step in [1, 2, 3, 7, 64, 4096] {
            let mut scanner = Scanner::new(1000);
            let (out, fed) = run(&mut scanner, &input, step);
            assert_eq!(out, input, "step {step}");
            assert_eq!(fed, Fed::default());
            assert_eq!(scanner.state, Position::Header);
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_withheld_and_what_follows_passes() {
        let mut input = header(3);
        input.extend_from_slice(b"abc");
        input.extend(header(2000));
        input.extend(vec![9u8; 2000]);
        let mut close = vec![0x88, 0x82, 0, 0, 0, 0];
        close.extend_from_slice(&1000u16.to_be_bytes());
        input.extend_from_slice(&close);
        for step in [1, 5, 13, 4096] {
            let mut scanner = Scanner::new(1000);
            let (out, fed) = run(&mut scanner, &input, step);
            let mut expected = header(3);
            expected.extend_from_slice(b"abc");
            expected.extend_from_slice(&close);
            assert_eq!(out, expected, "step {step}");
            assert_eq!(fed.oversize, Some(2000));
            assert_eq!(fed.skipped, 2000);
        }
    }

    #[test]
    fn a_header_claiming_a_terabyte_is_skipped_without_buffering() {
        let mut scanner = Scanner::new(64 * 1024);
        let (out, fed) = run(&mut scanner, &header(1 << 40), 3);
        assert!(out.is_empty());
        assert_eq!(fed.oversize, Some(1 << 40));
        assert!(scanner.skipping());
        let fed = scanner.feed(&[0u8; 4096], |_| panic!("nothing passes"));
        assert_eq!(fed.skipped, 4096);
    }

    /// One client frame for the property test: its payload length and
    /// whether its header uses a mask.
    fn frame(len: u64, masked: bool) -> Vec<u8> {
        let mut h = header(len);
        if !masked {
            h[1] &= 0x7f;
            h.truncate(h.len() - 4);
        }
        h
    }

    proptest::proptest! {
        /// Whatever frames a client sends and however the bytes are split,
        /// the scanner passes exactly the frames within the limit (header and
        /// payload, in order), skips exactly the payloads of the others,
        /// reports the first oversized length, and ends on a frame boundary.
        #[test]
        fn passes_exactly_the_frames_within_the_limit(
            frames in proptest::collection::vec((0u64..3000, proptest::bool::ANY), 0..12),
            step in 1usize..700,
        ) {
            const LIMIT: u64 = 1000;
            let mut input = Vec::new();
            let mut expected = Vec::new();
            let mut skipped = 0usize;
            let mut first_oversize = None;
            for (n, (len, masked)) in frames.iter().enumerate() {
                let mut bytes = frame(*len, *masked);
                // Payload bytes that tell frames apart if they were mixed up.
                bytes.extend((0..*len).map(|k| (k as u8).wrapping_add(n as u8)));
                if *len > LIMIT {
                    skipped += *len as usize;
                    first_oversize.get_or_insert(*len);
                } else {
                    expected.extend_from_slice(&bytes);
                }
                input.extend(bytes);
            }
            let mut scanner = Scanner::new(LIMIT);
            let (out, fed) = run(&mut scanner, &input, step);
            proptest::prop_assert_eq!(out, expected);
            proptest::prop_assert_eq!(fed.skipped, skipped);
            proptest::prop_assert_eq!(fed.oversize, first_oversize);
            proptest::prop_assert_eq!(scanner.state, Position::Header);
            proptest::prop_assert_eq!(scanner.have, 0);
        }
    }
}
