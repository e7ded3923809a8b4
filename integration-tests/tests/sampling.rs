//! Socket-path sampling (docs/protocol.md, "Sampling and coverage"): in a room
//! big enough to sample, low-priority messages are thinned per connection,
//! high-priority ones always arrive, and the frames' ranges cover every seq
//! without a hole, live and on resume. The SDK takes it without a re-join.

use std::time::Instant;

use anyhow::{Context as _, bail};
use integration_tests::{Cluster, PATIENCE, next_frame, raw_join};
use proto::client::v1::{Priority, server_frame};
use roomcast_client::{Event, RawConnection};

/// Messages published; every tenth is high priority, the last one too.
const PUBLISHED: u64 = 200;
/// The sampled rate of the test cluster (burst: a quarter of it, at least 1).
const LOW_PER_SEC: u32 = 8;
const BURST: u64 = 2;

fn priority_of(seq: u64) -> Priority {
    if seq.is_multiple_of(10) {
        Priority::High
    } else {
        Priority::Low
    }
}

/// Read deliveries until the range reaches `PUBLISHED`: checks they follow
/// each other from `after + 1` and carry only seqs inside their range;
/// returns the seqs carried.
async fn read_covered(raw: &mut RawConnection, after: u64) -> anyhow::Result<Vec<u64>> {
    let mut next = after + 1;
    let mut carried = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while next <= PUBLISHED {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "covered up to {} only",
            next - 1
        );
        match next_frame(raw).await? {
            server_frame::Frame::Delivery(d) => {
                anyhow::ensure!(
                    d.first_seq == next,
                    "frame {}..={} after {}: coverage must be gap-free",
                    d.first_seq,
                    d.last_seq,
                    next - 1
                );
                anyhow::ensure!(d.last_seq >= d.first_seq, "empty range");
                for m in &d.messages {
                    anyhow::ensure!(
                        (d.first_seq..=d.last_seq).contains(&m.seq),
                        "seq {} outside its frame",
                        m.seq
                    );
                    anyhow::ensure!(
                        m.priority == priority_of(m.seq) as i32,
                        "seq {} priority",
                        m.seq
                    );
                    carried.push(m.seq);
                }
                next = d.last_seq + 1;
            }
            other => bail!("expected a delivery, got {other:?}"),
        }
    }
    Ok(carried)
}

fn check_sample(carried: &[u64], after: u64, low_bound: u64) -> anyhow::Result<()> {
    let high: Vec<u64> = ((after + 1)..=PUBLISHED)
        .filter(|s| priority_of(*s) == Priority::High)
        .collect();
    let got_high: Vec<u64> = carried
        .iter()
        .copied()
        .filter(|s| priority_of(*s) == Priority::High)
        .collect();
    anyhow::ensure!(
        got_high == high,
        "every high-priority message: {got_high:?}"
    );
    let low = carried.len() as u64 - high.len() as u64;
    anyhow::ensure!(
        low <= low_bound,
        "{low} low-priority messages carried, at most {low_bound} allowed"
    );
    anyhow::ensure!(carried.windows(2).all(|w| w[0] < w[1]), "in order, once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_samples_low_priority_with_gap_free_coverage() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.sample_above_members = 3;
        cfg.conn.sample_low_per_sec = LOW_PER_SEC;
    })
    .await?;
    let room = cluster.create_room("danmaku").await?;
    let mut viewers = Vec::new();
    for i in 0..3 {
        let mut raw = cluster.raw_authed(&format!("viewer{i}")).await?;
        let joined = raw_join(&mut raw, &room, None).await?;
        viewers.push((raw, joined.start_seq, joined.epoch));
    }
    // An SDK client too: it must take the sampled frames without a re-join.
    let (sdk, mut events) = cluster.client("sdk-viewer").await?;
    sdk.join(room.as_str()).await?;

    let started = Instant::now();
    for seq in 1..=PUBLISHED {
        let got = cluster
            .publish_as(&room, format!("m{seq}").into_bytes(), priority_of(seq))
            .await?;
        anyhow::ensure!(got == seq, "published seq {got}, expected {seq}");
    }
    for (raw, start, _) in &mut viewers {
        let carried = read_covered(raw, *start).await?;
        // The bucket: its burst plus the rate over the time it could refill.
        let bound = BURST + u64::from(LOW_PER_SEC) * (started.elapsed().as_secs() + 1);
        check_sample(&carried, *start, bound)?;
        anyhow::ensure!(
            carried.len() < (PUBLISHED - *start) as usize,
            "something was sampled out"
        );
    }
    assert!(cluster.metric("roomcast_conn_sampled_out_total").await? > 0.0);

    // The SDK: high-priority messages all arrive, in order; no re-join.
    let mut sdk_seqs = Vec::new();
    let mut joins = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while sdk_seqs.last() != Some(&PUBLISHED) {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .context("the SDK never got the last message")?
            .context("event stream ended")?;
        match event {
            Event::Message { message, .. } => sdk_seqs.push(message.seq),
            Event::Joined(_) => joins += 1,
            _ => {}
        }
    }
    assert_eq!(joins, 1, "sampling must not look like a gap to the SDK");
    check_sample(&sdk_seqs, 0, PUBLISHED)?;

    // A resume into the sampled room: history thinned, coverage intact.
    let epoch = viewers[0].2;
    let mut resumed = cluster.raw_authed("late-viewer").await?;
    let joined = raw_join(&mut resumed, &room, Some((epoch, 50))).await?;
    assert!(joined.recovered, "history reaches back to 50");
    let carried = read_covered(&mut resumed, 50).await?;
    // Per second of publish time: the publishes above took a few seconds.
    let seconds = started.elapsed().as_secs() + 2;
    check_sample(&carried, 50, u64::from(LOW_PER_SEC) * seconds)?;
    sdk.close().await;
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_room_gets_every_message() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.sample_above_members = 3;
        cfg.conn.sample_low_per_sec = LOW_PER_SEC;
    })
    .await?;
    let room = cluster.create_room("small").await?;
    let mut raw = cluster.raw_authed("alone").await?;
    let joined = raw_join(&mut raw, &room, None).await?;
    for seq in 1..=PUBLISHED {
        cluster
            .publish_as(&room, format!("m{seq}").into_bytes(), priority_of(seq))
            .await?;
    }
    let carried = read_covered(&mut raw, joined.start_seq).await?;
    let all: Vec<u64> = ((joined.start_seq + 1)..=PUBLISHED).collect();
    assert_eq!(carried, all, "below the threshold nothing is sampled");
    cluster.stop().await
}
