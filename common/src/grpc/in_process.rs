//! gRPC between services of one process without sockets: `roomcast
//! standalone` runs conn, push and room-biz together, and their calls (the
//! attach stream, pulls, publishes, the action stream) went through loopback
//! TCP: a `send` and a `recv`, an epoll wakeup and the kernel's TCP path per
//! message, each hop paid twice. An in-process endpoint hands each connection
//! an in-memory pipe instead; everything above the bytes (HTTP/2, protobuf,
//! the internal token, the services themselves) is the distributed code path.
//!
//! A listener takes a name `inproc:<n>` in a process-wide table; a channel to
//! that address connects by creating a pipe and passing its server end to the
//! listener. A dropped listener leaves the table, and connects to it then fail
//! like a refused TCP connection (so the call counts as never sent).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

/// The scheme-like prefix of in-process addresses.
pub const IN_PROCESS_PREFIX: &str = "inproc:";

/// Bytes a pipe buffers in each direction before the writer waits: a few
/// HTTP/2 frames of a big pull reply.
const PIPE_BYTES: usize = 256 * 1024;

/// Connections waiting for a listener to accept them.
const ACCEPT_QUEUE: usize = 1024;

static ENDPOINTS: LazyLock<Mutex<HashMap<String, mpsc::Sender<DuplexStream>>>> =
    LazyLock::new(Default::default);

static NEXT_ENDPOINT: AtomicU64 = AtomicU64::new(1);

/// An in-process gRPC endpoint: connections arrive as pipes.
#[derive(Debug)]
pub struct InProcessListener {
    addr: String,
    accepted: mpsc::Receiver<DuplexStream>,
}

impl InProcessListener {
    /// A new endpoint under a fresh `inproc:<n>` address.
    pub fn bind() -> Self {
        let addr = format!(
            "{IN_PROCESS_PREFIX}{}",
            NEXT_ENDPOINT.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, accepted) = mpsc::channel(ACCEPT_QUEUE);
        ENDPOINTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr.clone(), tx);
        Self { addr, accepted }
    }

    /// The address peers connect to (`inproc:<n>`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The next connection, `None` never (the table keeps a sender while
    /// the listener lives).
    pub(crate) fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Option<DuplexStream>> {
        self.accepted.poll_recv(cx)
    }
}

impl Drop for InProcessListener {
    fn drop(&mut self) {
        ENDPOINTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.addr);
    }
}

/// Whether `addr` names an in-process endpoint.
pub fn is_in_process(addr: &str) -> bool {
    addr.starts_with(IN_PROCESS_PREFIX)
}

/// The connector of channels to an in-process endpoint.
#[derive(Clone, Debug)]
pub(crate) struct InProcessConnector {
    addr: String,
}

impl InProcessConnector {
    pub(crate) fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
        }
    }

    fn connect(&self) -> io::Result<DuplexStream> {
        let listener = ENDPOINTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.addr)
            .cloned();
        let refused = || {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nothing serves {} in this process", self.addr),
            )
        };
        let listener = listener.ok_or_else(refused)?;
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        listener.try_send(server).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} has {ACCEPT_QUEUE} connections waiting", self.addr),
            ),
            mpsc::error::TrySendError::Closed(_) => refused(),
        })?;
        Ok(client)
    }
}

impl tower_service::Service<Uri> for InProcessConnector {
    type Response = TokioIo<DuplexStream>;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<Self::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        std::future::ready(self.connect().map(TokioIo::new))
    }
}

/// Shorthand for the pinned inner stream of a connection.
pub(crate) fn pin_pipe(pipe: &mut DuplexStream) -> Pin<&mut DuplexStream> {
    Pin::new(pipe)
}
