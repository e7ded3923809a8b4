//! gRPC plumbing: serve on a bound listener, connect lazily to peers.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

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

/// A channel to `addr` (`host:port`) that connects on first use and reconnects
/// by itself.
pub fn lazy_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
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
        let channel = lazy_channel(&format!("127.0.0.1:{port}")).expect("channel");
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
