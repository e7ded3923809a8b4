//! The QUIC transport against a tiny in-test quinn server (self-signed rcgen certificate):
//! pinning, frames, close codes, and a full `Client` session routed to QUIC.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use proto::client::v1::{
    ClientFrame, Delivery, Joined, Reply, ServerFrame, Welcome, client_frame, server_frame,
};
use roomcast_client::{
    Client, Code, ConnectOptions, Error, Event, Events, RawEvent, RawQuicConnection,
};
use roomcast_client::{RoomMessage, Transport};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

const WAIT: Duration = Duration::from_secs(5);

/// A QUIC listener with a fresh self-signed certificate; accepted streams go to the test.
struct QuicNode {
    url: String,
    fingerprint: String,
    conns: mpsc::Receiver<QuicConn>,
}

impl QuicNode {
    async fn start() -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let fingerprint = roomcast_client::quic::cert_sha256(cert.as_ref());
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls 1.3")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key.into())
            .expect("server cert");
        tls.alpn_protocols = vec![proto::QUIC_ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic tls");
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let endpoint =
            quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = endpoint.local_addr().expect("addr");
        let (tx, conns) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    // Failed handshakes (the wrong-pin tests) just end here.
                    let Ok(connection) = incoming.await else {
                        return;
                    };
                    let Ok((send, recv)) = connection.accept_bi().await else {
                        return;
                    };
                    let conn = QuicConn {
                        connection,
                        send: FramedWrite::new(send, LengthDelimitedCodec::new()),
                        recv: FramedRead::new(recv, LengthDelimitedCodec::new()),
                    };
                    let _ = tx.send(conn).await;
                });
            }
        });
        Self {
            url: format!("quic://{addr}"),
            fingerprint,
            conns,
        }
    }

    /// The next connection, after its hello (answered with a welcome).
    async fn accept(&mut self) -> QuicConn {
        let mut conn = tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("a connection in time")
            .expect("server running");
        match conn.recv().await {
            client_frame::Frame::Hello(hello) => assert_eq!(hello.token, "good-token"),
            other => panic!("expected hello, got {other:?}"),
        }
        conn.send(server_frame::Frame::Welcome(Welcome {
            session_id: "q1".into(),
            uid: "alice".into(),
            heartbeat_ms: 30_000,
            max_frame_bytes: 1024,
            node_id: "quic-1".into(),
        }))
        .await;
        conn
    }
}

/// The server end of one QUIC stream.
struct QuicConn {
    connection: quinn::Connection,
    send: FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
    recv: FramedRead<quinn::RecvStream, LengthDelimitedCodec>,
}

impl QuicConn {
    async fn recv(&mut self) -> client_frame::Frame {
        loop {
            let bytes = tokio::time::timeout(WAIT, self.recv.next())
                .await
                .expect("a frame in time")
                .expect("stream open")
                .expect("stream ok");
            let frame = ClientFrame::decode(bytes.freeze()).expect("a client frame");
            match frame.frame.expect("frame set") {
                client_frame::Frame::Ping(_) => continue,
                frame => return frame,
            }
        }
    }

    async fn send(&mut self, frame: server_frame::Frame) {
        let bytes = ServerFrame { frame: Some(frame) }.encode_to_vec();
        self.send.send(Bytes::from(bytes)).await.expect("send");
    }

    /// What the conn node does: an error frame, the end of the stream, then a connection
    /// close carrying the WebSocket close code.
    async fn close_with(mut self, code: u32, reason: &str) {
        let _ = self.send.get_mut().finish();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.connection.close(code.into(), reason.as_bytes());
    }
}

#[tokio::test]
async fn raw_quic_with_the_pin_speaks_frames_and_reports_the_close_code() {
    let mut node = QuicNode::start().await;
    let mut raw = RawQuicConnection::connect(&node.url, Some(&node.fingerprint))
        .await
        .expect("connects with the right pin");
    // The server sees the stream with its first frame.
    let hello = ClientFrame {
        frame: Some(client_frame::Frame::Hello(Default::default())),
    };
    raw.send_frame(&hello).await.expect("send");
    let mut conn = tokio::time::timeout(WAIT, node.conns.recv())
        .await
        .expect("in time")
        .expect("conn");
    assert!(matches!(conn.recv().await, client_frame::Frame::Hello(_)));
    conn.send(server_frame::Frame::Welcome(Welcome {
        node_id: "quic-1".into(),
        ..Default::default()
    }))
    .await;
    match raw.next_frame(WAIT).await.expect("frame") {
        RawEvent::Frame(ServerFrame {
            frame: Some(server_frame::Frame::Welcome(w)),
        }) => assert_eq!(w.node_id, "quic-1"),
        other => panic!("expected welcome, got {other:?}"),
    }

    let error = proto::client::v1::Error {
        code: Code::TooLarge as i32,
        message: "frame too large".into(),
        ..Default::default()
    };
    conn.send(server_frame::Frame::Error(error)).await;
    tokio::spawn(conn.close_with(1009, "too large"));
    match raw.next_frame(WAIT).await.expect("frame") {
        RawEvent::Frame(ServerFrame {
            frame: Some(server_frame::Frame::Error(e)),
        }) => assert_eq!(e.code, Code::TooLarge as i32),
        other => panic!("expected the error frame, got {other:?}"),
    }
    assert_eq!(
        raw.next_frame(WAIT).await.expect("close"),
        RawEvent::Close {
            code: 1009,
            reason: "too large".into()
        }
    );
}

#[tokio::test]
async fn raw_quic_hello_returns_the_welcome() {
    let mut node = QuicNode::start().await;
    let (url, pin) = (node.url.clone(), node.fingerprint.clone());
    let (raw, conn) = tokio::join!(
        async {
            let mut raw = RawQuicConnection::connect(&url, Some(&pin))
                .await
                .expect("connects");
            let welcome = raw.hello("good-token", WAIT).await.expect("welcome");
            (raw, welcome)
        },
        node.accept()
    );
    let (raw, welcome) = raw;
    assert_eq!(welcome.session_id, "q1");
    drop(conn);
    raw.close().await.expect("closes");
}

#[tokio::test]
async fn a_wrong_pin_or_no_pin_is_refused() {
    let node = QuicNode::start().await;
    let wrong = "00".repeat(32);
    match RawQuicConnection::connect(&node.url, Some(&wrong)).await {
        Err(Error::Quic(message)) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}")
        }
        other => panic!("expected a certificate failure, got {other:?}"),
    }
    // Self-signed and unpinned: it does not chain to the webpki roots.
    assert!(matches!(
        RawQuicConnection::connect(&node.url, None).await,
        Err(Error::Quic(_))
    ));
    // A malformed pin never reaches the network.
    assert!(matches!(
        RawQuicConnection::connect(&node.url, Some("not-hex")).await,
        Err(Error::Quic(_))
    ));
}

/// A router that sends clients to `quic_url` first (pin included), then a dead WebSocket.
async fn router(quic_url: String, fingerprint: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/v1/route",
        axum::routing::get(move || {
            let (quic_url, fingerprint) = (quic_url.clone(), fingerprint.clone());
            async move {
                axum::Json(serde_json::json!({
                    "mode": "long",
                    "node_id": "quic-1",
                    "endpoints": [
                        {"transport": "quic", "url": quic_url},
                        {"transport": "ws", "url": "ws://127.0.0.1:1/v1/ws"},
                    ],
                    "quic_cert_sha256": fingerprint,
                    "heartbeat_ms": 30000,
                    "retry_ms": 20,
                }))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("open")
}

#[tokio::test]
async fn a_client_session_runs_over_quic_with_the_routers_pin() {
    let mut node = QuicNode::start().await;
    let router_url = router(node.url.clone(), node.fingerprint.clone()).await;
    let opts = ConnectOptions {
        stats: false,
        ..ConnectOptions::new(router_url, "good-token").uid("alice")
    };
    let (connect, conn) = tokio::join!(Client::connect(opts), node.accept());
    let (client, mut events) = connect.expect("connects over QUIC");
    let mut conn = conn;
    assert_eq!(client.transport(), Transport::Quic);
    assert_eq!(
        next_event(&mut events).await,
        Event::TransportChanged {
            transport: Transport::Quic
        }
    );
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { node_id, .. } if node_id == "quic-1"
    ));

    let joining = tokio::spawn({
        let client = client.clone();
        async move { client.join("r1").await }
    });
    let client_frame::Frame::Join(join) = conn.recv().await else {
        panic!("join")
    };
    conn.send(server_frame::Frame::Joined(Joined {
        r#ref: join.r#ref,
        room: "r1".into(),
        epoch: 3,
        start_seq: 5,
        recovered: false,
        snapshot: None,
    }))
    .await;
    joining.await.expect("task").expect("joined");
    assert!(matches!(next_event(&mut events).await, Event::Joined(_)));
    let messages = [6, 7]
        .into_iter()
        .map(|seq| RoomMessage {
            seq,
            kind: "comment".into(),
            ..Default::default()
        })
        .collect();
    conn.send(server_frame::Frame::Delivery(Delivery {
        room: "r1".into(),
        epoch: 3,
        first_seq: 6,
        last_seq: 7,
        messages,
    }))
    .await;
    for want in [6, 7] {
        match next_event(&mut events).await {
            Event::Message { message, .. } => assert_eq!(message.seq, want),
            other => panic!("expected message {want}, got {other:?}"),
        }
    }

    let publishing = tokio::spawn({
        let client = client.clone();
        async move { client.comment("r1", "over quic").await }
    });
    let client_frame::Frame::Publish(publish) = conn.recv().await else {
        panic!("publish")
    };
    conn.send(server_frame::Frame::Reply(Reply {
        r#ref: publish.r#ref,
        code: Code::Ok as i32,
        message: String::new(),
        body: Bytes::from_static(br#"{"seq":8}"#),
    }))
    .await;
    let reply = publishing.await.expect("task").expect("published");
    assert_eq!(&reply.body[..], br#"{"seq":8}"#);

    // A server close with a code ends the session with that code in the reason.
    tokio::spawn(conn.close_with(1001, "going away"));
    match next_event(&mut events).await {
        Event::Disconnected { reason } => assert!(reason.contains("1001"), "{reason}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // ... and the client comes back over QUIC.
    let mut conn = node.accept().await;
    let client_frame::Frame::Join(join) = conn.recv().await else {
        panic!("re-join")
    };
    assert_eq!(
        join.resume.map(|r| (r.epoch, r.last_seq)),
        Some((3, 7)),
        "resumes from the last message"
    );
}
