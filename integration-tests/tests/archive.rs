//! Standalone archives an ended room into its embedded store (SQLite), with
//! no server: history and replay move from the live log to the archive, read
//! through the Rust SDK with a client token and by the app backend.

use std::time::Duration;

use anyhow::{Context as _, bail};
use integration_tests::{Cluster, PATIENCE};
use roomcast_client::{Code, Error, HistoryPage};
use tokio::time::Instant;

fn seqs(page: &HistoryPage) -> Vec<u64> {
    page.messages.iter().map(|m| m.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_archives_an_ended_room_and_the_sdk_reads_it_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let archive_file = dir.path().join("archive.db");
    let url = format!("sqlite:{}", archive_file.display());
    let cluster = Cluster::start_with(|cfg| {
        cfg.biz.archive_url = url;
        cfg.biz.archive_poll_ms = 20;
    })
    .await?;
    let room = cluster.create_room("Archived in standalone").await?;
    for i in 1..=20 {
        cluster.publish(&room, &format!("{{\"n\":{i}}}")).await?;
    }
    let (alice, _events) = cluster.client("alice").await?;

    // Live: the log.
    let page = alice.history(&room, None, Some(0), Some(10)).await?;
    assert_eq!(page.source, "live");
    assert_eq!(seqs(&page), (1..=10).collect::<Vec<_>>());
    assert_eq!(page.messages[0].body, serde_json::json!({"n": 1}));
    let page = alice.history(&room, Some(20), None, Some(3)).await?;
    assert_eq!(seqs(&page), [17, 18, 19]);

    // The end: archived by the embedded worker, then served from the archive.
    let ended = cluster
        .backend()
        .post(format!("{}/v1/rooms/{room}/end", cluster.sys.backend_url))
        .send()
        .await?;
    assert!(ended.status().is_success(), "end: {}", ended.status());
    let deadline = Instant::now() + PATIENCE;
    let page = loop {
        let page = alice.history(&room, None, None, Some(100)).await?;
        if page.source == "archive" {
            break page;
        }
        if Instant::now() > deadline {
            bail!("the room was not archived in time: {page:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        seqs(&page),
        (1..=21).collect::<Vec<_>>(),
        "20 and room_ended"
    );
    assert_eq!(page.messages[20].kind, "room_ended");
    cluster
        .wait_metric(r#"roomcast_biz_archive_jobs_total{result="done"}"#, 1.0)
        .await?;
    assert!(archive_file.exists(), "the archive is the configured file");

    let replay = alice.replay(&room, 0, Some(5)).await?;
    assert_eq!(
        (replay.source.as_str(), seqs(&replay)),
        ("archive", vec![1, 2, 3, 4, 5])
    );
    assert!(replay.messages.iter().all(|m| m.offset_ms >= 0));
    let later = replay.messages[4].offset_ms;
    let rest = alice.replay(&room, later, Some(100)).await?;
    assert!(rest.messages.iter().all(|m| m.offset_ms >= later));
    assert_eq!(rest.messages.last().map(|m| m.seq), Some(21));

    // The live state is gone; the backend still reads the archive.
    let gone = cluster
        .backend()
        .get(format!("{}/v1/rooms/{room}", cluster.sys.backend_url))
        .send()
        .await?;
    assert_eq!(gone.status().as_u16(), 404);
    let backend: serde_json::Value = cluster
        .backend()
        .get(format!(
            "{}/v1/rooms/{room}/history?after_seq=20",
            cluster.sys.backend_url
        ))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(backend["messages"][0]["seq"], 21);

    // Unknown rooms and bad parameters are typed refusals.
    match alice.history("no-such-room", None, None, None).await {
        Err(Error::Refused { code, .. }) => assert_eq!(code, Code::RoomNotFound),
        other => bail!("unknown room: {other:?}"),
    }
    match alice.replay(&room, 0, Some(0)).await {
        Err(Error::Refused { code, .. }) => assert_eq!(code, Code::BadRequest),
        other => bail!("limit 0: {other:?}"),
    }
    alice.close().await;
    cluster.stop().await.context("stop")
}
