//! Who is calling: the middleware of each listener.
//!
//! - Backend listener: an API key (`Authorization: Bearer rck_…` or
//!   `X-Api-Key: rck_…`) granting the route's [`Scope`], checked against the
//!   keyring every node watches; writes are rate-limited per key. Requests
//!   from browsers (an `Origin` header not on `backend_allowed_origins`) and
//!   bodies that are not JSON are refused, so no web page can drive the
//!   backend API with a user's network position (CSRF).
//! - Client listener: the client's token (`Authorization: Bearer <JWT>`),
//!   verified like a socket hello.
//!
//! Handlers shared by both listeners read [`Caller`] to apply the read rule
//! to clients.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::api_keys::{ApiKeyError, Scope};

use super::auth;
use super::error::ApiError;
use crate::shared::Shared;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// An app backend, by API key id.
    Backend { key_id: String },
    /// A client, by uid (from its token).
    Client { uid: String },
}

impl Caller {
    /// Who acts, for logs: `key:<id>` or `uid:<uid>`.
    pub(crate) fn actor(&self) -> String {
        match self {
            Caller::Backend { key_id } => format!("key:{key_id}"),
            Caller::Client { uid } => format!("uid:{uid}"),
        }
    }

    /// The uid whose view a read must respect (`None`: the app backend sees all).
    pub(crate) fn reader(&self) -> Option<&str> {
        match self {
            Caller::Backend { .. } => None,
            Caller::Client { uid } => Some(uid),
        }
    }
}

/// Backend middleware: the request needs an API key granting `scope`.
pub(crate) async fn api_key(
    State((shared, scope)): State<(Arc<Shared>, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Err(error) = browser_free(&shared, request.headers()) {
        return error.into_response();
    }
    if let Err(error) = json_only(request.method(), request.headers()) {
        return error.into_response();
    }
    let Some(presented) = presented_key(request.headers()) else {
        return refused(ApiKeyError::Missing).into_response();
    };
    let key_id = {
        let ring = shared.api_keys.borrow();
        match ring.authenticate(presented, scope) {
            Ok(record) => record.id.clone(),
            Err(error) => {
                tracing::info!(%error, path = %request.uri().path(), "Backend request refused.");
                return refused(error).into_response();
            }
        }
    };
    if request.method() != Method::GET && !shared.key_quota.admit(&key_id) {
        shared.metrics.backend_throttled.inc();
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "this API key is over its write rate on this node",
        )
        .retry_after(1)
        .into_response();
    }
    request.extensions_mut().insert(Caller::Backend { key_id });
    next.run(request).await
}

/// Client middleware: the request needs a client token.
pub(crate) async fn client_token(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth::uid(&shared, request.headers()).await {
        Ok(uid) => {
            request.extensions_mut().insert(Caller::Client { uid });
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// The key of `Authorization: Bearer rck_…` or `X-Api-Key: rck_…`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
}

/// Browsers always send `Origin` on cross-origin requests and on every
/// non-GET request; app backends don't. Refuse browsers unless allowed.
fn browser_free(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let allowed = origin.to_str().is_ok_and(|origin| {
        shared
            .cfg
            .backend_allowed_origins
            .iter()
            .any(|allowed| allowed == origin)
    });
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_refused",
            "the backend API does not serve browsers (Origin not allowed)",
        ))
    }
}

/// Bodies must be JSON: a form or `text/plain` post (what a web page can
/// send without a preflight) is refused before it is read.
fn json_only(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        // No body type at all: curl without -H; a browser always sends one.
        return Ok(());
    };
    let json = content_type.to_str().is_ok_and(|value| {
        let essence = value.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
    });
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies must be application/json",
        ))
    }
}

fn refused(error: ApiKeyError) -> ApiError {
    match error {
        ApiKeyError::MissingScope(scope) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key lacks the scope {scope}"),
        ),
        ApiKeyError::Missing => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing API key (Authorization: Bearer rck_… or X-Api-Key)",
        ),
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "invalid API key",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_are_read_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rck_a_b"),
        );
        assert_eq!(presented_key(&headers), Some("rck_a_b"));
        headers.insert("x-api-key", HeaderValue::from_static(" rck_c_d "));
        assert_eq!(presented_key(&headers), Some("rck_c_d"));
    }

    #[test]
    fn only_json_bodies_pass() {
        let mut headers = HeaderMap::new();
        assert!(json_only(&Method::POST, &headers).is_ok(), "no type: curl");
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(json_only(&Method::POST, &headers).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            let error = json_only(&Method::POST, &headers).expect_err(bad);
            assert_eq!(error.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        assert!(json_only(&Method::GET, &headers).is_ok(), "GET has no body");
    }
}
