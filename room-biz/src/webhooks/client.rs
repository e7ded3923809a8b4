//! The HTTP/1.1 client of webhook deliveries: hyper over `http://` and
//! `https://`, rustls with ring (no aws-lc, no process-wide provider),
//! trusting the webpki (Mozilla) roots plus the CA certificates of
//! `webhooks.ca_file` (a receiver with a private CA). One per node, shared by
//! every URL's deliverer, connections pooled.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Why the client cannot be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The CA file cannot be read, holds no certificate, or one is unusable.
    #[error("webhooks.ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("webhook TLS setup: {0}")]
    Tls(String),
}

/// Why a POST did not count as delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// The receiver answered, but not 2xx.
    #[error("receiver answered {0}")]
    Status(StatusCode),
    /// No answer within the delivery timeout.
    #[error("receiver did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting (TCP, TLS), sending or reading failed; every cause, on one
    /// line (a refused certificate names the problem).
    #[error("cannot reach the receiver: {0}")]
    Transport(String),
    /// The URL or a header is not valid in a request.
    #[error("bad request: {0}")]
    Request(String),
}

/// The deliveries' HTTP client. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct WebhookClient {
    inner: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookClient {
    /// A client trusting the webpki roots and the certificates of `ca_file`;
    /// each POST, answer included, within `timeout`.
    pub(crate) fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<Self, ClientError> {
        let roots = trust(ca_file)?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Self {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// POST `body` (JSON) to `url` with `headers`; `Ok` on a 2xx answer.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        headers: &[(HeaderName, String)],
        body: String,
    ) -> Result<(), PostError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            let value =
                HeaderValue::from_str(value).map_err(|e| PostError::Request(e.to_string()))?;
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PostError::Request(e.to_string()))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| PostError::Transport(chain(&e)))?;
            let status = response.status();
            // Read (and drop) the answer so the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(PostError::Status(status))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(PostError::Timeout(self.timeout)))
    }
}

/// The webpki roots, plus every certificate of `ca_file`.
fn trust(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    let Some(path) = ca_file else {
        return Ok(roots);
    };
    let bad = |reason: String| ClientError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Check that `ca_file` gives a usable trust (at start, for a clear error).
pub(crate) fn check_ca_file(ca_file: &Path) -> Result<(), ClientError> {
    trust(Some(ca_file)).map(drop)
}

/// An error and its causes on one line (hyper's own message leaves out the
/// cause, such as the certificate a TLS handshake refused).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
