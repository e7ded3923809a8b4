//! The live-room demo page, served by standalone at `/demo/` on the router's
//! port: the page built from `sdk/typescript/demo` (embedded from its
//! committed `dist`, so no Node is needed to run it) and two
//! development-only helpers the page calls:
//!
//! - `POST /demo/api/token {"uid"}` → `{"uid","token"}`: a token minted with
//!   standalone's secret for any uid. This is what makes it a demo: a real app
//!   backend authenticates its users before issuing tokens.
//! - `POST /demo/api/rooms {"title","owner"}` → the room (the backend API's
//!   `POST /v1/rooms`, called with standalone's API key): the owner is the
//!   room's host. Over `https://` when standalone serves TLS (the SDK's HTTP
//!   client, with standalone's trust: `--ca-file` or the webpki roots).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use roomcast_client::http::{Auth, HttpClient, Method, Url};
use serde::Deserialize;

const INDEX_HTML: &[u8] = include_bytes!("../../sdk/typescript/demo/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../../sdk/typescript/demo/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../../sdk/typescript/demo/dist/app.css");

/// Lifetime of the page's tokens; the page asks for a new one on every connect.
const TOKEN_TTL_SECS: i64 = 3600;
/// Longest uid the page may ask a token for.
const UID_MAX_CHARS: usize = 64;
/// Bound on the backend API call of a room creation.
const BACKEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Demo {
    secret: String,
    backend_url: String,
    api_key: String,
    http: HttpClient,
}

/// The demo routes for a standalone whose backend API is at `backend_url`
/// (reached with `api_key` through `http`) and whose tokens are signed with
/// `secret`.
pub fn routes(secret: String, backend_url: String, api_key: String, http: HttpClient) -> Router {
    let demo = Arc::new(Demo {
        secret,
        backend_url: backend_url.trim_end_matches('/').to_owned(),
        api_key,
        http,
    });
    Router::new()
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route(
            "/demo/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/demo/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/demo/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/demo/api/token", post(token))
        .route("/demo/api/rooms", post(create_room))
        .with_state(demo)
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        Json(serde_json::json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    uid: String,
}

async fn token(
    State(demo): State<Arc<Demo>>,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(TokenRequest { uid })) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"uid\": \"…\"}",
        );
    };
    let valid = !uid.is_empty()
        && uid.chars().count() <= UID_MAX_CHARS
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("uid must be 1-{UID_MAX_CHARS} letters, digits, '_', '-' or '.'"),
        );
    }
    match common::auth::mint_hs256(&demo.secret, &uid, TOKEN_TTL_SECS) {
        Ok(token) => Json(serde_json::json!({ "uid": uid, "token": token })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn create_room(
    State(demo): State<Arc<Demo>>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected a JSON object",
        );
    };
    let room = serde_json::json!({ "title": body["title"], "owner": body["owner"] });
    let url = match Url::parse(&format!("{}/v1/rooms", demo.backend_url)) {
        Ok(url) => url,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let answer = demo
        .http
        .request(
            Method::POST,
            &url,
            Auth::ApiKey(&demo.api_key),
            Some(&room),
            BACKEND_TIMEOUT,
        )
        .await;
    match answer {
        Ok(answer) => (
            answer.status,
            [(header::CONTENT_TYPE, "application/json")],
            answer.body,
        )
            .into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, "unavailable", e.to_string()),
    }
}
