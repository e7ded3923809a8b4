//! Long polling and HTTP actions through the HTTP app with a recording
//! pusher: many members, exact sampling, paused time. The end-to-end tests
//! against a real push node are in integration-tests (`tests/longpoll.rs`).

use std::sync::Arc;
use std::time::Duration;

use common::auth::mint_hs256;
use proto::client::v1::Priority;
use proto::internal::v1::PushRoomRequest;
use room_store::{MemoryRoomStore, NewRoom, RoomStore};
use serde_json::{Value, json};

use crate::Config;
use crate::longpoll::cache::Source;
use crate::pusher::RoomPusher;
use crate::test_util::{RecordingPusher, TEST_EPOCH, bind, shared_on};

const SECRET: &str = "poll-secret";

fn token(uid: &str) -> String {
    mint_hs256(SECRET, uid, 600).expect("mint")
}

fn config() -> Config {
    Config {
        token_secret: SECRET.into(),
        ..Config::default()
    }
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

async fn poll(base: &str, room: &str, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{base}/v1/rooms/{room}/messages?{query}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    send(req).await
}

async fn act(base: &str, room: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/rooms/{room}/actions"))
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    send(req).await
}

fn seqs(reply: &Value) -> Vec<u64> {
    reply["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().expect("error.code")
}

/// The HTTP app on `shared`; returns its base URL.
async fn serve(shared: Arc<crate::shared::Shared>) -> String {
    let listener = bind().await;
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = crate::http::client_app(shared);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A room with `members` distinct members.
async fn room_of(store: &MemoryRoomStore, members: u32) -> String {
    let new = NewRoom {
        owner: None,
        ..NewRoom::titled("Big show", None)
    };
    let room = store.create_room(new).await.expect("create").id;
    for n in 0..members {
        let uid = format!("u{n}");
        store
            .member_joined(&room, &uid, "s1", "conn-1")
            .await
            .expect("join");
    }
    room
}

async fn push(pusher: &RecordingPusher, room: &str, priority: Priority) {
    let request = PushRoomRequest {
        room: room.into(),
        kind: "comment".into(),
        body: bytes::Bytes::from_static(b"{}"),
        sender: "u1".into(),
        priority: priority as i32,
        durable: true,
    };
    pusher.push_room(request).await.expect("push");
}

#[tokio::test]
async fn sampling_in_a_large_room_keeps_every_high_priority_message_and_covers_the_range() {
    let store = Arc::new(MemoryRoomStore::new());
    let pusher = RecordingPusher::new();
    let url = serve(shared_on(store.clone(), config(), pusher.clone())).await;
    // 1,500 members: large (sampled), and a cap of 100 per reply.
    let room = room_of(&store, 1_500).await;
    for seq in 1..=300_u64 {
        let priority = if seq % 10 == 0 {
            Priority::High
        } else {
            Priority::Low
        };
        push(&pusher, &room, priority).await;
    }
    let (status, reply) = poll(
        &url,
        &room,
        Some(&token("bob")),
        &format!("after=0&epoch={TEST_EPOCH}"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["recovered"], true);
    assert_eq!(
        (reply["first_seq"].as_u64(), reply["last_seq"].as_u64()),
        (Some(1), Some(300)),
        "the whole range is covered"
    );
    assert_eq!(reply["next_after"], 300);
    let got = seqs(&reply);
    assert_eq!(got.len(), 100, "the cap of a 1,500-member room");
    let highs: Vec<u64> = (1..=30).map(|n| n * 10).collect();
    assert!(
        highs.iter().all(|h| got.contains(h)),
        "every high-priority message is kept: {got:?}"
    );
    // The 70 low-priority slots go to the newest low-priority messages.
    let lows: Vec<u64> = got.iter().copied().filter(|s| s % 10 != 0).collect();
    let all_lows: Vec<u64> = (1..=300).filter(|s| s % 10 != 0).collect();
    let newest_lows = &all_lows[all_lows.len() - 70..];
    assert_eq!(lows, newest_lows);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in seq order");
    for m in reply["messages"].as_array().expect("messages") {
        let want = if m["seq"].as_u64().expect("seq") % 10 == 0 {
            "high"
        } else {
            "low"
        };
        assert_eq!(m["priority"], want);
    }
}

#[tokio::test]
async fn the_reply_cap_shrinks_as_the_room_grows() {
    let store = Arc::new(MemoryRoomStore::new());
    let pusher = RecordingPusher::new();
    let url = serve(shared_on(store.clone(), config(), pusher.clone())).await;
    let bob = token("bob");
    for (members, cap) in [(10, 500), (500, 200), (5_000, 100), (20_000, 50)] {
        let room = room_of(&store, members).await;
        for _ in 0..600 {
            push(&pusher, &room, Priority::Normal).await;
        }
        let (status, reply) = poll(
            &url,
            &room,
            Some(&bob),
            &format!("after=0&epoch={TEST_EPOCH}"),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        let got = seqs(&reply);
        // Normal-priority messages are never sampled: the range ends at the cap.
        assert_eq!(got, (1..=cap).collect::<Vec<u64>>(), "{members} members");
        assert_eq!(reply["last_seq"], cap, "{members} members");
        assert_eq!(reply["next_after"], cap, "{members} members");
        assert_eq!(
            reply["poll_after_ms"], 0,
            "{members} members: more is pending"
        );
    }
}

#[tokio::test]
async fn polling_needs_a_configured_token_key() {
    let store = Arc::new(MemoryRoomStore::new());
    let url = serve(shared_on(
        store.clone(),
        Config::default(),
        RecordingPusher::new(),
    ))
    .await;
    let room = room_of(&store, 0).await;
    let bob = token("bob");
    let (status, body) = poll(&url, &room, Some(&bob), "").await;
    assert_eq!((status, error_code(&body)), (503, "unavailable"), "{body}");
    assert_eq!(body["error"]["message"], "polling is not configured");
    let comment = json!({"action": "comment", "payload": {"text": "hi"}});
    let (status, body) = act(&url, &room, Some(&bob), comment).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test(start_paused = true)]
async fn the_cache_reads_large_rooms_about_once_a_second_and_small_ones_ten_times() {
    let store = Arc::new(MemoryRoomStore::new());
    let pusher = RecordingPusher::new();
    let shared = shared_on(store.clone(), config(), pusher.clone());
    let small = room_of(&store, 3).await;
    let large = room_of(&store, 1_000).await;
    // Many pollers of each room: one cache entry, one reader.
    for _ in 0..50 {
        let small_source = shared.longpoll.open(&small).await;
        assert!(matches!(small_source, Ok(Source::Cached(_))));
        let large_source = shared.longpoll.open(&large).await;
        assert!(matches!(large_source, Ok(Source::Cached(_))));
    }
    assert_eq!(shared.longpoll.len(), 2);
    let loaded = (pusher.pulls(&small), pusher.pulls(&large));
    assert_eq!(
        loaded,
        (2, 2),
        "loading is a head read and a window read, once"
    );

    tokio::time::sleep(Duration::from_secs(10)).await;
    let small_pulls = pusher.pulls(&small) - loaded.0;
    let large_pulls = pusher.pulls(&large) - loaded.1;
    assert!(
        (99..=100).contains(&small_pulls),
        "small room: {small_pulls} pulls in 10 s"
    );
    assert!(
        (9..=10).contains(&large_pulls),
        "large room: {large_pulls} pulls in 10 s"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_rooms_leave_the_cache_and_its_size_is_bounded() {
    let store = Arc::new(MemoryRoomStore::new());
    let pusher = RecordingPusher::new();
    let cfg = Config {
        poll_cache_rooms_max: 1,
        poll_cache_idle_ms: 5_000,
        ..config()
    };
    let registry = prometheus::Registry::new();
    let shared = Arc::new(
        crate::shared::Shared::new(cfg, store.clone(), pusher.clone(), &registry).expect("shared"),
    );
    let gauge = || {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == "roomcast_biz_poll_cache_rooms")
            .map(|f| f.get_metric()[0].get_gauge().get_value())
    };
    let first = room_of(&store, 1).await;
    let second = room_of(&store, 1).await;
    assert!(matches!(
        shared.longpoll.open(&first).await,
        Ok(Source::Cached(_))
    ));
    assert!(
        matches!(
            shared.longpoll.open(&second).await,
            Ok(Source::Direct { .. })
        ),
        "the cache is full: the second room is read directly"
    );
    assert_eq!((shared.longpoll.len(), gauge()), (1, Some(1.0)));

    // Polled every 2 s, the first room stays.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(matches!(
            shared.longpoll.open(&first).await,
            Ok(Source::Cached(_))
        ));
    }
    // Unpolled for longer than 5 s, it goes, and its reads stop.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!((shared.longpoll.len(), gauge()), (0, Some(0.0)));
    let pulls = pusher.pulls(&first);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(pusher.pulls(&first), pulls, "no reads for a dropped room");
    assert!(matches!(
        shared.longpoll.open(&second).await,
        Ok(Source::Cached(_))
    ));
}
