//! Scheduled rooms over HTTP: a schedule in the past is refused, a future one
//! is indexed, and a user who was offline reads `room_started` from their
//! inbox.

use std::sync::Arc;

use common::auth::mint_hs256;
use serde_json::{Value, json};

use crate::Config;
use crate::shared::Shared;
use crate::test_util::{RecordingPusher, backend_client, bind, install_test_key, shared};

const SECRET: &str = "inbox-secret";

async fn serve() -> (String, String, Arc<Shared>) {
    let cfg = Config {
        token_secret: SECRET.into(),
        ..Config::default()
    };
    let shared = shared(cfg, RecordingPusher::new());
    install_test_key(&shared);
    let (backend, client) = (bind().await, bind().await);
    let urls = (
        format!("http://{}", backend.local_addr().expect("addr")),
        format!("http://{}", client.local_addr().expect("addr")),
    );
    let (backend_app, client_app) = (
        super::backend_app(shared.clone()),
        super::client_app(shared.clone()),
    );
    tokio::spawn(async move { axum::serve(backend, backend_app).await });
    tokio::spawn(async move { axum::serve(client, client_app).await });
    (urls.0, urls.1, shared)
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

#[tokio::test]
async fn past_schedules_are_refused_and_future_ones_indexed() {
    let (backend, _, shared) = serve().await;
    let rooms = format!("{backend}/v1/rooms");
    let past = common::time::now_ms() - 1_000;
    let (status, body) = send(
        backend_client()
            .post(&rooms)
            .json(&json!({"title": "Yesterday", "scheduled_at_ms": past})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("in the past"), "{message}");

    let at = common::time::now_ms() + 3_600_000;
    let (status, room) = send(
        backend_client()
            .post(&rooms)
            .json(&json!({"title": "Later", "scheduled_at_ms": at})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["room_id"].as_str().expect("room_id");
    let ledger = shared.backends.store.ledger();
    assert_eq!(
        ledger.due_at(&format!("start:{id}")).await.expect("due_at"),
        Some(at)
    );
    let lead = shared.cfg.schedules.reminder_lead_ms;
    assert_eq!(
        ledger
            .due_at(&format!("remind:{id}"))
            .await
            .expect("due_at"),
        Some(at - lead)
    );
}

#[tokio::test]
async fn offline_users_read_room_started_from_their_inbox() {
    let (backend, client, shared) = serve().await;
    let at = common::time::now_ms() + 3_600_000;
    let (status, room) = send(backend_client().post(format!("{backend}/v1/rooms")).json(
        &json!({"title": "Later", "owner": "alice", "scheduled_at_ms": at, "invite": ["bob"]}),
    ))
    .await;
    assert_eq!(status, 201, "{room}");
    let id = room["room_id"].as_str().expect("room_id").to_owned();
    let inbox = format!("{client}/v1/me/inbox");
    let bob = mint_hs256(SECRET, "bob", 600).expect("mint");
    let (status, empty) = send(reqwest::Client::new().get(&inbox).bearer_auth(&bob)).await;
    assert_eq!(
        (status, empty["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    shared.backends.rooms.start(&id, None).await.expect("start");
    let (status, got) = send(reqwest::Client::new().get(&inbox).bearer_auth(&bob)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["uid"], "bob");
    let items = got["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{got}");
    assert_eq!(items[0]["kind"], "room_started");
    assert_eq!(items[0]["body"]["room"], id.as_str());
    assert_eq!(items[0]["body"]["title"], "Later");
    let seen = items[0]["at_ms"].as_u64().expect("at_ms");
    let (_, newer) = send(
        reqwest::Client::new()
            .get(format!("{inbox}?after_ms={seen}"))
            .bearer_auth(&bob),
    )
    .await;
    assert_eq!(newer["items"].as_array().map(Vec::len), Some(0), "{newer}");

    // Another user's inbox is theirs alone; no token, no inbox.
    let eve = mint_hs256(SECRET, "eve", 600).expect("mint");
    let (_, other) = send(reqwest::Client::new().get(&inbox).bearer_auth(&eve)).await;
    assert_eq!(other["items"].as_array().map(Vec::len), Some(0));
    let (status, _) = send(reqwest::Client::new().get(&inbox)).await;
    assert_eq!(status, 401);
    let (status, bad) = send(
        reqwest::Client::new()
            .get(format!("{inbox}?after_ms=soon"))
            .bearer_auth(&bob),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
}
