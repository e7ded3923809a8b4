//! Heartbeats on a running system: a client that goes silent is closed
//! (1001 "idle timeout") once `idle_heartbeats` heartbeats pass without a
//! frame from it, while one that pings stays. The node checks its sessions
//! with one sweep per heartbeat, not a timer per session.

use std::time::{Duration, Instant};

use integration_tests::{Cluster, PATIENCE, ping};
use roomcast_client::RawEvent;

const HEARTBEAT_MS: u64 = 200;
const IDLE_HEARTBEATS: u32 = 2;
const IDLE_LIMIT: Duration = Duration::from_millis(HEARTBEAT_MS * IDLE_HEARTBEATS as u64);

async fn start() -> anyhow::Result<Cluster> {
    Cluster::start_with(|cfg| {
        cfg.conn.heartbeat_ms = HEARTBEAT_MS;
        cfg.conn.idle_heartbeats = IDLE_HEARTBEATS;
    })
    .await
}

/// The close that ends a silent connection: its reason, and how long after
/// `since` it came.
async fn idle_close(
    raw: &mut roomcast_client::RawConnection,
    since: Instant,
) -> anyhow::Result<Duration> {
    match raw.next_frame(PATIENCE).await? {
        RawEvent::Close { code, reason } => {
            assert_eq!(code, 1001, "going away");
            assert_eq!(reason, "idle timeout");
            Ok(since.elapsed())
        }
        other => anyhow::bail!("expected the silent client's close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_and_a_pinging_one_stays() -> anyhow::Result<()> {
    let cluster = start().await?;
    let mut silent = cluster.raw_authed("silent").await?;
    let silent_since = Instant::now();
    let mut talker = cluster.raw_authed("talker").await?;

    // Three idle limits' worth of heartbeats, the talker pinging throughout.
    while silent_since.elapsed() < IDLE_LIMIT * 3 {
        ping(&mut talker).await?;
        tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS / 2)).await;
    }
    idle_close(&mut silent, silent_since).await?;
    ping(&mut talker).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_not_closed_before_its_limit() -> anyhow::Result<()> {
    let cluster = start().await?;
    let mut silent = cluster.raw_authed("silent").await?;
    let waited = idle_close(&mut silent, Instant::now()).await?;
    assert!(
        waited >= IDLE_LIMIT,
        "closed after {waited:?}, the limit is {IDLE_LIMIT:?}"
    );
    Ok(())
}
