//! Whom the SDK trusts on `https://`, `wss://` and QUIC: the webpki (Mozilla) roots, or
//! the CA certificates of one PEM file ([`ConnectOptions::ca_file`]). Built once per
//! [`Client::connect`](crate::Client::connect) and shared by every connection it makes
//! (rustls with ring: no per-connection setup cost).
//!
//! [`ConnectOptions::ca_file`]: crate::ConnectOptions::ca_file

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::error::Error;

/// Trust anchors and the TLS client configuration built from them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TlsTrust {
    roots: Arc<RootCertStore>,
    /// TLS 1.2/1.3 client config for HTTPS and WSS (HTTP/1.1).
    config: Arc<rustls::ClientConfig>,
}

impl TlsTrust {
    /// Trust the webpki (Mozilla) roots: what public certificates chain to.
    pub fn webpki() -> Self {
        static WEBPKI: OnceLock<TlsTrust> = OnceLock::new();
        WEBPKI
            .get_or_init(|| {
                let mut store = RootCertStore::empty();
                store.add_parsable_certificates(
                    webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned(),
                );
                Self::from_roots(store).expect("ring supports TLS 1.2 and 1.3")
            })
            .clone()
    }

    /// Trust only the CA certificates in the PEM file at `path` (a private CA).
    pub fn from_ca_file(path: &Path) -> Result<Self, Error> {
        let bad = |why: String| Error::Tls(format!("CA file {}: {why}", path.display()));
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        let mut store = RootCertStore::empty();
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
        Self::from_roots(store)
    }

    /// The CA file when one is given, else the webpki roots.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, Error> {
        match ca_file {
            Some(path) => Self::from_ca_file(path),
            None => Ok(Self::webpki()),
        }
    }

    fn from_roots(store: RootCertStore) -> Result<Self, Error> {
        let roots = Arc::new(store);
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Ok(Self {
            roots,
            config: Arc::new(config),
        })
    }

    /// The trust anchors (QUIC verifies against them).
    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    /// The client config of HTTPS and WSS connections.
    pub(crate) fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }
}

/// The SDK's one crypto provider (ring).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let error = TlsTrust::new(Some(Path::new("/nonexistent/ca.pem"))).expect_err("missing");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        let dir = std::env::temp_dir().join(format!("roomcast-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").expect("write");
        let error = TlsTrust::new(Some(&empty)).expect_err("empty");
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
        assert!(!TlsTrust::webpki().roots().is_empty());
    }
}
