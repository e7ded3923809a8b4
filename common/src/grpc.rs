//! gRPC plumbing: serve on a bound listener (TCP, or in process for the
//! services of one process), connect lazily to peers, and the internal token
//! every internal call carries.

mod in_process;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use in_process::{InProcessListener, is_in_process};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

/// The metadata key of the internal token.
pub const INTERNAL_TOKEN_HEADER: &str = "x-roomcast-internal-token";

/// The shared secret of a deployment's services: added to every internal
/// call ([`Interceptor`] on clients) and required by every internal server
/// ([`InternalAuth::check`]). An empty token disables both (in-process
/// tests); the service binaries refuse to start without one.
#[derive(Clone, Default)]
pub struct InternalAuth {
    token: Option<Arc<MetadataValue<Ascii>>>,
}

impl std::fmt::Debug for InternalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalAuth")
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

/// Why an internal token cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the internal token must be printable ASCII")]
pub struct BadInternalToken;

impl InternalAuth {
    /// Calls carry and servers require `token` (empty: no check at all).
    pub fn new(token: &str) -> Result<Self, BadInternalToken> {
        if token.is_empty() {
            return Ok(Self::default());
        }
        let value = MetadataValue::try_from(token).map_err(|_| BadInternalToken)?;
        Ok(Self {
            token: Some(Arc::new(value)),
        })
    }

    /// The server side: refuses a call without the token (`UNAUTHENTICATED`).
    pub fn check(
        &self,
    ) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>
    + Clone
    + Send
    + Sync
    + 'static {
        let expected = self.token.clone();
        move |request: tonic::Request<()>| {
            let Some(expected) = &expected else {
                return Ok(request);
            };
            let presented = request.metadata().get(INTERNAL_TOKEN_HEADER);
            let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
            if ok {
                Ok(request)
            } else {
                tracing::warn!(
                    remote = ?request.remote_addr(),
                    "Internal call refused: missing or wrong internal token."
                );
                Err(tonic::Status::unauthenticated(
                    "internal calls need this deployment's internal token",
                ))
            }
        }
    }
}

impl Interceptor for InternalAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert(INTERNAL_TOKEN_HEADER, MetadataValue::clone(token));
        }
        Ok(request)
    }
}

/// A channel to a peer service whose calls carry the internal token.
pub type InternalChannel = InterceptedService<Channel, InternalAuth>;

/// Where a gRPC server takes its connections from.
#[derive(Debug)]
pub enum GrpcListener {
    /// A bound TCP socket (every deployed service).
    Tcp(TcpListener),
    /// An in-process endpoint (services of one process, `roomcast standalone`).
    InProcess(InProcessListener),
}

impl From<TcpListener> for GrpcListener {
    fn from(listener: TcpListener) -> Self {
        Self::Tcp(listener)
    }
}

impl From<InProcessListener> for GrpcListener {
    fn from(listener: InProcessListener) -> Self {
        Self::InProcess(listener)
    }
}

impl GrpcListener {
    /// The address peers dial: `host:port` with `host` advertised in place
    /// of an unspecified bind address, or the in-process `inproc:<n>`.
    pub fn advertised(&self, host: &str) -> io::Result<String> {
        match self {
            Self::Tcp(listener) => Ok(crate::advertise::advertised(listener.local_addr()?, host)),
            Self::InProcess(listener) => Ok(listener.addr().to_owned()),
        }
    }

    /// The bound socket address (`None` in process).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(listener) => listener.local_addr().ok(),
            Self::InProcess(_) => None,
        }
    }
}

/// Incoming connections of a listener, for `serve_with_incoming_shutdown`,
/// with TCP_NODELAY on every accepted socket.
///
/// Why: tonic sets the option only on listeners it binds itself, and an
/// internal call (a notify, a pull, a publish reply) is a small write that
/// Nagle's algorithm would hold back until the peer's delayed ACK, 40 ms and
/// more: that delay, not the work, was most of a small room's latency.
pub fn incoming(listener: impl Into<GrpcListener>) -> Incoming {
    match listener.into() {
        GrpcListener::Tcp(listener) => {
            Incoming::Tcp(TcpIncoming::from(listener).with_nodelay(Some(true)))
        }
        GrpcListener::InProcess(listener) => Incoming::InProcess(listener),
    }
}

/// The stream [`incoming`] returns.
#[derive(Debug)]
pub enum Incoming {
    /// Accepted TCP sockets.
    Tcp(TcpIncoming),
    /// In-process pipes.
    InProcess(InProcessListener),
}

impl Stream for Incoming {
    type Item = io::Result<GrpcConn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Self::Tcp(incoming) => Pin::new(incoming)
                .poll_next(cx)
                .map(|next| next.map(|accepted| accepted.map(GrpcConn::Tcp))),
            Self::InProcess(listener) => listener
                .poll_accept(cx)
                .map(|next| next.map(|pipe| Ok(GrpcConn::InProcess(pipe)))),
        }
    }
}

/// One accepted connection of a gRPC server.
#[derive(Debug)]
pub enum GrpcConn {
    /// A TCP socket.
    Tcp(TcpStream),
    /// An in-process pipe.
    InProcess(DuplexStream),
}

impl Connected for GrpcConn {
    type ConnectInfo = TcpConnectInfo;

    /// The socket's addresses (handlers log the peer); none in process.
    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Self::Tcp(stream) => stream.connect_info(),
            Self::InProcess(_) => TcpConnectInfo {
                local_addr: None,
                remote_addr: None,
            },
        }
    }
}

impl AsyncRead for GrpcConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::InProcess(pipe) => in_process::pin_pipe(pipe).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for GrpcConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::InProcess(pipe) => in_process::pin_pipe(pipe).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::InProcess(pipe) => in_process::pin_pipe(pipe).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(stream) => stream.is_write_vectored(),
            Self::InProcess(pipe) => pipe.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::InProcess(pipe) => in_process::pin_pipe(pipe).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::InProcess(pipe) => in_process::pin_pipe(pipe).poll_shutdown(cx),
        }
    }
}

/// A channel to `addr` (`host:port`, or an in-process `inproc:<n>`) that
/// connects on first use, reconnects by itself, and sends `auth`'s token
/// with every call.
pub fn lazy_channel(
    addr: &str,
    auth: &InternalAuth,
) -> Result<InternalChannel, tonic::transport::Error> {
    let endpoint = if is_in_process(addr) {
        // Any authority will do: the connector ignores the URI.
        Endpoint::from_static("http://in-process.invalid")
    } else {
        Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true)
    }
    .connect_timeout(Duration::from_secs(2))
    .http2_keep_alive_interval(Duration::from_secs(10))
    .keep_alive_timeout(Duration::from_secs(5));
    let channel = if is_in_process(addr) {
        endpoint.connect_with_connector_lazy(in_process::InProcessConnector::new(addr))
    } else {
        endpoint.connect_lazy()
    };
    Ok(InterceptedService::new(channel, auth.clone()))
}

/// Whether a call failed because no connection to the peer could be made:
/// the request was never sent, so the peer did nothing and the call may be
/// sent elsewhere. (A failure on an established connection, a timeout or an
/// answer from the peer may come after the peer acted.)
pub fn never_sent(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_never_sent_and_a_server_answer_is_not() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let channel =
            lazy_channel(&format!("127.0.0.1:{port}"), &InternalAuth::default()).expect("channel");
        let mut client = proto::internal::v1::push_client::PushClient::new(channel);
        let status = client
            .pull(proto::internal::v1::PullRequest::default())
            .await
            .expect_err("nothing listens");
        assert!(never_sent(&status), "{status:?}");
        assert!(!never_sent(&tonic::Status::unavailable("from the peer")));
    }

    #[tokio::test]
    async fn accepted_internal_sockets_have_nodelay() -> Result<(), Box<dyn std::error::Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut incoming = incoming(listener);
        use tokio_stream::StreamExt as _;
        let _client = tokio::net::TcpStream::connect(addr).await?;
        let GrpcConn::Tcp(accepted) = incoming.next().await.ok_or("no connection")?? else {
            return Err("a TCP listener accepted something else".into());
        };
        assert!(
            accepted.nodelay()?,
            "TCP_NODELAY is off on an accepted socket"
        );
        Ok(())
    }

    /// A push service that answers pulls with the room it was asked for.
    struct EchoPull;

    #[tonic::async_trait]
    impl proto::internal::v1::push_server::Push for EchoPull {
        async fn push_room(
            &self,
            _request: tonic::Request<proto::internal::v1::PushRoomRequest>,
        ) -> Result<tonic::Response<proto::internal::v1::PushRoomReply>, tonic::Status> {
            Err(tonic::Status::unimplemented("not here"))
        }

        async fn push_users(
            &self,
            _request: tonic::Request<proto::internal::v1::PushUsersRequest>,
        ) -> Result<tonic::Response<proto::internal::v1::PushUsersReply>, tonic::Status> {
            Err(tonic::Status::unimplemented("not here"))
        }

        async fn pull(
            &self,
            request: tonic::Request<proto::internal::v1::PullRequest>,
        ) -> Result<tonic::Response<proto::internal::v1::PullReply>, tonic::Status> {
            let asked = request.into_inner();
            Ok(tonic::Response::new(proto::internal::v1::PullReply {
                epoch: asked.after_seq,
                head_seq: u64::from(asked.limit),
                ..Default::default()
            }))
        }

        type AttachStream =
            tokio_stream::Empty<Result<proto::internal::v1::PushToConn, tonic::Status>>;

        async fn attach(
            &self,
            _request: tonic::Request<tonic::Streaming<proto::internal::v1::ConnToPush>>,
        ) -> Result<tonic::Response<Self::AttachStream>, tonic::Status> {
            Err(tonic::Status::unimplemented("not here"))
        }

        type PublishStream =
            tokio_stream::Empty<Result<proto::internal::v1::PublishResult, tonic::Status>>;

        async fn publish(
            &self,
            _request: tonic::Request<tonic::Streaming<proto::internal::v1::PublishCall>>,
        ) -> Result<tonic::Response<Self::PublishStream>, tonic::Status> {
            Err(tonic::Status::unimplemented("not here"))
        }
    }

    #[tokio::test]
    async fn in_process_calls_reach_the_server_and_carry_the_token() {
        let auth = InternalAuth::new("in-process-secret-0123456789abcdef").expect("token");
        let listener = GrpcListener::from(InProcessListener::bind());
        let addr = listener.advertised("ignored").expect("addr");
        assert!(is_in_process(&addr), "{addr}");
        assert_eq!(listener.local_addr(), None);
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(auth.check()))
            .add_service(proto::internal::v1::push_server::PushServer::new(EchoPull))
            .serve_with_incoming_shutdown(incoming(listener), stop.clone().cancelled_owned());
        let served = tokio::spawn(server);

        let ask = proto::internal::v1::PullRequest {
            room: "r1".into(),
            after_seq: 41,
            limit: 7,
        };
        let mut client = proto::internal::v1::push_client::PushClient::new(
            lazy_channel(&addr, &auth).expect("channel"),
        );
        for _ in 0..3 {
            let reply = client.pull(ask.clone()).await.expect("pulled").into_inner();
            assert_eq!((reply.epoch, reply.head_seq), (41, 7));
        }
        // Without the token the server refuses, as over TCP.
        let mut anonymous = proto::internal::v1::push_client::PushClient::new(
            lazy_channel(&addr, &InternalAuth::default()).expect("channel"),
        );
        let refused = anonymous.pull(ask).await.expect_err("no token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
        stop.cancel();
        served.await.expect("joined").expect("served");
    }

    #[tokio::test]
    async fn a_gone_in_process_endpoint_is_never_sent() {
        let listener = InProcessListener::bind();
        let addr = listener.addr().to_owned();
        drop(listener);
        let mut client = proto::internal::v1::push_client::PushClient::new(
            lazy_channel(&addr, &InternalAuth::default()).expect("channel"),
        );
        let status = client
            .pull(proto::internal::v1::PullRequest::default())
            .await
            .expect_err("nothing serves it");
        assert!(never_sent(&status), "{status:?}");
        assert!(
            status.message().contains(&addr) || format!("{status:?}").contains(&addr),
            "{status:?}"
        );
    }
}
