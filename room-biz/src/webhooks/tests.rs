//! Webhooks against a real HTTP receiver (axum on loopback) that is down,
//! then fails with 500s, then recovers: it gets every event, repeats only
//! under the same idempotency key, and every signature verifies. On the
//! memory ledger with one node and on a real Redis with two nodes sharing
//! the log. Over HTTPS to a receiver with a test CA's certificate: refused
//! without `webhooks.ca_file`, delivered and signed with it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use room_store::{Ledger, MemoryLedger, RedisRoomStore, RoomStore};
use serde_json::{Value, json};
use test_servers::{RedisServer, TestCa};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::test_util::bind;

const NEW_SECRET: &str = "whsec-new-0123456789abcdef";
const OLD_SECRET: &str = "whsec-old-0123456789abcdef";
const PATIENCE: Duration = Duration::from_secs(20);

/// What the receiver saw: each request's headers, body and answer.
#[derive(Default)]
struct Received {
    requests: Mutex<Vec<(HeaderMap, Bytes, u16)>>,
    /// Requests still to fail with 500.
    failures_left: AtomicU32,
}

async fn receive(State(seen): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = seen
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    seen.requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((headers, body, status.as_u16()));
    status
}

/// Start answering on `listener` (held unanswered until now: the receiver
/// was down), failing the first `failures` requests with 500.
fn recover(listener: TcpListener, failures: u32) -> Arc<Received> {
    let seen = Arc::new(Received::default());
    seen.failures_left.store(failures, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    seen
}

/// The receiver of [`recover`] serving HTTPS with a certificate for
/// `localhost` from `ca`, answering at once (no failures); stops with `stop`.
fn receive_https(ca: &TestCa, listener: TcpListener, stop: &CancellationToken) -> Arc<Received> {
    let issued = ca
        .issue("hooks", &["localhost", "127.0.0.1"])
        .expect("issue a certificate");
    let files = common::tls::TlsFiles {
        cert: Some(issued.cert_path.display().to_string()),
        key: Some(issued.key_path.display().to_string()),
        ..common::tls::TlsFiles::default()
    };
    let tls = common::tls::ServerTls::start(&files).expect("load the certificate");
    let seen = Arc::new(Received::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    let serving = common::http::serve_http_tls(
        listener,
        app,
        "hooks",
        &common::http::HttpLimits::default(),
        tls,
        &prometheus::Registry::new(),
        stop.clone(),
    );
    tokio::spawn(serving);
    seen
}

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        enabled: true,
        urls: vec![url.to_owned()],
        secrets: vec![NEW_SECRET.into(), OLD_SECRET.into()],
        poll_ms: 20,
        timeout_ms: 300,
        retry_initial_ms: 20,
        retry_max_ms: 200,
        ..WebhookConfig::default()
    }
}

/// Start a node's webhooks on `ledger`; they stop when the task is aborted.
fn start_node(
    cfg: &WebhookConfig,
    ledger: Arc<dyn Ledger>,
    node: &'static str,
) -> (Arc<Webhooks>, tokio::task::JoinHandle<()>) {
    let hooks = Arc::new(Webhooks::new(cfg));
    let task = {
        let hooks = hooks.clone();
        tokio::spawn(async move { hooks.run(ledger, node).await })
    };
    (hooks, task)
}

/// Emit `n` events spread over `nodes`: rooms started, gifts, polls closed.
fn emit_events(nodes: &[&Webhooks], n: usize) -> BTreeSet<String> {
    let mut sent = BTreeSet::new();
    for i in 0..n {
        let kind = [kinds::ROOM_STARTED, kinds::GIFT, kinds::POLL_CLOSED][i % 3];
        let room = format!("r{i}");
        nodes[i % nodes.len()].emit(kind, &room, json!({"n": i}));
        sent.insert(room);
    }
    sent
}

/// Wait until the receiver accepted an event of each room in `rooms`.
fn accepted_rooms(seen: &Received) -> BTreeSet<String> {
    let requests = seen.requests.lock().unwrap_or_else(|p| p.into_inner());
    requests
        .iter()
        .filter(|(_, _, status)| *status == 200)
        .filter_map(|(_, body, _)| {
            let event: Value = serde_json::from_slice(body).ok()?;
            event["room"].as_str().map(str::to_owned)
        })
        .collect()
}

async fn wait_all_accepted(seen: &Received, rooms: &BTreeSet<String>) {
    let deadline = Instant::now() + PATIENCE;
    while &accepted_rooms(seen) != rooms {
        assert!(
            Instant::now() < deadline,
            "receiver never got every event: {:?}",
            accepted_rooms(seen)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every request is signed with the newest secret and carries its event id
/// as idempotency key; the same id always comes with the same body.
fn check_requests(seen: &Received) -> usize {
    let requests = seen.requests.lock().unwrap_or_else(|p| p.into_inner());
    let now = common::time::now_ms() / 1000;
    let mut bodies: BTreeMap<String, Bytes> = BTreeMap::new();
    for (headers, body, _) in requests.iter() {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("no {name} header"))
                .to_owned()
        };
        let sig = header("roomcast-signature");
        signature::verify(&[OLD_SECRET, NEW_SECRET], &sig, body, now, 300)
            .expect("verifies with the receiver's secrets");
        signature::verify(&[NEW_SECRET], &sig, body, now, 300).expect("signed with the newest");
        let event: Value = serde_json::from_slice(body).expect("JSON body");
        let id = event["id"].as_str().expect("id").to_owned();
        assert_eq!(header("idempotency-key"), id);
        assert_eq!(header("roomcast-event-id"), id);
        assert_eq!(header("content-type"), "application/json");
        assert!(event["at_ms"].as_u64().is_some() && event["type"].is_string());
        if let Some(first) = bodies.insert(id.clone(), body.clone()) {
            assert_eq!(first, *body, "a repeat of {id} is the same event");
        }
    }
    bodies.len()
}

#[tokio::test]
async fn every_event_reaches_a_receiver_that_was_down_then_failing() {
    let listener = bind().await;
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let ledger: Arc<dyn Ledger> = Arc::new(MemoryLedger::default());
    let cfg = config(&url);
    let (hooks, task) = start_node(&cfg, ledger.clone(), "biz-a");
    let rooms = emit_events(&[&hooks], 12);

    // Down: connections are accepted by the kernel and never answered, so
    // attempts time out; the events wait in the log.
    let deadline = Instant::now() + PATIENCE;
    while ledger.events_after(None, 100).await.expect("log").len() < 12 {
        assert!(Instant::now() < deadline, "events never logged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = recover(listener, 4);
    wait_all_accepted(&seen, &rooms).await;
    let distinct = check_requests(&seen);
    assert_eq!(distinct, 12, "one id per event");
    let failed = seen
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(_, _, s)| *s == 500)
        .count();
    assert_eq!(failed, 4, "the 500s were retried");

    // The log reads back the same events, with the ids the webhooks had.
    let logged = ledger.events_after(None, 100).await.expect("log");
    let first = public_event(&logged[0].id, &logged[0].event);
    assert_eq!(first["type"], kinds::ROOM_STARTED);
    assert_eq!(first["room"], "r0");
    assert_eq!(first["data"], json!({"n": 0}));
    task.abort();
}

#[tokio::test]
async fn https_receivers_get_signed_events_when_their_ca_is_trusted() {
    let ca = TestCa::new().expect("test CA");
    let listener = bind().await;
    let port = listener.local_addr().expect("addr").port();
    let url = format!("https://localhost:{port}/hook");
    let stop = CancellationToken::new();
    let seen = receive_https(&ca, listener, &stop);

    // The webpki roots alone: the private CA's certificate is refused, every
    // attempt fails, and the receiver's handler never runs.
    let refusing = config(&url);
    refusing.validate().expect("an https:// URL is valid");
    let (hooks, task) = start_node(&refusing, Arc::new(MemoryLedger::default()), "biz-a");
    emit_events(&[&hooks], 2);
    let deadline = Instant::now() + PATIENCE;
    while hooks
        .metrics
        .deliveries
        .with_label_values(&["failed"])
        .get()
        < 2
    {
        assert!(Instant::now() < deadline, "no failed delivery counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(
        seen.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty(),
        "nothing reached the receiver through an untrusted certificate"
    );

    // With `webhooks.ca_file`: every event arrives, signed.
    let trusting = WebhookConfig {
        ca_file: Some(ca.ca_path().display().to_string()),
        ..config(&url)
    };
    trusting.validate().expect("a readable CA file");
    let (hooks, task) = start_node(&trusting, Arc::new(MemoryLedger::default()), "biz-a");
    let rooms = emit_events(&[&hooks], 9);
    wait_all_accepted(&seen, &rooms).await;
    assert_eq!(check_requests(&seen), 9, "one id per event");
    task.abort();
    stop.cancel();
}

#[test]
fn an_unusable_webhook_ca_file_is_a_clear_error() {
    let dir = tempfile_dir();
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let error = client::check_ca_file(&junk).expect_err("no certificate");
    let text = error.to_string();
    assert!(
        text.contains("webhooks.ca_file") && text.contains("junk.pem") && text.contains("no PEM"),
        "{text}"
    );
    let error = client::check_ca_file(&dir.join("missing.pem")).expect_err("missing");
    assert!(error.to_string().contains("missing.pem"), "{error}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("roomcast-webhook-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A node's own connection to the Redis ledger.
async fn redis_ledger(url: &str) -> Arc<dyn Ledger> {
    let store: Arc<dyn RoomStore> = Arc::new(
        RedisRoomStore::connect(&[url.to_owned()], "hooks:")
            .await
            .expect("connect"),
    );
    store.ledger()
}

#[tokio::test]
async fn two_nodes_on_redis_deliver_every_event_through_an_outage() {
    let redis = RedisServer::start().expect("start redis-server");
    let url_of_redis = redis.url();
    let store = |_: ()| redis_ledger(&url_of_redis);
    let listener = bind().await;
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let cfg = config(&url);
    let (a, task_a) = start_node(&cfg, store(()).await, "biz-a");
    let (b, task_b) = start_node(&cfg, store(()).await, "biz-b");
    let ledger = store(()).await;
    let rooms = emit_events(&[&a, &b], 30);
    let deadline = Instant::now() + PATIENCE;
    while ledger.events_after(None, 100).await.expect("log").len() < 30 {
        assert!(Instant::now() < deadline, "events never logged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = recover(listener, 6);
    wait_all_accepted(&seen, &rooms).await;
    assert_eq!(check_requests(&seen), 30);

    // Node a stops for good; events logged by b are still delivered.
    task_a.abort();
    let more = {
        let mut more = BTreeSet::new();
        for i in 100..105 {
            let room = format!("r{i}");
            b.emit(
                kinds::ROOM_ENDED,
                &room,
                json!({"summary": {"comments": i}}),
            );
            more.insert(room);
        }
        more
    };
    let all: BTreeSet<String> = rooms.union(&more).cloned().collect();
    wait_all_accepted(&seen, &all).await;
    assert_eq!(check_requests(&seen), 35);
    task_b.abort();
}

#[tokio::test]
async fn a_disabled_queue_records_nothing_and_a_full_one_drops() {
    let ledger = Arc::new(MemoryLedger::default());
    let off = Webhooks::new(&WebhookConfig::default());
    off.emit(kinds::GIFT, "r1", json!({}));
    assert!(off.tx.capacity() == off.tx.max_capacity(), "nothing queued");

    let cfg = WebhookConfig {
        enabled: true,
        queue: 2,
        ..WebhookConfig::default()
    };
    let small = Webhooks::new(&cfg);
    for i in 0..5 {
        small.emit(kinds::GIFT, &format!("r{i}"), json!({}));
    }
    assert_eq!(
        small.metrics.events.with_label_values(&["dropped"]).get(),
        3,
        "the live path never waits"
    );
    // Member events only when configured.
    small.emit_member(kinds::MEMBER_JOINED, "r1", json!({}));
    assert_eq!(
        small.metrics.events.with_label_values(&["dropped"]).get(),
        3
    );
    let task = {
        let ledger: Arc<dyn Ledger> = ledger.clone();
        let small = Arc::new(small);
        let hooks = small.clone();
        (
            tokio::spawn(async move { hooks.run(ledger, "n").await }),
            small,
        )
    };
    let deadline = Instant::now() + PATIENCE;
    while ledger.events_after(None, 10).await.expect("log").len() < 2 {
        assert!(Instant::now() < deadline, "queued events never logged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        task.1.metrics.events.with_label_values(&["logged"]).get(),
        2
    );
    task.0.abort();
}
