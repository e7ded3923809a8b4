//! With the conn node's WebSocket and QUIC ports closed, the SDK falls back to
//! HTTP polling after exactly 3 failed long-connection attempts and receives
//! every message in order; when the ports reopen it returns to the long
//! connection without a gap.

use std::time::Duration;

use common::discovery::{NodeInfo, ServiceKind};
use integration_tests::{Cluster, assert_seqs};
use roomcast_client::{ConnectOptions, Event, Transport};

/// Collect `n` messages of `room`, noting transport switches on the way.
async fn messages(
    events: &mut roomcast_client::Events,
    room: &str,
    n: usize,
    switches: &mut Vec<Transport>,
) -> anyhow::Result<Vec<roomcast_client::RoomMessage>> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, events.next()).await? {
            Some(Event::Message {
                room: r, message, ..
            }) if r == room => got.push(message),
            Some(Event::TransportChanged { transport }) => switches.push(transport),
            Some(Event::StreamReset { .. }) => anyhow::bail!("the stream was reset at a switch"),
            Some(_) => {}
            None => anyhow::bail!("events ended"),
        }
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_ports_fall_back_to_polling_and_come_back_without_a_gap() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| cfg.conn.drain_window_ms = 50).await?;
    let room = cluster.create_room("fallback").await?;

    // Two ports nobody listens on, advertised by a conn node that is not there.
    let ws_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let quic_port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut ghost = NodeInfo {
        id: "conn-ghost".into(),
        zone: "local".into(),
        ..NodeInfo::default()
    };
    ghost
        .endpoints
        .insert("ws".into(), format!("ws://127.0.0.1:{ws_port}/v1/ws"));
    ghost
        .endpoints
        .insert("quic".into(), format!("quic://127.0.0.1:{quic_port}"));
    cluster
        .sys
        .discovery
        .register(ServiceKind::Conn, ghost)
        .await?;
    // The real conn node drains away, leaving only the closed ports to hand out.
    let real = cluster.conn_node_id();
    cluster
        .sys
        .live_config
        .put(&common::live_config::keys::drain(&real), "{}")
        .await?;
    let mut view = cluster.sys.discovery.watch(ServiceKind::Conn);
    tokio::time::timeout(
        Duration::from_secs(15),
        view.wait_for(|nodes| nodes.iter().all(|n| n.id != real)),
    )
    .await??;

    let mut opts =
        ConnectOptions::new(cluster.sys.router_url.clone(), cluster.token("faller")).uid("faller");
    opts.connect_timeout = Duration::from_millis(400);
    opts.long_retry_interval = Duration::from_secs(4);
    opts.polling_wait = Duration::from_secs(2);
    let (client, mut events) = roomcast_client::Client::connect(opts).await?;
    assert_eq!(
        client.transport(),
        Transport::Polling,
        "no long connection was possible"
    );
    // Exactly three failed attempts before the switch: QUIC, WebSocket, QUIC.
    let quic = "roomcast_router_client_connect_failures_total{transport=\"quic\"}";
    let ws = "roomcast_router_client_connect_failures_total{transport=\"ws\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let (mut q, mut w) = (0.0, 0.0);
    while q + w < 3.0 && tokio::time::Instant::now() < deadline {
        (q, w) = (cluster.metric(quic).await?, cluster.metric(ws).await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (q, w),
        (2.0, 1.0),
        "failed attempts reported by the SDK (quic, ws)"
    );

    client.join(room.as_str()).await?;
    let mut switches = Vec::new();
    for i in 1..=15 {
        cluster.publish(&room, &format!("p{i}")).await?;
    }
    assert_seqs(
        &messages(&mut events, &room, 15, &mut switches).await?,
        1,
        15,
    );
    // Publishing works while polling, through the HTTP action endpoint.
    let reply = client
        .comment(room.as_str(), "from a polling client")
        .await?;
    assert_eq!(reply.code, roomcast_client::Code::Ok);

    // The ports reopen: a real conn node on them, under the same id.
    let ws = tokio::net::TcpListener::bind(("127.0.0.1", ws_port)).await?;
    let quic_socket = std::net::UdpSocket::bind(("127.0.0.1", quic_port))?;
    let deps = conn_layer::Deps {
        discovery: cluster.sys.discovery.clone(),
        live_config: cluster.sys.live_config.clone(),
        registry: prometheus::Registry::new(),
        local_push: None,
        local_biz: None,
    };
    let cfg = conn_layer::Config {
        node_id: "conn-ghost".into(),
        token_secret: integration_tests::SECRET.into(),
        internal_token: cluster.sys.internal_token.clone(),
        ..conn_layer::Config::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let node = tokio::spawn(conn_layer::run(
        cfg,
        deps,
        conn_layer::Listeners {
            ws,
            quic: Some(quic_socket),
        },
        stop.clone(),
    ));

    // Traffic continues while the client is still polling...
    for i in 17..=28 {
        cluster.publish(&room, &format!("p{i}")).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = messages(&mut events, &room, 12, &mut switches).await?;
    // ...until its next long-connection retry succeeds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !switches.iter().any(|t| t.is_long()) {
        match tokio::time::timeout_at(deadline, events.next()).await? {
            Some(Event::Message {
                room: r, message, ..
            }) if r == room => got.push(message),
            Some(Event::TransportChanged { transport }) => switches.push(transport),
            Some(Event::StreamReset { .. }) => anyhow::bail!("the stream was reset at a switch"),
            Some(_) => {}
            None => anyhow::bail!("events ended"),
        }
    }
    for i in 29..=40 {
        cluster.publish(&room, &format!("p{i}")).await?;
    }
    let more = 25 - got.len();
    got.extend(messages(&mut events, &room, more, &mut switches).await?);
    // Seq 16 is the comment; everything arrives once, in order, across the switch back.
    assert_seqs(&got, 16, 40);
    assert!(client.transport().is_long());
    stop.cancel();
    node.await??;
    cluster.stop().await
}
