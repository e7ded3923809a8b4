//! Router settings: defaults, and a check run once at start.

use std::fmt;

use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Environment prefix for overrides (`ROOMCAST_ROUTER_HEARTBEAT_MS=…`).
pub const ENV_PREFIX: &str = "ROOMCAST_ROUTER";
/// Host put in discovery when the listener is bound to an unspecified address.
pub const DEFAULT_ADVERTISE_HOST: &str = "127.0.0.1";
/// Heartbeat interval clients are told to keep.
pub const DEFAULT_HEARTBEAT_MS: u32 = 25_000;
/// How long clients wait before asking again after a failure or in short mode.
pub const DEFAULT_RETRY_MS: u32 = 1_000;
/// How long in-flight requests may run after shutdown before they are dropped.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 5_000;

/// Router configuration. Every field has a default, so a partial file works.
/// `Debug` hides the admin token (as `--print-config` does).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Unique node id in discovery (default `router-` + random).
    pub node_id: String,
    /// Host advertised in discovery in place of `0.0.0.0` / `::`.
    pub advertise_host: String,
    /// See [`DEFAULT_HEARTBEAT_MS`].
    pub heartbeat_ms: u32,
    /// See [`DEFAULT_RETRY_MS`].
    pub retry_ms: u32,
    /// See [`DEFAULT_SHUTDOWN_GRACE_MS`].
    pub shutdown_grace_ms: u64,
    /// Bearer token of the admin API. Empty (the default) disables the admin
    /// API even when an admin listener is given.
    pub admin_token: String,
    /// HS256 secret of client tokens: with it (or an EdDSA key),
    /// `POST /v1/client-stats` takes reports only from clients with a valid
    /// token, each uid at most [`DEFAULT_CLIENT_STATS_PER_MIN`] a minute, so
    /// nobody can skew the failure metrics SREs alert on. Empty: anonymous
    /// reports (logged as a warning at start).
    pub token_secret: String,
    /// EdDSA public key (PEM) of client tokens.
    pub token_eddsa_public_pem: Option<String>,
    /// See [`DEFAULT_CLIENT_STATS_PER_MIN`].
    pub client_stats_per_min: u32,
    /// Request-head deadline and connection cap of the public listener.
    pub http: common::http::HttpLimits,
    /// Request-head deadline and connection cap of the admin listener.
    pub admin_http: common::http::HttpLimits,
    /// Origins whose pages may call the public routes (`GET /v1/route`,
    /// `POST /v1/client-stats`) from a browser: `scheme://host[:port]`, or
    /// `*` for any. Empty (the default): none.
    pub cors_origins: Vec<String>,
    /// Certificate files of the public listener: set, it speaks `https://`
    /// (reloaded when the files change).
    pub tls: common::tls::TlsFiles,
    /// Serve the admin listener with the same certificate too (`https://`).
    pub admin_tls: bool,
    /// The router's URL as clients know it (put in discovery), e.g.
    /// `https://route.example` behind a TLS-terminating load balancer.
    pub public_url: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        common::redact::fmt_config(self, "Config", f)
    }
}

/// Client stats reports per uid and minute (an SDK sends one after each
/// connect and every minute; reconnect storms stay well under this).
pub const DEFAULT_CLIENT_STATS_PER_MIN: u32 = 12;

impl Default for Config {
    fn default() -> Self {
        let suffix: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(8)
            .map(char::from)
            .collect();
        Self {
            node_id: format!("router-{suffix}"),
            advertise_host: DEFAULT_ADVERTISE_HOST.into(),
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            retry_ms: DEFAULT_RETRY_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            admin_token: String::new(),
            token_secret: String::new(),
            token_eddsa_public_pem: None,
            client_stats_per_min: DEFAULT_CLIENT_STATS_PER_MIN,
            http: common::http::HttpLimits::default(),
            cors_origins: Vec::new(),
            admin_http: common::http::HttpLimits::ops(),
            tls: common::tls::TlsFiles::default(),
            admin_tls: false,
            public_url: None,
        }
    }
}

impl Config {
    /// Reject values the router cannot run with (checked once by [`crate::run`]).
    pub fn validate(&self) -> Result<(), Error> {
        if self.node_id.trim().is_empty() {
            return Err(Error::Config("node_id must not be empty".into()));
        }
        if self.advertise_host.trim().is_empty() {
            return Err(Error::Config("advertise_host must not be empty".into()));
        }
        if self.heartbeat_ms == 0 || self.retry_ms == 0 {
            return Err(Error::Config(
                "heartbeat_ms and retry_ms must be greater than 0".into(),
            ));
        }
        common::cors::validate(&self.cors_origins)
            .map_err(|e| Error::Config(format!("cors_origins: {e}")))?;
        if let Some(problem) = self.tls.problem() {
            return Err(Error::Config(problem.into()));
        }
        if self.admin_tls && !self.tls.enabled() {
            return Err(Error::Config("admin_tls needs tls.cert and tls.key".into()));
        }
        if let Some(url) = &self.public_url {
            common::advertise::check_public_url("public_url", url, &["http", "https"])
                .map_err(Error::Config)?;
        }
        for (name, limits) in [("http", &self.http), ("admin_http", &self.admin_http)] {
            if let Some(problem) = limits.problem() {
                return Err(Error::Config(format!("{name}: {problem}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tls_needs_the_certificate_files() {
        let bare = Config {
            admin_tls: true,
            ..Config::default()
        };
        let error = bare.validate().expect_err("no certificate");
        assert!(
            error.to_string().contains("admin_tls needs tls.cert"),
            "{error}"
        );
        let served = Config {
            admin_tls: true,
            tls: common::tls::TlsFiles {
                cert: Some("/etc/roomcast/tls/tls.crt".into()),
                key: Some("/etc/roomcast/tls/tls.key".into()),
                ..common::tls::TlsFiles::default()
            },
            ..Config::default()
        };
        served.validate().expect("admin_tls with certificate files");
    }
}
