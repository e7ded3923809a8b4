//! The SDK's HTTP/1.1 client (routing, long polling, actions, state reads, stats):
//! hyper over `http://` or `https://`, TLS from the client's [`TlsTrust`] (rustls with
//! ring). One per [`Client`](crate::Client), cloned cheaply, connections pooled.
//!
//! Public for tools that call Roomcast's HTTP APIs with the same trust as the SDK (the
//! `roomcast room` and `roomcast ctl` commands): [`HttpClient::request`] sends any
//! method with an optional JSON body and a bearer token or API key, and returns the
//! status and the whole body ([`HttpResponse`]) or why none arrived ([`HttpFailure`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use roomcast_client::http::{Auth, HttpClient, Method};
//! use roomcast_client::TlsTrust;
//!
//! let http = HttpClient::new(&TlsTrust::new(Some("ca.pem".as_ref()))?);
//! let url = url::Url::parse("https://rooms.internal:8605/v1/rooms")?;
//! let body = serde_json::json!({ "title": "Night talk" });
//! let answer = http
//!     .request(Method::POST, &url, Auth::ApiKey("rck_…"), Some(&body), Duration::from_secs(10))
//!     .await?;
//! println!("{} {}", answer.status, answer.text());
//! # Ok(()) }
//! ```
//!
//! Not reqwest: its rustls backend either brings the aws-lc provider or, without it,
//! makes every other `reqwest::Client` of the program need a process-wide provider.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
pub use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
pub use url::Url;

use crate::tls::TlsTrust;

/// Largest response body read (a long poll's page of history is far smaller): a broken
/// or hostile server cannot make the SDK buffer without bound.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Header of an API key (`X-Api-Key: rck_…`), the room-biz backend API's other form.
const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// A pooled HTTP/1.1 client speaking `http://` and `https://`.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// No credential.
    None,
    /// `Authorization: Bearer <token>` (client tokens, the admin token, API keys).
    Bearer(&'a str),
    /// `X-Api-Key: <key>` (room-biz backend API).
    ApiKey(&'a str),
}

/// A whole response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: StatusCode,
    /// The whole body (at most 64 MiB).
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as text (lossy), for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why no response arrived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpFailure {
    /// Nothing within the deadline.
    #[error("timed out")]
    Timeout,
    /// The request cannot be sent as given (a credential that is not a valid header
    /// value, a body that does not encode).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Connecting (TCP, TLS), sending or reading failed; the text has every cause
    /// (for TLS, the certificate problem: `invalid peer certificate: UnknownIssuer`).
    #[error("{0}")]
    Failed(String),
}

impl HttpClient {
    /// A client trusting `trust` on `https://`.
    pub fn new(trust: &TlsTrust) -> Self {
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
    pub async fn get(
        &self,
        url: &url::Url,
        bearer: Option<&str>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        self.send(Method::GET, url, bearer_auth(bearer), None, timeout)
            .await
    }

    /// `POST url` with `body` as JSON.
    pub async fn post_json(
        &self,
        url: &url::Url,
        bearer: Option<&str>,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        self.request(Method::POST, url, bearer_auth(bearer), Some(body), timeout)
            .await
    }

    /// `PUT url` with `body` as JSON.
    pub async fn put_json(
        &self,
        url: &url::Url,
        auth: Auth<'_>,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        self.request(Method::PUT, url, auth, Some(body), timeout)
            .await
    }

    /// `DELETE url`, no body.
    pub async fn delete(
        &self,
        url: &url::Url,
        auth: Auth<'_>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        self.send(Method::DELETE, url, auth, None, timeout).await
    }

    /// `method url` with `auth`, and `body` as JSON when given (`Content-Type:
    /// application/json`); the whole exchange, body included, within `timeout`. Any
    /// status is a response: the caller decides what a 4xx means.
    pub async fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: &url::Url,
        auth: Auth<'_>,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| HttpFailure::BadRequest(format!("cannot encode the body: {e}")))?;
        self.send(method, url, auth, body.map(Bytes::from), timeout)
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &url::Url,
        auth: Auth<'_>,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpFailure> {
        let mut request = Request::builder().method(method).uri(url.as_str());
        let header = |text: String, what: &str| {
            HeaderValue::from_str(&text)
                .map_err(|_| HttpFailure::BadRequest(format!("the {what} is not a valid header")))
        };
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request =
                    request.header(AUTHORIZATION, header(format!("Bearer {token}"), "token")?);
            }
            Auth::ApiKey(key) => {
                request = request.header(API_KEY_HEADER, header(key.to_owned(), "API key")?);
            }
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| HttpFailure::BadRequest(e.to_string()))?;
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

fn bearer_auth(bearer: Option<&str>) -> Auth<'_> {
    bearer.map_or(Auth::None, Auth::Bearer)
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
