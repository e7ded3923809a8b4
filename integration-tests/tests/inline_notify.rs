//! Small rooms without a pull per message: the push node carries a small
//! appended batch inside the notify, and a conn node that is continuous
//! applies it directly. A notify without messages (too big, or inlining
//! off), a hole and an epoch change still heal by a pull, with no gap.

use anyhow::Context as _;
use integration_tests::procs::{Topology, TopologyOptions};
use integration_tests::{Cluster, assert_seqs, collect, raw_join, read_deliveries};
use message_log::MessageLog as _;
use proto::client::v1::RoomMessage;
use roomcast_client::RawConnection;

const CLIENTS: usize = 3;
const MESSAGES: u64 = 30;
const PUSH_PULLS: [&str; 2] = [
    r#"roomcast_push_pulls_total{source="ring"}"#,
    r#"roomcast_push_pulls_total{source="log"}"#,
];
const FEED_PULLS: [&str; 6] = [
    r#"roomcast_conn_feed_pulls_total{reason="not_inline"}"#,
    r#"roomcast_conn_feed_pulls_total{reason="hole"}"#,
    r#"roomcast_conn_feed_pulls_total{reason="epoch"}"#,
    r#"roomcast_conn_feed_pulls_total{reason="malformed"}"#,
    r#"roomcast_conn_feed_pulls_total{reason="resync"}"#,
    r#"roomcast_conn_feed_pulls_total{reason="broadcast_gap"}"#,
];

async fn sum(cluster: &Cluster, series: &[&str]) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for s in series {
        total += cluster.metric(s).await?;
    }
    Ok(total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_delivery_needs_no_pull_and_an_oversized_batch_is_pulled() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("small").await?;
    let mut members = Vec::new();
    for i in 0..CLIENTS {
        let (client, events) = cluster.client(&format!("inline-{i}")).await?;
        client.join(room.as_str()).await?;
        members.push((client, events));
    }
    let push_pulls = sum(&cluster, &PUSH_PULLS).await?;
    let feed_pulls = sum(&cluster, &FEED_PULLS).await?;
    let applied = cluster.metric("roomcast_conn_inline_applied_total").await?;

    for i in 1..=MESSAGES {
        assert_eq!(cluster.publish(&room, &format!("m{i}")).await?, i);
    }
    for (_client, events) in &mut members {
        let got = collect(events, &room, MESSAGES as usize).await?;
        assert_seqs(&got, 1, MESSAGES);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.body.as_ref(), format!("m{}", i + 1).as_bytes());
        }
    }
    assert_eq!(
        sum(&cluster, &PUSH_PULLS).await?,
        push_pulls,
        "no pull served while the feed stayed continuous"
    );
    assert_eq!(sum(&cluster, &FEED_PULLS).await?, feed_pulls);
    assert!(
        cluster.metric("roomcast_conn_inline_applied_total").await? >= applied + MESSAGES as f64,
        "every message arrived inside its notify"
    );
    assert!(
        cluster
            .metric("roomcast_push_notifies_inline_total")
            .await?
            >= MESSAGES as f64
    );

    // A batch over notify_inline_max_bytes (16 KiB) leaves only the head:
    // the conn node pulls it, and the small one after it is inline again.
    let big = vec![b'b'; 20 * 1024];
    assert_eq!(
        cluster.publish_body(&room, big.clone()).await?,
        MESSAGES + 1
    );
    assert_eq!(cluster.publish(&room, "after").await?, MESSAGES + 2);
    for (_client, events) in &mut members {
        let got = collect(events, &room, 2).await?;
        assert_seqs(&got, MESSAGES + 1, MESSAGES + 2);
        assert_eq!(got[0].body.as_ref(), big.as_slice());
        assert_eq!(got[1].body.as_ref(), b"after");
    }
    assert!(
        cluster
            .metric(r#"roomcast_conn_feed_pulls_total{reason="not_inline"}"#)
            .await?
            >= 1.0
    );
    assert!(sum(&cluster, &PUSH_PULLS).await? > push_pulls);
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_without_messages_are_pulled_as_before() -> anyhow::Result<()> {
    // A push node that never inlines looks to the conn node like one that
    // predates inline notifies: every notify is a pull, nothing is lost.
    let cluster = Cluster::start_with(|cfg| cfg.push.notify_inline_max_bytes = 0).await?;
    let room = cluster.create_room("old-style").await?;
    let (client, mut events) = cluster.client("old-style").await?;
    client.join(room.as_str()).await?;
    for i in 1..=10 {
        assert_eq!(cluster.publish(&room, &format!("m{i}")).await?, i);
    }
    assert_seqs(&collect(&mut events, &room, 10).await?, 1, 10);
    assert_eq!(
        cluster.metric("roomcast_conn_inline_applied_total").await?,
        0.0
    );
    assert_eq!(
        cluster
            .metric("roomcast_push_notifies_inline_total")
            .await?,
        0.0
    );
    assert!(
        cluster
            .metric(r#"roomcast_conn_feed_pulls_total{reason="not_inline"}"#)
            .await?
            >= 1.0
    );
    cluster.stop().await
}

/// A sample of a process's `/metrics`; 0 if absent.
async fn proc_metric(ops_url: &str, series: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{ops_url}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_in_the_notified_stream_heals_by_a_pull_with_no_gap() -> anyhow::Result<()> {
    let t = Topology::start(TopologyOptions {
        push: 1,
        conn: 1,
        ..TopologyOptions::default()
    })
    .await?;
    let conn_ops = t.conn[0].ops_url.clone().context("conn ops url")?;
    let room = t.create_room("holey").await?;
    let mut raw = RawConnection::connect(&t.ws_url(0)?, Some(proto::PROTOBUF_SUBPROTOCOL)).await?;
    raw.hello(&t.token("witness"), integration_tests::PATIENCE)
        .await?;
    raw_join(&mut raw, &room, None).await?;
    for i in 1..=5u64 {
        assert_eq!(t.publish(&room, &format!("m{i}")).await?, i);
    }
    assert_seqs(&read_deliveries(&mut raw, 5).await?, 1, 5);
    let holes = r#"roomcast_conn_feed_pulls_total{reason="hole"}"#;
    let before = proc_metric(&conn_ops, holes).await?;
    assert!(proc_metric(&conn_ops, "roomcast_conn_inline_applied_total").await? >= 5.0);

    // Another writer (a push node that owned the room a moment during an
    // ownership move) appends seq 6 behind the push node's back: its next
    // notify carries seq 7 only.
    let log = message_log::redis::connect(message_log::redis::RedisLogConfig {
        urls: vec![t.redis.url()],
        ..Default::default()
    })
    .await?;
    let appended = log
        .append(
            &room,
            &[RoomMessage {
                kind: "test".into(),
                body: b"behind".to_vec().into(),
                sender: "other".into(),
                ts_ms: common::time::now_ms(),
                ..Default::default()
            }],
        )
        .await?;
    assert_eq!(appended.first_seq, 6);
    assert_eq!(t.publish(&room, "m7").await?, 7);

    let got = read_deliveries(&mut raw, 2).await?;
    assert_seqs(&got, 6, 7);
    assert_eq!(got[0].body.as_ref(), b"behind");
    assert_eq!(got[1].body.as_ref(), b"m7");
    assert!(proc_metric(&conn_ops, holes).await? > before);

    // And it is continuous again: the next one needs no pull.
    let pulls = proc_metric(&conn_ops, holes).await?;
    assert_eq!(t.publish(&room, "m8").await?, 8);
    assert_seqs(&read_deliveries(&mut raw, 1).await?, 8, 8);
    assert_eq!(proc_metric(&conn_ops, holes).await?, pulls);

    // room-biz publishes on its Publish stream to the push node, not with a
    // unary PushRoom call each (the tester above calls PushRoom itself).
    let push_ops = t.push[0].ops_url.clone().context("push ops url")?;
    let via = |how: &str| format!(r#"roomcast_push_room_calls_total{{via="{how}"}}"#);
    let streamed = proc_metric(&push_ops, &via("stream")).await?;
    let unary = proc_metric(&push_ops, &via("unary")).await?;
    let reply: serde_json::Value = t
        .backend()
        .post(format!("{}/v1/rooms/{room}/messages", t.backend_url))
        .json(&serde_json::json!({"kind": "chat", "body": "m9"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(reply["seq"], 9);
    assert_seqs(&read_deliveries(&mut raw, 1).await?, 9, 9);
    assert_eq!(
        proc_metric(&push_ops, &via("stream")).await?,
        streamed + 1.0
    );
    assert_eq!(proc_metric(&push_ops, &via("unary")).await?, unary);
    Ok(())
}
