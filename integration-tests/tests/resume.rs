//! Resume: a client that comes back with (epoch, last_seq) gets exactly what it
//! missed, then live messages; one whose history is gone or whose epoch is wrong
//! is told recovered=false and gets a fresh snapshot.

use integration_tests::{Cluster, PATIENCE, assert_seqs, raw_join, read_deliveries};
use proto::client::v1::server_frame;
use roomcast_client::{RawConnection, RawEvent};

/// Read `raw`'s frames until its room stream reached `seq`.
async fn wait_until_covered(raw: &mut RawConnection, seq: u64) -> anyhow::Result<()> {
    loop {
        let covered = match raw.next_frame(PATIENCE).await? {
            RawEvent::Frame(f) => match f.frame {
                Some(server_frame::Frame::Delivery(d)) => d.last_seq,
                Some(server_frame::Frame::Joined(j)) => j.start_seq,
                _ => 0,
            },
            other => anyhow::bail!("unexpected {other:?}"),
        };
        if covered >= seq {
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_delivers_exactly_the_missed_messages_then_live() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("resume").await?;
    let mut first = cluster.raw_authed("carol").await?;
    let joined = raw_join(&mut first, &room, None).await?;
    for i in 1..=5 {
        cluster.publish(&room, &format!("m{i}")).await?;
    }
    let seen = read_deliveries(&mut first, 5).await?;
    assert_seqs(&seen, 1, 5);
    first.close().await?;

    for i in 6..=9 {
        cluster.publish(&room, &format!("m{i}")).await?;
    }
    let mut again = cluster.raw_authed("carol").await?;
    let rejoined = raw_join(&mut again, &room, Some((joined.epoch, 5))).await?;
    assert!(rejoined.recovered);
    assert_eq!(rejoined.epoch, joined.epoch);
    assert_eq!(rejoined.start_seq, 9);
    assert!(rejoined.snapshot.is_some());
    let missed = read_deliveries(&mut again, 4).await?;
    assert_seqs(&missed, 6, 9);
    cluster.publish(&room, "live").await?;
    let live = read_deliveries(&mut again, 1).await?;
    assert_seqs(&live, 10, 10);
    assert_eq!(live[0].body.as_ref(), b"live");
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_outside_history_or_with_wrong_epoch_is_not_recovered() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.history.max_len = 10;
        cfg.push.ring_size = 10;
    })
    .await?;
    let room = cluster.create_room("short memory").await?;
    let mut probe = cluster.raw_authed("dave").await?;
    let joined = raw_join(&mut probe, &room, None).await?;
    for i in 1..=30 {
        cluster.publish(&room, &format!("m{i}")).await?;
    }
    // Once a member has been brought to seq 30 (delivered, or re-joined there
    // after falling out of the short history), the room's feed on the node is
    // there too: a fresh join starts after it.
    wait_until_covered(&mut probe, 30).await?;

    // Seq 3 fell out of a 10-message history.
    let mut late = cluster.raw_authed("dave").await?;
    let j = raw_join(&mut late, &room, Some((joined.epoch, 2))).await?;
    assert!(!j.recovered, "history no longer reaches seq 3");
    assert_eq!(j.start_seq, 30);
    let snapshot = j.snapshot.expect("a fresh snapshot");
    assert_eq!(snapshot.room, room);
    assert_eq!(snapshot.title, "short memory");

    // A different epoch (the log was reset since) is never resumed.
    let mut stale = cluster.raw_authed("dave").await?;
    let j = raw_join(&mut stale, &room, Some((joined.epoch ^ 1, 28))).await?;
    assert!(!j.recovered);
    assert_eq!(j.epoch, joined.epoch);
    assert_eq!(j.start_seq, 30);

    // A seq the stream never reached is refused the same way.
    let mut future = cluster.raw_authed("dave").await?;
    let j = raw_join(&mut future, &room, Some((joined.epoch, 99))).await?;
    assert!(!j.recovered);

    // Inside the window it still works.
    let mut recent = cluster.raw_authed("dave").await?;
    let j = raw_join(&mut recent, &room, Some((joined.epoch, 25))).await?;
    assert!(j.recovered);
    let missed = read_deliveries(&mut recent, 5).await?;
    assert_seqs(&missed, 26, 30);

    // After a non-recovered join, live messages continue from the head.
    cluster.publish(&room, "next").await?;
    let live = read_deliveries(&mut late, 1).await?;
    assert_seqs(&live, 31, 31);
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_dedups_and_tracks_the_stream() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("sdk").await?;
    let (client, mut events) = cluster.client("erin").await?;
    let joined = client.join(room.as_str()).await?;
    assert_eq!(joined.start_seq, 0);
    for i in 1..=20 {
        cluster.publish(&room, &format!("m{i}")).await?;
    }
    let got = integration_tests::collect(&mut events, &room, 20).await?;
    assert_seqs(&got, 1, 20);
    client.close().await;
    cluster.stop().await
}
