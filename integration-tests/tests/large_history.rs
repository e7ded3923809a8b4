//! Histories of large messages (issue 13, point 1): 300 messages of 30 KB are
//! about 9 MB, more than the 4 MiB one gRPC reply may carry. Resume and long
//! polling must read such a history page after page and deliver all of it,
//! in order, instead of failing on every retry.

use std::time::Duration;

use integration_tests::{Cluster, assert_seqs, raw_join, read_deliveries};
use serde_json::Value;

/// Messages in the room.
const MESSAGES: u64 = 300;
/// Bytes of each message's body.
const BODY_BYTES: usize = 30 * 1024;

/// A room holding `MESSAGES` messages of `BODY_BYTES` each; returns its id
/// and stream epoch.
async fn large_room(cluster: &Cluster) -> anyhow::Result<(String, u64)> {
    let room = cluster.create_room("large messages").await?;
    for i in 0..MESSAGES {
        let body = vec![b'a' + (i % 26) as u8; BODY_BYTES];
        let seq = cluster.publish_body(&room, body).await?;
        anyhow::ensure!(seq == i + 1, "publish {i} got seq {seq}");
    }
    let mut probe = cluster.raw_authed("probe").await?;
    let joined = raw_join(&mut probe, &room, None).await?;
    anyhow::ensure!(joined.start_seq == MESSAGES, "head {}", joined.start_seq);
    probe.close().await?;
    Ok((room, joined.epoch))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_deep_in_a_history_of_large_messages_delivers_everything() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (room, epoch) = large_room(&cluster).await?;

    let mut raw = cluster.raw_authed("erin").await?;
    let joined = raw_join(&mut raw, &room, Some((epoch, 1))).await?;
    assert!(joined.recovered, "seq 2 is still in history");
    assert_eq!((joined.epoch, joined.start_seq), (epoch, MESSAGES));
    let missed = read_deliveries(&mut raw, (MESSAGES - 1) as usize).await?;
    assert_seqs(&missed, 2, MESSAGES);
    for m in &missed {
        assert_eq!(m.body.len(), BODY_BYTES, "seq {}", m.seq);
        assert_eq!(m.body[0], b'a' + ((m.seq - 1) % 26) as u8, "seq {}", m.seq);
    }

    // Live messages follow the replay.
    let seq = cluster.publish(&room, "live").await?;
    let live = read_deliveries(&mut raw, 1).await?;
    assert_seqs(&live, seq, seq);
    raw.close().await?;
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_a_history_of_large_messages_returns_pages() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (room, epoch) = large_room(&cluster).await?;
    let http = reqwest::Client::new();
    let token = cluster.token("frank");

    let mut after = 1;
    let mut seqs = Vec::new();
    let mut pages = 0;
    while after < MESSAGES {
        let res = http
            .get(format!(
                "{}/v1/rooms/{room}/messages?epoch={epoch}&after={after}",
                cluster.sys.biz_url
            ))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = res.status().as_u16();
        let reply: Value = res.json().await?;
        assert_eq!(status, 200, "poll after {after}: {reply}");
        assert_eq!(reply["recovered"], true, "{reply}");
        assert_eq!(reply["first_seq"].as_u64(), Some(after + 1), "{reply}");
        let last = reply["last_seq"].as_u64().expect("last_seq");
        assert!(last > after, "a page makes progress: {after} → {last}");
        for m in reply["messages"].as_array().expect("messages") {
            seqs.push(m["seq"].as_u64().expect("seq"));
        }
        assert_eq!(reply["next_after"].as_u64(), Some(last));
        if last < MESSAGES {
            assert_eq!(reply["poll_after_ms"], 0, "the rest is ready at once");
        }
        after = last;
        pages += 1;
        assert!(pages <= MESSAGES, "polling does not converge");
    }
    assert_eq!(seqs, (2..=MESSAGES).collect::<Vec<_>>());
    assert!(pages > 1, "9 MB do not come in one reply");
    cluster.stop().await
}
