//! Long polling and HTTP actions of room-biz end to end: through `run`, a
//! real in-process push node (memory log), gRPC and HTTP
//! ([`BizStack`]). Tests that need many members, exact sampling or paused
//! time run against a recording pusher in room-biz's unit tests.

use std::time::Duration;

use common::auth::mint_hs256;
use integration_tests::biz_stack::BizStack;
use proto::client::v1::Code;
use proto::internal::v1::ActionRequest;
use proto::internal::v1::biz_client::BizClient;
use room_biz::{Config, MemoryRoomStore, RoomStore};
use serde_json::{Value, json};

const SECRET: &str = "poll-secret";
const PATIENCE: Duration = Duration::from_secs(5);

fn token(uid: &str) -> String {
    mint_hs256(SECRET, uid, 600).expect("mint")
}

fn config() -> Config {
    Config {
        token_secret: SECRET.into(),
        ..Config::default()
    }
}

/// Poll `room` as `uid`.
async fn poll_as(stack: &BizStack, room: &str, uid: &str, query: &str) -> (u16, Value) {
    poll(&stack.base, room, Some(&token(uid)), query).await
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

/// The room's stream epoch, from a poll without a position.
async fn epoch_of(stack: &BizStack, room: &str) -> u64 {
    let (status, reply) = poll_as(stack, room, "bob", "").await;
    assert_eq!(status, 200, "{reply}");
    reply["epoch"].as_u64().expect("epoch")
}

/// Poll without a position until the cached head is `head`.
async fn wait_for_head(stack: &BizStack, room: &str, head: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, reply) = poll_as(stack, room, "bob", "").await;
        assert_eq!(status, 200, "{reply}");
        if reply["head_seq"] == head {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never reached {head}: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_long_poll_returns_when_a_message_is_published_and_not_before() {
    let stack = BizStack::start(config(), 1000, 512).await.expect("stack");
    let room = stack.room(None).await.expect("room");

    // No position: a snapshot and the head, like a socket join.
    let (status, first) = poll_as(&stack, &room, "bob", "").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["recovered"], false);
    assert_eq!(first["head_seq"], 0);
    assert_eq!(first["next_after"], 0);
    assert_eq!(first["snapshot"]["title"], "Night talk");
    let epoch = first["epoch"].as_u64().expect("epoch");
    assert_ne!(epoch, 0);

    let base = stack.base.clone();
    let waiting_room = room.clone();
    let waiting = tokio::spawn(async move {
        let query = format!("after=0&epoch={epoch}&wait=20");
        poll(&base, &waiting_room, Some(&token("bob")), &query).await
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !waiting.is_finished(),
        "nothing was published: still waiting"
    );

    let seq = stack
        .publish(&room, json!({"notice": "starting"}), "high")
        .await
        .expect("publish");
    let (status, reply) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the poll returns once the message is out")
        .expect("task");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(seq, 1);
    assert_eq!(reply["recovered"], true);
    assert_eq!(reply["epoch"], epoch);
    assert_eq!(
        (reply["first_seq"].as_u64(), reply["last_seq"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(reply["next_after"], 1);
    assert_eq!(reply["snapshot"], Value::Null);
    let message = &reply["messages"][0];
    assert_eq!(message["seq"], 1);
    assert_eq!(message["kind"], "system");
    assert_eq!(message["priority"], "high");
    assert_eq!(message["body"], json!({"notice": "starting"}));
    assert!(message["ts_ms"].as_u64().expect("ts_ms") > 0);

    // Shutdown ends a waiting long-poll with an empty answer at once.
    let base = stack.base.clone();
    let waiting_room = room.clone();
    let waiting = tokio::spawn(async move {
        let query = format!("after=1&epoch={epoch}&wait=30");
        poll(&base, &waiting_room, Some(&token("bob")), &query).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.shutdown.cancel();
    let (status, reply) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("shutdown does not wait for the poll's 30 s")
        .expect("task");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["first_seq"].as_u64(), reply["last_seq"].as_u64()),
        (Some(2), Some(1))
    );
    tokio::time::timeout(PATIENCE, stack.biz)
        .await
        .expect("biz stops in time")
        .expect("task")
        .expect("clean stop");
}

#[tokio::test]
async fn resuming_within_history_returns_exactly_the_missed_messages() {
    // A 4-message cache window, so older positions read the push layer directly.
    let cfg = Config {
        poll_cache_window: 4,
        ..config()
    };
    let stack = BizStack::start(cfg, 1000, 512).await.expect("stack");
    let room = stack.room(None).await.expect("room");
    let epoch = epoch_of(&stack, &room).await;
    for n in 1..=10 {
        let body = json!({"n": n});
        assert_eq!(
            stack.publish(&room, body, "normal").await.expect("publish"),
            n
        );
    }

    // From the cache (7 is within its window 7..=10).
    wait_for_head(&stack, &room, 10).await;
    let (status, reply) = poll_as(&stack, &room, "bob", &format!("after=7&epoch={epoch}")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(seqs(&reply), [8, 9, 10]);
    assert_eq!(
        (reply["first_seq"].as_u64(), reply["last_seq"].as_u64()),
        (Some(8), Some(10))
    );
    assert_eq!(reply["next_after"], 10);
    assert_eq!(reply["messages"][1]["body"], json!({"n": 9}));
    assert_eq!(reply["messages"][1]["priority"], "normal");

    // Older than the window: read directly, still exactly the missed ones.
    let (_, reply) = poll_as(&stack, &room, "bob", &format!("after=2&epoch={epoch}")).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(seqs(&reply), (3..=10).collect::<Vec<_>>());
    assert_eq!(
        (reply["first_seq"].as_u64(), reply["last_seq"].as_u64()),
        (Some(3), Some(10))
    );

    // At the head with no wait: an empty range right after the position.
    let (_, reply) = poll_as(&stack, &room, "bob", &format!("after=10&epoch={epoch}")).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(seqs(&reply), Vec::<u64>::new());
    assert_eq!(
        (reply["first_seq"].as_u64(), reply["last_seq"].as_u64()),
        (Some(11), Some(10))
    );
    assert_eq!(reply["next_after"], 10);
    assert_eq!(
        reply["poll_after_ms"], 100,
        "small rooms refresh every 100 ms"
    );

    // `limit` caps the reply; the range ends early and the rest is due at once.
    let (_, reply) = poll_as(
        &stack,
        &room,
        "bob",
        &format!("after=2&epoch={epoch}&limit=3"),
    )
    .await;
    assert_eq!(seqs(&reply), [3, 4, 5]);
    assert_eq!(
        (reply["last_seq"].as_u64(), reply["next_after"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(reply["poll_after_ms"], 0);
}

#[tokio::test]
async fn lost_positions_restart_from_the_head_with_a_snapshot() {
    // The log keeps 5 messages and the push ring 3, so seq 2 is gone.
    let stack = BizStack::start(config(), 5, 3).await.expect("stack");
    let room = stack.room(Some("alice")).await.expect("room");
    let epoch = epoch_of(&stack, &room).await;
    for n in 1..=12 {
        stack
            .publish(&room, json!({"n": n}), "normal")
            .await
            .expect("publish");
    }
    // A poll without a position starts at the cached head, which trails the
    // stream by up to one refresh: wait until the cache caught up.
    wait_for_head(&stack, &room, 12).await;
    let cases = [
        ("wrong epoch", format!("after=11&epoch={}", epoch + 1)),
        ("history truncated", format!("after=1&epoch={epoch}")),
        ("past the head", format!("after=50&epoch={epoch}")),
        ("no position", "after=11".to_owned()),
    ];
    for (case, query) in cases {
        let (status, reply) = poll_as(&stack, &room, "alice", &query).await;
        assert_eq!(status, 200, "{case}: {reply}");
        assert_eq!(reply["recovered"], false, "{case}: {reply}");
        assert_eq!(reply["epoch"], epoch, "{case}");
        assert_eq!(reply["head_seq"], 12, "{case}");
        assert_eq!(
            (reply["first_seq"].as_u64(), reply["last_seq"].as_u64()),
            (Some(12), Some(12)),
            "{case}"
        );
        assert_eq!(reply["next_after"], 12, "{case}");
        assert_eq!(seqs(&reply), Vec::<u64>::new(), "{case}");
        let snapshot = &reply["snapshot"];
        assert_eq!(snapshot["room"], room.as_str(), "{case}");
        assert_eq!(snapshot["title"], "Night talk", "{case}");
        assert_eq!(snapshot["role"], "host", "{case}: alice owns the room");
        assert_eq!(snapshot["state"]["state"], "live", "{case}");
        assert_eq!(snapshot["state"]["owner"], "alice", "{case}");
    }
    // From the new position the client resumes normally.
    let (_, reply) = poll_as(&stack, &room, "alice", &format!("after=12&epoch={epoch}")).await;
    assert_eq!(reply["recovered"], true, "{reply}");
}

#[tokio::test]
async fn bad_tokens_are_401_and_bad_rooms_are_refused() {
    let stack = BizStack::start(config(), 1000, 512).await.expect("stack");
    let room = stack.room(None).await.expect("room");
    let base = &stack.base;

    let (status, body) = poll(base, &room, None, "").await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "unauthenticated"),
        "{body}"
    );
    let forged = mint_hs256("another-secret", "bob", 600).expect("mint");
    let (status, body) = poll(base, &room, Some(&forged), "").await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "unauthenticated"),
        "{body}"
    );
    let expired = mint_hs256(SECRET, "bob", -600).expect("mint");
    let (status, body) = poll(base, &room, Some(&expired), "").await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "token_expired"),
        "{body}"
    );
    let basic = reqwest::Client::new()
        .get(format!("{base}/v1/rooms/{room}/messages"))
        .basic_auth("bob", Some("pw"));
    let (status, body) = send(basic).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "unauthenticated"),
        "{body}"
    );
    let comment = json!({"action": "comment", "payload": {"text": "hi"}});
    let (status, body) = act(base, &room, Some(&forged), comment.clone()).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "unauthenticated"),
        "{body}"
    );

    let (status, body) = poll_as(&stack, "rNope", "bob", "").await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "room_not_found"),
        "{body}"
    );
    let (status, body) = poll_as(&stack, &room, "bob", "wait=31").await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("wait")
    );
    let (status, body) = poll_as(&stack, &room, "bob", "after=-1").await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"), "{body}");

    stack.store.end_room(&room).await.expect("end");
    let (status, body) = poll_as(&stack, &room, "bob", "").await;
    assert_eq!((status, error_code(&body)), (409, "room_ended"), "{body}");
    let (status, body) = act(base, &room, Some(&token("bob")), comment).await;
    assert_eq!((status, error_code(&body)), (409, "room_ended"), "{body}");
}

#[tokio::test]
async fn http_comments_run_the_socket_action_table_and_share_its_rate_limit() {
    let cfg = Config {
        comment_burst: 2,
        comment_rate_per_sec: 1,
        ..config()
    };
    let stack = BizStack::start(cfg, 1000, 512).await.expect("stack");
    let room = stack.room(None).await.expect("room");
    let epoch = epoch_of(&stack, &room).await;
    let bob = token("bob");

    let comment =
        json!({"action": "comment", "payload": {"text": "hello", "attrs": {"color": "red"}}});
    let (status, reply) = act(&stack.base, &room, Some(&bob), comment.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply, json!({"code": 0, "message": "", "body": {"seq": 1}}));

    // Pollers see it as socket clients would.
    let (_, polled) = poll_as(
        &stack,
        &room,
        "carol",
        &format!("after=0&epoch={epoch}&wait=5"),
    )
    .await;
    let message = &polled["messages"][0];
    assert_eq!(message["kind"], "comment", "{polled}");
    assert_eq!(message["sender"], "bob");
    assert_eq!(message["priority"], "low");
    assert_eq!(
        message["body"],
        json!({"uid": "bob", "text": "hello", "attrs": {"color": "red"}})
    );

    // The burst of 2 is shared with bob's socket session: one socket comment
    // uses the second slot, and the next HTTP comment is refused.
    let channel = common::grpc::lazy_channel(&stack.grpc, &common::grpc::InternalAuth::default())
        .expect("channel");
    let socket_comment = ActionRequest {
        id: 1,
        uid: "bob".into(),
        room: room.clone(),
        action: "comment".into(),
        payload: bytes::Bytes::from_static(br#"{"text":"from the socket"}"#),
        session_id: "s1".into(),
        ..ActionRequest::default()
    };
    let mut replies = BizClient::new(channel)
        .actions(futures::stream::iter([socket_comment]))
        .await
        .expect("stream")
        .into_inner();
    let reply = replies.message().await.expect("ok").expect("reply");
    assert_eq!(reply.code, Code::Ok as i32, "{}", reply.message);
    let (status, body) = act(&stack.base, &room, Some(&bob), comment.clone()).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("too many comments")
    );
    // Per user: carol is not limited.
    let (status, _) = act(&stack.base, &room, Some(&token("carol")), comment).await;
    assert_eq!(status, 200);

    // Refusals map to HTTP statuses with the socket code in snake case.
    let cases = [
        (
            json!({"action": "dance", "payload": {}}),
            400,
            "bad_request",
        ),
        (
            json!({"action": "comment", "payload": {"text": ""}}),
            400,
            "bad_request",
        ),
        (json!({"payload": {}}), 400, "bad_request"),
    ];
    for (request, want_status, want_code) in cases {
        let (status, body) = act(&stack.base, &room, Some(&token("dave")), request.clone()).await;
        assert_eq!(
            (status, error_code(&body)),
            (want_status, want_code),
            "{request}: {body}"
        );
    }
    let (status, body) = act(
        &stack.base,
        "rNope",
        Some(&token("dave")),
        json!({"action": "comment", "payload": {"text": "x"}}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "room_not_found"),
        "{body}"
    );
}

/// Wait until `room` has `want` members.
async fn wait_members(store: &MemoryRoomStore, room: &str, want: u32) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let count = store.member_count(room).await.expect("count");
        if count == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} members, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pollers_are_members_until_they_stop_polling() {
    let cfg = Config {
        poll_cache_idle_ms: 600,
        ..config()
    };
    let stack = BizStack::start(cfg, 1000, 512).await.expect("stack");
    let room = stack.room(None).await.expect("room");
    poll_as(&stack, &room, "bob", "").await;
    poll_as(&stack, &room, "carol", "").await;
    poll_as(&stack, &room, "carol", "").await;
    wait_members(&stack.store, &room, 2).await;

    // Carol keeps polling, bob stopped: bob leaves, carol stays.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, reply) = poll_as(&stack, &room, "carol", "").await;
        assert_eq!(status, 200, "{reply}");
        if stack.store.member_count(&room).await.expect("count") == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob never left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, reply) = poll_as(&stack, &room, "carol", "").await;
    assert_eq!(reply["snapshot"]["members"], 1, "{reply}");

    // Nobody polls: the room leaves the cache, and carol the room.
    wait_members(&stack.store, &room, 0).await;
}

// === A scripted session through `run`, a real push node, gRPC and HTTP ===

/// What a client knows of a room: the snapshot, then every durable event
/// applied (events carry absolute per-user state, so a replay is harmless).
#[derive(Debug, Default, PartialEq)]
struct ClientView {
    state: String,
    moderators: std::collections::BTreeSet<String>,
    speakers: std::collections::BTreeSet<String>,
    hands: std::collections::BTreeSet<String>,
    invites: std::collections::BTreeSet<String>,
    muted: std::collections::BTreeMap<String, String>,
    /// poll id → (state, tallies once closed).
    polls: std::collections::BTreeMap<String, (String, Option<Value>)>,
    slow_mode_secs: u64,
}

fn uids(list: &Value) -> std::collections::BTreeSet<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|e| e.get("uid").unwrap_or(e).as_str().expect("uid").to_owned())
        .collect()
}

impl ClientView {
    fn from_snapshot(state: &Value) -> Self {
        let mut view = Self {
            state: state["state"].as_str().expect("state").to_owned(),
            moderators: uids(&state["moderators"]),
            speakers: uids(&state["speakers"]),
            hands: uids(&state["hands"]),
            invites: uids(&state["invites"]),
            muted: serde_json::from_value(state["muted"].clone()).expect("muted"),
            polls: Default::default(),
            slow_mode_secs: state["slow_mode_secs"].as_u64().expect("slow mode"),
        };
        for poll in state["polls"].as_array().expect("polls") {
            view.poll(poll);
        }
        view
    }

    fn poll(&mut self, poll: &Value) {
        let state = poll["state"].as_str().expect("poll state").to_owned();
        let tallies = (state == "closed").then(|| poll["tallies"].clone());
        let id = poll["poll_id"].as_str().expect("poll_id").to_owned();
        self.polls.insert(id, (state, tallies));
    }

    fn apply(&mut self, kind: &str, body: &Value) {
        if let Some(user) = body.get("user").filter(|u| !u.is_null()) {
            let uid = user["uid"].as_str().expect("uid").to_owned();
            let role = user["role"].as_str().expect("role");
            for (set, wanted) in [
                (&mut self.moderators, "moderator"),
                (&mut self.speakers, "speaker"),
            ] {
                if role == wanted {
                    set.insert(uid.clone());
                } else {
                    set.remove(&uid);
                }
            }
            for (set, present) in [
                (&mut self.hands, !user["hand_raised_at_ms"].is_null()),
                (&mut self.invites, !user["invited_by"].is_null()),
            ] {
                if present {
                    set.insert(uid.clone());
                } else {
                    set.remove(&uid);
                }
            }
            match user["muted"].as_str() {
                Some(m) => self.muted.insert(uid, m.to_owned()),
                None => self.muted.remove(&uid),
            };
        }
        match kind {
            "poll_opened" | "poll_closed" => self.poll(&body["poll"]),
            "slow_mode" => self.slow_mode_secs = body["seconds"].as_u64().expect("seconds"),
            "room_started" => self.state = "live".into(),
            "room_ended" => self.state = "ended".into(),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_scripted_session_keeps_every_client_view_equal_to_the_server() {
    let stack = BizStack::start(config(), 1000, 512).await.expect("stack");
    let http = stack.backend_client();
    let base = stack.base.clone();
    let backend = stack.backend.clone();
    let at = common::time::now_ms() + 3_600_000;
    let (status, created) = send(http.post(format!("{backend}/v1/rooms")).json(
        &json!({"title": "Live talk", "owner": "host", "scheduled_at_ms": at, "invite": ["guest"]}),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let room = created["room_id"].as_str().expect("room_id").to_owned();

    // Joins over gRPC, as a conn node makes them.
    let mut biz = BizClient::new(
        common::grpc::lazy_channel(&stack.grpc, &common::grpc::InternalAuth::default())
            .expect("channel"),
    );
    for uid in ["host", "guest", "fan", "bob"] {
        let join = proto::internal::v1::JoinRequest {
            uid: uid.into(),
            room: room.clone(),
            node_id: "conn-1".into(),
            session_id: format!("s-{uid}"),
            ..Default::default()
        };
        let snapshot = biz.authorize_join(join).await.expect("join").into_inner();
        let snapshot = snapshot.snapshot.expect("snapshot");
        let state: Value = serde_json::from_slice(&snapshot.state).expect("state JSON");
        assert_eq!(state["state"], "scheduled");
        assert_eq!(
            snapshot.role,
            if uid == "host" { "host" } else { "listener" }
        );
    }
    // The client's starting point: a snapshot and the stream head.
    let (_, start) = poll_as(&stack, &room, "fan", "").await;
    let epoch = start["epoch"].as_u64().expect("epoch");
    let mut client = ClientView::from_snapshot(&start["snapshot"]["state"]);
    let mut after = start["next_after"].as_u64().expect("next_after");

    let step = |uid: &'static str, action: &'static str, payload: Value| {
        let (base, room) = (base.clone(), room.clone());
        async move {
            let body = json!({"action": action, "payload": payload});
            let (status, reply) = act(&base, &room, Some(&token(uid)), body).await;
            assert_eq!(status, 200, "{uid} {action}: {reply}");
            reply["body"].clone()
        }
    };
    step("fan", "interest", json!({})).await;
    step("bob", "raise_hand", json!({})).await;
    let (status, _) = send(
        http.post(format!("{backend}/v1/rooms/{room}/start"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
    step("host", "invite_speaker", json!({"uid": "bob"})).await;
    step("bob", "accept_invite", json!({})).await;
    step("bob", "unmute", json!({})).await;
    step("host", "mute", json!({"uid": "bob"})).await;
    step("host", "promote_moderator", json!({"uid": "guest"})).await;
    let poll = step(
        "guest",
        "poll_open",
        json!({"question": "More jazz?", "options": ["yes", "no"]}),
    )
    .await;
    let poll_id = poll["poll_id"].clone();
    step("fan", "vote", json!({"poll_id": poll_id, "option": 0})).await;
    step("bob", "vote", json!({"poll_id": poll_id, "option": 1})).await;
    step("host", "vote", json!({"poll_id": poll_id, "option": 0})).await;
    step(
        "fan",
        "gift",
        // Valued by the server's catalog (a heart is 5), not by the client.
        json!({"gift_id": "heart", "count": 2}),
    )
    .await;
    let comment = step("fan", "comment", json!({"text": "great show"})).await;
    step("bob", "comment", json!({"text": "thanks"})).await;
    for _ in 0..3 {
        step("fan", "like", json!({"count": 50})).await;
    }
    step("host", "remove_comment", json!({"seq": comment["seq"]})).await;
    step("guest", "slow_mode", json!({"seconds": 10})).await;
    step("guest", "poll_close", json!({"poll_id": poll_id})).await;
    step("host", "kick", json!({"uid": "fan"})).await;

    // Everything durable since the snapshot, through polling, up to the kick.
    let mut kinds: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while kinds.last().map(String::as_str) != Some("member_kicked") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream stalled: {kinds:?}"
        );
        let (status, reply) = poll_as(
            &stack,
            &room,
            "bob",
            &format!("after={after}&epoch={epoch}&wait=5"),
        )
        .await;
        assert_eq!(
            (status, reply["recovered"].as_bool()),
            (200, Some(true)),
            "{reply}"
        );
        for message in reply["messages"].as_array().expect("messages") {
            let kind = message["kind"].as_str().expect("kind");
            kinds.push(kind.to_owned());
            client.apply(kind, &message["body"]);
        }
        after = reply["next_after"].as_u64().expect("next_after");
    }
    assert_eq!(
        kinds,
        [
            "hand_raised",
            "room_started",
            "speaker_invited",
            "role_changed",
            "mute_changed",
            "mute_changed",
            "role_changed",
            "poll_opened",
            "gift",
            "comment",
            "comment",
            "comment_removed",
            "slow_mode",
            "poll_closed",
            "member_kicked",
        ]
    );
    let (_, server) = send(http.get(format!("{backend}/v1/rooms/{room}/state"))).await;
    let server_view = ClientView::from_snapshot(&server["state"]);
    assert_eq!(client, server_view, "the client rebuilt the server's state");
    assert_eq!(
        server_view.polls[poll_id.as_str().expect("id")].1,
        Some(json!([2, 1]))
    );
    // Bob was muted by the host; guest came on stage muted when promoted.
    assert_eq!(
        server["state"]["muted"],
        json!({"bob": "moderator", "guest": "self"})
    );

    // Kicked: out of the room, refused on the socket and over HTTP.
    let (status, body) = act(&base, &room, Some(&token("fan")), json!({"action": "like"})).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    let (status, body) = poll_as(&stack, &room, "fan", "").await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));

    // Likes reach the store within a window; the summary sees them.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, summary) = send(http.get(format!("{backend}/v1/rooms/{room}/summary"))).await;
        if summary["likes"] == 150 {
            assert_eq!(summary["comments"], 2);
            assert_eq!(
                (summary["gifts"].as_u64(), summary["gift_value"].as_u64()),
                (Some(2), Some(10))
            );
            assert_eq!(summary["unique_listeners"], 4);
            assert_eq!(summary["peak_concurrency"], 4);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "likes never flushed: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = step("host", "end_room", json!({})).await;
    assert_eq!(ended["summary"]["final"], true);
    assert_eq!(ended["summary"]["likes"], 150);
    let (status, body) = act(
        &base,
        &room,
        Some(&token("bob")),
        json!({"action": "raise_hand"}),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "room_ended"));
}
