//! The SDK against a scripted router + conn node (no real services): handshake, join,
//! dedup, publish, reconnect with resume, stream reset, gaps, go-away, close.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use bytes::Bytes;
use prost::Message as _;
use proto::client::v1::{
    ClientFrame, Delivery, GoAway, Joined, Left, Pong, Reply, Resume, ServerFrame, Welcome,
    client_frame, server_frame,
};
use roomcast_client::{Client, Code, ConnectOptions, Error, Event, Events, RoomMessage, Transport};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// A router and a conn node in one axum app; each accepted socket goes to the test.
struct MockNode {
    router_url: String,
    mode: Arc<Mutex<String>>,
    sockets: mpsc::Receiver<WebSocket>,
}

impl MockNode {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(Mutex::new("long".to_owned()));
        let (tx, sockets) = mpsc::channel(8);
        let ws_url = format!("ws://{addr}/v1/ws");
        let route_mode = mode.clone();
        let app = axum::Router::new()
            .route(
                "/v1/route",
                get(move || {
                    let mode = route_mode.lock().expect("mode").clone();
                    let ws_url = ws_url.clone();
                    async move {
                        axum::Json(serde_json::json!({
                            "mode": mode,
                            "node_id": "mock-1",
                            "endpoints": [
                                {"transport": "quic", "url": "127.0.0.1:1"},
                                {"transport": "ws", "url": ws_url},
                            ],
                            "heartbeat_ms": 30000,
                            "retry_ms": 20,
                        }))
                    }
                }),
            )
            .route(
                "/v1/ws",
                get(move |upgrade: WebSocketUpgrade| {
                    let tx = tx.clone();
                    async move {
                        upgrade.protocols([proto::PROTOBUF_SUBPROTOCOL]).on_upgrade(
                            move |socket| async move {
                                let _ = tx.send(socket).await;
                            },
                        )
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            router_url: format!("http://{addr}"),
            mode,
            sockets,
        }
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            request_timeout: Duration::from_secs(3),
            // The mock's QUIC endpoint is a dead port: these tests are about the session.
            transports: vec![Transport::Ws],
            stats: false,
            ..ConnectOptions::new(self.router_url.clone(), "good-token").uid("alice")
        }
    }

    /// The next socket, after its hello (answered with a welcome).
    async fn accept(&mut self) -> Conn {
        let socket = tokio::time::timeout(WAIT, self.sockets.recv())
            .await
            .expect("a connection in time")
            .expect("server running");
        let mut conn = Conn { socket };
        match conn.recv().await {
            client_frame::Frame::Hello(hello) => assert_eq!(hello.token, "good-token"),
            other => panic!("expected hello, got {other:?}"),
        }
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

/// One accepted socket, driven by the test.
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
                let frame = ClientFrame::decode(bytes).expect("a client frame");
                match frame.frame.expect("frame set") {
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

    /// Expect a join; returns (ref, room, resume).
    async fn expect_join(&mut self) -> (u32, String, Option<Resume>) {
        match self.recv().await {
            client_frame::Frame::Join(join) => (join.r#ref, join.room, join.resume),
            other => panic!("expected join, got {other:?}"),
        }
    }

    async fn joined(
        &mut self,
        r#ref: u32,
        room: &str,
        epoch: u64,
        start_seq: u64,
        recovered: bool,
    ) {
        let joined = Joined {
            r#ref,
            room: room.into(),
            epoch,
            start_seq,
            recovered,
            snapshot: None,
        };
        self.send(server_frame::Frame::Joined(joined)).await;
    }

    async fn deliver(&mut self, room: &str, epoch: u64, first: u64, last: u64, seqs: &[u64]) {
        let messages = seqs
            .iter()
            .map(|&seq| RoomMessage {
                seq,
                kind: "comment".into(),
                ..Default::default()
            })
            .collect();
        let delivery = Delivery {
            room: room.into(),
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

/// Skip connection-state events; return the next room event.
async fn next_room_event(events: &mut Events) -> Event {
    loop {
        match next_event(events).await {
            Event::Connected { .. }
            | Event::TransportChanged { .. }
            | Event::Disconnected { .. }
            | Event::Reconnecting { .. }
            | Event::LongUnavailable { .. } => continue,
            event => return event,
        }
    }
}

async fn expect_seqs(events: &mut Events, expected: &[u64]) {
    for &want in expected {
        match next_room_event(events).await {
            Event::Message { message, .. } => assert_eq!(message.seq, want),
            other => panic!("expected message {want}, got {other:?}"),
        }
    }
}

/// Connect, join `r1` at epoch 7 / start_seq 10.
async fn connected_in_room(mock: &mut MockNode) -> (Client, Events, Conn) {
    let (connect, conn) = tokio::join!(Client::connect(mock.options()), mock.accept());
    let (client, mut events) = connect.expect("connects");
    let mut conn = conn;
    assert_eq!(client.transport(), Transport::Ws);
    assert_eq!(
        next_event(&mut events).await,
        Event::TransportChanged {
            transport: Transport::Ws
        }
    );
    assert_eq!(
        next_event(&mut events).await,
        Event::Connected {
            node_id: "mock-1".into(),
            session_id: "s1".into()
        }
    );
    let joining = tokio::spawn({
        let client = client.clone();
        async move { client.join("r1").await }
    });
    let (r#ref, room, resume) = conn.expect_join().await;
    assert_eq!((room.as_str(), resume), ("r1", None));
    conn.joined(r#ref, "r1", 7, 10, false).await;
    let joined = joining.await.expect("task").expect("joined");
    assert_eq!(
        (joined.epoch, joined.start_seq, joined.recovered),
        (7, 10, false)
    );
    assert!(matches!(next_room_event(&mut events).await, Event::Joined(j) if j.room == "r1"));
    (client, events, conn)
}

#[tokio::test]
async fn a_refused_token_fails_connect_without_retry() {
    let mut mock = MockNode::start().await;
    let opts = mock.options();
    let server = async {
        let socket = mock.sockets.recv().await.expect("socket");
        let mut conn = Conn { socket };
        assert!(matches!(conn.recv().await, client_frame::Frame::Hello(_)));
        let error = proto::client::v1::Error {
            code: Code::TokenExpired as i32,
            message: "token expired".into(),
            ..Default::default()
        };
        conn.send(server_frame::Frame::Error(error)).await;
        let _ = conn.socket.send(Message::Close(None)).await;
    };
    let (result, ()) = tokio::join!(Client::connect(opts), server);
    match result {
        Err(Error::Auth { code, message }) => {
            assert_eq!(
                (code, message.as_str()),
                (Code::TokenExpired, "token expired")
            );
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

/// Short mode without a polling URL leaves nothing to fall back to.
#[tokio::test]
async fn short_mode_without_polling_fails_the_first_connect() {
    let mock = MockNode::start().await;
    *mock.mode.lock().expect("mode") = "short".into();
    match Client::connect(mock.options()).await {
        Err(Error::LongUnavailable { mode, retry_after }) => {
            assert_eq!(mode, "short");
            assert_eq!(retry_after, Some(Duration::from_millis(20)));
        }
        other => panic!("expected LongUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn deliveries_are_deduplicated_and_publish_gets_its_reply() {
    let mut mock = MockNode::start().await;
    let (client, mut events, mut conn) = connected_in_room(&mut mock).await;

    conn.deliver("r1", 7, 11, 12, &[12, 11]).await;
    conn.deliver("r1", 7, 12, 13, &[12, 13]).await; // overlap
    conn.deliver("r1", 7, 14, 16, &[16]).await; // 14, 15 sampled out
    conn.deliver("r1", 99, 1, 1, &[1]).await; // stale epoch... not the previous one:
    // an unknown epoch makes the client re-join to learn it.
    expect_seqs(&mut events, &[11, 12, 13, 16]).await;
    let (r#ref, _, resume) = conn.expect_join().await;
    assert_eq!(
        resume,
        Some(Resume {
            epoch: 7,
            last_seq: 16
        })
    );
    conn.joined(r#ref, "r1", 7, 16, true).await;
    assert!(matches!(next_room_event(&mut events).await, Event::Joined(j) if j.recovered));

    let publishing = tokio::spawn({
        let client = client.clone();
        async move { client.comment("r1", "hi").await }
    });
    match conn.recv().await {
        client_frame::Frame::Publish(publish) => {
            assert_eq!(
                (publish.room.as_str(), publish.action.as_str()),
                ("r1", "comment")
            );
            assert_eq!(&publish.payload[..], br#"{"text":"hi"}"#);
            let reply = Reply {
                r#ref: publish.r#ref,
                code: Code::Ok as i32,
                message: String::new(),
                body: Bytes::from_static(br#"{"seq":17}"#),
            };
            conn.send(server_frame::Frame::Reply(reply)).await;
        }
        other => panic!("expected publish, got {other:?}"),
    }
    let reply = publishing.await.expect("task").expect("published");
    assert_eq!(&reply.body[..], br#"{"seq":17}"#);

    // A refused publish is an error with the server's code.
    let publishing = tokio::spawn({
        let client = client.clone();
        async move { client.publish("r1", "comment", &b"{}"[..]).await }
    });
    let client_frame::Frame::Publish(publish) = conn.recv().await else {
        panic!("publish")
    };
    let reply = Reply {
        r#ref: publish.r#ref,
        code: Code::RateLimited as i32,
        message: "slow down".into(),
        body: Bytes::new(),
    };
    conn.send(server_frame::Frame::Reply(reply)).await;
    match publishing.await.expect("task") {
        Err(Error::Refused {
            code: Code::RateLimited,
            message,
        }) => assert_eq!(message, "slow down"),
        other => panic!("expected refused, got {other:?}"),
    }

    // Over the welcome's max_frame_bytes (1024): refused locally.
    match client.publish("r1", "comment", vec![b'x'; 2048]).await {
        Err(Error::TooLarge { max: 1024, .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn reconnect_resumes_and_drops_what_was_seen() {
    let mut mock = MockNode::start().await;
    let (client, mut events, mut conn) = connected_in_room(&mut mock).await;
    conn.deliver("r1", 7, 11, 12, &[11, 12]).await;
    expect_seqs(&mut events, &[11, 12]).await;

    // A publish in flight when the socket drops fails with Disconnected.
    let publishing = tokio::spawn({
        let client = client.clone();
        async move { client.comment("r1", "lost?").await }
    });
    assert!(matches!(conn.recv().await, client_frame::Frame::Publish(_)));
    drop(conn);
    assert!(matches!(
        publishing.await.expect("task"),
        Err(Error::Disconnected)
    ));

    let mut conn = mock.accept().await;
    let (r#ref, room, resume) = conn.expect_join().await;
    assert_eq!(
        (room.as_str(), resume),
        (
            "r1",
            Some(Resume {
                epoch: 7,
                last_seq: 12
            })
        )
    );
    conn.joined(r#ref, "r1", 7, 14, true).await;
    conn.deliver("r1", 7, 11, 14, &[11, 12, 13, 14]).await; // replay overlaps
    conn.deliver("r1", 7, 15, 15, &[15]).await; // live
    let mut saw = Vec::new();
    loop {
        match next_event(&mut events).await {
            Event::Disconnected { .. } => saw.push("disconnected"),
            Event::Reconnecting { attempt, .. } => {
                assert!(attempt >= 1);
                saw.push("reconnecting");
            }
            Event::Connected { .. } => saw.push("connected"),
            Event::Joined(joined) => {
                assert!(joined.recovered);
                saw.push("joined");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(saw.first(), Some(&"disconnected"));
    assert!(
        saw.contains(&"reconnecting") && saw.contains(&"connected"),
        "{saw:?}"
    );
    expect_seqs(&mut events, &[13, 14, 15]).await;
}

#[tokio::test]
async fn unrecovered_resume_resets_the_stream() {
    let mut mock = MockNode::start().await;
    let (_client, mut events, mut conn) = connected_in_room(&mut mock).await;
    conn.deliver("r1", 7, 11, 11, &[11]).await;
    expect_seqs(&mut events, &[11]).await;
    drop(conn);

    let mut conn = mock.accept().await;
    let (r#ref, _, resume) = conn.expect_join().await;
    assert_eq!(
        resume,
        Some(Resume {
            epoch: 7,
            last_seq: 11
        })
    );
    conn.joined(r#ref, "r1", 9, 3, false).await;
    assert_eq!(
        next_room_event(&mut events).await,
        Event::StreamReset {
            room: "r1".into(),
            epoch: 9
        }
    );
    assert!(
        matches!(next_room_event(&mut events).await, Event::Joined(j) if j.epoch == 9 && !j.recovered)
    );
    conn.deliver("r1", 7, 12, 12, &[12]).await; // the old epoch: stale, ignored
    conn.deliver("r1", 9, 4, 4, &[4]).await;
    match next_room_event(&mut events).await {
        Event::Message { epoch, message, .. } => assert_eq!((epoch, message.seq), (9, 4)),
        other => panic!("expected message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_gap_rejoins_with_resume_instead_of_skipping() {
    let mut mock = MockNode::start().await;
    let (_client, mut events, mut conn) = connected_in_room(&mut mock).await;
    conn.deliver("r1", 7, 11, 11, &[11]).await;
    conn.deliver("r1", 7, 14, 14, &[14]).await; // 12..13 missing: a gap
    expect_seqs(&mut events, &[11]).await;
    let (r#ref, _, resume) = conn.expect_join().await;
    assert_eq!(
        resume,
        Some(Resume {
            epoch: 7,
            last_seq: 11
        })
    );
    conn.joined(r#ref, "r1", 7, 14, true).await;
    conn.deliver("r1", 7, 12, 14, &[12, 13, 14]).await;
    assert!(matches!(
        next_room_event(&mut events).await,
        Event::Joined(_)
    ));
    expect_seqs(&mut events, &[12, 13, 14]).await;
}

#[tokio::test]
async fn go_away_waits_the_asked_delay_then_reconnects() {
    let mut mock = MockNode::start().await;
    let (_client, mut events, mut conn) = connected_in_room(&mut mock).await;
    let go_away = GoAway {
        reason: "draining".into(),
        reconnect_after_ms: 200,
    };
    conn.send(server_frame::Frame::GoAway(go_away)).await;
    match next_event(&mut events).await {
        Event::Disconnected { reason } => assert!(reason.contains("draining"), "{reason}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    match next_event(&mut events).await {
        Event::Reconnecting { attempt: 1, delay } => assert!(delay >= Duration::from_millis(200)),
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    let mut conn = mock.accept().await;
    let (_, room, resume) = conn.expect_join().await;
    assert_eq!(
        (room.as_str(), resume),
        (
            "r1",
            Some(Resume {
                epoch: 7,
                last_seq: 10
            })
        )
    );
}

#[tokio::test]
async fn removal_and_leave_stop_tracking_the_room() {
    let mut mock = MockNode::start().await;
    let (client, mut events, mut conn) = connected_in_room(&mut mock).await;
    let left = Left {
        r#ref: 0,
        room: "r1".into(),
        reason: "kicked".into(),
    };
    conn.send(server_frame::Frame::Left(left)).await;
    assert_eq!(
        next_room_event(&mut events).await,
        Event::Left {
            room: "r1".into(),
            reason: "kicked".into()
        }
    );

    // leave() is answered by the server's Left with the same ref.
    let leaving = tokio::spawn({
        let client = client.clone();
        async move { client.leave("r2").await }
    });
    let client_frame::Frame::Leave(leave) = conn.recv().await else {
        panic!("leave")
    };
    let left = Left {
        r#ref: leave.r#ref,
        room: "r2".into(),
        reason: String::new(),
    };
    conn.send(server_frame::Frame::Left(left)).await;
    leaving.await.expect("task").expect("left");

    // Nothing is re-joined after a reconnect.
    drop(conn);
    let mut conn = mock.accept().await;
    loop {
        if let Event::Connected { .. } = next_event(&mut events).await {
            break;
        }
    }
    let closing = tokio::spawn(async move { client.close().await });
    match conn.socket.recv().await {
        Some(Ok(Message::Close(_))) | None => {}
        other => panic!("expected the client's close, not a join: {other:?}"),
    }
    drop(conn);
    closing.await.expect("closed");
}

#[tokio::test]
async fn pings_measure_rtt_and_close_ends_the_events() {
    let mut mock = MockNode::start().await;
    let opts = ConnectOptions {
        ping_interval: Some(Duration::from_millis(50)),
        ..mock.options()
    };
    let (connect, conn) = tokio::join!(Client::connect(opts), mock.accept());
    let (client, mut events) = connect.expect("connects");
    let mut conn = conn;
    assert_eq!(client.last_rtt(), None);
    let ping = loop {
        let message = conn.socket.recv().await.expect("open").expect("ok");
        if let Message::Binary(bytes) = message
            && let Some(client_frame::Frame::Ping(ping)) =
                ClientFrame::decode(bytes).expect("frame").frame
        {
            break ping;
        }
    };
    let pong = Pong {
        client_time_ms: ping.client_time_ms,
        server_time_ms: 1,
    };
    conn.send(server_frame::Frame::Pong(pong)).await;
    tokio::time::timeout(WAIT, async {
        while client.last_rtt().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("rtt measured");

    let server = tokio::spawn(async move {
        // Answer the close handshake.
        while let Some(Ok(_)) = conn.socket.recv().await {}
    });
    client.close().await;
    assert!(client.is_closed());
    let mut last = None;
    while let Some(event) = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("ends")
    {
        last = Some(event);
    }
    assert!(matches!(last, Some(Event::Disconnected { .. })), "{last:?}");
    assert!(matches!(client.join("r1").await, Err(Error::Closed)));
    server.await.expect("server");
}

#[tokio::test]
async fn a_silent_server_is_detected_by_the_heartbeat() {
    let mut mock = MockNode::start().await;
    let opts = ConnectOptions {
        ping_interval: Some(Duration::from_millis(30)),
        ..mock.options()
    };
    let (connect, _conn) = tokio::join!(Client::connect(opts), mock.accept());
    let (_client, mut events) = connect.expect("connects");
    assert!(matches!(
        next_event(&mut events).await,
        Event::TransportChanged { .. }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    // `_conn` stays open but never answers a ping.
    match next_event(&mut events).await {
        Event::Disconnected { reason } => assert!(reason.contains("heartbeat"), "{reason}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let _again = mock.accept().await;
}
