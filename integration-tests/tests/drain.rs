//! Draining a conn node under traffic: its clients move to the other node
//! through the router and resume; no durable message is lost or duplicated to
//! the app; the router never hands out the draining node.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::{Cluster, assert_seqs};
use roomcast_client::Event;

const MESSAGES: u64 = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_node_moves_its_clients_without_loss() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.drain_window_ms = 600;
        cfg.conn.drain_deadline_ms = 10_000;
    })
    .await?;
    let first = cluster.conn_node_id();
    let second = cluster
        .add_conn_node("conn-second", |c| c.drain_window_ms = 600)
        .await?;
    let room = cluster.create_room("drain").await?;

    let mut clients = Vec::new();
    for i in 0..8 {
        let (client, mut events) = cluster.client(&format!("d{i}")).await?;
        let node = loop {
            match events.next().await {
                Some(Event::Connected { node_id, .. }) => break node_id,
                Some(_) => {}
                None => anyhow::bail!("events ended"),
            }
        };
        client.join(room.as_str()).await?;
        clients.push((client, events, node));
    }
    let on_first = clients.iter().filter(|(_, _, n)| *n == first).count();
    let victim = if on_first > 0 {
        first.clone()
    } else {
        second.id.clone()
    };
    let survivor = if victim == first {
        second.id.clone()
    } else {
        first.clone()
    };

    // Watch what the router hands out once the victim is marked draining.
    let router = cluster.sys.router_url.clone();
    let handed_out = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_sampling = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (handed_out, stop, discovery, victim) = (
            handed_out.clone(),
            stop_sampling.clone(),
            cluster.sys.discovery.clone(),
            victim.clone(),
        );
        tokio::spawn(async move {
            let mut view = discovery.watch(common::discovery::ServiceKind::Conn);
            let _ = view
                .wait_for(|nodes| nodes.iter().any(|n| n.id == victim && n.draining))
                .await;
            let http = reqwest::Client::new();
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                if let Ok(resp) = http
                    .get(format!("{router}/v1/route?uid=probe{i}"))
                    .send()
                    .await
                    && let Ok(body) = resp.json::<serde_json::Value>().await
                    && let Some(node) = body["node_id"].as_str()
                {
                    handed_out
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(node.to_string());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    for i in 1..=MESSAGES {
        cluster.publish(&room, &format!("m{i}")).await?;
        if i == 30 {
            let key = common::live_config::keys::drain(&victim);
            cluster
                .sys
                .live_config
                .put(&key, r#"{"requested_at_ms":0}"#)
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    for (_, events, node) in &mut clients {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while got.len() < MESSAGES as usize {
            match tokio::time::timeout_at(deadline, events.next()).await? {
                Some(Event::Message {
                    room: r, message, ..
                }) if r == room => got.push(message),
                Some(Event::Connected { node_id, .. }) => *node = node_id,
                Some(_) => {}
                None => anyhow::bail!("events ended"),
            }
        }
        assert_seqs(&got, 1, MESSAGES);
    }
    for (_, _, node) in &clients {
        assert_eq!(*node, survivor, "every client ends on the surviving node");
    }
    stop_sampling.cancel();
    sampler.await?;
    let handed: HashSet<String> = handed_out
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    assert!(
        !handed.is_empty(),
        "the router was sampled during the drain"
    );
    assert!(
        !handed.contains(&victim),
        "the router handed out the draining node: {handed:?}"
    );

    // The drained node stops by itself once empty.
    if victim == second.id {
        tokio::time::timeout(Duration::from_secs(15), second.task).await???;
    } else {
        second.shutdown.cancel();
    }
    cluster.stop().await
}

/// Each client's go-away carries its own reconnect delay, within the drain
/// window, so reconnects spread instead of arriving at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_aways_spread_reconnects_over_the_drain_window() -> anyhow::Result<()> {
    use proto::client::v1::{ServerFrame, server_frame};
    use roomcast_client::RawEvent;
    const WINDOW_MS: u32 = 1_000;
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.drain_window_ms = u64::from(WINDOW_MS);
    })
    .await?;
    let mut raws = Vec::new();
    for i in 0..8 {
        raws.push(cluster.raw_authed(&format!("g{i}")).await?);
    }
    cluster.begin_shutdown();
    let mut delays = Vec::new();
    for raw in &mut raws {
        let delay = loop {
            match raw.next_frame(integration_tests::PATIENCE).await? {
                RawEvent::Frame(ServerFrame {
                    frame: Some(server_frame::Frame::GoAway(g)),
                }) => break g.reconnect_after_ms,
                RawEvent::Frame(_) => {}
                other => anyhow::bail!("expected a go-away, got {other:?}"),
            }
        };
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Close { code, .. } => assert_eq!(code, 1001),
            other => anyhow::bail!("expected close 1001 after the go-away, got {other:?}"),
        }
        delays.push(delay);
    }
    assert!(
        delays.iter().all(|&d| d > 0 && d <= WINDOW_MS),
        "every delay is within (0, {WINDOW_MS}] ms: {delays:?}"
    );
    assert!(
        delays.iter().any(|&d| d != delays[0]),
        "the delays differ: {delays:?}"
    );
    cluster.stop().await
}
