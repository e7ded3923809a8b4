//! A client that stops reading only hurts itself: the others get every message
//! on time, the slow one is marked lagged and then disconnected, and the
//! metrics count it. When it reads again it finds, after what its socket held,
//! why it was cut off (`Error{SLOW_CONSUMER}` and close 1008, not a bare end
//! of stream), and a resume from its last seq fills the rest without a gap.

use std::time::Duration;

use integration_tests::{Cluster, assert_seqs, collect, raw_join, read_deliveries};
use proto::client::v1::{Code, ServerFrame, server_frame};
use roomcast_client::RawEvent;

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
        // Catch-up reads of 16 KB messages stay well under a gRPC message.
        cfg.conn.pull_batch = 100;
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
    // Joins, then stops reading: its socket buffers fill and its queue overflows.
    let mut stuck = cluster.raw_authed("stuck").await?;
    let epoch = raw_join(&mut stuck, &room, None).await?.epoch;

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
    // A lag episode ends in a disconnect when an offer finds the queue still
    // full `lag_disconnect_ms` after the episode began. When it began depends
    // on how many of the messages the socket buffers absorbed, so the room
    // stays busy until the disconnect instead of assuming the burst outlasts
    // the episode.
    let mut published = MESSAGES;
    let deadline = tokio::time::Instant::now() + integration_tests::PATIENCE;
    while cluster
        .metric("roomcast_conn_slow_disconnects_total")
        .await?
        < 1.0
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the stuck client was not disconnected after {published} messages"
        );
        cluster.publish_body(&room, body.clone()).await?;
        published += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (_, events) in &mut readers {
        assert_seqs(
            &collect(events, &room, (published - MESSAGES) as usize).await?,
            MESSAGES + 1,
            published,
        );
    }

    // It reads again: a gap-free prefix of the room, then why it was cut off.
    let (last, saw) = read_until_closed(&mut stuck).await?;
    assert!(
        saw.slow_consumer_error,
        "the client is told it was too slow"
    );
    assert!(last < published, "the stuck client was cut off at {last}");
    drop(stuck);
    // The stuck client is gone: only the readers remain connected.
    cluster.wait_until_connections(4).await?;

    // Resume from the last seq it has: exactly the rest, in order.
    let mut again = cluster.raw_authed("stuck").await?;
    let joined = raw_join(&mut again, &room, Some((epoch, last))).await?;
    assert!(joined.recovered, "history still holds {}", last + 1);
    assert_seqs(
        &read_deliveries(&mut again, (published - last) as usize).await?,
        last + 1,
        published,
    );
    cluster.stop().await
}

/// What a stalled client found when it read again.
#[derive(Debug, Default)]
struct Found {
    lagged: bool,
    slow_consumer_error: bool,
}

/// Read deliveries (checking they continue each other from seq 1) until the
/// server closes; returns the last seq received and what else was said. The
/// close must be a close frame with 1008, after an `Error{SLOW_CONSUMER}`.
async fn read_until_closed(
    raw: &mut roomcast_client::RawConnection,
) -> anyhow::Result<(u64, Found)> {
    let mut last = 0;
    let mut found = Found::default();
    loop {
        let frame = match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(ServerFrame { frame: Some(f) }) => f,
            RawEvent::Close { code, reason } => {
                anyhow::ensure!(
                    code == 1008,
                    "expected close 1008 after SLOW_CONSUMER, got {code} {reason:?} \
                     (1006: the stream just ended) after seq {last}, {found:?}"
                );
                anyhow::ensure!(found.slow_consumer_error, "closed without the error frame");
                return Ok((last, found));
            }
            other => anyhow::bail!("unexpected {other:?}"),
        };
        match frame {
            server_frame::Frame::Delivery(d) => {
                anyhow::ensure!(!found.slow_consumer_error, "delivery after the error");
                let seqs: Vec<u64> = d.messages.iter().map(|m| m.seq).collect();
                let expected: Vec<u64> = (last + 1..=d.last_seq).collect();
                anyhow::ensure!(
                    d.first_seq == last + 1 && seqs == expected,
                    "delivery {}..={} does not continue seq {last}",
                    d.first_seq,
                    d.last_seq
                );
                last = d.last_seq;
            }
            server_frame::Frame::Lagged(l) => {
                assert_eq!(l.resume_after_seq, last, "Lagged names where the client is");
                found.lagged = true;
            }
            server_frame::Frame::Error(e) => {
                assert_eq!(e.code, Code::SlowConsumer as i32, "{e:?}");
                found.slow_consumer_error = true;
            }
            server_frame::Frame::Ephemeral(_) | server_frame::Frame::Pong(_) => {}
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
}
