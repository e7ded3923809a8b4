//! Bad input gets a clear error frame or close reason, and nobody else notices.

use integration_tests::{Cluster, assert_seqs, collect, next_frame, raw_join};
use proto::client::v1::{
    ClientFrame, Code, Hello, Ping, Publish, ServerFrame, client_frame, server_frame,
};
use roomcast_client::{RawConnection, RawEvent, RawQuicConnection};

/// The error frame, then the close, that end a connection: the error's
/// message and the close reason.
async fn expect_error_then_close(
    raw: &mut roomcast_client::RawConnection,
    code: Code,
    close_code: u16,
) -> anyhow::Result<(String, String)> {
    // A joined connection may still receive room deliveries in between
    // (a message published just before the join): traffic, not an answer.
    let mut frame = next_frame(raw).await?;
    while matches!(frame, server_frame::Frame::Delivery(_)) {
        frame = next_frame(raw).await?;
    }
    let message = match frame {
        server_frame::Frame::Error(e) => {
            assert_eq!(e.code, code as i32, "error frame: {e:?}");
            assert!(!e.message.is_empty(), "error frames explain themselves");
            e.message
        }
        other => anyhow::bail!("expected an error frame, got {other:?}"),
    };
    loop {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Close { code, reason } => {
                assert_eq!(code, close_code, "close reason: {reason}");
                assert!(!reason.is_empty());
                return Ok((message, reason));
            }
            RawEvent::Frame(f)
                if is_ephemeral(&f)
                    || matches!(f.frame, Some(server_frame::Frame::Delivery(_))) => {}
            other => anyhow::bail!("expected a close, got {other:?}"),
        }
    }
}

async fn expect_error(
    raw: &mut roomcast_client::RawConnection,
    code: Code,
) -> anyhow::Result<proto::client::v1::Error> {
    match next_frame(raw).await? {
        server_frame::Frame::Error(e) if e.code == code as i32 => Ok(e),
        other => anyhow::bail!("expected error {code:?}, got {other:?}"),
    }
}

async fn still_alive(raw: &mut roomcast_client::RawConnection) -> anyhow::Result<()> {
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Ping(Ping { client_time_ms: 1 })),
    })
    .await?;
    loop {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(f) if matches!(f.frame, Some(server_frame::Frame::Pong(_))) => {
                return Ok(());
            }
            RawEvent::Frame(f) if is_ephemeral(&f) => {}
            other => anyhow::bail!("expected a pong, got {other:?}"),
        }
    }
}

/// Presence and totals are best-effort side traffic, not what these checks wait for.
fn is_ephemeral(f: &proto::client::v1::ServerFrame) -> bool {
    matches!(f.frame, Some(server_frame::Frame::Ephemeral(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_bystanders_are_unaffected() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.upstream_rate_per_sec = 5;
        cfg.conn.upstream_burst = 5;
        cfg.conn.rate_limit_strikes = 10;
    })
    .await?;
    let room = cluster.create_room("bystanders").await?;
    let (bystander, mut events) = cluster.client("bystander").await?;
    bystander.join(room.as_str()).await?;
    let mut published = 0;
    let mut publish = async |cluster: &Cluster| -> anyhow::Result<()> {
        published += 1;
        cluster.publish(&room, &format!("m{published}")).await?;
        Ok(())
    };

    // Garbage bytes before and after the hello.
    // Garbage as the first frame is malformed, not "hello required" (that is
    // for a well-formed frame of another kind).
    let mut raw = cluster.raw().await?;
    raw.send_bytes(vec![0xff, 0xfe, 0xfd, 0x00, 0x13]).await?;
    let (_, reason) = expect_error_then_close(&mut raw, Code::Malformed, 1007).await?;
    assert_eq!(reason, "malformed frame");
    let mut raw = cluster.raw_authed("g").await?;
    raw.send_bytes(vec![0x0a, 0xff, 0xff, 0xff]).await?;
    expect_error_then_close(&mut raw, Code::Malformed, 1007).await?;
    let mut raw = cluster.raw_authed("g").await?;
    raw.send_text("{not json".into()).await?;
    expect_error_then_close(&mut raw, Code::Malformed, 1007).await?;
    publish(&cluster).await?;

    // A frame type this server does not know: an error, and the connection stays.
    let mut raw = cluster.raw_authed("u").await?;
    raw.send_bytes(vec![0x9a, 0x06, 0x00]).await?; // field 99, empty
    expect_error(&mut raw, Code::UnknownFrame).await?;
    still_alive(&mut raw).await?;

    // Oversized frame.
    let big = Publish {
        r#ref: 1,
        room: room.clone(),
        action: "comment".into(),
        payload: vec![b'a'; 100_000].into(),
    };
    raw_join(&mut raw, &room, None).await?;
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Publish(big)),
    })
    .await?;
    let (why, _) = expect_error_then_close(&mut raw, Code::TooLarge, 1009).await?;
    assert!(why.contains("65536"), "names the limit: {why}");
    publish(&cluster).await?;

    // Bad, expired and missing tokens.
    let mut raw = cluster.raw().await?;
    let err = raw
        .hello("not-a-jwt", integration_tests::PATIENCE)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            roomcast_client::Error::Auth {
                code: Code::Unauthenticated,
                ..
            }
        ),
        "{err:?}"
    );
    let mut raw = cluster.raw().await?;
    let wrong = common::auth::mint_hs256("another-secret", "mallory", 60)?;
    let err = raw
        .hello(&wrong, integration_tests::PATIENCE)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            roomcast_client::Error::Auth {
                code: Code::Unauthenticated,
                ..
            }
        ),
        "{err:?}"
    );
    let mut raw = cluster.raw().await?;
    let expired = common::auth::mint_hs256(integration_tests::SECRET, "late", -600)?;
    let err = raw
        .hello(&expired, integration_tests::PATIENCE)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            roomcast_client::Error::Auth {
                code: Code::TokenExpired,
                ..
            }
        ),
        "{err:?}"
    );
    let mut raw = cluster.raw().await?;
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Ping(Ping { client_time_ms: 1 })),
    })
    .await?;
    let (_, reason) = expect_error_then_close(&mut raw, Code::HelloRequired, 1008).await?;
    assert_eq!(reason, "hello required");

    // Unknown room, publish without joining: errors with the request's ref.
    let mut raw = cluster.raw_authed("v").await?;
    let join = proto::client::v1::Join {
        r#ref: 41,
        room: "no-such-room".into(),
        resume: None,
    };
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Join(join)),
    })
    .await?;
    let e = expect_error(&mut raw, Code::RoomNotFound).await?;
    assert_eq!((e.r#ref, e.room.as_str()), (41, "no-such-room"));
    assert!(e.message.contains("no-such-room"), "{}", e.message);
    let publish_frame = Publish {
        r#ref: 42,
        room: room.clone(),
        action: "comment".into(),
        payload: br#"{"text":"hi"}"#.to_vec().into(),
    };
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Publish(publish_frame)),
    })
    .await?;
    let e = expect_error(&mut raw, Code::NotJoined).await?;
    assert_eq!(e.r#ref, 42);
    still_alive(&mut raw).await?;
    publish(&cluster).await?;

    // Actions room-biz refuses come back as replies with a code.
    let (speaker, _speaker_events) = cluster.client("speaker").await?;
    speaker.join(room.as_str()).await?;
    let err = speaker
        .comment(room.as_str(), &"x".repeat(501))
        .await
        .expect_err("too long");
    assert!(
        matches!(
            err,
            roomcast_client::Error::Refused {
                code: Code::BadRequest,
                ..
            }
        ),
        "{err:?}"
    );
    let err = speaker
        .publish(room.as_str(), "teleport", b"{}".to_vec())
        .await
        .expect_err("unknown action");
    assert!(
        matches!(
            err,
            roomcast_client::Error::Refused {
                code: Code::BadRequest,
                ..
            }
        ),
        "{err:?}"
    );

    // Flooding: rate-limited frames get errors, then the connection is closed.
    let mut raw = cluster.raw_authed("flood").await?;
    let ping = ClientFrame {
        frame: Some(client_frame::Frame::Ping(Ping { client_time_ms: 1 })),
    };
    for _ in 0..40 {
        if raw.send_frame(&ping).await.is_err() {
            break;
        }
    }
    let (mut limited, mut closed) = (0, None);
    while closed.is_none() {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(f) => {
                if let Some(server_frame::Frame::Error(e)) = f.frame {
                    assert_eq!(e.code, Code::RateLimited as i32);
                    limited += 1;
                }
            }
            RawEvent::Close { code, reason } => closed = Some((code, reason)),
            RawEvent::Text(t) => anyhow::bail!("unexpected text {t}"),
        }
    }
    assert!(limited >= 10, "rate-limited frames are answered: {limited}");
    let (code, reason) = closed.unwrap_or_default();
    assert_eq!(code, 1008);
    assert!(reason.contains("rate limit"), "{reason}");
    publish(&cluster).await?;

    // The bystander saw every message, in order, through all of it.
    assert_seqs(
        &collect(&mut events, &room, published).await?,
        1,
        published as u64,
    );
    assert!(
        cluster
            .metric("roomcast_conn_bad_frames_total{reason=\"malformed\"}")
            .await?
            >= 3.0
    );
    cluster.stop().await
}

/// A client frame header as a client must send it (FIN, masked; the zero
/// mask leaves the payload as is), with the shortest length encoding.
fn client_frame_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        h.push(0x80 | 126);
        h.extend_from_slice(&short.to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// Write bytes straight to the connection's TCP socket, under the WebSocket layer.
async fn write_raw(raw: &mut RawConnection, bytes: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    match raw.get_mut().get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => Ok(tcp.write_all(bytes).await?),
        _ => anyhow::bail!("a plain TCP connection was expected"),
    }
}

/// After a connection's close: the socket ends with a FIN (the server read
/// what the client sent, so no reset destroyed the close before it).
async fn ends_cleanly(raw: &mut RawConnection) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    tokio::time::timeout(integration_tests::PATIENCE, async {
        loop {
            match raw.get_mut().next().await {
                None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)) => {
                    return Ok(());
                }
                Some(Err(e)) => return Err(anyhow::anyhow!("socket did not end cleanly: {e}")),
            }
        }
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_limit_get_too_large_and_1009_whatever_their_size() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let limit = 64 * 1024u64;

    // Just over the limit, twice the limit plus one, 10 MiB: sent in full,
    // the server reads and discards them and answers.
    for size in [limit + 1, 2 * limit + 1, 10 << 20] {
        let mut raw = cluster.raw_authed("big").await?;
        let mut frame = client_frame_header(0x2, size);
        frame.resize(frame.len() + size as usize, 0x5a);
        write_raw(&mut raw, &frame).await?;
        let (why, _) = expect_error_then_close(&mut raw, Code::TooLarge, 1009).await?;
        assert!(why.contains(&size.to_string()), "names the size: {why}");
        assert!(why.contains(&limit.to_string()), "names the limit: {why}");
        ends_cleanly(&mut raw).await?;
    }

    // A header claiming 1 TiB, and a few of its bytes.
    let mut raw = cluster.raw_authed("huge").await?;
    let mut frame = client_frame_header(0x2, 1 << 40);
    frame.extend_from_slice(&[0x5a; 1000]);
    write_raw(&mut raw, &frame).await?;
    let (why, _) = expect_error_then_close(&mut raw, Code::TooLarge, 1009).await?;
    assert!(why.contains(&(1u64 << 40).to_string()), "{why}");
    ends_cleanly(&mut raw).await?;

    // The same before the hello.
    let mut raw = cluster.raw().await?;
    write_raw(&mut raw, &client_frame_header(0x2, 1 << 40)).await?;
    expect_error_then_close(&mut raw, Code::TooLarge, 1009).await?;

    // QUIC: a length prefix over the limit (10 MiB, 4 GiB) is refused as read.
    let url = cluster.sys.quic_url.clone().unwrap_or_default();
    let pin = cluster.sys.quic_cert_sha256.clone();
    for claimed in [10u32 << 20, u32::MAX] {
        let mut quic = RawQuicConnection::connect(&url, pin.as_deref()).await?;
        quic.hello(&cluster.token("q"), integration_tests::PATIENCE)
            .await?;
        quic.send_unframed(&claimed.to_be_bytes()).await?;
        match quic.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Error(e)),
            }) => {
                assert_eq!(e.code, Code::TooLarge as i32, "{e:?}");
                assert!(e.message.contains(&claimed.to_string()), "{}", e.message);
            }
            other => anyhow::bail!("expected TOO_LARGE, got {other:?}"),
        }
        match quic.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Close { code, .. } => assert_eq!(code, 1009),
            other => anyhow::bail!("expected the close, got {other:?}"),
        }
    }
    cluster.stop().await
}

/// A JSON-subprotocol connection after its hello.
async fn json_authed(cluster: &Cluster, uid: &str) -> anyhow::Result<RawConnection> {
    let mut raw =
        RawConnection::connect(&cluster.sys.ws_url, Some(proto::JSON_SUBPROTOCOL)).await?;
    raw.send_json_frame(&hello(&cluster.token(uid))).await?;
    match next_json(&mut raw).await? {
        server_frame::Frame::Welcome(_) => Ok(raw),
        other => anyhow::bail!("expected welcome, got {other:?}"),
    }
}

fn hello(token: &str) -> ClientFrame {
    ClientFrame {
        frame: Some(client_frame::Frame::Hello(Hello {
            token: token.into(),
            ..Default::default()
        })),
    }
}

/// The next JSON server frame (skipping best-effort side traffic).
async fn next_json(raw: &mut RawConnection) -> anyhow::Result<server_frame::Frame> {
    loop {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Text(text) => match proto::json::decode_server(&text)?.frame {
                Some(server_frame::Frame::Ephemeral(_)) => {}
                Some(f) => return Ok(f),
                None => anyhow::bail!("empty server frame: {text}"),
            },
            other => anyhow::bail!("expected a JSON text frame, got {other:?}"),
        }
    }
}

async fn expect_json_error(raw: &mut RawConnection, code: Code) -> anyhow::Result<()> {
    match next_json(raw).await? {
        server_frame::Frame::Error(e) if e.code == code as i32 => Ok(()),
        other => anyhow::bail!("expected error {code:?}, got {other:?}"),
    }
}

async fn json_still_alive(raw: &mut RawConnection) -> anyhow::Result<()> {
    raw.send_text(r#"{"frame":{"ping":{"client_time_ms":3}}}"#.into())
        .await?;
    match next_json(raw).await? {
        server_frame::Frame::Pong(p) => {
            assert_eq!(p.client_time_ms, 3);
            Ok(())
        }
        other => anyhow::bail!("expected a pong, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_encodings_answer_the_same_bad_frames_the_same_way() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;

    // Invalid UTF-8 in a text message: MALFORMED and close 1007, as a close frame.
    let mut raw = json_authed(&cluster, "j").await?;
    let mut frame = client_frame_header(0x1, 4);
    frame.extend_from_slice(&[b'{', 0xff, 0xfe, b'}']);
    write_raw(&mut raw, &frame).await?;
    match next_json(&mut raw).await? {
        server_frame::Frame::Error(e) => assert_eq!(e.code, Code::Malformed as i32, "{e:?}"),
        other => anyhow::bail!("expected MALFORMED, got {other:?}"),
    }
    match raw.next_frame(integration_tests::PATIENCE).await? {
        RawEvent::Close { code, .. } => assert_eq!(code, 1007),
        other => anyhow::bail!("expected close 1007, got {other:?}"),
    }

    // A frame kind this server does not know: UNKNOWN_FRAME, and the
    // connection stays, on JSON as on protobuf. So does a frame of no kind.
    let mut json = json_authed(&cluster, "j2").await?;
    json.send_text(r#"{"frame":{"teleport":{"to":"mars"}}}"#.into())
        .await?;
    expect_json_error(&mut json, Code::UnknownFrame).await?;
    json_still_alive(&mut json).await?;
    json.send_text("{}".into()).await?;
    expect_json_error(&mut json, Code::UnknownFrame).await?;
    json_still_alive(&mut json).await?;
    // A known kind with a body that does not fit it is malformed.
    json.send_text(r#"{"frame":{"join":{"ref":"seven"}}}"#.into())
        .await?;
    expect_json_error(&mut json, Code::Malformed).await?;
    match json.next_frame(integration_tests::PATIENCE).await? {
        RawEvent::Close { code, .. } => assert_eq!(code, 1007),
        other => anyhow::bail!("expected close 1007, got {other:?}"),
    }

    let mut proto = cluster.raw_authed("p").await?;
    proto.send_bytes(vec![0x9a, 0x06, 0x00]).await?; // field 99, empty
    expect_error(&mut proto, Code::UnknownFrame).await?;
    proto.send_bytes(Vec::new()).await?; // an empty frame
    expect_error(&mut proto, Code::UnknownFrame).await?;
    still_alive(&mut proto).await?;

    // A second hello: BAD_REQUEST; the first identity stands, the connection stays.
    proto
        .send_frame(&hello(&cluster.token("someone-else")))
        .await?;
    let e = expect_error(&mut proto, Code::BadRequest).await?;
    assert!(e.message.contains("already"), "{}", e.message);
    still_alive(&mut proto).await?;
    let mut json = json_authed(&cluster, "j3").await?;
    json.send_json_frame(&hello(&cluster.token("j3"))).await?;
    expect_json_error(&mut json, Code::BadRequest).await?;
    json_still_alive(&mut json).await?;
    cluster.stop().await
}
