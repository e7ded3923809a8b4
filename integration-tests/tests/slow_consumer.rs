//! A client that stops reading only hurts itself: the others get every message
//! on time, the slow one is marked lagged and then disconnected, and the
//! metrics count it.

use std::time::Duration;

use integration_tests::{Cluster, assert_seqs, collect, raw_join};

const MESSAGES: u64 = 600;
const BODY: usize = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_delay_the_others_websocket() -> anyhow::Result<()> {
    slow_consumer(roomcast_client::Transport::Ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_delay_the_others_quic() -> anyhow::Result<()> {
    slow_consumer(roomcast_client::Transport::Quic).await
}

async fn slow_consumer(transport: roomcast_client::Transport) -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.outbound_queue = 8;
        cfg.conn.lag_disconnect_ms = 300;
    })
    .await?;
    let room = cluster.create_room("slow").await?;
    let mut readers = Vec::new();
    for i in 0..4 {
        let uid = format!("fast{i}");
        let opts = roomcast_client::ConnectOptions::new(
            cluster.sys.router_url.clone(),
            cluster.token(&uid),
        )
        .uid(uid.as_str())
        .transports(vec![transport]);
        let (client, events) = roomcast_client::Client::connect(opts).await?;
        client.join(room.as_str()).await?;
        readers.push((client, events));
    }
    // Joins, then never reads again: its socket buffers fill and its queue overflows.
    let mut stuck = cluster.raw_authed("stuck").await?;
    raw_join(&mut stuck, &room, None).await?;

    let started = tokio::time::Instant::now();
    let body = vec![b'x'; BODY];
    for _ in 0..MESSAGES {
        cluster.publish_body(&room, body.clone()).await?;
    }
    for (_, events) in &mut readers {
        assert_seqs(
            &collect(events, &room, MESSAGES as usize).await?,
            1,
            MESSAGES,
        );
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "readers were held up: {elapsed:?}"
    );

    cluster
        .wait_metric("roomcast_conn_lagged_total", 1.0)
        .await?;
    cluster
        .wait_metric("roomcast_conn_slow_disconnects_total", 1.0)
        .await?;
    // The stuck client is gone: only the readers remain connected.
    cluster.wait_until_connections(4).await?;
    cluster.stop().await
}
