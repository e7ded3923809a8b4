//! TLS on the public edges: a certificate chain and its private key from PEM
//! files, served by rustls (ring) and **reloaded when the files change**, so
//! a renewed certificate (cert-manager, certbot) is served without a restart.
//!
//! A [`ServerTls`] holds the current certificate behind a
//! [`ResolvesServerCert`] that every handshake asks; a background task checks
//! the files' modification times and sizes every
//! [`TlsFiles::reload_interval_ms`] and swaps in the new pair once it loads
//! (a half-written pair that does not load keeps the old one, with a warning,
//! and is tried again when the files change again). The task ends with the
//! last `ServerTls` clone.
//!
//! The same `ServerTls` serves HTTPS/WSS (through [`crate::http`], ALPN
//! `http/1.1`) and QUIC (the conn node builds its own rustls config with
//! [`ServerTls::rustls_config`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

/// Default interval of the certificate files check.
pub const DEFAULT_RELOAD_INTERVAL_MS: u64 = 10_000;
/// ALPN of the HTTP listeners (HTTP/1.1 only, see [`crate::http`]).
pub const HTTP1_ALPN: &[u8] = b"http/1.1";

/// Certificate files of one listener (or of a node's public listeners).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first. With `key`: the listener speaks
    /// TLS (`https://`, `wss://`); neither: plain.
    pub cert: Option<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key: Option<String>,
    /// How often the files are checked for a new certificate, ms.
    pub reload_interval_ms: u64,
}

impl Default for TlsFiles {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            reload_interval_ms: DEFAULT_RELOAD_INTERVAL_MS,
        }
    }
}

impl TlsFiles {
    /// Both files are set: the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }

    /// Why these settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<&'static str> {
        match (&self.cert, &self.key) {
            (Some(_), None) | (None, Some(_)) => Some("set both tls.cert and tls.key, or neither"),
            _ if self.reload_interval_ms == 0 => Some("tls.reload_interval_ms must be at least 1"),
            _ => None,
        }
    }
}

/// Why a certificate could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the two files is configured, or the interval is zero.
    #[error("{0}")]
    Settings(&'static str),
    /// The certificate file cannot be read or parsed.
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file cannot be read or parsed.
    #[error("cannot read the TLS private key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls refuses it.
    #[error("the TLS key {key} does not fit the certificate {cert}: {reason}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What rustls said.
        reason: String,
    },
    /// A rustls configuration error.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The one crypto provider of Roomcast's TLS (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Make ring the process-wide provider, for libraries that build their
/// rustls configs from it (the redis client). A provider installed earlier
/// stays.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Load a certificate chain and the key that fits its leaf.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(cert)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason: e.to_string(),
    })
}

/// Every certificate of a PEM file (at least one).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::Certificate {
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(chain)
}

/// What identifies one version of the files: a changed time or size is a
/// new version.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    let (cert_time, cert_len) = one(cert)?;
    let (key_time, key_len) = one(key)?;
    Some((cert_time, cert_len, key_time, key_len))
}

/// The certificate every handshake gets: the last pair that loaded.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' version last looked at (loaded or not).
    seen: Mutex<Stamp>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ReloadingCert {
    fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a whole Arc: use it.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Load the files again if they changed since last looked at; true when
    /// a new certificate is now served.
    fn check(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.cert, &self.key);
        {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let loaded = load_certified_key(&self.cert, &self.key)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        Ok(true)
    }
}

/// The TLS side of a node's public listeners: cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    resolver: Arc<ReloadingCert>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.resolver.cert)
            .field("key", &self.resolver.key)
            .finish()
    }
}

impl ServerTls {
    /// Load `files` and, when they are set, start checking them for changes
    /// on the current Tokio runtime. `None`: TLS is off.
    pub fn start(files: &TlsFiles) -> Result<Option<Self>, TlsError> {
        if let Some(problem) = files.problem() {
            return Err(TlsError::Settings(problem));
        }
        let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
            return Ok(None);
        };
        let (cert, key) = (PathBuf::from(cert), PathBuf::from(key));
        let seen = stamp(&cert, &key);
        let loaded = load_certified_key(&cert, &key)?;
        let resolver = Arc::new(ReloadingCert {
            cert,
            key,
            current: RwLock::new(Arc::new(loaded)),
            seen: Mutex::new(seen),
        });
        let http = server_config(resolver.clone(), vec![HTTP1_ALPN.to_vec()], false)?;
        tokio::spawn(watch(
            Arc::downgrade(&resolver),
            Duration::from_millis(files.reload_interval_ms),
        ));
        Ok(Some(Self {
            resolver,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(http)),
        }))
    }

    /// The acceptor of HTTPS/WSS connections (ALPN `http/1.1`).
    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }

    /// A rustls server config serving the same (reloading) certificate with
    /// other ALPN protocols, TLS 1.3 only when `tls13_only` (QUIC).
    pub fn rustls_config(
        &self,
        alpn: Vec<Vec<u8>>,
        tls13_only: bool,
    ) -> Result<rustls::ServerConfig, TlsError> {
        server_config(self.resolver.clone(), alpn, tls13_only)
    }

    /// The leaf certificate served now (DER).
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.resolver.current().cert[0].clone()
    }
}

fn server_config(
    resolver: Arc<ReloadingCert>,
    alpn: Vec<Vec<u8>>,
    tls13_only: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider());
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = builder.with_no_client_auth().with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    Ok(config)
}

/// Check the files every `interval` while a [`ServerTls`] lives.
async fn watch(resolver: Weak<ReloadingCert>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(resolver) = resolver.upgrade() else {
            return;
        };
        match resolver.check() {
            Ok(true) => tracing::info!(
                cert = %resolver.cert.display(),
                "Serving a new TLS certificate."
            ),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                %error,
                "The TLS files changed but do not load; the previous certificate stays."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(ca: &test_servers::TestCa, name: &str) -> (TlsFiles, test_servers::IssuedCert) {
        let issued = ca.issue(name, &["localhost"]).expect("issue");
        let files = TlsFiles {
            cert: Some(issued.cert_path.display().to_string()),
            key: Some(issued.key_path.display().to_string()),
            reload_interval_ms: 20,
        };
        (files, issued)
    }

    #[test]
    fn one_file_without_the_other_is_a_settings_error() {
        let half = TlsFiles {
            cert: Some("cert.pem".into()),
            ..TlsFiles::default()
        };
        assert!(half.problem().is_some_and(|p| p.contains("both")));
        assert!(!half.enabled());
        assert_eq!(TlsFiles::default().problem(), None);
    }

    #[tokio::test]
    async fn unreadable_and_mismatched_files_are_clear_errors() {
        let ca = test_servers::TestCa::new().expect("ca");
        let (mut mixed, _) = files(&ca, "one");
        let (other, _) = files(&ca, "two");
        mixed.key = other.key.clone();
        let error = ServerTls::start(&mixed).expect_err("mismatched");
        assert!(matches!(error, TlsError::Mismatch { .. }), "{error}");

        mixed.cert = Some("/nonexistent/cert.pem".into());
        let error = ServerTls::start(&mixed).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/cert.pem"),
            "{error}"
        );

        // A key file given as the certificate: no certificate in it.
        let (good, _) = files(&ca, "three");
        let swapped = TlsFiles {
            cert: good.key.clone(),
            key: good.key.clone(),
            ..good
        };
        let error = ServerTls::start(&swapped).expect_err("no certificate");
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }

    #[tokio::test]
    async fn replaced_files_are_served_and_broken_ones_keep_the_old_certificate() {
        let ca = test_servers::TestCa::new().expect("ca");
        let (files, first) = files(&ca, "live");
        let tls = ServerTls::start(&files).expect("loads").expect("enabled");
        assert_eq!(tls.leaf().as_ref(), first.cert_der.as_slice());

        // A broken write: the old certificate stays.
        std::fs::write(&first.key_path, "not a key").expect("write");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let written = stamp(&first.cert_path, &first.key_path);
        while *tls.resolver.seen.lock().expect("lock") != written {
            assert!(tokio::time::Instant::now() < deadline, "change not seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tls.leaf().as_ref(), first.cert_der.as_slice());

        // The renewed pair written over the same paths is served.
        let renewed = ca.issue("live", &["localhost"]).expect("reissue");
        assert_ne!(renewed.cert_der, first.cert_der);
        while tls.leaf().as_ref() != renewed.cert_der.as_slice() {
            assert!(tokio::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
