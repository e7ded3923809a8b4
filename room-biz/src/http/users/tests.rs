//! Revoking a uid's tokens over HTTP, and what revoked tokens can still do
//! (nothing), with a recording pusher. The socket side (sessions closed,
//! hellos refused) is in integration-tests (`tests/tokens.rs`).

use std::sync::Arc;
use std::time::Duration;

use common::auth::{mint_hs256, mint_hs256_claims};
use room_store::NewRoom;
use serde_json::{Value, json};

use crate::Config;
use crate::pusher::RoomPusher;
use crate::test_util::{
    RecordingPusher, TEST_EPOCH, backend_client, bind, install_test_key, shared,
};

const SECRET: &str = "revoke-secret";

fn config() -> Config {
    Config {
        token_secret: SECRET.into(),
        max_long_polls_per_uid: 2,
        ..Config::default()
    }
}

/// Where the two listeners answer.
struct Urls {
    client: String,
    backend: String,
}

async fn serve(pusher: Arc<dyn RoomPusher>) -> (Urls, Arc<crate::shared::Shared>) {
    let shared = shared(config(), pusher);
    install_test_key(&shared);
    let (client, backend) = (bind().await, bind().await);
    let urls = Urls {
        client: format!("http://{}", client.local_addr().expect("addr")),
        backend: format!("http://{}", backend.local_addr().expect("addr")),
    };
    let client_app = crate::http::client_app(shared.clone());
    let backend_app = crate::http::backend_app(shared.clone());
    tokio::spawn(async move { axum::serve(client, client_app).await });
    tokio::spawn(async move { axum::serve(backend, backend_app).await });
    (urls, shared)
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

async fn revoke(url: &str, uid: &str) -> (u16, Value) {
    send(backend_client().post(format!("{url}/v1/users/{uid}/revoke"))).await
}

async fn poll(url: &str, room: &str, token: &str, query: &str) -> (u16, Value) {
    send(
        reqwest::Client::new()
            .get(format!("{url}/v1/rooms/{room}/messages?{query}"))
            .bearer_auth(token),
    )
    .await
}

async fn room(shared: &crate::shared::Shared) -> String {
    shared
        .backends
        .store
        .create_room(NewRoom::titled("Revoked", None))
        .await
        .expect("create")
        .id
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_revoked_uid_is_refused_everywhere_and_new_tokens_work() {
    let pusher = RecordingPusher::new();
    let (urls, shared) = serve(pusher.clone()).await;
    let room = room(&shared).await;
    let old = mint_hs256(SECRET, "alice", 600).expect("mint");
    let bob = mint_hs256(SECRET, "bob", 600).expect("mint");
    assert_eq!(
        poll(&urls.client, &room, &old, "").await.0,
        200,
        "before the revocation"
    );

    let (status, body) = revoke(&urls.backend, "alice").await;
    assert_eq!(status, 200, "{body}");
    let before = body["revoked_before_secs"]
        .as_u64()
        .expect("revoked_before_secs");
    assert_eq!(body["uid"], "alice");

    // The conn nodes were told, with the typed revocation.
    let pushed = pusher.sent_users();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].uids, vec!["alice".to_string()]);
    assert_eq!(
        pushed[0].revocation.as_ref().map(|r| r.revoked_before_secs),
        Some(before)
    );

    // The old token is refused with a stable reason; bob is not affected.
    let (status, body) = poll(&urls.client, &room, &old, "").await;
    assert_eq!((status, code(&body)), (401, "token_revoked"), "{body}");
    assert_eq!(body["error"]["message"], "token revoked");
    let (status, body) = send(
        reqwest::Client::new()
            .post(format!("{}/v1/rooms/{room}/actions", urls.client))
            .bearer_auth(&old)
            .json(&json!({"action": "like", "payload": {"count": 1}})),
    )
    .await;
    assert_eq!((status, code(&body)), (401, "token_revoked"), "{body}");
    assert_eq!(poll(&urls.client, &room, &bob, "").await.0, 200);

    // A token the backend issues after the revocation works.
    let fresh = json!({"sub": "alice", "iat": before, "exp": before + 600});
    let fresh = mint_hs256_claims(SECRET, &fresh).expect("mint");
    let (status, body) = poll(&urls.client, &room, &fresh, "").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn revocations_need_a_clean_uid_and_survive_a_failed_push() {
    let (urls, _) = serve(RecordingPusher::new()).await;
    let (status, body) = revoke(&urls.backend, "ali%E2%80%AEce").await;
    assert_eq!((status, code(&body)), (400, "invalid_text"), "{body}");

    let (urls, shared) = serve(RecordingPusher::failing()).await;
    let room = room(&shared).await;
    let old = mint_hs256(SECRET, "carol", 600).expect("mint");
    let (status, body) = revoke(&urls.backend, "carol").await;
    assert_eq!((status, code(&body)), (503, "unavailable"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("recorded")),
        "{body}"
    );
    let (status, body) = poll(&urls.client, &room, &old, "").await;
    assert_eq!(
        (status, code(&body)),
        (401, "token_revoked"),
        "recorded anyway: {body}"
    );
}

#[tokio::test]
async fn auth_errors_name_no_algorithm_or_parser_detail() {
    let (urls, shared) = serve(RecordingPusher::new()).await;
    let room = room(&shared).await;
    let rs256 = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2ln";
    for token in ["garbage", rs256, "a.b.c"] {
        let (status, body) = poll(&urls.client, &room, token, "").await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            (code(&body), body["error"]["message"].as_str()),
            ("unauthenticated", Some("invalid token")),
            "{body}"
        );
    }
    let expired = mint_hs256(SECRET, "dave", -600).expect("mint");
    let (status, body) = poll(&urls.client, &room, &expired, "").await;
    assert_eq!((status, code(&body)), (401, "token_expired"), "{body}");
}

#[tokio::test]
async fn long_polls_per_uid_are_capped() {
    let (urls, shared) = serve(RecordingPusher::new()).await;
    let room = room(&shared).await;
    let alice = mint_hs256(SECRET, "alice", 600).expect("mint");
    let bob = mint_hs256(SECRET, "bob", 600).expect("mint");
    // At the head of the stream with a wait: these polls hold their slots.
    let waiting = format!("after=0&epoch={TEST_EPOCH}&wait=2");
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (url, room, alice, waiting) = (
                urls.client.clone(),
                room.clone(),
                alice.clone(),
                waiting.clone(),
            );
            tokio::spawn(async move { poll(&url, &room, &alice, &waiting).await })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while shared.poll_slots.held("alice") < 2 {
        assert!(tokio::time::Instant::now() < deadline, "polls never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = poll(&urls.client, &room, &alice, &waiting).await;
    assert_eq!((status, code(&body)), (429, "too_many_polls"), "{body}");
    assert_eq!(
        poll(&urls.client, &room, &bob, "").await.0,
        200,
        "another uid polls"
    );
    for poll in held {
        assert_eq!(poll.await.expect("poll task").0, 200);
    }
    assert_eq!(shared.poll_slots.held("alice"), 0, "slots come back");
    assert_eq!(poll(&urls.client, &room, &alice, "").await.0, 200);
}
