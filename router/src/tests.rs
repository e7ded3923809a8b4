//! `run` end to end over real sockets, with nodes in a `MemoryDiscovery` and
//! the policy in a `MemoryLiveConfig` (or a real etcd).

use std::time::{Duration, Instant};

use common::discovery::MemoryDiscovery;
use common::live_config::MemoryLiveConfig;
use common::live_config::etcd::EtcdLiveConfig;
use serde_json::{Value, json};

use super::*;

const PATIENCE: Duration = Duration::from_secs(5);
const TOKEN: &str = "test-admin-token-0123456789";
const CERT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Harness {
    url: String,
    admin_url: String,
    ops_url: String,
    discovery: Arc<MemoryDiscovery>,
    live: Arc<dyn LiveConfig>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), Error>>,
}

async fn start() -> Harness {
    start_with(Arc::new(MemoryLiveConfig::default()), TOKEN).await
}

async fn start_with(live: Arc<dyn LiveConfig>, token: &str) -> Harness {
    let cfg = Config {
        node_id: "router-test".into(),
        admin_token: token.into(),
        ..Config::default()
    };
    start_configured(live, cfg).await
}

async fn start_configured(live: Arc<dyn LiveConfig>, cfg: Config) -> Harness {
    let discovery = Arc::new(MemoryDiscovery::new());
    let http = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let admin = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let ops = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", http.local_addr().expect("addr"));
    let admin_url = format!("http://{}", admin.local_addr().expect("addr"));
    let ops_url = format!("http://{}", ops.local_addr().expect("addr"));
    let deps = Deps {
        discovery: discovery.clone(),
        live_config: live.clone(),
        registry: prometheus::Registry::new(),
        pages: None,
    };
    let shutdown = CancellationToken::new();
    let listeners = Listeners {
        http,
        admin: Some(admin),
        ops: Some(ops),
    };
    let server = tokio::spawn(run(cfg, deps, listeners, shutdown.clone()));
    let h = Harness {
        url,
        admin_url,
        ops_url,
        discovery,
        live,
        shutdown,
        server,
    };
    // Serving once registered.
    let mut view = h.discovery.watch(ServiceKind::Router);
    tokio::time::timeout(PATIENCE, view.wait_for(|n| !n.is_empty()))
        .await
        .expect("registered in time")
        .expect("view");
    h
}

fn node(id: &str, endpoints: &[(&str, String)], connections: u64, draining: bool) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        endpoints: endpoints
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        connections,
        draining,
        ..NodeInfo::default()
    }
}

async fn conn(h: &Harness, id: &str, port: u16, connections: u64, draining: bool) {
    let ws = [("ws", format!("ws://127.0.0.1:{port}/v1/ws"))];
    let info = node(id, &ws, connections, draining);
    h.discovery
        .register(ServiceKind::Conn, info)
        .await
        .expect("register");
}

async fn biz(h: &Harness) {
    let http = [("http", "http://127.0.0.1:8602".to_owned())];
    h.discovery
        .register(ServiceKind::Biz, node("biz-1", &http, 0, false))
        .await
        .expect("register");
}

async fn parse(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

async fn get(url: String) -> (u16, Value) {
    parse(reqwest::get(url).await.expect("request")).await
}

/// An admin request with `token` (none: no Authorization header).
async fn admin(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", h.admin_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    parse(request.send().await.expect("admin request")).await
}

async fn metrics(h: &Harness) -> String {
    let res = reqwest::get(format!("{}/metrics", h.ops_url))
        .await
        .expect("metrics");
    res.text().await.expect("text")
}

#[tokio::test]
async fn routes_to_the_less_loaded_live_conn_node_quic_first() {
    let h = start().await;
    biz(&h).await;
    conn(&h, "conn-busy", 8611, 900, false).await;
    conn(&h, "conn-draining", 8612, 0, true).await;
    let quiet = [
        ("ws", "ws://127.0.0.1:8613/v1/ws".to_owned()),
        ("quic", "quic://127.0.0.1:8614".to_owned()),
        ("quic_cert_sha256", CERT.to_owned()),
    ];
    h.discovery
        .register(ServiceKind::Conn, node("conn-quiet", &quiet, 12, false))
        .await
        .expect("register");

    let query = "uid=bob&device_id=d1&app_version=1.2.0&platform=ios";
    // Two usable nodes: power of two choices always takes the less loaded.
    for _ in 0..20 {
        let (status, body) = get(format!("{}/v1/route?{query}", h.url)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({
                "mode": "long",
                "node_id": "conn-quiet",
                "endpoints": [
                    {"transport": "quic", "url": "quic://127.0.0.1:8614"},
                    {"transport": "ws", "url": "ws://127.0.0.1:8613/v1/ws"},
                ],
                "quic_cert_sha256": CERT,
                "polling_url": "http://127.0.0.1:8602/v1/rooms",
                "heartbeat_ms": 25000,
                "retry_ms": 1000,
            })
        );
    }

    // Load changes are seen at once: the discovery view is live.
    conn(&h, "conn-busy", 8611, 3, false).await;
    let (_, body) = get(format!("{}/v1/route?device_id=d1", h.url)).await;
    assert_eq!(body["node_id"], "conn-busy");

    let metrics = metrics(&h).await;
    assert!(
        metrics.contains(r#"roomcast_router_routes_total{mode="long"} 21"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"roomcast_router_rollout_decisions_total{reason="percent"} 21"#),
        "{metrics}"
    );
    stop(h).await;
}

#[tokio::test]
async fn a_burst_of_routes_is_spread_over_idle_conn_nodes() {
    let h = start().await;
    conn(&h, "conn-a", 8621, 0, false).await;
    conn(&h, "conn-b", 8622, 0, false).await;
    let mut counts = std::collections::HashMap::<String, usize>::new();
    // Faster than any load report: only the router's own hand-outs can tell
    // the nodes apart.
    for i in 0..100 {
        let (status, body) = get(format!("{}/v1/route?device_id=d{i}", h.url)).await;
        assert_eq!(status, 200, "{body}");
        let node = body["node_id"].as_str().expect("a node id").to_owned();
        *counts.entry(node).or_default() += 1;
    }
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.values().all(|c| *c >= 30), "{counts:?}");
    stop(h).await;
}

#[tokio::test]
async fn bad_parameters_are_a_400_naming_the_field() {
    let h = start().await;
    conn(&h, "conn-a", 8611, 0, false).await;
    for query in ["", "?uid=", "?app_version=1.0.0&platform=android"] {
        let (status, body) = get(format!("{}/v1/route{query}", h.url)).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(
            body,
            json!({"error": {
                "code": "bad_request",
                "message": "uid or device_id is required",
                "field": "uid",
            }})
        );
    }
    for (query, field) in [
        ("uid=bob&app_version=1.0", "app_version"),
        ("uid=bob&app_version=v2", "app_version"),
        ("uid=bob&platform=toaster", "platform"),
    ] {
        let (status, body) = get(format!("{}/v1/route?{query}", h.url)).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["field"], field, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{message}");
    }
    stop(h).await;
}

#[tokio::test]
async fn short_mode_without_conn_nodes_and_503_without_any_node() {
    let h = start().await;
    let (status, body) = get(format!("{}/v1/route?uid=bob", h.url)).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "unavailable");

    biz(&h).await;
    conn(&h, "conn-draining", 8612, 0, true).await;
    let (status, body) = get(format!("{}/v1/route?uid=bob", h.url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "mode": "short",
            "endpoints": [],
            "polling_url": "http://127.0.0.1:8602/v1/rooms",
            "heartbeat_ms": 25000,
            "retry_ms": 1000,
        })
    );
    stop(h).await;
}

#[tokio::test]
async fn registers_itself_and_serves_ops_routes() {
    let h = start().await;
    let nodes = h.discovery.watch(ServiceKind::Router).borrow().clone();
    let expected = BTreeMap::from([("http".to_owned(), h.url.clone())]);
    assert_eq!(
        (nodes[0].id.as_str(), &nodes[0].endpoints),
        ("router-test", &expected)
    );
    let ready = reqwest::get(format!("{}/readyz", h.ops_url))
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    let metrics = metrics(&h).await;
    for line in [
        "roomcast_router_rollout_percent 100",
        "roomcast_router_rollout_enabled 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    // Neither the admin API nor the ops routes are on the public listener.
    for path in ["/v1/admin/rollout", "/metrics", "/readyz", "/livez"] {
        let (status, _) = get(format!("{}{path}", h.url)).await;
        assert_eq!(status, 404, "{path} on the public listener");
    }
    let discovery = h.discovery.clone();
    stop(h).await;
    assert!(
        discovery.watch(ServiceKind::Router).borrow().is_empty(),
        "deregistered"
    );
}

#[tokio::test]
async fn the_admin_api_refuses_a_missing_or_wrong_token() {
    let h = start().await;
    use reqwest::Method;
    let routes = [
        (Method::GET, "/v1/admin/rollout"),
        (Method::PUT, "/v1/admin/rollout"),
        (Method::GET, "/v1/admin/nodes"),
        (Method::POST, "/v1/admin/nodes/conn-a/drain"),
        (Method::GET, "/v1/admin/api-keys"),
        (Method::POST, "/v1/admin/api-keys"),
        (Method::DELETE, "/v1/admin/api-keys/abc"),
        (Method::GET, "/v1/admin/nope"),
    ];
    let wrong = format!("{TOKEN}x");
    for (method, path) in routes {
        for token in [None, Some("nope"), Some(wrong.as_str()), Some("")] {
            let body = Some(r#"{"enabled":false,"percent":0}"#);
            let (status, answer) = admin(&h, method.clone(), path, token, body).await;
            assert_eq!(status, 401, "{method} {path} {token:?}");
            assert_eq!(answer["error"]["code"], "unauthorized");
        }
    }
    // Basic auth with the right secret is still refused.
    let res = reqwest::Client::new()
        .get(format!("{}/v1/admin/rollout", h.admin_url))
        .basic_auth("admin", Some(TOKEN))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 401);
    let (_, body) = get(format!("{}/v1/route?uid=bob", h.url)).await;
    assert_eq!(body["error"]["code"], "unavailable", "policy untouched");
    assert_eq!(h.live.get(keys::ROLLOUT).await.expect("get"), None);
    stop(h).await;
}

#[tokio::test]
async fn the_admin_api_refuses_bad_policies_and_applies_good_ones() {
    let h = start().await;
    biz(&h).await;
    conn(&h, "conn-a", 8611, 0, false).await;
    use reqwest::Method;

    let (status, body) = admin(&h, Method::GET, "/v1/admin/rollout", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "policy": {"enabled": true, "percent": 100,
                "allow": {"uids": [], "device_ids": [], "app_versions": []},
                "deny": {"uids": [], "device_ids": [], "app_versions": []}},
            "source": "default",
        })
    );

    let good = r#"{"enabled": true, "percent": 0, "allow": {"uids": ["tester"]},
        "deny": {"app_versions": [">=2.0.0, <2.1.0"]}}"#;
    let (status, body) = admin(
        &h,
        Method::PUT,
        "/v1/admin/rollout",
        Some(TOKEN),
        Some(good),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "live_config");
    assert_eq!(body["policy"]["percent"], 0);
    // Served at once, by this router (the PUT waits until it is in force).
    let route = |q: &'static str| get(format!("{}/v1/route?{q}", h.url));
    assert_eq!(route("uid=bob").await.1["mode"], "short");
    assert_eq!(route("uid=tester").await.1["mode"], "long");
    assert_eq!(
        route("uid=tester&app_version=2.0.5").await.1["mode"],
        "short"
    );
    assert_eq!(
        route("uid=tester&app_version=2.1.0").await.1["mode"],
        "long"
    );

    let bad = [
        ("{not json", "JSON"),
        (r#"{"enabled": true}"#, "percent"),
        (r#"{"enabled": true, "percent": 101}"#, "percent"),
        (r#"{"enabled": true, "percent": 5.55}"#, "percent"),
        (r#"{"enabled": true, "percentage": 5}"#, "percentage"),
        (
            r#"{"enabled": true, "percent": 5, "deny": {"app_versions": ["2.x.y.z"]}}"#,
            "deny.app_versions[0]",
        ),
        (
            r#"{"enabled": true, "percent": 5, "allow": {"uids": [""]}}"#,
            "allow.uids[0]",
        ),
    ];
    for (policy, names) in bad {
        let (status, body) = admin(
            &h,
            Method::PUT,
            "/v1/admin/rollout",
            Some(TOKEN),
            Some(policy),
        )
        .await;
        assert_eq!(status, 400, "{policy}");
        assert_eq!(body["error"]["code"], "invalid_policy");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{policy}: {message}");
    }
    // The old policy stays, in the store and in force.
    let (_, body) = admin(&h, Method::GET, "/v1/admin/rollout", Some(TOKEN), None).await;
    assert_eq!(body["policy"]["percent"], 0);
    assert_eq!(body["policy"]["allow"]["uids"], json!(["tester"]));
    assert_eq!(route("uid=bob").await.1["mode"], "short");
    let metrics = metrics(&h).await;
    assert!(
        metrics.contains("roomcast_router_rollout_percent 0"),
        "{metrics}"
    );
    stop(h).await;
}

#[tokio::test]
async fn an_invalid_stored_policy_keeps_the_last_valid_one() {
    let h = start().await;
    biz(&h).await;
    conn(&h, "conn-a", 8611, 0, false).await;
    let mode = || async { get(format!("{}/v1/route?uid=bob", h.url)).await.1["mode"].clone() };
    h.live
        .put(keys::ROLLOUT, r#"{"enabled":false,"percent":100}"#)
        .await
        .expect("put");
    wait_until(|| async { mode().await == "short" }).await;

    // Written around the admin API (etcdctl, a bad script).
    h.live
        .put(keys::ROLLOUT, r#"{"enabled":true,"percent":"all"}"#)
        .await
        .expect("put");
    wait_until(|| async {
        let (_, body) = admin(
            &h,
            reqwest::Method::GET,
            "/v1/admin/rollout",
            Some(TOKEN),
            None,
        )
        .await;
        body.get("rejected").is_some()
    })
    .await;
    assert_eq!(mode().await, "short", "the last valid policy stays");
    let metrics = metrics(&h).await;
    assert!(
        metrics.contains("roomcast_router_rollout_rejected_total 1"),
        "{metrics}"
    );

    // Removing the key restores the default (everyone long).
    h.live.delete(keys::ROLLOUT).await.expect("delete");
    wait_until(|| async { mode().await == "long" }).await;
    stop(h).await;
}

#[tokio::test]
async fn the_admin_api_lists_nodes_and_requests_drains() {
    let h = start().await;
    biz(&h).await;
    conn(&h, "conn-a", 8611, 7, false).await;
    use reqwest::Method;
    let (status, body) = admin(&h, Method::GET, "/v1/admin/nodes", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(String, String, u64)> = nodes
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap_or_default().to_owned(),
                n["id"].as_str().unwrap_or_default().to_owned(),
                n["connections"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("router".into(), "router-test".into(), 0),
            ("conn".into(), "conn-a".into(), 7),
            ("biz".into(), "biz-1".into(), 0),
        ]
    );
    let conn_a = &nodes[1];
    for field in ["zone", "rooms", "draining", "endpoints"] {
        assert!(conn_a.get(field).is_some(), "{field} in {conn_a}");
    }

    let (status, body) = admin(
        &h,
        Method::POST,
        "/v1/admin/nodes/conn-zz/drain",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // A biz node is not a conn node.
    let (status, _) = admin(
        &h,
        Method::POST,
        "/v1/admin/nodes/biz-1/drain",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        h.live.get(&keys::drain("conn-zz")).await.expect("get"),
        None
    );

    let mut drain_rx = h.live.watch(&keys::drain("conn-a"));
    let before = common::time::now_ms();
    let (status, body) = admin(
        &h,
        Method::POST,
        "/v1/admin/nodes/conn-a/drain",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["node_id"], "conn-a");
    tokio::time::timeout(PATIENCE, drain_rx.wait_for(Option::is_some))
        .await
        .expect("drain request seen")
        .expect("watch");
    let stored = h.live.get(&keys::drain("conn-a")).await.expect("get");
    let stored: Value = serde_json::from_str(&stored.unwrap_or_default()).expect("JSON");
    let at = stored["requested_at_ms"].as_u64().expect("requested_at_ms");
    assert!(at >= before && Some(at) == body["requested_at_ms"].as_u64());
    stop(h).await;
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token() {
    let h = start_with(Arc::new(MemoryLiveConfig::default()), "").await;
    let refused = reqwest::get(format!("{}/v1/admin/rollout", h.admin_url)).await;
    assert!(refused.is_err(), "the admin listener is closed");
    stop(h).await;
}

#[tokio::test]
async fn client_stats_become_metrics() {
    let h = start().await;
    let post = |body: Value| {
        reqwest::Client::new()
            .post(format!("{}/v1/client-stats", h.url))
            .json(&body)
            .send()
    };
    let reports = [
        json!({"uid": "bob", "platform": "android", "transport": "quic",
            "connect_ms": 120, "rtt_ms": 30, "failures": {"ws": 1}}),
        json!({"transport": "quic", "connect_ms": 80}),
        json!({"transport": "polling", "rtt_ms": 400, "failures": {"quic": 3, "ws": 3}}),
    ];
    for report in reports {
        let res = post(report).await.expect("post");
        assert_eq!(res.status().as_u16(), 204);
    }
    for (bad, field) in [
        (json!({"transport": "carrier-pigeon"}), "transport"),
        (json!({"connect_ms": 5}), "transport"),
        (
            json!({"transport": "ws", "failures": {"tcp": 1}}),
            "failures",
        ),
    ] {
        let (status, body) = parse(post(bad).await.expect("post")).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    for raw in ["{oops", r#"{"transport": "ws", "connect_ms": "fast"}"#] {
        let (status, body) = parse(
            reqwest::Client::new()
                .post(format!("{}/v1/client-stats", h.url))
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .expect("post"),
        )
        .await;
        assert_eq!(status, 400, "{raw}: {body}");
    }

    let metrics = metrics(&h).await;
    for line in [
        r#"roomcast_router_client_connect_seconds_count{transport="quic"} 2"#,
        r#"roomcast_router_client_connect_seconds_sum{transport="quic"} 0.2"#,
        r#"roomcast_router_client_rtt_seconds_count{transport="quic"} 1"#,
        r#"roomcast_router_client_rtt_seconds_bucket{transport="polling",le="0.5"} 1"#,
        r#"roomcast_router_client_connect_failures_total{transport="ws"} 4"#,
        r#"roomcast_router_client_connect_failures_total{transport="quic"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains("carrier-pigeon") && !metrics.contains("tcp"));
    stop(h).await;
}

#[tokio::test]
async fn with_a_token_key_client_stats_need_a_token_and_keep_a_rate() {
    let secret = "router-test-secret-0123456789abcdef";
    let cfg = Config {
        node_id: "router-test".into(),
        token_secret: secret.into(),
        client_stats_per_min: 2,
        ..Config::default()
    };
    let h = start_configured(Arc::new(MemoryLiveConfig::default()), cfg).await;
    let report = json!({"transport": "ws", "failures": {"ws": 1000}});
    let post = |token: Option<String>| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/client-stats", h.url))
            .json(&report);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let forged =
        common::auth::mint_hs256("another-secret-0123456789abcdefgh", "bob", 60).expect("mint");
    for token in [None, Some(forged), Some("junk".to_owned())] {
        let (status, body) = parse(post(token.clone()).await.expect("post")).await;
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    let failures = r#"roomcast_router_client_connect_failures_total{transport="ws"}"#;
    assert!(
        !metrics(&h).await.contains(failures),
        "refused reports count nothing"
    );
    let bob = common::auth::mint_hs256(secret, "bob", 60).expect("mint");
    for _ in 0..2 {
        assert_eq!(
            post(Some(bob.clone()))
                .await
                .expect("post")
                .status()
                .as_u16(),
            204
        );
    }
    let (status, body) = parse(post(Some(bob)).await.expect("post")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let alice = common::auth::mint_hs256(secret, "alice", 60).expect("mint");
    assert_eq!(
        post(Some(alice)).await.expect("post").status().as_u16(),
        204,
        "per uid"
    );
    assert!(metrics(&h).await.contains(&format!("{failures} 3000")));
    stop(h).await;
}

/// The issue's bar: a policy change written to etcd is served within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_in_etcd_is_served_within_a_second() {
    let etcd = test_servers::Etcd::start().expect("etcd (install etcd-server)");
    let prefix = "/router-test/";
    let connect = || EtcdLiveConfig::connect(vec![etcd.endpoint()], prefix);
    // Stored before the router starts: read at start.
    let writer = connect().await.expect("etcd writer");
    writer
        .put(keys::ROLLOUT, r#"{"enabled":true,"percent":0}"#)
        .await
        .expect("put");
    let live: Arc<dyn LiveConfig> = Arc::new(connect().await.expect("etcd reader"));
    let h = start_with(live, TOKEN).await;
    biz(&h).await;
    conn(&h, "conn-a", 8611, 0, false).await;
    let route = || async { get(format!("{}/v1/route?uid=bob", h.url)).await.1["mode"].clone() };
    assert_eq!(
        route().await,
        "short",
        "the stored policy is in force from the start"
    );

    for (policy, expected) in [
        (r#"{"enabled":true,"percent":100}"#, "long"),
        (r#"{"enabled":false,"percent":100}"#, "short"),
        (
            r#"{"enabled":false,"percent":0,"allow":{"uids":["bob"]}}"#,
            "long",
        ),
    ] {
        writer.put(keys::ROLLOUT, policy).await.expect("put");
        let written = Instant::now();
        loop {
            if route().await == expected {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(1),
                "{policy} not served within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!("{policy} served after {:?}", written.elapsed());
    }
    stop(h).await;
}

async fn wait_until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < PATIENCE, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stop(h: Harness) {
    h.shutdown.cancel();
    let result = tokio::time::timeout(PATIENCE, h.server)
        .await
        .expect("stops in time");
    result.expect("task").expect("clean stop");
}

#[tokio::test]
async fn api_keys_are_created_shown_once_listed_without_secrets_and_revoked() {
    use common::api_keys::{Keyring, Scope};
    use reqwest::Method;
    let h = start().await;
    let body = r#"{"name":"billing backend","scopes":["rooms:write","messages:write"]}"#;
    let (status, made) = admin(
        &h,
        Method::POST,
        "/v1/admin/api-keys",
        Some(TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().expect("the key is shown").to_owned();
    let id = made["id"].as_str().expect("id").to_owned();
    assert_eq!(made["scopes"], json!(["rooms:write", "messages:write"]));

    // What room-biz nodes see: the key works, with its scopes only.
    let stored = h.live.get(keys::API_KEYS).await.expect("get");
    let ring = Keyring::from_stored(stored.as_deref()).expect("keyring");
    assert!(ring.authenticate(&key, Scope::RoomsWrite).is_ok());
    assert!(ring.authenticate(&key, Scope::UsersWrite).is_err());
    assert!(
        !stored.unwrap_or_default().contains(&key),
        "only a hash is stored"
    );

    let (status, listed) = admin(&h, Method::GET, "/v1/admin/api-keys", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["keys"][0]["id"], json!(id));
    assert_eq!(listed["keys"][0]["name"], "billing backend");
    assert!(
        !listed.to_string().contains(&key),
        "a list never shows the key"
    );
    assert!(listed["keys"][0].get("sha256").is_none(), "nor its hash");

    for bad in [
        r#"{"name":"x","scopes":["rooms:delete"]}"#,
        r#"{"name":"","scopes":[]}"#,
        r#"{"nam":"x"}"#,
        "not json",
    ] {
        let (status, answer) = admin(
            &h,
            Method::POST,
            "/v1/admin/api-keys",
            Some(TOKEN),
            Some(bad),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }

    let path = format!("/v1/admin/api-keys/{id}");
    let (status, _) = admin(&h, Method::DELETE, &path, Some(TOKEN), None).await;
    assert_eq!(status, 200);
    let stored = h.live.get(keys::API_KEYS).await.expect("get");
    let ring = Keyring::from_stored(stored.as_deref()).expect("keyring");
    assert!(
        ring.authenticate(&key, Scope::RoomsWrite).is_err(),
        "revoked"
    );
    let (status, answer) = admin(&h, Method::DELETE, &path, Some(TOKEN), None).await;
    assert_eq!(status, 404, "{answer}");
    stop(h).await;
}
