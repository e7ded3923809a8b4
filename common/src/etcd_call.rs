//! How the etcd engines (discovery, live configuration) call etcd: one
//! connection setup, every call bounded by a deadline, one error type.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// HTTP/2 pings on the etcd connection detect a peer that vanished without
/// closing the socket. etcd closes connections that ping more often than every
/// 5 s (`--grpc-keepalive-min-time`).
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one etcd call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer within the deadline.
    Timeout(Duration),
    /// etcd (or the channel to it) answered with an error.
    Etcd(etcd_client::Error),
    /// A value could not be encoded or decoded; the text says which and why.
    Data(String),
}

impl CallError {
    /// The lease named in the request no longer exists.
    pub(crate) fn lease_gone(&self) -> bool {
        match self {
            Self::Etcd(etcd_client::Error::LeaseKeepAliveError(m)) => m.contains("lease not found"),
            Self::Etcd(etcd_client::Error::GRpcStatus(s)) => {
                s.code() == tonic::Code::NotFound && s.message().contains("lease not found")
            }
            _ => false,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            Self::Etcd(e) => write!(f, "{e}"),
            Self::Data(e) => f.write_str(e),
        }
    }
}

/// Run an etcd call with a deadline: a channel with no reachable endpoint may
/// otherwise wait forever.
pub(crate) async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(CallError::Etcd(e)),
        Err(_) => Err(CallError::Timeout(limit)),
    }
}

/// A client for `endpoints` whose connection attempts take at most
/// `call_timeout` and whose connection is watched by HTTP/2 pings. Connecting
/// may be lazy: callers prove etcd answers with a first real call.
pub(crate) async fn connect(
    endpoints: &[String],
    call_timeout: Duration,
) -> Result<Client, CallError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(call_timeout)
        .with_keep_alive(HTTP2_PING_INTERVAL, HTTP2_PING_TIMEOUT);
    bounded(call_timeout, Client::connect(endpoints, Some(options))).await
}
