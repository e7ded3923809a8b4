//! The trust boundary of both listeners: API keys and scopes on the backend
//! one, the read rule on the client one, and what a web page can't do.

use std::sync::Arc;

use common::api_keys::{Keyring, Scope};
use common::auth::mint_hs256;
use serde_json::{Value, json};

use crate::Config;
use crate::shared::Shared;
use crate::test_util::{
    RecordingPusher, TEST_API_KEY, backend_client, bind, install_test_key, shared,
};

const SECRET: &str = "client-token-secret";

struct Listeners {
    backend: String,
    client: String,
    shared: Arc<Shared>,
}

async fn serve(cfg: Config) -> Listeners {
    let shared = shared(
        Config {
            token_secret: SECRET.into(),
            ..cfg
        },
        RecordingPusher::new(),
    );
    install_test_key(&shared);
    let backend = bind().await;
    let client = bind().await;
    let urls = (
        format!("http://{}", backend.local_addr().expect("addr")),
        format!("http://{}", client.local_addr().expect("addr")),
    );
    let backend_app = super::backend_app(shared.clone());
    let client_app = super::client_app(shared.clone());
    tokio::spawn(async move { axum::serve(backend, backend_app).await });
    tokio::spawn(async move { axum::serve(client, client_app).await });
    Listeners {
        backend: urls.0,
        client: urls.1,
        shared,
    }
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

fn token(uid: &str) -> String {
    mint_hs256(SECRET, uid, 600).expect("mint")
}

async fn private_room(l: &Listeners) -> String {
    let (status, room) = send(backend_client().post(format!("{}/v1/rooms", l.backend)).json(
        &json!({"title": "Board meeting", "owner": "alice", "private": true, "invite": ["bob"]}),
    ))
    .await;
    assert_eq!(status, 201, "{room}");
    room["room_id"].as_str().expect("id").to_owned()
}

async fn room_state(l: &Listeners, room: &str) -> String {
    let (_, got) = send(backend_client().get(format!("{}/v1/rooms/{room}", l.backend))).await;
    got["state"].as_str().expect("state").to_owned()
}

#[tokio::test]
async fn anonymous_and_wrong_keys_cannot_end_start_invite_create_or_publish() {
    let l = serve(Config::default()).await;
    let room = private_room(&l).await;
    let anonymous = reqwest::Client::new();
    let writes = [
        (format!("{}/v1/rooms/{room}/end", l.backend), json!({})),
        (format!("{}/v1/rooms/{room}/start", l.backend), json!({})),
        (
            format!("{}/v1/rooms/{room}/invite", l.backend),
            json!({"uids": ["mallory"]}),
        ),
        (format!("{}/v1/rooms", l.backend), json!({"title": "spam"})),
        (
            format!("{}/v1/rooms/{room}/messages", l.backend),
            json!({"kind": "room_ended", "body": {"fake": true}}),
        ),
    ];
    let forged = "rck_testkey1_0123456789abcdefghijABCDEFGHIK";
    for (url, body) in &writes {
        for key in [
            None,
            Some("nope"),
            Some(forged),
            Some(token("alice").as_str()),
        ] {
            let mut req = anonymous.post(url).json(body);
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            let (status, answer) = send(req).await;
            assert_eq!(status, 401, "{url} with {key:?}: {answer}");
            assert_eq!(answer["error"]["code"], "unauthenticated");
        }
    }
    assert_eq!(room_state(&l, &room).await, "live", "nothing ended");
    // The self-invite did not happen: mallory still may not read the room.
    let (status, _) = send(
        anonymous
            .get(format!("{}/v1/rooms/{room}/state", l.client))
            .bearer_auth(token("mallory")),
    )
    .await;
    assert_eq!(status, 403);
    // The legitimate path works with the key, sent either way.
    let (status, _) = send(
        anonymous
            .post(format!("{}/v1/rooms/{room}/end", l.backend))
            .header("x-api-key", TEST_API_KEY)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(room_state(&l, &room).await, "ended");
}

#[tokio::test]
async fn a_key_does_only_what_its_scopes_allow_and_stops_when_revoked() {
    let l = serve(Config::default()).await;
    let room = private_room(&l).await;
    let mut ring = (**l.shared.api_keys.borrow()).clone();
    let (reader, record) = ring
        .create("dashboard", &[Scope::RoomsRead], 1)
        .expect("key");
    l.shared.api_keys.send_replace(Arc::new(ring.clone()));
    let http = reqwest::Client::new();
    let (status, _) = send(
        http.get(format!("{}/v1/rooms/{room}/state", l.backend))
            .bearer_auth(&reader),
    )
    .await;
    assert_eq!(status, 200, "a read key reads");
    let (status, answer) = send(
        http.post(format!("{}/v1/rooms/{room}/end", l.backend))
            .bearer_auth(&reader)
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(room_state(&l, &room).await, "live");

    ring.revoke(&record.id).expect("revoke");
    l.shared.api_keys.send_replace(Arc::new(ring));
    let (status, _) = send(
        http.get(format!("{}/v1/rooms/{room}/state", l.backend))
            .bearer_auth(&reader),
    )
    .await;
    assert_eq!(status, 401, "a revoked key is refused at once");
    // Every backend request is refused while no keyring is known.
    l.shared.api_keys.send_replace(Arc::new(Keyring::default()));
    let (status, _) = send(backend_client().get(format!("{}/v1/rooms/{room}", l.backend))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_client_listener_has_no_backend_routes_and_wants_a_token() {
    let l = serve(Config::default()).await;
    let room = private_room(&l).await;
    let http = backend_client();
    // Even a valid API key can't reach backend routes on the client listener.
    for (url, body) in [
        (format!("{}/v1/rooms/{room}/end", l.client), json!({})),
        (format!("{}/v1/rooms", l.client), json!({"title": "x"})),
        (
            format!("{}/v1/rooms/{room}/invite", l.client),
            json!({"uids": ["bob"]}),
        ),
    ] {
        let (status, _) = send(http.post(&url).json(&body)).await;
        assert!(status == 404 || status == 405, "{url}: {status}");
    }
    assert_eq!(room_state(&l, &room).await, "live");
    for path in ["", "/state", "/members", "/summary"] {
        let url = format!("{}/v1/rooms/{room}{path}", l.client);
        let (status, answer) = send(reqwest::Client::new().get(&url)).await;
        assert_eq!(status, 401, "{url}: {answer}");
    }
}

#[tokio::test]
async fn private_rooms_answer_only_those_who_may_enter_during_and_after_the_room() {
    let l = serve(Config::default()).await;
    let room = private_room(&l).await;
    let http = reqwest::Client::new();
    let read = |uid: &'static str, path: &'static str| {
        let url = format!("{}/v1/rooms/{room}{path}", l.client);
        let req = http.get(url).bearer_auth(token(uid));
        async move { send(req).await }
    };
    for ended in [false, true] {
        for path in ["", "/state", "/members", "/summary"] {
            let (status, answer) = read("mallory", path).await;
            assert_eq!(status, 403, "{path} (ended: {ended}): {answer}");
            assert!(
                !answer.to_string().contains("Board meeting"),
                "no title leaks"
            );
            for uid in ["bob", "alice"] {
                let (status, answer) = read(uid, path).await;
                assert_eq!(status, 200, "{uid} {path} (ended: {ended}): {answer}");
            }
        }
        if !ended {
            let (status, _) = send(
                backend_client()
                    .post(format!("{}/v1/rooms/{room}/end", l.backend))
                    .json(&json!({})),
            )
            .await;
            assert_eq!(status, 200);
        }
    }
    let (status, _) =
        send(backend_client().get(format!("{}/v1/rooms/{room}/members", l.backend))).await;
    assert_eq!(status, 200, "the backend reads every room");
}

#[tokio::test]
async fn web_pages_cannot_drive_the_backend_api() {
    let l = serve(Config {
        backend_allowed_origins: vec!["https://admin.example.com".into()],
        ..Config::default()
    })
    .await;
    let room = private_room(&l).await;
    let end = format!("{}/v1/rooms/{room}/end", l.backend);
    // A cross-site form post: a browser would send it without a preflight.
    let (status, answer) = send(
        backend_client()
            .post(&end)
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x=1"),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("origin_refused"))
    );
    let (status, answer) = send(
        backend_client()
            .post(&end)
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    assert_eq!(room_state(&l, &room).await, "live");
    // An allowed origin (an admin console) with JSON passes.
    let (status, _) = send(
        backend_client()
            .post(&end)
            .header("origin", "https://admin.example.com")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn each_key_has_its_own_write_rate() {
    let l = serve(Config {
        backend_write_rate_per_sec: 1,
        backend_write_burst: 3,
        ..Config::default()
    })
    .await;
    let mut ring = (**l.shared.api_keys.borrow()).clone();
    let (other, _) = ring.create("other app", &[], 1).expect("key");
    l.shared.api_keys.send_replace(Arc::new(ring));
    let create = |key: String| {
        let req = reqwest::Client::new()
            .post(format!("{}/v1/rooms", l.backend))
            .bearer_auth(key)
            .json(&json!({"title": "flood"}));
        async move { send(req).await }
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(create(TEST_API_KEY.to_owned()).await.0);
    }
    assert_eq!(&statuses[..3], &[201, 201, 201], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "over the burst: {statuses:?}");
    assert_eq!(create(other).await.0, 201, "another key is not slowed");
    // Reads are not counted.
    let (status, _) = send(backend_client().get(format!("{}/v1/rooms/rNope", l.backend))).await;
    assert_eq!(status, 404);
}
