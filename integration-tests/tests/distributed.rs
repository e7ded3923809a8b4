//! Distributed Roomcast as real processes: etcd, Redis, 2 push nodes, 2 conn
//! nodes, room-biz and the router, each its own process on free ports; then
//! broken on purpose.

use std::collections::HashSet;
use std::time::Duration;

use integration_tests::procs::{INTERNAL_TOKEN, Topology, TopologyOptions, run_to_exit};
use integration_tests::{assert_seqs, collect, raw_join, read_deliveries};
use proto::client::v1::RoomMessage;
use roomcast_client::{ConnectOptions, Event, Events, RawConnection};

/// Raw clients spread over both conn nodes, joined to `room`.
async fn spread_clients(t: &Topology, room: &str, n: usize) -> anyhow::Result<Vec<RawConnection>> {
    let mut clients = Vec::new();
    for i in 0..n {
        let url = t.ws_url(i % t.conn.len())?;
        let mut raw = RawConnection::connect(&url, Some(proto::PROTOBUF_SUBPROTOCOL)).await?;
        raw.hello(
            &t.token(&format!("spread-{i}")),
            integration_tests::PATIENCE,
        )
        .await?;
        raw_join(&mut raw, room, None).await?;
        clients.push(raw);
    }
    Ok(clients)
}

async fn fan_out_over_both_conn_nodes(broadcast_threshold: u32) -> anyhow::Result<()> {
    let t = Topology::start(TopologyOptions {
        broadcast_threshold,
        ..TopologyOptions::default()
    })
    .await?;
    let room = t.create_room("spread").await?;
    let mut clients = spread_clients(&t, &room, 8).await?;
    for i in 1..=50u64 {
        assert_eq!(t.publish(&room, &format!("m{i}")).await?, i);
    }
    for raw in &mut clients {
        assert_seqs(&read_deliveries(raw, 50).await?, 1, 50);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_both_conn_nodes_get_every_message_in_order() -> anyhow::Result<()> {
    fan_out_over_both_conn_nodes(500).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_both_conn_nodes_get_every_message_in_order_in_broadcast_mode()
-> anyhow::Result<()> {
    fan_out_over_both_conn_nodes(4).await
}

/// Messages of `room` until `want` of them, skipping other events; returns
/// them and whether the stream was reset on the way.
async fn messages(
    events: &mut Events,
    room: &str,
    want: usize,
) -> anyhow::Result<(Vec<RoomMessage>, bool)> {
    let mut got = Vec::new();
    let mut reset = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < want {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| anyhow::anyhow!("timed out with {} of {want} messages", got.len()))?
            .ok_or_else(|| anyhow::anyhow!("event stream ended"))?;
        match event {
            Event::Message {
                room: r, message, ..
            } if r == room => got.push(message),
            Event::StreamReset { .. } => reset = true,
            _ => {}
        }
    }
    Ok((got, reset))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_conn_node_moves_its_clients_without_gaps_and_presence_heals()
-> anyhow::Result<()> {
    let mut t = Topology::start(TopologyOptions::default()).await?;
    let room = t.create_room("failover").await?;
    // SDK clients through the router.
    let mut sdk = Vec::new();
    for i in 0..6 {
        let opts = ConnectOptions::new(t.router_url()?, t.token(&format!("mover-{i}")))
            .uid(format!("mover-{i}"));
        let (client, mut events) = roomcast_client::Client::connect(opts).await?;
        client.join(room.as_str()).await?;
        let node = loop {
            match events.next().await {
                Some(Event::Connected { node_id, .. }) => break node_id,
                Some(_) => continue,
                None => anyhow::bail!("events ended"),
            }
        };
        sdk.push((client, events, node));
    }
    // The node with the most SDK clients dies; raw clients there never come back.
    let ids = t.conn_ids();
    let victim_id = sdk
        .iter()
        .map(|(_, _, n)| n.clone())
        .max_by_key(|n| sdk.iter().filter(|(_, _, m)| m == n).count())
        .unwrap_or_default();
    let victim = ids[&victim_id];
    let mut ghosts = Vec::new();
    for i in 0..3 {
        let mut raw =
            RawConnection::connect(&t.ws_url(victim)?, Some(proto::PROTOBUF_SUBPROTOCOL)).await?;
        raw.hello(&t.token(&format!("ghost-{i}")), integration_tests::PATIENCE)
            .await?;
        raw_join(&mut raw, &room, None).await?;
        ghosts.push(raw);
    }
    assert_eq!(t.members(&room).await?, 9);

    for i in 1..=20 {
        t.publish(&room, &format!("m{i}")).await?;
    }
    t.conn[victim].kill9();
    drop(ghosts);
    for i in 21..=60 {
        t.publish(&room, &format!("m{i}")).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (_, events, _) in &mut sdk {
        let (got, reset) = messages(events, &room, 60).await?;
        assert!(!reset, "a resume within history must not reset the stream");
        assert_seqs(&got, 1, 60);
    }
    // Presence: the dead node's memberships are gone within ~30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let members = t.members(&room).await?;
        if members == 6 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "members stayed at {members}, expected 6"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_push_node_while_messages_flow_loses_nothing() -> anyhow::Result<()> {
    let mut t = Topology::start(TopologyOptions::default()).await?;
    // Several rooms so both push nodes own some.
    let mut rooms = Vec::new();
    for i in 0..4 {
        rooms.push(t.create_room(&format!("r{i}")).await?);
    }
    let mut clients = Vec::new();
    for room in &rooms {
        clients.push((room.clone(), spread_clients(&t, room, 2).await?));
    }
    let total = 40u64;
    for i in 1..=total {
        for room in &rooms {
            t.publish(room, &format!("m{i}")).await?;
        }
        if i == 10 {
            t.push[0].kill9();
        }
    }
    for (room, raws) in &mut clients {
        for raw in raws.iter_mut() {
            let got = read_deliveries(raw, total as usize).await?;
            // Dense and ordered; a retried publish may repeat a body under a new seq.
            assert_seqs(&got, 1, got.len() as u64);
            let bodies: HashSet<&[u8]> = got.iter().map(|m| m.body.as_ref()).collect();
            for i in 1..=total {
                assert!(
                    bodies.contains(format!("m{i}").as_bytes()),
                    "{room}: m{i} lost"
                );
            }
        }
    }
    Ok(())
}

/// The messages of `room` on `raw` up to `upto`: in order, each seq once
/// (overlaps of a refill are dropped), any hole or stream reset an error.
async fn read_stream(raw: &mut RawConnection, upto: u64) -> anyhow::Result<Vec<RoomMessage>> {
    use proto::client::v1::server_frame::Frame;
    use roomcast_client::RawEvent;
    let mut got: Vec<RoomMessage> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.last().map_or(0, |m| m.seq) < upto {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = match raw.next_frame(left).await? {
            RawEvent::Frame(f) => f.frame,
            other => anyhow::bail!("unexpected {other:?}"),
        };
        match frame {
            Some(Frame::Delivery(d)) => {
                for m in d.messages {
                    let last = got.last().map_or(0, |m| m.seq);
                    if m.seq <= last {
                        continue;
                    }
                    anyhow::ensure!(m.seq == last + 1, "hole: {last} then {}", m.seq);
                    got.push(m);
                }
            }
            Some(Frame::Joined(j)) => anyhow::bail!("stream reset: {j:?}"),
            // Pongs, presence, lag notices (the node refills by itself).
            _ => {}
        }
    }
    Ok(got)
}

/// Issue 13, point 9: a push node dies while an app backend publishes
/// through the push API. Discovery keeps the dead node for its whole lease
/// (10 s here), yet publishing goes on through the surviving node after at
/// most a handful of clear, retryable failures, and every acknowledged
/// message reaches the room's members in order without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_api_reroutes_at_once_when_a_push_node_dies() -> anyhow::Result<()> {
    let lease_ttl_secs = 10;
    let mut t = Topology::start(TopologyOptions {
        lease_ttl_secs,
        ..TopologyOptions::default()
    })
    .await?;
    let room = t.create_room("owner dies").await?;
    let (_, victim) = t.push_owner(&room)?;
    let mut members = spread_clients(&t, &room, 2).await?;

    let url = format!("{}/v1/rooms/{room}/messages", t.backend_url);
    let http = t.backend();
    // seq → the publish's number, for every acknowledged publish.
    let mut acked = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    let mut killed_at = None;
    let mut i = 0u64;
    // Publish until well past the dead node's lease: the whole window in
    // which discovery still lists it.
    while killed_at
        .is_none_or(|at: tokio::time::Instant| at.elapsed().as_secs() < lease_ttl_secs as u64 + 3)
    {
        i += 1;
        if i == 40 {
            t.push[victim].kill9();
            killed_at = Some(tokio::time::Instant::now());
        }
        let res = http
            .post(&url)
            .json(&serde_json::json!({ "body": { "i": i } }))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").cloned();
        let body: serde_json::Value = res.json().await?;
        if status == 200 {
            let seq = body["seq"].as_u64().expect("seq");
            anyhow::ensure!(
                acked.insert(seq, i).is_none(),
                "seq {seq} acknowledged twice"
            );
        } else {
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            failures.push((i, status, code, retry_after.is_some()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(
        publishes = i,
        ?failures,
        "Publishing through the push node's death."
    );
    anyhow::ensure!(
        failures.len() <= 5,
        "{} of {i} publishes failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    for (i, status, code, retry_after) in &failures {
        anyhow::ensure!(
            *status == 503
                && *retry_after
                && ["not_published", "publish_unknown"].contains(&code.as_str()),
            "publish {i}: not a clear retryable error: {status} {code}"
        );
    }
    anyhow::ensure!(acked.len() as u64 + failures.len() as u64 == i);

    let last = *acked.keys().last().expect("acknowledged publishes");
    for raw in &mut members {
        let got = read_stream(raw, last).await?;
        assert_seqs(&got, 1, last);
        for (seq, i) in &acked {
            let body: serde_json::Value = serde_json::from_slice(&got[(*seq - 1) as usize].body)?;
            assert_eq!(body["i"], *i, "seq {seq}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_gives_a_new_epoch_and_traffic_continues() -> anyhow::Result<()> {
    let mut t = Topology::start(TopologyOptions::default()).await?;
    let room = t.create_room("amnesia").await?;
    let opts = ConnectOptions::new(t.router_url()?, t.token("witness")).uid("witness");
    let (client, mut events) = roomcast_client::Client::connect(opts).await?;
    let first = client.join(room.as_str()).await?;
    for i in 1..=5 {
        t.publish(&room, &format!("before{i}")).await?;
    }
    assert_seqs(&collect(&mut events, &room, 5).await?, 1, 5);

    t.redis.restart_empty()?;
    // The first publishes after the restart may fail while connections
    // recover; the harness retries. They land in the new epoch.
    for i in 1..=3 {
        t.publish(&room, &format!("during{i}")).await?;
    }
    // The client is told: new epoch, not recovered, fresh snapshot.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut reset = None;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await? {
            Some(Event::StreamReset { epoch, .. }) => reset = Some(epoch),
            Some(Event::Joined(j)) if j.room == room && reset.is_some() => {
                assert!(!j.recovered);
                assert!(
                    j.snapshot.is_some(),
                    "a fresh snapshot comes with the reset"
                );
                assert_eq!(Some(j.epoch), reset);
                break;
            }
            Some(Event::Message {
                room: r, message, ..
            }) if r == room => {
                anyhow::ensure!(
                    !message.body.starts_with(b"before"),
                    "an old-epoch message was delivered again"
                );
            }
            Some(_) => {}
            None => anyhow::bail!("events ended"),
        }
    }
    let epoch = reset.ok_or_else(|| anyhow::anyhow!("no reset"))?;
    assert_ne!(epoch, first.epoch);
    // And new messages keep coming, in order, without a restart of anything.
    let mut expected = Vec::new();
    for i in 1..=5 {
        expected.push(t.publish(&room, &format!("after{i}")).await?);
    }
    let mut after = Vec::new();
    while after.len() < 5 {
        match tokio::time::timeout_at(deadline, events.next()).await? {
            Some(Event::Message {
                room: r, message, ..
            }) if r == room => {
                if message.body.starts_with(b"after") {
                    after.push(message);
                }
            }
            Some(_) => {}
            None => anyhow::bail!("events ended"),
        }
    }
    let seqs: Vec<u64> = after.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, expected, "every new message, in order");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_keeps_traffic_flowing_and_nodes_come_back() -> anyhow::Result<()> {
    let mut t = Topology::start(TopologyOptions::default()).await?;
    let room = t.create_room("outage").await?;
    let mut clients = spread_clients(&t, &room, 4).await?;
    // The test's own publisher must route while etcd is down: warm its view.
    t.publish(&room, "m1").await?;
    t.etcd.stop();
    for i in 2..=20 {
        t.publish(&room, &format!("m{i}")).await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    for raw in &mut clients {
        assert_seqs(&read_deliveries(raw, 20).await?, 1, 20);
    }
    t.etcd.start_again()?;
    use common::discovery::ServiceKind;
    for p in &t.conn {
        t.wait_registered(ServiceKind::Conn, &p.id, true).await?;
    }
    for p in &t.push {
        t.wait_registered(ServiceKind::Push, &p.id, true).await?;
    }
    // The router sees the conn nodes again and hands one out.
    let route: serde_json::Value =
        reqwest::get(format!("{}/v1/route?uid=after-outage", t.router_url()?))
            .await?
            .error_for_status()?
            .json()
            .await?;
    assert_eq!(route["mode"], "long", "{route}");
    for i in 21..=25 {
        t.publish(&room, &format!("m{i}")).await?;
    }
    for raw in &mut clients {
        assert_seqs(&read_deliveries(raw, 5).await?, 21, 25);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_fails_with_one_clear_line() -> anyhow::Result<()> {
    // etcd unreachable.
    let (code, err) = run_to_exit(
        "roomcast-router",
        &["--etcd", "127.0.0.1:1", "--listen", "127.0.0.1:0"],
        &[],
    )
    .await?;
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("etcd") && err.contains("127.0.0.1:1"), "{err}");
    // Redis unreachable (etcd is up).
    let etcd = test_servers::Etcd::start()?;
    let (code, err) = run_to_exit(
        "roomcast-push",
        &[
            "--etcd",
            &etcd.endpoint(),
            "--redis",
            "redis://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
        ],
        &[("ROOMCAST_INTERNAL_TOKEN", INTERNAL_TOKEN)],
    )
    .await?;
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("Redis") || err.contains("redis"), "{err}");
    // Bad TOML.
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = [not toml\n")?;
    let (code, err) = run_to_exit(
        "roomcast-conn",
        &["--config", bad.to_str().unwrap_or_default()],
        &[],
    )
    .await?;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("bad.toml") || err.contains("invalid"), "{err}");
    // Development or short credentials, refused before anything listens,
    // naming the setting and never the value.
    for (bin, env, setting) in [
        (
            "roomcast-conn",
            ("ROOMCAST_TOKEN_SECRET", "roomcast-dev-secret"),
            "node.token_secret",
        ),
        (
            "roomcast-conn",
            ("ROOMCAST_TOKEN_SECRET", "short"),
            "node.token_secret",
        ),
        (
            "roomcast-biz",
            ("ROOMCAST_TOKEN_SECRET", "roomcast-dev-secret"),
            "node.token_secret",
        ),
        (
            "roomcast-router",
            ("ROOMCAST_ROUTER_NODE__ADMIN_TOKEN", "roomcast-dev-admin"),
            "node.admin_token",
        ),
        (
            "roomcast-push",
            ("ROOMCAST_INTERNAL_TOKEN", "tiny"),
            "node.internal_token",
        ),
    ] {
        let mut envs = vec![("ROOMCAST_INTERNAL_TOKEN", INTERNAL_TOKEN)];
        envs.push(env);
        let (code, err) = run_to_exit(
            bin,
            &["--etcd", &etcd.endpoint(), "--listen", "127.0.0.1:0"],
            &envs,
        )
        .await?;
        assert_eq!(code, 64, "{bin} {env:?}: {err}");
        assert!(err.contains(setting), "{bin}: {err}");
        assert!(
            err.contains("development credential") || err.contains("shorter than"),
            "{bin}: {err}"
        );
        assert!(
            !err.contains(env.1) || env.1 == "short",
            "the secret is not echoed: {err}"
        );
    }
    // Port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let (code, err) = run_to_exit(
        "roomcast-router",
        &["--etcd", &etcd.endpoint(), "--listen", &addr],
        &[],
    )
    .await?;
    assert_eq!(code, 71, "{err}");
    assert!(err.contains(&addr), "{err}");
    // One line each.
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{err}"
    );
    Ok(())
}

/// A push node dies while discovery still lists it (a 20 s lease here):
/// conn nodes move their rooms to the next push node as soon as they cannot
/// attach to the dead one, so members receive what is published after the
/// death while the dead node is still listed, not only once its lease ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_resumes_before_a_dead_push_nodes_lease_ends() -> anyhow::Result<()> {
    use common::discovery::ServiceKind;
    let mut t = Topology::start(TopologyOptions {
        lease_ttl_secs: 20,
        ..TopologyOptions::default()
    })
    .await?;
    let room = t.create_room("stand-in owner").await?;
    let (owner, victim) = t.push_owner(&room)?;
    let mut members = spread_clients(&t, &room, 2).await?;
    let url = format!("{}/v1/rooms/{room}/messages", t.backend_url);
    let http = t.backend();
    let publish = |i: u64| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            // Retry what the API says to retry (the owner's death may cost one).
            for _ in 0..50 {
                let res = http
                    .post(&url)
                    .json(&serde_json::json!({ "body": { "i": i } }))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await?;
                if res.status().is_success() {
                    let body: serde_json::Value = res.json().await?;
                    return body["seq"]
                        .as_u64()
                        .ok_or_else(|| anyhow::anyhow!("no seq"));
                }
                anyhow::ensure!(
                    res.status().as_u16() == 503,
                    "publish {i}: {}",
                    res.status()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::bail!("publish {i} kept failing")
        }
    };
    for i in 1..=5 {
        publish(i).await?;
    }
    t.push[victim].kill9();
    let last = publish(6).await?;
    for raw in &mut members {
        let got = read_stream(raw, last).await?;
        assert_seqs(&got, 1, last);
    }
    // Delivered while discovery still lists the dead node: not by waiting
    // for its lease to end.
    anyhow::ensure!(
        t.node(ServiceKind::Push, &owner).is_ok(),
        "the dead push node left discovery before delivery resumed"
    );
    Ok(())
}
