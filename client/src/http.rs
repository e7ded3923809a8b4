//! The SDK's HTTP/1.1 client (routing, long polling, actions, state reads, stats):
//! hyper over `http://` or `https://`, TLS from the client's [`TlsTrust`] (rustls with
//! ring). One per [`Client`](crate::Client), cloned cheaply, connections pooled.
//!
//! Not reqwest: its rustls backend either brings the aws-lc provider or, without it,
//! makes every other `reqwest::Client` of the program need a process-wide provider.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::tls::TlsTrust;

/// Largest response body read (a long poll's page of history is far smaller): a broken
/// or hostile server cannot make the SDK buffer without bound.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A pooled HTTP/1.1 client speaking `http://` and `https://`.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    inner: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A whole response.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl HttpResponse {
    /// The body as text (lossy), for error messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why no response arrived.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpFailure {
    /// Nothing within the deadline.
    #[error("timed out")]
    Timeout,
    /// Connecting (TCP, TLS), sending or reading failed; the text has every cause.
    #[error("{0}")]
    Failed(String),
}

impl HttpClient {
    /// A client trusting `trust` on `https://`.
    pub(crate) fn new(trust: &TlsTrust) -> Self {
        let mut tcp = HttpConnector::new();
        // Requests are small and latency matters: no Nagle delay.
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(&trust.config()))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Self {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// `GET url`, with a bearer token when given; the whole exchange within `timeout`.
    pub(crate) async fn get(
        &self,
        url: &url::Url,
        bearer: Option<&str>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        self.send(Method::GET, url, bearer, None, timeout).await
    }

    /// `POST url` with `body` as JSON.
    pub(crate) async fn post_json(
        &self,
        url: &url::Url,
        bearer: Option<&str>,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        let body = serde_json::to_vec(body)
            .map_err(|e| HttpFailure::Failed(format!("cannot encode the request: {e}")))?;
        self.send(Method::POST, url, bearer, Some(body.into()), timeout)
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &url::Url,
        bearer: Option<&str>,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        let mut request = Request::builder().method(method).uri(url.as_str());
        if let Some(token) = bearer {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| HttpFailure::Failed("the token is not a valid header".into()))?;
            request = request.header(AUTHORIZATION, value);
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| HttpFailure::Failed(format!("bad request: {e}")))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| HttpFailure::Failed(chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| HttpFailure::Failed(format!("reading the reply: {e}")))?
                .to_bytes();
            Ok(HttpResponse { status, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(HttpFailure::Timeout))
    }
}

/// An error and its causes on one line (hyper's own message leaves out the cause, such
/// as the certificate a TLS handshake refused).
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper-util repeats its source's message in its own.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
