//! gRPC plumbing: serve on a bound listener, connect lazily to peers, and
//! the internal token every internal call carries.

use std::sync::Arc;
use std::time::Duration;

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

/// Incoming connections of a bound listener, for `serve_with_incoming_shutdown`,
/// with TCP_NODELAY on every accepted socket.
///
/// Why: tonic sets the option only on listeners it binds itself, and an
/// internal call (a notify, a pull, a publish reply) is a small write that
/// Nagle's algorithm would hold back until the peer's delayed ACK, 40 ms and
/// more: that delay, not the work, was most of a small room's latency.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A channel to `addr` (`host:port`) that connects on first use, reconnects
/// by itself, and sends `auth`'s token with every call.
pub fn lazy_channel(
    addr: &str,
    auth: &InternalAuth,
) -> Result<InternalChannel, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy();
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
        let accepted = incoming.next().await.ok_or("no connection")??;
        assert!(
            accepted.nodelay()?,
            "TCP_NODELAY is off on an accepted socket"
        );
        Ok(())
    }
}
