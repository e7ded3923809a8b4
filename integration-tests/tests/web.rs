//! Browser-facing HTTP of standalone: CORS on the router and the room API
//! (standalone's own origin and `--cors-origin`s allowed, others not), and
//! the demo page with its development token helper.

use integration_tests::Cluster;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    AUTHORIZATION, ORIGIN,
};

const APP: &str = "https://app.example.com";

async fn preflight(
    http: &reqwest::Client,
    url: &str,
    origin: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .request(reqwest::Method::OPTIONS, url)
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .send()
        .await?)
}

fn allowed(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_and_room_api_answer_preflights_from_allowed_origins_only() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| cfg.cors_origins = vec![APP.into()]).await?;
    let http = &reqwest::Client::new();
    let own = cluster.sys.router_url.clone();
    let room = cluster.create_room("cors").await?;
    let urls = [
        format!("{}/v1/route", cluster.sys.router_url),
        format!("{}/v1/rooms/{room}/messages", cluster.sys.biz_url),
        format!("{}/v1/rooms/{room}/state", cluster.sys.biz_url),
        format!("{}/v1/rooms/{room}/actions", cluster.sys.biz_url),
    ];
    for url in &urls {
        for origin in [own.as_str(), APP] {
            let response = preflight(http, url, origin).await?;
            assert!(
                response.status().is_success(),
                "{url} {origin}: {}",
                response.status()
            );
            assert_eq!(allowed(&response).as_deref(), Some(origin), "{url}");
        }
        let response = preflight(http, url, "https://evil.example").await?;
        assert_eq!(
            allowed(&response),
            None,
            "{url} must not allow another origin"
        );
    }

    // The real request from an allowed origin is tagged too, and still works.
    let state = http
        .get(format!("{}/v1/rooms/{room}/state", cluster.sys.biz_url))
        .header(ORIGIN, APP)
        .header(AUTHORIZATION, format!("Bearer {}", cluster.token("ann")))
        .send()
        .await?;
    assert!(state.status().is_success());
    assert_eq!(allowed(&state).as_deref(), Some(APP));
    let body: serde_json::Value = state.json().await?;
    assert_eq!(body["room"], room.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_and_its_token_helper_are_served_on_the_router_port() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let http = &reqwest::Client::new();
    let base = format!("{}/demo", cluster.sys.router_url);
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let response = http.get(format!("{base}{path}")).send().await?;
        assert!(response.status().is_success(), "{path}");
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(!response.bytes().await?.is_empty());
    }

    let token: serde_json::Value = http
        .post(format!("{base}/api/token"))
        .json(&serde_json::json!({ "uid": "dana" }))
        .send()
        .await?
        .json()
        .await?;
    let token = token["token"].as_str().unwrap_or_default().to_owned();
    // The token works where tokens are checked: the room API's state route.
    let room = cluster.create_room("demo").await?;
    let state: serde_json::Value = http
        .get(format!("{}/v1/rooms/{room}/state", cluster.sys.biz_url))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(state["state"]["you"]["uid"], "dana");

    // Bad uids are refused with a clear error.
    for bad in [
        serde_json::json!({ "uid": "" }),
        serde_json::json!({ "uid": "a b" }),
        serde_json::json!({}),
    ] {
        let response = http
            .post(format!("{base}/api/token"))
            .json(&bad)
            .send()
            .await?;
        assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST, "{bad}");
    }

    // Rooms made through the page's helper have the asked owner as host.
    let created: serde_json::Value = http
        .post(format!("{base}/api/rooms"))
        .json(&serde_json::json!({ "title": "From the page", "owner": "dana" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(created["owner"], "dana");
    Ok(())
}
