//! CORS for browser clients: an allow-list of origins that may call a
//! listener's routes from a page (`GET /v1/route` on the router; long
//! polling, actions and state on room-biz).
//!
//! Requests carry the client's token in `Authorization`, never cookies, so
//! credentials are not allowed; preflights may be cached for ten minutes. An
//! origin off the list gets no CORS headers, so the browser withholds the
//! answer from the page. An empty list (the default of distributed services)
//! allows no origin; `*` allows every origin.

use std::time::Duration;

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// A configured origin that cannot be one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "cors origin {0:?} is not an origin: expected scheme://host[:port] (http or https, no path), or \"*\""
)]
pub struct NotAnOrigin(pub String);

/// The origins as browsers send them in `Origin` (`http://host:port`,
/// lowercase, no trailing slash); `None` for `*` (every origin).
pub fn normalize(origins: &[String]) -> Result<Option<Vec<String>>, NotAnOrigin> {
    if origins.iter().any(|o| o.trim() == "*") {
        return Ok(None);
    }
    origins
        .iter()
        .map(|origin| normalize_one(origin).ok_or_else(|| NotAnOrigin(origin.clone())))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn normalize_one(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, host) = origin.split_once("://")?;
    let valid = matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !host.contains(['/', '?', '#', '@', ' '])
        && HeaderValue::from_str(&origin).is_ok();
    valid.then_some(origin)
}

/// Why a configured list cannot be used (services check it at start).
pub fn validate(origins: &[String]) -> Result<(), NotAnOrigin> {
    normalize(origins).map(|_| ())
}

/// The layer for `origins` (see the module docs). Entries that are not
/// origins allow nothing ([`validate`] reports them at start).
pub fn layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| normalize_one(o))
                .filter_map(|o| HeaderValue::from_str(&o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER])
        .max_age(PREFLIGHT_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower_service::Service as _;

    fn app(origins: &[&str]) -> Router {
        let origins: Vec<String> = origins.iter().map(|s| (*s).to_owned()).collect();
        Router::new()
            .route("/v1/route", get(|| async { "ok" }))
            .layer(layer(&origins))
    }

    async fn send(app: &mut Router, request: Request<Body>) -> axum::response::Response {
        match app.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/route")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .body(Body::empty())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn an_allowed_origin_gets_the_headers_and_others_do_not() {
        let mut app = app(&["http://127.0.0.1:8600", "https://App.Example.com/"]);
        let response = send(&mut app, preflight("http://127.0.0.1:8600")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(
            headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static("http://127.0.0.1:8600"))
        );
        let methods = headers
            .get(header::ACCESS_CONTROL_ALLOW_METHODS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            methods.contains("GET") && methods.contains("POST"),
            "{methods}"
        );
        let allowed = headers
            .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(allowed.contains("authorization"), "{allowed}");

        // Configured with upper case and a trailing slash: matches what browsers send.
        let response = send(&mut app, preflight("https://app.example.com")).await;
        assert!(
            response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );

        let response = send(&mut app, preflight("http://evil.example")).await;
        assert!(
            !response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );

        // A simple request from an allowed origin is answered and tagged.
        let get = Request::builder()
            .uri("/v1/route")
            .header(header::ORIGIN, "http://127.0.0.1:8600")
            .body(Body::empty())
            .unwrap_or_default();
        let response = send(&mut app, get).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }

    #[tokio::test]
    async fn no_origins_allow_nothing_and_a_star_allows_all() {
        let mut closed = app(&[]);
        let response = send(&mut closed, preflight("http://127.0.0.1:8600")).await;
        assert!(
            !response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        // Requests without an Origin (servers, curl) are unaffected.
        let plain = Request::builder()
            .uri("/v1/route")
            .body(Body::empty())
            .unwrap_or_default();
        assert_eq!(send(&mut closed, plain).await.status(), StatusCode::OK);

        let mut open = app(&["*"]);
        let response = send(&mut open, preflight("http://anywhere.example")).await;
        assert_eq!(
            response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static("*"))
        );
    }

    #[test]
    fn origins_that_are_not_origins_are_refused() {
        for bad in [
            "127.0.0.1:8600",
            "ftp://host",
            "http://",
            "http://host/path",
            "http://user@host",
            "",
        ] {
            assert_eq!(
                normalize(&[bad.to_owned()]),
                Err(NotAnOrigin(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            normalize(&["HTTP://Host:80/".to_owned()]),
            Ok(Some(vec!["http://host:80".to_owned()]))
        );
        assert_eq!(normalize(&["*".to_owned(), "bad".to_owned()]), Ok(None));
    }
}
