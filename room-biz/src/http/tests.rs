//! The HTTP API over a real socket, with a recording pusher.

use std::sync::Arc;

use proto::client::v1::Priority;
use serde_json::{Value, json};

use crate::Config;
use crate::pusher::RoomPusher;
use crate::test_util::{
    RecordingPusher, TEST_EPOCH, backend_client, bind, install_test_key, shared,
};

/// Serve the API on 127.0.0.1:0; the server task ends with the test runtime.
async fn serve(pusher: Arc<dyn RoomPusher>) -> String {
    let listener = bind().await;
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shared = shared(Config::default(), pusher);
    install_test_key(&shared);
    let app = super::backend_app(shared);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

async fn create(url: &str, body: Value) -> (u16, Value) {
    send(backend_client().post(format!("{url}/v1/rooms")).json(&body)).await
}

fn error_of(body: &Value) -> (&str, &str) {
    let code = body["error"]["code"].as_str().expect("error.code");
    let message = body["error"]["message"].as_str().expect("error.message");
    (code, message)
}

#[tokio::test]
async fn rooms_are_created_and_read_back() {
    let url = serve(RecordingPusher::new()).await;
    let (status, created) = create(&url, json!({"title": "  Night talk ", "owner": "alice"})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["room_id"].as_str().expect("room_id");
    assert!(id.starts_with('r') && id.len() == 11, "{id}");
    assert_eq!(created["title"], "Night talk");
    assert_eq!(created["owner"], "alice");
    assert!(created["created_at_ms"].as_u64().expect("created_at_ms") > 0);

    let (status, got) = send(backend_client().get(format!("{url}/v1/rooms/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(got["room_id"], id);
    assert_eq!(got["title"], "Night talk");
    assert_eq!(got["members"], 0);
    assert_eq!(got["state"], "live");

    let (status, anonymous) = create(&url, json!({"title": "Open mic"})).await;
    assert_eq!(status, 201);
    assert_eq!(anonymous["owner"], Value::Null);
}

#[tokio::test]
async fn unknown_rooms_are_404_json() {
    let url = serve(RecordingPusher::new()).await;
    let (status, body) = send(backend_client().get(format!("{url}/v1/rooms/rNope"))).await;
    assert_eq!(status, 404);
    assert_eq!(error_of(&body), ("room_not_found", "room rNope not found"));
    let (status, body) = send(backend_client().get(format!("{url}/v2/whatever"))).await;
    assert_eq!((status, error_of(&body).0), (404, "not_found"));
}

#[tokio::test]
async fn bad_room_requests_are_400_json_naming_the_problem() {
    let url = serve(RecordingPusher::new()).await;
    let client = backend_client();
    let raw = client.post(format!("{url}/v1/rooms")).body("{\"title\": ");
    let (status, body) = send(raw).await;
    assert_eq!(status, 400);
    let (code, message) = error_of(&body);
    assert_eq!(code, "bad_request");
    assert!(message.starts_with("invalid JSON body: EOF"), "{message}");

    let cases = [
        (json!({"owner": "alice"}), "missing field `title`"),
        (json!({"title": 42}), "invalid type: integer `42`"),
        (json!({"title": "   "}), "title must not be empty"),
        (
            json!({"title": "é".repeat(201)}),
            "title is longer than 200 characters",
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = create(&url, request.clone()).await;
        assert_eq!(status, 400, "{request}");
        let (code, message) = error_of(&body);
        assert_eq!(code, "bad_request");
        assert!(message.contains(expected), "{request}: {message}");
    }
    // Exactly 200 characters (400 bytes) is fine.
    assert_eq!(create(&url, json!({"title": "é".repeat(200)})).await.0, 201);
}

#[tokio::test]
async fn system_messages_are_pushed_to_the_room() {
    let pusher = RecordingPusher::new();
    let url = serve(pusher.clone()).await;
    let (_, room) = create(&url, json!({"title": "Quiz"})).await;
    let id = room["room_id"].as_str().expect("room_id");
    let messages = format!("{url}/v1/rooms/{id}/messages");
    let client = backend_client();

    let request = json!({"kind": "system", "body": {"notice": "starting"}, "priority": "high"});
    let (status, reply) = send(client.post(&messages).json(&request)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply, json!({"seq": 1, "epoch": TEST_EPOCH}));
    let (_, reply) = send(client.post(&messages).json(&json!({"body": "plain"}))).await;
    assert_eq!(reply["seq"], 2, "kind defaults to system, durable to true");

    let sent = pusher.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0].room.as_str(), sent[0].kind.as_str()),
        (id, "system")
    );
    assert_eq!(sent[0].priority, Priority::High as i32);
    assert!(sent[0].durable);
    let body: Value = serde_json::from_slice(&sent[0].body).expect("json");
    assert_eq!(body, json!({"notice": "starting"}));
    assert_eq!(sent[1].priority, Priority::Normal as i32);

    let ephemeral = json!({"kind": "counter", "body": {"likes": 3}, "durable": false});
    let (status, reply) = send(client.post(&messages).json(&ephemeral)).await;
    assert_eq!((status, reply["seq"].as_u64()), (200, Some(0)));
}

#[tokio::test]
async fn bad_message_requests_are_rejected_as_json() {
    let url = serve(RecordingPusher::new()).await;
    let (_, room) = create(&url, json!({"title": "Quiz"})).await;
    let id = room["room_id"].as_str().expect("room_id");
    let client = backend_client();
    let messages = format!("{url}/v1/rooms/{id}/messages");

    let cases = [
        (json!({"kind": "system"}), "missing field `body`"),
        (
            json!({"body": {}, "priority": "urgent"}),
            "unknown variant `urgent`",
        ),
        (json!({"body": null}), "body is required"),
        (
            json!({"kind": "", "body": {}}),
            "kind must be 1 to 64 characters",
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = send(client.post(&messages).json(&request)).await;
        assert_eq!(status, 400, "{request}");
        assert!(error_of(&body).1.contains(expected), "{request}: {body}");
    }

    let unknown = format!("{url}/v1/rooms/rNope/messages");
    let (status, body) = send(client.post(unknown).json(&json!({"body": {}}))).await;
    assert_eq!((status, error_of(&body).0), (404, "room_not_found"));
}

#[tokio::test]
async fn push_failures_are_503_json() {
    let url = serve(RecordingPusher::failing()).await;
    let (_, room) = create(&url, json!({"title": "Quiz"})).await;
    let id = room["room_id"].as_str().expect("room_id");
    let messages = format!("{url}/v1/rooms/{id}/messages");
    let res = backend_client()
        .post(messages)
        .json(&json!({"body": {}}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 503);
    // Retryable, and certainly not published: no push node got it.
    assert_eq!(
        res.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: serde_json::Value = res.json().await.expect("JSON");
    let (code, message) = error_of(&body);
    assert_eq!(code, "not_published");
    assert!(message.contains("no push node"), "{message}");
}

/// Serve the API on 127.0.0.1:0 and return the shared state too.
async fn serve_shared(pusher: Arc<dyn RoomPusher>) -> (String, Arc<crate::shared::Shared>) {
    let listener = bind().await;
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shared = shared(Config::default(), pusher);
    install_test_key(&shared);
    let app = super::backend_app(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, shared)
}

async fn post(url: String, body: Value) -> (u16, Value) {
    send(backend_client().post(url).json(&body)).await
}

async fn get(url: String) -> (u16, Value) {
    send(backend_client().get(url)).await
}

#[tokio::test]
async fn scheduled_private_rooms_are_invited_started_summarised_and_ended() {
    let pusher = RecordingPusher::new();
    let (url, shared) = serve_shared(pusher.clone()).await;
    let at = common::time::now_ms() + 3_600_000;
    let (status, room) = create(
        &url,
        json!({"title": "Tonight", "owner": "alice", "scheduled_at_ms": at, "private": true,
               "invite": ["bob", " bob "], "auto_end_empty_secs": 60}),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(
        (
            room["state"].as_str(),
            room["private"].as_bool(),
            room["scheduled_at_ms"].as_u64()
        ),
        (Some("scheduled"), Some(true), Some(at))
    );
    assert_eq!(room["auto_end_empty_secs"], 60);
    let id = room["room_id"].as_str().expect("room_id").to_owned();
    let invite = pusher.sent_users().pop().expect("invited");
    assert_eq!(
        (invite.uids, invite.kind.as_str()),
        (vec!["bob".to_owned()], "room_invite")
    );

    let (status, reply) = post(
        format!("{url}/v1/rooms/{id}/invite"),
        json!({"uids": ["carol"]}),
    )
    .await;
    assert_eq!(
        (status, reply["invited"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    let store = &shared.backends.store;
    store
        .member_joined(&id, "carol", "s1", "c")
        .await
        .expect("invited now");
    assert!(
        store.member_joined(&id, "dave", "s1", "c").await.is_err(),
        "not invited"
    );

    let (status, started) = post(format!("{url}/v1/rooms/{id}/start"), json!({})).await;
    assert_eq!(
        (status, started["state"].as_str()),
        (200, Some("live")),
        "{started}"
    );
    assert!(started["started_at_ms"].as_u64().is_some());
    let (status, again) = post(format!("{url}/v1/rooms/{id}/start"), json!({})).await;
    assert_eq!((status, error_of(&again).0), (400, "bad_request"));
    let told = pusher.sent_users().pop().expect("told");
    assert_eq!(told.kind, "room_started");

    let (status, live) = get(format!("{url}/v1/rooms/{id}/summary")).await;
    assert_eq!(
        (
            status,
            live["final"].as_bool(),
            live["unique_listeners"].as_u64()
        ),
        (200, Some(false), Some(1))
    );
    let (status, state) = get(format!("{url}/v1/rooms/{id}/state")).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        (state["role"].as_str(), state["state"]["state"].as_str()),
        (Some("listener"), Some("live"))
    );
    assert_eq!(state["state"]["members"], 1);

    let (status, ended) = post(format!("{url}/v1/rooms/{id}/end"), json!({})).await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(
        (ended["state"].as_str(), ended["summary"]["final"].as_bool()),
        (Some("ended"), Some(true))
    );
    let (status, again) = post(format!("{url}/v1/rooms/{id}/end"), json!({})).await;
    assert_eq!((status, error_of(&again).0), (409, "room_ended"));
    let (_, done) = get(format!("{url}/v1/rooms/{id}/summary")).await;
    assert_eq!(done["final"], true);
    let kinds: Vec<String> = pusher.events(&id).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["room_started", "room_ended"]);
    let (status, body) = post(format!("{url}/v1/rooms/rNope/start"), json!({})).await;
    assert_eq!((status, error_of(&body).0), (404, "room_not_found"));
}

#[tokio::test]
async fn members_are_paged_by_join_time_and_the_stage_is_listed_exactly() {
    let (url, shared) = serve_shared(RecordingPusher::new()).await;
    let (_, room) = create(&url, json!({"title": "Crowd", "owner": "host"})).await;
    let id = room["room_id"].as_str().expect("room_id").to_owned();
    let store = &shared.backends.store;
    for uid in ["host", "a", "b", "c", "d", "e"] {
        store
            .member_joined(&id, uid, "s1", "c")
            .await
            .expect("join");
    }
    let rooms = &shared.backends.rooms;
    rooms
        .apply(
            &id,
            &room_store::domain::rules::promote_moderator("host", "c"),
        )
        .await
        .expect("promote");
    rooms
        .apply(&id, &room_store::domain::rules::raise_hand("d", 5))
        .await
        .expect("hand");

    let mut listeners = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get(format!(
            "{url}/v1/rooms/{id}/members?limit=2&cursor={cursor}"
        ))
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 4);
        for m in page["members"].as_array().expect("members") {
            listeners.push(m["uid"].as_str().expect("uid").to_owned());
            assert!(m["joined_at_ms"].as_u64().is_some());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    listeners.sort();
    assert_eq!(listeners, ["a", "b", "d", "e"]);
    let (_, all) = get(format!("{url}/v1/rooms/{id}/members?role=all&limit=500")).await;
    assert_eq!(all["members"].as_array().map(Vec::len), Some(6));
    let (_, moderators) = get(format!("{url}/v1/rooms/{id}/members?role=moderator")).await;
    assert_eq!(moderators["members"], json!([{"uid": "c"}]));
    let (_, host) = get(format!("{url}/v1/rooms/{id}/members?role=host")).await;
    assert_eq!(host["members"], json!([{"uid": "host"}]));
    let (_, hands) = get(format!("{url}/v1/rooms/{id}/members?role=hand")).await;
    assert_eq!(hands["members"], json!([{"uid": "d", "raised_at_ms": 5}]));

    for query in [
        "role=king",
        "limit=0",
        "limit=501",
        "cursor=nonsense",
        "limit=x",
    ] {
        let (status, body) = get(format!("{url}/v1/rooms/{id}/members?{query}")).await;
        assert_eq!((status, error_of(&body).0), (400, "bad_request"), "{query}");
    }
    let (status, body) = get(format!("{url}/v1/rooms/rNope/members")).await;
    assert_eq!((status, error_of(&body).0), (404, "room_not_found"));
}

#[tokio::test]
async fn bad_lifecycle_requests_are_400() {
    let url = serve(RecordingPusher::new()).await;
    let many: Vec<String> = (0..1001).map(|n| format!("u{n}")).collect();
    let cases = [
        (
            json!({"title": "t", "auto_end_empty_secs": 604_801}),
            "auto_end_empty_secs",
        ),
        (
            json!({"title": "t", "scheduled_at_ms": 0}),
            "scheduled_at_ms",
        ),
        (json!({"title": "t", "invite": many}), "at most 1000"),
        (json!({"title": "t", "invite": [""]}), "invited uid"),
    ];
    for (request, expected) in cases {
        let (status, body) = create(&url, request.clone()).await;
        assert_eq!(status, 400, "{request}");
        assert!(error_of(&body).1.contains(expected), "{request}: {body}");
    }
    let (_, room) = create(&url, json!({"title": "t"})).await;
    let id = room["room_id"].as_str().expect("room_id");
    assert_eq!(room["auto_end_empty_secs"], 300, "the configured default");
    let (status, body) = post(format!("{url}/v1/rooms/{id}/invite"), json!({"uids": []})).await;
    assert_eq!((status, error_of(&body).0), (400, "bad_request"));
}

#[tokio::test]
async fn a_message_retried_with_its_idempotency_key_is_appended_once() {
    let pusher = RecordingPusher::new();
    let url = serve(pusher.clone()).await;
    let (_, room) = create(&url, json!({"title": "Quiz"})).await;
    let id = room["room_id"].as_str().expect("room_id");
    let messages = format!("{url}/v1/rooms/{id}/messages");
    let client = backend_client();
    let request = json!({"kind": "score", "body": {"goal": 1}});
    let keyed = |key: &str| {
        client
            .post(&messages)
            .header("Idempotency-Key", key)
            .json(&request)
    };

    let first = keyed("goal-1").send().await.expect("request");
    assert_eq!(first.status().as_u16(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    assert_eq!(first, json!({"seq": 1, "epoch": TEST_EPOCH}));
    let retry = keyed("goal-1").send().await.expect("request");
    assert_eq!(retry.status().as_u16(), 200);
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let retry: Value = retry.json().await.expect("json");
    assert_eq!(retry, first, "the first reply again");
    assert_eq!(pusher.sent().len(), 1, "appended once");

    let (status, other) = send(keyed("goal-2")).await;
    assert_eq!((status, other["seq"].as_u64()), (200, Some(2)));
    let (status, unkeyed) = send(client.post(&messages).json(&request)).await;
    assert_eq!((status, unkeyed["seq"].as_u64()), (200, Some(3)));
    assert_eq!(pusher.sent().len(), 3);

    for bad in ["", "two words", &"k".repeat(129)] {
        let (status, body) = send(keyed(bad)).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(error_of(&body).1.contains("Idempotency-Key"), "{body}");
    }
    assert_eq!(pusher.sent().len(), 3);
}

#[tokio::test]
async fn a_failed_keyed_publish_can_be_retried_with_the_same_key() {
    let url = serve(RecordingPusher::failing()).await;
    let (_, room) = create(&url, json!({"title": "Quiz"})).await;
    let id = room["room_id"].as_str().expect("room_id");
    let messages = format!("{url}/v1/rooms/{id}/messages");
    for _ in 0..2 {
        let (status, body) = send(
            backend_client()
                .post(&messages)
                .header("Idempotency-Key", "k1")
                .json(&json!({"body": {}})),
        )
        .await;
        assert_eq!(
            (status, error_of(&body).0),
            (503, "not_published"),
            "a failure is not recorded as the key's reply"
        );
    }
}
