//! `run` end to end: discovery registration, both servers, metrics, shutdown.

use common::advertise::advertised;
use std::sync::Arc;
use std::time::Duration;

use common::discovery::{Discovery, MemoryDiscovery, ServiceKind};
use proto::client::v1::Code;
use proto::internal::v1::biz_client::BizClient;
use proto::internal::v1::{ActionRequest, JoinRequest};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::test_util::bind;

const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn run_registers_serves_and_deregisters_on_shutdown() {
    let discovery = Arc::new(MemoryDiscovery::new());
    let mut view = discovery.watch(ServiceKind::Biz);
    let registry = prometheus::Registry::new();
    let live = Arc::new(common::live_config::MemoryLiveConfig::default());
    let key = "rck_test0001_0123456789abcdefghijABCDEFGHIJ";
    let mut ring = Keyring::default();
    ring.insert(key, "test backend", &[], 1).expect("key");
    live.put(keys::API_KEYS, &ring.to_stored())
        .await
        .expect("stored");
    let deps = Deps {
        discovery: discovery.clone(),
        registry,
        store: Arc::new(MemoryRoomStore::new()),
        live_config: live,
        archiving: None,
        pusher: None,
        local: None,
    };
    let listeners = Listeners {
        http: bind().await,
        backend: bind().await,
        grpc: bind().await.into(),
        ops: Some(bind().await),
    };
    let grpc_addr = listeners.grpc.local_addr().expect("addr");
    let http_addr = listeners.http.local_addr().expect("addr");
    let backend = format!("http://{}", listeners.backend.local_addr().expect("addr"));
    let ops = format!(
        "http://{}",
        listeners
            .ops
            .as_ref()
            .expect("ops")
            .local_addr()
            .expect("addr")
    );
    let cfg = Config {
        node_id: "biz-test".into(),
        ..Config::default()
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(run(cfg, deps, listeners, shutdown.clone()));

    // Registered with both addresses.
    let node = tokio::time::timeout(PATIENCE, view.wait_for(|nodes| !nodes.is_empty()))
        .await
        .expect("registered in time")
        .expect("view")[0]
        .clone();
    assert_eq!(node.id, "biz-test");
    assert_eq!(node.grpc_addr, Some(grpc_addr.to_string()));
    let base = format!("http://{http_addr}");
    assert_eq!(node.endpoints.get("http"), Some(&base));

    // HTTP: the backend creates a room with its key; ops routes are on
    // their own listener, not on the client one.
    let http = reqwest::Client::new();
    let anonymous = http
        .post(format!("{backend}/v1/rooms"))
        .json(&serde_json::json!({"title": "Launch", "owner": "alice"}))
        .send()
        .await
        .expect("anonymous create");
    assert_eq!(anonymous.status().as_u16(), 401);
    let created: serde_json::Value = http
        .post(format!("{backend}/v1/rooms"))
        .bearer_auth(key)
        .json(&serde_json::json!({"title": "Launch", "owner": "alice"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let room = created["room_id"].as_str().expect("room_id").to_owned();
    let ready = http
        .get(format!("{ops}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    for path in ["/metrics", "/readyz"] {
        let public = http.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(
            public.status().as_u16(),
            404,
            "{path} on the client listener"
        );
    }

    // gRPC at the advertised address.
    let channel = common::grpc::lazy_channel(
        &grpc_addr.to_string(),
        &common::grpc::InternalAuth::default(),
    )
    .expect("channel");
    let mut biz = BizClient::new(channel);
    let unknown = JoinRequest {
        uid: "bob".into(),
        room: "rNope".into(),
        ..JoinRequest::default()
    };
    let decision = biz
        .authorize_join(unknown)
        .await
        .expect("a refusal is an answer")
        .into_inner();
    assert_eq!(decision.code, Code::RoomNotFound as i32);
    let known = JoinRequest {
        uid: "bob".into(),
        room: room.clone(),
        ..JoinRequest::default()
    };
    biz.authorize_join(known).await.expect("joins");

    // No push node is live, so a valid comment is UNAVAILABLE (and still replied to).
    let comment = ActionRequest {
        id: 9,
        uid: "bob".into(),
        room: room.clone(),
        action: "comment".into(),
        payload: bytes::Bytes::from_static(br#"{"text":"hi"}"#),
        session_id: "s1".into(),
        ..ActionRequest::default()
    };
    let mut replies = biz
        .actions(futures::stream::iter([comment]))
        .await
        .expect("stream")
        .into_inner();
    let reply = replies.message().await.expect("ok").expect("reply");
    assert_eq!((reply.id, reply.code), (9, Code::Unavailable as i32));

    let metrics = http
        .get(format!("{ops}/metrics"))
        .send()
        .await
        .expect("metrics");
    let metrics = metrics.text().await.expect("text");
    assert!(
        metrics.contains("roomcast_biz_rooms_created_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"roomcast_biz_joins_total{result="not_found"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"roomcast_biz_actions_total{action="comment",code="UNAVAILABLE"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_biz_action_latency_seconds_bucket"),
        "{metrics}"
    );

    shutdown.cancel();
    let result = tokio::time::timeout(PATIENCE, server)
        .await
        .expect("stops in time");
    result.expect("task").expect("clean stop");
    assert!(
        discovery.watch(ServiceKind::Biz).borrow().is_empty(),
        "deregistered"
    );
}

#[tokio::test]
async fn run_rejects_invalid_config() {
    let deps = Deps {
        discovery: Arc::new(MemoryDiscovery::new()),
        registry: prometheus::Registry::new(),
        store: Arc::new(MemoryRoomStore::new()),
        live_config: Arc::new(common::live_config::MemoryLiveConfig::default()),
        archiving: None,
        pusher: None,
        local: None,
    };
    let listeners = Listeners {
        http: bind().await,
        backend: bind().await,
        grpc: bind().await.into(),
        ops: None,
    };
    let cfg = Config {
        comment_rate_per_sec: 0,
        ..Config::default()
    };
    let err = run(cfg, deps, listeners, CancellationToken::new())
        .await
        .expect_err("invalid");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn unspecified_addresses_are_advertised_with_the_configured_host() {
    let any: SocketAddr = "0.0.0.0:8602".parse().expect("addr");
    assert_eq!(advertised(any, "10.0.0.5"), "10.0.0.5:8602");
    let any6: SocketAddr = "[::]:8602".parse().expect("addr");
    assert_eq!(advertised(any6, "fd00::5"), "[fd00::5]:8602");
    let local: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
    assert_eq!(advertised(local, "10.0.0.5"), "127.0.0.1:9000");
}

/// A receiver of webhooks: the event types it got, in order.
async fn webhook_receiver() -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = bind().await;
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(got): axum::extract::State<
                    Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
                >,
                 axum::Json(event): axum::Json<serde_json::Value>| async move {
                    got.lock().unwrap_or_else(|p| p.into_inner()).push(event);
                },
            ),
        )
        .with_state(got.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test]
async fn a_scheduled_room_starts_across_a_biz_restart_and_the_app_hears_of_it() {
    let redis = test_servers::RedisServer::start().expect("start redis-server");
    let discovery = Arc::new(MemoryDiscovery::new());
    let live = Arc::new(common::live_config::MemoryLiveConfig::default());
    let key = "rck_test0002_0123456789abcdefghijABCDEFGHIJ";
    let mut ring = Keyring::default();
    ring.insert(key, "test backend", &[], 1).expect("key");
    live.put(keys::API_KEYS, &ring.to_stored())
        .await
        .expect("stored");
    let (hook_url, hooks) = webhook_receiver().await;
    let cfg = |node: &str| Config {
        node_id: node.into(),
        schedules: crate::config::ScheduleConfig {
            poll_ms: 20,
            ..Default::default()
        },
        webhooks: crate::config::WebhookConfig {
            enabled: true,
            urls: vec![hook_url.clone()],
            secrets: vec!["whsec-0123456789abcdef".into()],
            poll_ms: 20,
            timeout_ms: 250,
            stale_ms: 300,
            ..Default::default()
        },
        ..Config::default()
    };
    let start = |node: &'static str| {
        let (discovery, live, url) = (discovery.clone(), live.clone(), redis.url());
        let cfg = cfg(node);
        async move {
            let store = RedisRoomStore::connect(&[url], "run:")
                .await
                .expect("redis");
            let deps = Deps {
                discovery,
                registry: prometheus::Registry::new(),
                store: Arc::new(store),
                live_config: live,
                archiving: None,
                pusher: None,
                local: None,
            };
            let listeners = Listeners {
                http: bind().await,
                backend: bind().await,
                grpc: bind().await.into(),
                ops: None,
            };
            let backend = format!("http://{}", listeners.backend.local_addr().expect("addr"));
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(run(cfg, deps, listeners, shutdown.clone()));
            (backend, shutdown, task)
        }
    };
    let http = reqwest::Client::new();
    let create = |backend: &str, at: u64| {
        http.post(format!("{backend}/v1/rooms"))
            .bearer_auth(key)
            .json(&serde_json::json!({"title": "Later", "owner": "alice", "scheduled_at_ms": at}))
            .send()
    };

    // Node a refuses a past schedule and takes a near one, then stops.
    let (backend_a, shutdown_a, task_a) = start("biz-a").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let past = loop {
        // Serving once the listener answers (the keyring loads with run).
        match create(&backend_a, common::time::now_ms() - 1000).await {
            Ok(res) if res.status().as_u16() != 401 => break res,
            _ => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node a never served"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(past.status().as_u16(), 400);
    let at = common::time::now_ms() + 1_000;
    let created = create(&backend_a, at).await.expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let room: serde_json::Value = created.json().await.expect("json");
    let room = room["room_id"].as_str().expect("room_id").to_owned();
    shutdown_a.cancel();
    tokio::time::timeout(PATIENCE, task_a)
        .await
        .expect("a stops")
        .expect("task")
        .expect("clean stop");

    // Nothing runs at the due time; node b, started later, starts the room.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (backend_b, shutdown_b, task_b) = start("biz-b").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let state = http
            .get(format!("{backend_b}/v1/rooms/{room}"))
            .bearer_auth(key)
            .send()
            .await
            .ok();
        let state = match state {
            Some(res) if res.status().is_success() => res.json::<serde_json::Value>().await.ok(),
            _ => None,
        };
        if state.as_ref().and_then(|s| s["state"].as_str()) == Some("live") {
            let started = state.as_ref().and_then(|s| s["started_at_ms"].as_u64());
            assert!(
                started.is_some_and(|t| t >= at),
                "started at its time, not before"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "room never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The app's receiver hears of the creation (logged by a) and the start
    // (by b), and the event log reads them back.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let types = || {
        let got = hooks.lock().unwrap_or_else(|p| p.into_inner());
        got.iter()
            .filter(|e| e["room"] == room.as_str())
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
    };
    while types().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhooks: {:?}",
            types()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        types().into_iter().collect::<Vec<_>>(),
        vec!["room.created", "room.started"]
    );
    let log: serde_json::Value = http
        .get(format!("{backend_b}/v1/events?limit=10"))
        .bearer_auth(key)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let logged: Vec<&str> = log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(logged, vec!["room.created", "room.started"], "{log}");
    assert_eq!(log["next"], log["events"][1]["id"]);
    shutdown_b.cancel();
    tokio::time::timeout(PATIENCE, task_b)
        .await
        .expect("b stops")
        .expect("task")
        .expect("clean stop");
}
