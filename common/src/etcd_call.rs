//! How the etcd engines (discovery, live configuration) call etcd: one
//! connection setup, every call bounded by a deadline, one error type.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use serde::{Deserialize, Serialize};

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

/// How the etcd engines prove who they are and whom they trust: TLS
/// (`https://` endpoints) and etcd's user/password authentication.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdSecurity {
    /// PEM CA certificate(s) etcd's certificate must chain to. Set (or a
    /// client certificate set): the endpoints are dialled over TLS, and an
    /// endpoint without a scheme gets `https://`.
    pub ca_file: Option<String>,
    /// PEM client certificate, for etcd run with `--client-cert-auth`.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<String>,
    /// etcd user (`etcdctl user add`); with `password`.
    pub username: Option<String>,
    /// Password of `username` (redacted in `--print-config`).
    pub password: Option<String>,
}

/// Passwords stay out of logs.
impl fmt::Debug for EtcdSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::redact::fmt_config(self, "EtcdSecurity", f)
    }
}

impl EtcdSecurity {
    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some()
    }

    /// The endpoints as dialled: `https://` for a bare `host:port` under TLS.
    fn endpoints(&self, endpoints: &[String]) -> Vec<String> {
        endpoints
            .iter()
            .map(|e| {
                if self.tls() && !e.contains("://") {
                    format!("https://{e}")
                } else {
                    e.clone()
                }
            })
            .collect()
    }

    fn options(&self) -> Result<ConnectOptions, CallError> {
        let mut options = ConnectOptions::new();
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                options = options.with_user(user.clone(), password.clone());
            }
            (None, None) => {}
            _ => {
                return Err(CallError::Data(
                    "set both etcd username and password, or neither".into(),
                ));
            }
        }
        if !self.tls() {
            return Ok(options);
        }
        let read = |path: &String| {
            std::fs::read(path).map_err(|e| CallError::Data(format!("cannot read {path}: {e}")))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(CallError::Data(
                    "set both etcd cert_file and key_file, or neither".into(),
                ));
            }
        }
        Ok(options.with_tls(tls))
    }
}

/// A client for `endpoints` whose connection attempts take at most
/// `call_timeout` and whose connection is watched by HTTP/2 pings. Connecting
/// may be lazy: callers prove etcd answers with a first real call.
pub(crate) async fn connect(
    endpoints: &[String],
    security: &EtcdSecurity,
    call_timeout: Duration,
) -> Result<Client, CallError> {
    let options = security
        .options()?
        .with_connect_timeout(call_timeout)
        .with_keep_alive(HTTP2_PING_INTERVAL, HTTP2_PING_TIMEOUT);
    let endpoints = security.endpoints(endpoints);
    bounded(call_timeout, Client::connect(endpoints, Some(options))).await
}
