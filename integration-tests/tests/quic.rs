//! The client protocol over QUIC, alone and mixed with WebSocket in one room.

use integration_tests::{Cluster, assert_seqs, collect, raw_join, read_deliveries};
use proto::client::v1::{ClientFrame, Code, Ping, ServerFrame, client_frame, server_frame};
use roomcast_client::{ConnectOptions, Event, RawEvent, RawQuicConnection, Transport};

async fn sdk(
    cluster: &Cluster,
    uid: &str,
    transports: Vec<Transport>,
) -> anyhow::Result<(roomcast_client::Client, roomcast_client::Events)> {
    let opts = ConnectOptions::new(cluster.sys.router_url.clone(), cluster.token(uid))
        .uid(uid)
        .transports(transports);
    Ok(roomcast_client::Client::connect(opts).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_end_to_end_with_a_pinned_development_certificate() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let url = cluster
        .sys
        .quic_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("QUIC is off"))?;
    let pin = cluster
        .sys
        .quic_cert_sha256
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no fingerprint"))?;
    let room = cluster.create_room("quic").await?;

    let mut raw = RawQuicConnection::connect(&url, Some(&pin)).await?;
    let welcome = raw
        .hello(&cluster.token("q1"), integration_tests::PATIENCE)
        .await?;
    assert_eq!(welcome.uid, "q1");
    let join = proto::client::v1::Join {
        r#ref: 3,
        room: room.clone(),
        resume: None,
    };
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Join(join)),
    })
    .await?;
    loop {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Joined(j)),
            }) => {
                assert_eq!(j.r#ref, 3);
                break;
            }
            RawEvent::Frame(_) => {}
            other => anyhow::bail!("expected joined, got {other:?}"),
        }
    }
    for i in 1..=50 {
        cluster.publish_body(&room, vec![b'q'; 100 + i]).await?;
    }
    let mut seqs = Vec::new();
    while seqs.len() < 50 {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Delivery(d)),
            }) => {
                seqs.extend(d.messages.iter().map(|m| m.seq));
            }
            RawEvent::Frame(_) => {}
            other => anyhow::bail!("expected deliveries, got {other:?}"),
        }
    }
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());

    // Ping works; an unknown frame is an error that keeps the connection.
    raw.send_bytes(vec![0x9a, 0x06, 0x00]).await?;
    match raw.next_frame(integration_tests::PATIENCE).await? {
        RawEvent::Frame(ServerFrame {
            frame: Some(server_frame::Frame::Error(e)),
        }) => {
            assert_eq!(e.code, Code::UnknownFrame as i32);
        }
        other => anyhow::bail!("expected an error frame, got {other:?}"),
    }
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Ping(Ping { client_time_ms: 9 })),
    })
    .await?;
    assert!(matches!(
        raw.next_frame(integration_tests::PATIENCE).await?,
        RawEvent::Frame(ServerFrame {
            frame: Some(server_frame::Frame::Pong(_))
        })
    ));

    // A wrong pin is refused by the client.
    let wrong = "00".repeat(32);
    assert!(
        RawQuicConnection::connect(&url, Some(&wrong))
            .await
            .is_err()
    );

    // Shutdown closes with 1001 after a go-away.
    cluster.begin_shutdown();
    let mut saw_go_away = false;
    loop {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::GoAway(_)),
            }) => saw_go_away = true,
            RawEvent::Frame(_) => {}
            RawEvent::Close { code, .. } => {
                assert_eq!(code, 1001);
                break;
            }
            RawEvent::Text(t) => anyhow::bail!("unexpected text {t}"),
        }
    }
    assert!(saw_go_away);
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_quic_and_websocket_clients_gets_one_stream() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("mixed").await?;
    let mut members = Vec::new();
    for (i, transport) in [
        Transport::Quic,
        Transport::Ws,
        Transport::Quic,
        Transport::Ws,
    ]
    .into_iter()
    .enumerate()
    {
        let (client, mut events) = sdk(&cluster, &format!("m{i}"), vec![transport]).await?;
        let mut connected = None;
        while connected.is_none() {
            match events.next().await {
                Some(Event::TransportChanged { transport }) => connected = Some(transport),
                Some(_) => {}
                None => anyhow::bail!("events ended"),
            }
        }
        assert_eq!(connected, Some(transport));
        assert_eq!(client.transport(), transport);
        client.join(room.as_str()).await?;
        members.push((client, events));
    }
    let mut ws_raw = cluster.raw_authed("raw-ws").await?;
    raw_join(&mut ws_raw, &room, None).await?;
    for i in 1..=80 {
        cluster.publish(&room, &format!("x{i}")).await?;
    }
    for (_, events) in &mut members {
        assert_seqs(&collect(events, &room, 80).await?, 1, 80);
    }
    assert_seqs(&read_deliveries(&mut ws_raw, 80).await?, 1, 80);
    cluster.stop().await
}
