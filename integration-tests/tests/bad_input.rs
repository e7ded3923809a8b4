//! Bad input gets a clear error frame or close reason, and nobody else notices.

use integration_tests::{Cluster, assert_seqs, collect, next_frame, raw_join};
use proto::client::v1::{ClientFrame, Code, Ping, Publish, client_frame, server_frame};
use roomcast_client::RawEvent;

/// The error frame, then the close, that end a connection.
async fn expect_error_then_close(
    raw: &mut roomcast_client::RawConnection,
    code: Code,
    close_code: u16,
) -> anyhow::Result<String> {
    let message = match next_frame(raw).await? {
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
                return Ok(message);
            }
            RawEvent::Frame(f) if is_ephemeral(&f) => {}
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
    let mut raw = cluster.raw().await?;
    raw.send_bytes(vec![0xff, 0xfe, 0xfd, 0x00, 0x13]).await?;
    expect_error_then_close(&mut raw, Code::Malformed, 1007).await?;
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
    let why = expect_error_then_close(&mut raw, Code::TooLarge, 1009).await?;
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
    expect_error_then_close(&mut raw, Code::HelloRequired, 1008).await?;

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
