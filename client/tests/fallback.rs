//! The polling fallback against a scripted router + WebSocket node + polling service (no
//! real services): exactly 3 failed attempts, the same events while polling, HTTP
//! actions, the way back to the long connection without a gap, short mode, stats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prost::Message as _;
use proto::client::v1::{
    ClientFrame, Delivery, Joined, Resume, ServerFrame, Welcome, client_frame, server_frame,
};
use roomcast_client::{Client, Code, ConnectOptions, Error, Event, Events, RoomMessage, Transport};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// Everything the mock services share with the test.
#[derive(Default)]
struct World {
    mode: String,
    ws_up: bool,
    /// WebSocket connection attempts (refused or accepted).
    ws_attempts: u32,
    /// Room `r1`'s stream: epoch and messages (seq = index + 1).
    epoch: u64,
    log: Vec<u64>,
    /// `(after, epoch)` of each poll.
    polls: Vec<(u64, u64)>,
    /// `(room, bearer, body)` of each action.
    actions: Vec<(String, String, Value)>,
    stats: Vec<Value>,
}

impl World {
    fn head(&self) -> u64 {
        self.log.len() as u64
    }

    fn append(&mut self) -> u64 {
        let seq = self.head() + 1;
        self.log.push(seq);
        seq
    }
}

type Shared = Arc<Mutex<World>>;

struct Mock {
    router_url: String,
    world: Shared,
    sockets: mpsc::Receiver<WebSocket>,
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

async fn poll(
    State(world): State<Shared>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if bearer(&headers) != "good-token" {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "bad token");
    }
    if room != "r1" {
        return refuse(StatusCode::NOT_FOUND, "ROOM_NOT_FOUND", "no such room");
    }
    let number = |key: &str| {
        query
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (after, epoch, wait) = (number("after"), number("epoch"), number("wait"));
    world.lock().expect("world").polls.push((after, epoch));
    // Long poll: wait (briefly, it is a test) for news past `after`.
    for _ in 0..(wait * 10).min(30) {
        let news = {
            let world = world.lock().expect("world");
            world.epoch != epoch || world.head() > after
        };
        if news {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let world = world.lock().expect("world");
    let head = world.head();
    let body = if epoch == world.epoch && after <= head {
        let messages: Vec<Value> = world
            .log
            .iter()
            .filter(|seq| **seq > after)
            .map(|seq| {
                json!({"seq": seq, "kind": "comment", "sender": "bob", "ts_ms": 1,
                       "priority": "normal", "body": {"n": seq}})
            })
            .collect();
        json!({"room": room, "epoch": world.epoch, "head_seq": head, "first_seq": after + 1,
               "last_seq": head, "recovered": true, "messages": messages, "snapshot": null,
               "next_after": head, "poll_after_ms": 10})
    } else {
        json!({"room": room, "epoch": world.epoch, "head_seq": head, "first_seq": 0,
               "last_seq": 0, "recovered": false, "messages": [],
               "snapshot": {"room": room, "title": "Live", "role": "listener", "members": 2,
                            "state": {}},
               "next_after": head, "poll_after_ms": 10})
    };
    axum::Json(body).into_response()
}

async fn action(
    State(world): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut world = world.lock().expect("world");
    world
        .actions
        .push((room.clone(), bearer(&headers), body.clone()));
    if room == "forbidden" {
        return refuse(StatusCode::FORBIDDEN, "FORBIDDEN", "not in this room");
    }
    let seq = world.append();
    axum::Json(json!({"code": 0, "message": "", "body": {"seq": seq}})).into_response()
}

impl Mock {
    async fn start(mode: &str, ws_up: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let world: Shared = Arc::new(Mutex::new(World {
            mode: mode.to_owned(),
            ws_up,
            epoch: 7,
            log: (1..=10).collect(),
            ..World::default()
        }));
        let (tx, sockets) = mpsc::channel(8);
        let base = format!("http://{addr}");
        let route_world = world.clone();
        let ws_world = world.clone();
        let stats_world = world.clone();
        let app = axum::Router::new()
            .route(
                "/v1/route",
                get(move || {
                    let mode = route_world.lock().expect("world").mode.clone();
                    let body = json!({
                        "mode": mode,
                        "node_id": "mock-1",
                        "endpoints": [{"transport": "ws", "url": format!("ws://{addr}/v1/ws")}],
                        "polling_url": format!("{base}/v1/rooms"),
                        "heartbeat_ms": 30000,
                        "retry_ms": 20,
                    });
                    async move { axum::Json(body) }
                }),
            )
            .route(
                "/v1/ws",
                get(move |upgrade: WebSocketUpgrade| {
                    let up = {
                        let mut world = ws_world.lock().expect("world");
                        world.ws_attempts += 1;
                        world.ws_up
                    };
                    let tx = tx.clone();
                    async move {
                        if !up {
                            return StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        upgrade
                            .protocols([proto::PROTOBUF_SUBPROTOCOL])
                            .on_upgrade(move |socket| async move {
                                let _ = tx.send(socket).await;
                            })
                            .into_response()
                    }
                }),
            )
            .route(
                "/v1/client-stats",
                post(move |axum::Json(body): axum::Json<Value>| {
                    stats_world.lock().expect("world").stats.push(body);
                    async { StatusCode::NO_CONTENT }
                }),
            )
            .route("/v1/rooms/{room}/messages", get(poll))
            .route("/v1/rooms/{room}/actions", post(action))
            .with_state(world.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            router_url: format!("http://{addr}"),
            world,
            sockets,
        }
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            request_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            transports: vec![Transport::Ws],
            long_retry_interval: Duration::from_millis(300),
            polling_wait: Duration::from_secs(1),
            ..ConnectOptions::new(self.router_url.clone(), "good-token").uid("alice")
        }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().expect("world")
    }

    /// The next socket, after its hello (answered with a welcome).
    async fn accept(&mut self) -> Conn {
        let socket = tokio::time::timeout(WAIT, self.sockets.recv())
            .await
            .expect("a connection in time")
            .expect("server running");
        let mut conn = Conn { socket };
        assert!(matches!(conn.recv().await, client_frame::Frame::Hello(_)));
        conn.send(server_frame::Frame::Welcome(Welcome {
            session_id: "s1".into(),
            uid: "alice".into(),
            heartbeat_ms: 30_000,
            max_frame_bytes: 1024,
            node_id: "mock-1".into(),
        }))
        .await;
        conn
    }
}

struct Conn {
    socket: WebSocket,
}

impl Conn {
    async fn recv(&mut self) -> client_frame::Frame {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.recv())
                .await
                .expect("a frame in time")
                .expect("socket open")
                .expect("socket ok");
            if let Message::Binary(bytes) = message {
                match ClientFrame::decode(bytes)
                    .expect("frame")
                    .frame
                    .expect("set")
                {
                    client_frame::Frame::Ping(_) => continue,
                    frame => return frame,
                }
            }
        }
    }

    async fn send(&mut self, frame: server_frame::Frame) {
        let bytes = ServerFrame { frame: Some(frame) }.encode_to_vec();
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    async fn expect_join(&mut self) -> (u32, Option<Resume>) {
        match self.recv().await {
            client_frame::Frame::Join(join) => (join.r#ref, join.resume),
            other => panic!("expected join, got {other:?}"),
        }
    }

    async fn joined(&mut self, r#ref: u32, epoch: u64, start_seq: u64, recovered: bool) {
        let joined = Joined {
            r#ref,
            room: "r1".into(),
            epoch,
            start_seq,
            recovered,
            snapshot: None,
        };
        self.send(server_frame::Frame::Joined(joined)).await;
    }

    async fn deliver(&mut self, epoch: u64, first: u64, last: u64) {
        let messages = (first..=last)
            .map(|seq| RoomMessage {
                seq,
                kind: "comment".into(),
                ..Default::default()
            })
            .collect();
        let delivery = Delivery {
            room: "r1".into(),
            epoch,
            first_seq: first,
            last_seq: last,
            messages,
        };
        self.send(server_frame::Frame::Delivery(delivery)).await;
    }
}

async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("open")
}

/// Read events until `stop` matches one; returns everything read, that one included.
async fn events_until(events: &mut Events, stop: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(events).await;
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { message, .. } => Some(message.seq),
            _ => None,
        })
        .collect()
}

fn is_message(seq: u64) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Message { message, .. } if message.seq == seq)
}

#[tokio::test]
async fn falls_back_after_exactly_three_failures_and_comes_back_without_a_gap() {
    let mut mock = Mock::start("long", true).await;
    let (connect, conn) = tokio::join!(Client::connect(mock.options()), mock.accept());
    let (client, mut events) = connect.expect("connects");
    let mut conn = conn;
    assert_eq!(
        next_event(&mut events).await,
        Event::TransportChanged {
            transport: Transport::Ws
        }
    );
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    let joining = tokio::spawn({
        let client = client.clone();
        async move { client.join("r1").await }
    });
    let (r#ref, resume) = conn.expect_join().await;
    assert_eq!(resume, None);
    conn.joined(r#ref, 7, 10, false).await;
    joining.await.expect("task").expect("joined");
    let mut all = vec![next_event(&mut events).await];
    assert!(matches!(all[0], Event::Joined(_)));
    let (first, last) = {
        let mut world = mock.world();
        (world.append(), world.append())
    };
    conn.deliver(7, first, last).await;
    all.extend(events_until(&mut events, is_message(12)).await);

    // The node goes away and refuses every connection; 13 is published meanwhile.
    mock.world().ws_up = false;
    drop(conn);
    mock.world().append();
    let switch = events_until(&mut events, |e| matches!(e, Event::TransportChanged { .. })).await;
    assert_eq!(
        switch.last(),
        Some(&Event::TransportChanged {
            transport: Transport::Polling
        })
    );
    assert_eq!(
        mock.world().ws_attempts,
        1 + 3,
        "exactly 3 failed attempts before polling"
    );
    let reconnecting = switch
        .iter()
        .filter(|e| matches!(e, Event::Reconnecting { .. }))
        .count();
    assert_eq!(reconnecting, 3, "{switch:?}");
    assert!(matches!(switch[0], Event::Disconnected { .. }));
    assert_eq!(client.transport(), Transport::Polling);
    all.extend(switch);

    // The first poll resumes from the socket cursor: a recovered Joined, then 13.
    let polled = events_until(&mut events, is_message(13)).await;
    match &polled[0] {
        Event::Joined(joined) => assert!(joined.recovered && joined.epoch == 7, "{joined:?}"),
        other => panic!("expected the polling re-join, got {other:?}"),
    }
    assert_eq!(mock.world().polls[0], (12, 7));
    all.extend(polled);

    // Publishing while polling goes through the HTTP action endpoint.
    let reply = client.comment("r1", "via http").await.expect("published");
    assert_eq!(&reply.body[..], br#"{"seq":14}"#);
    {
        let world = mock.world();
        let (room, token, body) = world.actions.last().expect("an action");
        assert_eq!((room.as_str(), token.as_str()), ("r1", "good-token"));
        assert_eq!(
            body,
            &json!({"action": "comment", "payload": {"text": "via http"}})
        );
    }
    match client.comment("forbidden", "x").await {
        Err(Error::Refused {
            code: Code::Forbidden,
            message,
        }) => assert_eq!(message, "not in this room"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    all.extend(events_until(&mut events, is_message(14)).await);
    mock.world().append();
    all.extend(events_until(&mut events, is_message(15)).await);

    // The node is back: the periodic retry connects and resumes from the polling cursor.
    mock.world().ws_up = true;
    let mut conn = mock.accept().await;
    let (r#ref, resume) = conn.expect_join().await;
    assert_eq!(
        resume,
        Some(Resume {
            epoch: 7,
            last_seq: 15
        })
    );
    mock.world().append();
    conn.joined(r#ref, 7, 16, true).await;
    conn.deliver(7, 15, 16).await; // the replay overlaps what polling delivered
    let back = events_until(&mut events, is_message(16)).await;
    assert_eq!(
        back[0],
        Event::TransportChanged {
            transport: Transport::Ws
        }
    );
    assert!(matches!(back[1], Event::Connected { .. }));
    assert!(matches!(&back[2], Event::Joined(j) if j.recovered));
    all.extend(back);
    assert_eq!(client.transport(), Transport::Ws);
    assert_eq!(
        seqs(&all),
        vec![11, 12, 13, 14, 15, 16],
        "no gap, no duplicate"
    );

    // Stats: the connect (transport, time) and the 3 WebSocket failures reached the router.
    tokio::time::timeout(WAIT, async {
        loop {
            let done = {
                let world = mock.world();
                let failures: u64 = world
                    .stats
                    .iter()
                    .filter_map(|s| s["failures"]["ws"].as_u64())
                    .sum();
                let connects = world
                    .stats
                    .iter()
                    .filter(|s| s["transport"] == "ws" && s["connect_ms"].is_u64())
                    .count();
                let polling = world.stats.iter().any(|s| s["transport"] == "polling");
                failures >= 3 && connects >= 2 && polling
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("stats reported");
    let world = mock.world();
    let first = &world.stats[0];
    assert_eq!(
        (first["uid"].as_str(), first["transport"].as_str()),
        (Some("alice"), Some("ws"))
    );
}

#[tokio::test]
async fn connect_goes_straight_to_polling_when_the_router_says_short() {
    let mock = Mock::start("short", true).await;
    let (client, mut events) = Client::connect(mock.options()).await.expect("connects");
    assert_eq!(client.transport(), Transport::Polling);
    assert_eq!(
        next_event(&mut events).await,
        Event::TransportChanged {
            transport: Transport::Polling
        }
    );
    // A fresh join by polling starts at the head, like a socket join.
    let joined = client.join("r1").await.expect("joined");
    assert_eq!(
        (joined.epoch, joined.start_seq, joined.recovered),
        (7, 10, false)
    );
    assert_eq!(
        joined.snapshot.as_ref().map(|s| s.title.as_str()),
        Some("Live")
    );
    assert_eq!(mock.world().polls[0], (0, 0));
    assert!(matches!(next_event(&mut events).await, Event::Joined(_)));
    mock.world().append();
    assert!(is_message(11)(&next_event(&mut events).await));

    // The stream restarts (new epoch): StreamReset + Joined with the snapshot, as on a
    // socket, then the new epoch's messages.
    {
        let mut world = mock.world();
        world.epoch = 8;
        world.log = vec![1, 2];
    }
    assert_eq!(
        next_event(&mut events).await,
        Event::StreamReset {
            room: "r1".into(),
            epoch: 8
        }
    );
    match next_event(&mut events).await {
        Event::Joined(joined) => assert_eq!(
            (joined.epoch, joined.start_seq, joined.recovered),
            (8, 2, false)
        ),
        other => panic!("expected Joined, got {other:?}"),
    }
    mock.world().append();
    match next_event(&mut events).await {
        Event::Message { epoch, message, .. } => assert_eq!((epoch, message.seq), (8, 3)),
        other => panic!("expected message 3, got {other:?}"),
    }

    // An unknown room is refused like a socket join.
    assert!(matches!(
        client.join("nope").await,
        Err(Error::Refused {
            code: Code::RoomNotFound,
            ..
        })
    ));
    client.leave("r1").await.expect("left");
    assert_eq!(mock.world().ws_attempts, 0);
    client.close().await;
}

#[tokio::test]
async fn connect_falls_back_when_every_attempt_fails_at_start() {
    let mock = Mock::start("long", false).await;
    let (client, mut events) = Client::connect(mock.options()).await.expect("connects");
    assert_eq!(client.transport(), Transport::Polling);
    assert_eq!(mock.world().ws_attempts, 3);
    assert_eq!(
        next_event(&mut events).await,
        Event::TransportChanged {
            transport: Transport::Polling
        }
    );
    client.close().await;

    // Without a fallback threshold, connect reports the endpoint's failure as before.
    let opts = ConnectOptions {
        fallback_after_failures: 0,
        ..mock.options()
    };
    assert!(matches!(
        Client::connect(opts).await,
        Err(Error::WebSocket(_))
    ));
}

#[tokio::test]
async fn a_token_refused_by_polling_stops_the_client() {
    let mock = Mock::start("short", true).await;
    let opts = ConnectOptions {
        token: "bad-token".into(),
        ..mock.options()
    };
    let (client, mut events) = Client::connect(opts).await.expect("connects");
    assert!(matches!(
        client.join("r1").await,
        Err(Error::Closed | Error::Auth { .. })
    ));
    let mut last = None;
    while let Some(event) = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("ends")
    {
        last = Some(event);
    }
    match last {
        Some(Event::Disconnected { reason }) => {
            assert!(reason.contains("UNAUTHENTICATED"), "{reason}")
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(client.is_closed());
}
