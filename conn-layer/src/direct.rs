//! A plain (non-TLS) WebSocket socket that more than one writer may use,
//! one at a time: the session task, the WebSocket layer (pongs, the close
//! handshake) and the room fan-out, which writes a batch's pre-built frame
//! straight to the socket when nothing waits before it (no task wakeup).
//!
//! The rule that keeps every frame whole and in order: a write is made only
//! under the socket's lock, and only once the backlog (bytes committed
//! before it: the rest of a partial write, frames the session fed since its
//! last flush) is empty; whatever part of a frame the kernel refuses joins
//! the backlog, so a frame is either not written at all or committed whole.
//! The fan-out never waits: when anything is in the backlog, or the kernel
//! takes nothing, it queues the frame like before.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::codec::{OPCODE_CLOSE, Wire};

/// Slices per vectored write (Linux takes up to 1,024; 64 frames is plenty
/// for what piles up between two flushes).
const MAX_IOV: usize = 64;
/// Backlog above which the session waits for the socket before feeding more
/// (the role of the WebSocket layer's write buffer before).
pub(crate) const HIGH_WATER: usize = 128 * 1024;

/// A plain TCP socket carrying one WebSocket connection.
#[derive(Debug)]
pub(crate) struct DirectSocket {
    tcp: TcpStream,
    /// The encoding the connection negotiated: which pre-built frame it takes.
    pub(crate) wire: Wire,
    state: Mutex<Backlog>,
}

/// Bytes committed to the socket but not written yet, in order.
#[derive(Debug, Default)]
struct Backlog {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    /// A close frame was committed: no data frame may follow it.
    closed: bool,
    /// A write failed: the connection is gone.
    failed: bool,
}

/// What became of a frame offered to [`DirectSocket::try_write_now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direct {
    /// The kernel took all of it.
    Written,
    /// The kernel took part of it; the rest waits in the backlog, and the
    /// session must flush it.
    Partial,
    /// Nothing was written (something waits before it, the kernel took
    /// nothing, or the connection is closing): queue it.
    Refused,
}

impl Backlog {
    fn push(&mut self, chunk: Bytes) {
        self.bytes += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// `n` bytes from the front were written.
    fn consume(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        // Written out: give the queue's memory back. Deliveries bypass an
        // empty backlog, so an idle connection would otherwise keep what
        // its last burst needed.
        if self.bytes == 0 {
            self.chunks = VecDeque::new();
        }
    }
}

impl DirectSocket {
    pub(crate) fn new(tcp: TcpStream, wire: Wire) -> Arc<Self> {
        Arc::new(Self {
            tcp,
            wire,
            state: Mutex::new(Backlog::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Backlog> {
        // Every update leaves the backlog consistent: a panic cannot tear it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write `frame` now if nothing waits before it, without waiting: the
    /// fan-out's path.
    pub(crate) fn try_write_now(&self, frame: &Bytes) -> Direct {
        let Ok(mut backlog) = self.state.try_lock() else {
            // The session or the WebSocket layer is writing: queue.
            return Direct::Refused;
        };
        if backlog.bytes > 0 || backlog.closed || backlog.failed {
            return Direct::Refused;
        }
        match self.tcp.try_write(frame) {
            Ok(n) if n == frame.len() => Direct::Written,
            Ok(0) => Direct::Refused,
            Ok(n) => {
                backlog.push(frame.slice(n..));
                Direct::Partial
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Direct::Refused,
            Err(_) => {
                // The session finds out at its next write.
                backlog.failed = true;
                Direct::Refused
            }
        }
    }

    /// Commit a complete frame after everything before it (the session's
    /// path); it leaves at the next flush.
    pub(crate) fn push(&self, frame: Bytes) -> io::Result<()> {
        let mut backlog = self.lock();
        if backlog.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if backlog.closed {
            return Err(io::Error::other("the connection is closing"));
        }
        backlog.push(frame);
        Ok(())
    }

    /// Bytes waiting in the backlog.
    pub(crate) fn backlog_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Write as much of the backlog as the kernel takes, several frames per
    /// (vectored) write; true once it is empty.
    fn drain(&self, backlog: &mut Backlog) -> io::Result<bool> {
        if backlog.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        while backlog.bytes > 0 {
            let slices: Vec<IoSlice<'_>> = backlog
                .chunks
                .iter()
                .take(MAX_IOV)
                .map(|c| IoSlice::new(c))
                .collect();
            match self.tcp.try_write_vectored(&slices) {
                Ok(0) => {
                    backlog.failed = true;
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => backlog.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    backlog.failed = true;
                    return Err(e);
                }
            }
        }
        Ok(true)
    }

    /// Ready once the backlog is at most `limit` bytes (waits for the socket).
    pub(crate) fn poll_below(&self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<()>> {
        loop {
            {
                let mut backlog = self.lock();
                if backlog.bytes <= limit {
                    return Poll::Ready(Ok(()));
                }
                if self.drain(&mut backlog)? || backlog.bytes <= limit {
                    return Poll::Ready(Ok(()));
                }
            }
            // `try_write` saw WouldBlock, which cleared the readiness: this
            // waits for the next writable edge (or sees one that came since).
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
        }
    }

    /// Ready once the backlog is written.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_below(cx, 0)
    }

    /// The WebSocket layer's write (control frames): after the backlog, and
    /// committed whole once any of it is written.
    fn poll_write_control(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            {
                let mut backlog = self.lock();
                if self.drain(&mut backlog)? {
                    let written = match self.tcp.try_write(buf) {
                        Ok(n) => Some(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                        Err(e) => {
                            backlog.failed = true;
                            return Poll::Ready(Err(e));
                        }
                    };
                    if let Some(n) = written {
                        if n < buf.len() {
                            backlog.push(Bytes::copy_from_slice(&buf[n..]));
                        }
                        if holds_close(buf) {
                            backlog.closed = true;
                        }
                        return Poll::Ready(Ok(buf.len()));
                    }
                }
            }
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
        }
    }
}

/// Whether `buf`, whole server frames as the WebSocket layer writes them,
/// holds a close frame.
fn holds_close(buf: &[u8]) -> bool {
    let mut at = 0usize;
    while let (Some(&first), Some(&second)) = (buf.get(at), buf.get(at + 1)) {
        if first & 0x0f == OPCODE_CLOSE {
            return true;
        }
        let (extended, len) = match second & 0x7f {
            126 => (
                2,
                buf.get(at + 2..at + 4)
                    .map_or(0, |b| u64::from(u16::from_be_bytes([b[0], b[1]]))),
            ),
            127 => (
                8,
                buf.get(at + 2..at + 10).map_or(0, |b| {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    u64::from_be_bytes(be)
                }),
            ),
            n => (0, u64::from(n)),
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        at = at.saturating_add(2 + extended + mask).saturating_add(len);
    }
    false
}

/// The socket under the WebSocket layer: a plain socket it shares with the
/// fan-out, or the upgraded connection as is (TLS).
pub(crate) enum SocketIo {
    Direct {
        socket: Arc<DirectSocket>,
        /// Bytes the HTTP layer read past the upgrade request.
        prefix: Bytes,
    },
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
}

impl SocketIo {
    /// The upgraded connection, taken apart when it is a plain TCP socket.
    pub(crate) fn new(upgraded: hyper::upgrade::Upgraded, wire: Wire) -> Self {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Self::Direct {
                socket: DirectSocket::new(parts.io.into_inner(), wire),
                prefix: detached(parts.read_buf),
            },
            Err(upgraded) => Self::Upgraded(TokioIo::new(upgraded)),
        }
    }

    pub(crate) fn direct(&self) -> Option<Arc<DirectSocket>> {
        match self {
            Self::Direct { socket, .. } => Some(socket.clone()),
            Self::Upgraded(_) => None,
        }
    }
}

/// The bytes read past the upgrade request, in an allocation of their own.
/// hyper hands them over as a slice of its whole read buffer (8 KiB or
/// more), which an empty slice would keep allocated for the life of the
/// connection: 8 KiB per idle socket, more than everything else it holds.
fn detached(read_buf: Bytes) -> Bytes {
    if read_buf.is_empty() {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(&read_buf)
    }
}

impl AsyncRead for SocketIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
            Self::Direct { socket, prefix } => {
                if !prefix.is_empty() {
                    let n = prefix.len().min(buf.remaining());
                    buf.put_slice(&prefix[..n]);
                    prefix.advance(n);
                    if prefix.is_empty() {
                        *prefix = Bytes::new();
                    }
                    return Poll::Ready(Ok(()));
                }
                loop {
                    std::task::ready!(socket.tcp.poll_read_ready(cx))?;
                    match socket.tcp.try_read(buf.initialize_unfilled()) {
                        Ok(n) => {
                            buf.advance(n);
                            return Poll::Ready(Ok(()));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
        }
    }
}

impl AsyncWrite for SocketIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
            Self::Direct { socket, .. } => socket.poll_write_control(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_flush(cx),
            Self::Direct { socket, .. } => socket.poll_drain(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            // Closed when the session drops it; what is committed leaves first.
            Self::Direct { socket, .. } => socket.poll_drain(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn the_backlog_gives_back_exactly_what_was_not_written() {
        let mut backlog = Backlog::default();
        backlog.push(Bytes::from_static(b"abc"));
        backlog.push(Bytes::from_static(b"defg"));
        backlog.consume(4);
        assert_eq!(backlog.bytes, 3);
        assert_eq!(backlog.chunks, [Bytes::from_static(b"efg")]);
        backlog.consume(3);
        assert_eq!(backlog.bytes, 0);
        assert!(backlog.chunks.is_empty());
    }

    #[test]
    fn a_close_frame_is_found_among_control_frames() {
        let pong = codec::ws_frame(0xA, b"ping data");
        let close = codec::ws_frame(OPCODE_CLOSE, &1000u16.to_be_bytes());
        let long_pong = codec::ws_frame(0xA, &[0x88; 200]);
        assert!(!holds_close(&pong));
        assert!(holds_close(&close));
        assert!(holds_close(&[pong.as_ref(), close.as_ref()].concat()));
        // A payload byte that looks like a close opcode is not one.
        assert!(!holds_close(&long_pong));
        assert!(holds_close(&[long_pong.as_ref(), close.as_ref()].concat()));
    }

    #[test]
    fn bytes_past_the_upgrade_do_not_keep_the_http_read_buffer() {
        for past in [&b""[..], b"\x82\x85hello"] {
            let mut read = bytes::BytesMut::with_capacity(8192);
            read.extend_from_slice(b"GET /v1/ws HTTP/1.1\r\n\r\n");
            read.extend_from_slice(past);
            let mut whole = read.freeze();
            let head = whole.split_to(whole.len() - past.len());
            let kept = detached(whole);
            assert_eq!(kept, past);
            // Only `head` still points into the 8 KiB buffer.
            assert!(head.is_unique(), "{past:?} kept the read buffer");
        }
    }
}
