//! The one Redis connection of every Redis engine (message log, room store):
//! a standalone server or a Redis Cluster behind one [`ConnectionLike`].
//!
//! Standalone mode uses one [`ConnectionManager`] (a multiplexed connection
//! that reconnects by itself after a Redis restart); Cluster mode one
//! [`ClusterConnection`] (a multiplexed connection per node that follows slot
//! moves). Clones share the connection and concurrent requests are pipelined
//! on it: no pool, no lock. Each engine passes its own [`RedisTimings`].
//!
//! TLS: `rediss://` URLs, verified against the system roots or the CA file
//! of [`RedisTls`], with an optional client certificate (mutual TLS).
//! Credentials go in the URL (`rediss://user:password@host:6380`; Redis ACL
//! users), redacted in logs and `--print-config`.

use std::fmt::Display;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    AsyncConnectionConfig, Client, Cmd, IntoConnectionInfo as _, Pipeline, RedisFuture, Value,
};

/// How an engine's connection waits, retries and reconnects.
#[derive(Clone, Copy, Debug)]
pub struct RedisTimings {
    /// How long one connection attempt may take (start-up fails after it).
    pub connect_timeout: Duration,
    /// How long one request may wait for its reply.
    pub response_timeout: Duration,
    /// Reconnect attempts of the standalone connection per failure.
    pub reconnect_retries: usize,
    /// Bounds of the wait between standalone reconnect attempts.
    pub reconnect_delay: (Duration, Duration),
    /// Retries of a Cluster request (MOVED, a node restarting).
    pub cluster_retries: u32,
    /// Bounds of the wait between Cluster retries; `None` keeps the client's
    /// defaults (1.28 s and up).
    pub cluster_retry_wait: Option<(Duration, Duration)>,
}

/// TLS files of the Redis connections (`rediss://` URLs).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisTls {
    /// PEM CA certificate(s) the server's certificate must chain to; unset:
    /// the system roots.
    pub ca_file: Option<String>,
    /// PEM client certificate, for servers that require one (with `key_file`).
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<String>,
}

impl RedisTls {
    /// Whether any file is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// The files as the redis client takes them.
    fn certificates(&self) -> Result<redis::TlsCertificates, RedisConnectError> {
        let read = |path: &String| {
            std::fs::read(path)
                .map_err(|e| RedisConnectError::Tls(format!("cannot read {path}: {e}")))
        };
        let client_tls = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(RedisConnectError::Tls(
                    "set both redis.tls.cert_file and redis.tls.key_file, or neither".into(),
                ));
            }
        };
        let root_cert = self.ca_file.as_ref().map(read).transpose()?;
        Ok(redis::TlsCertificates {
            client_tls,
            root_cert,
        })
    }
}

/// Why a Redis connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnectError {
    /// No URL was configured.
    #[error("no Redis URL given")]
    NoUrl,
    /// A URL does not parse.
    #[error("invalid Redis URL {target}: {reason}")]
    InvalidUrl {
        /// The URL(s), passwords redacted.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS files are unusable, or given for non-`rediss://` URLs.
    #[error("Redis TLS: {0}")]
    Tls(String),
    /// Redis did not answer.
    #[error("cannot reach Redis at {target}: {reason}")]
    Unreachable {
        /// The URL(s), passwords redacted.
        target: String,
        /// What failed.
        reason: String,
    },
}

/// A standalone or Cluster connection; both multiplex and reconnect.
#[derive(Clone)]
pub enum RedisConn {
    /// One server; reconnects by itself after a failure.
    Single(ConnectionManager),
    /// A Cluster; follows slot moves and reconnects to nodes by itself.
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// `"standalone"` or `"cluster"`, for logs and `Debug`.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Single(_) => "standalone",
            Self::Cluster(_) => "cluster",
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Connect to Redis (one URL) or a Redis Cluster (several seed URLs).
///
/// Fails fast with [`RedisConnectError::Unreachable`] when the first
/// connection cannot be made, so a misconfigured node does not start; after
/// that the connection reconnects by itself and each failed call errs.
pub async fn connect(
    urls: &[String],
    timings: &RedisTimings,
) -> Result<RedisConn, RedisConnectError> {
    connect_with(urls, &RedisTls::default(), timings).await
}

/// [`connect`] with the TLS files of `rediss://` URLs.
pub async fn connect_with(
    urls: &[String],
    tls: &RedisTls,
    timings: &RedisTimings,
) -> Result<RedisConn, RedisConnectError> {
    let certs = if tls.is_set() {
        if let Some(plain) = urls.iter().find(|u| !u.starts_with("rediss://")) {
            return Err(RedisConnectError::Tls(format!(
                "TLS files are set but {} is not a rediss:// URL",
                redact(plain)
            )));
        }
        Some(tls.certificates()?)
    } else {
        None
    };
    if urls.iter().any(|u| u.starts_with("rediss://")) {
        // The redis client builds its rustls config from the process default.
        crate::tls::install_default_provider();
    }
    match urls {
        [] => Err(RedisConnectError::NoUrl),
        [url] => connect_single(url, certs, timings).await,
        seeds => connect_cluster(seeds, certs, timings).await,
    }
}

/// TCP_NODELAY: a log append or a state change is one small write that must
/// not wait for the server's delayed ACK behind the previous one.
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

async fn connect_single(
    url: &str,
    certs: Option<redis::TlsCertificates>,
    t: &RedisTimings,
) -> Result<RedisConn, RedisConnectError> {
    let unreachable = |e: &dyn Display| RedisConnectError::Unreachable {
        target: redact(url),
        reason: e.to_string(),
    };
    let client = url
        .into_connection_info()
        .map(|info| info.set_tcp_settings(tcp_settings()))
        .and_then(|info| match certs {
            Some(certs) => Client::build_with_tls(info, certs),
            None => Client::open(info),
        })
        .map_err(|e| RedisConnectError::InvalidUrl {
            target: redact(url),
            reason: e.to_string(),
        })?;
    // One plain attempt first: the manager's constructor retries with backoff
    // for seconds, and a wrong address should stop start-up at once.
    let probe = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t.connect_timeout))
        .set_response_timeout(Some(t.response_timeout));
    let mut probe = client
        .get_multiplexed_async_connection_with_config(&probe)
        .await
        .map_err(|e| unreachable(&e))?;
    redis::cmd("PING")
        .query_async::<()>(&mut probe)
        .await
        .map_err(|e| unreachable(&e))?;
    drop(probe);
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(t.connect_timeout))
        .set_response_timeout(Some(t.response_timeout))
        .set_number_of_retries(t.reconnect_retries)
        .set_min_delay(t.reconnect_delay.0)
        .set_max_delay(t.reconnect_delay.1);
    let manager = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| unreachable(&e))?;
    Ok(RedisConn::Single(manager))
}

async fn connect_cluster(
    seeds: &[String],
    certs: Option<redis::TlsCertificates>,
    t: &RedisTimings,
) -> Result<RedisConn, RedisConnectError> {
    let target = seeds
        .iter()
        .map(|u| redact(u))
        .collect::<Vec<_>>()
        .join(", ");
    let mut builder = ClusterClient::builder(seeds.iter().map(String::as_str))
        .connection_timeout(t.connect_timeout)
        .response_timeout(t.response_timeout)
        .retries(t.cluster_retries)
        .tcp_settings(tcp_settings());
    if let Some(certs) = certs {
        builder = builder.certs(certs);
    }
    if let Some((min, max)) = t.cluster_retry_wait {
        builder = builder
            .min_retry_wait(min.as_millis().try_into().unwrap_or(u64::MAX))
            .max_retry_wait(max.as_millis().try_into().unwrap_or(u64::MAX));
    }
    let client = builder.build().map_err(|e| RedisConnectError::InvalidUrl {
        target: target.clone(),
        reason: e.to_string(),
    })?;
    // The client tries every seed (and retries); bound the whole start-up.
    let conn =
        match tokio::time::timeout(t.connect_timeout * 3, client.get_async_connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(RedisConnectError::Unreachable {
                    target,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(RedisConnectError::Unreachable {
                    target,
                    reason: "timed out".into(),
                });
            }
        };
    Ok(RedisConn::Cluster(conn))
}

/// `url` without its password, for logs and errors: `redis://user:***@host`,
/// or `redis://***@host` when there is no user name.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':').map_or(userinfo, |(user, _)| user) {
        "" => format!("{scheme}://***@{host}"),
        user => format!("{scheme}://{user}:***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> RedisTimings {
        RedisTimings {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            reconnect_retries: 2,
            reconnect_delay: (Duration::from_millis(50), Duration::from_millis(500)),
            cluster_retries: 3,
            cluster_retry_wait: Some((Duration::from_millis(50), Duration::from_millis(500))),
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("redis://:pw@h:1"), "redis://***@h:1");
        assert_eq!(
            redact("redis://user:secret@10.0.0.1:6379/0"),
            "redis://user:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[tokio::test]
    async fn bad_urls_and_closed_ports_fail_fast_with_the_target() {
        assert!(matches!(
            connect(&[], &timings()).await,
            Err(RedisConnectError::NoUrl)
        ));
        let Err(err) = connect(&["not a url".into()], &timings()).await else {
            panic!("connected to a bad URL");
        };
        assert!(matches!(err, RedisConnectError::InvalidUrl { .. }), "{err}");

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("redis://:pw@127.0.0.1:{port}");
        let started = std::time::Instant::now();
        let Err(err) = connect(std::slice::from_ref(&url), &timings()).await else {
            panic!("connected to nothing");
        };
        assert!(started.elapsed() < Duration::from_secs(3));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot reach Redis at redis://***@127.0.0.1:{port}: "
            )),
            "{text}"
        );
    }
}
