//! gRPC plumbing: serve on a bound listener, connect lazily to peers.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

/// Incoming connections of a bound listener, for `serve_with_incoming_shutdown`.
pub fn incoming(listener: TcpListener) -> tokio_stream::wrappers::TcpListenerStream {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
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
