//! Heartbeats on a running system: a client that goes silent is closed
//! (1001 "idle timeout") once `idle_heartbeats` heartbeats pass without a
//! frame from it, while one that pings stays. The node checks its sessions
//! with one sweep per heartbeat, not a timer per session.

use std::time::{Duration, Instant};

use integration_tests::{Cluster, PATIENCE, SECRET};
use proto::client::v1::{ClientFrame, Ping, client_frame, server_frame};
use roomcast_client::{RawConnection, RawEvent};
use serde_json::json;

const HEARTBEAT_MS: u64 = 200;
const IDLE_HEARTBEATS: u32 = 2;

fn token(uid: &str) -> String {
    let now = common::time::now_ms() / 1000;
    let claims = json!({"sub": uid, "iat": now, "exp": now + 600});
    common::auth::mint_hs256_claims(SECRET, &claims).unwrap_or_default()
}

async fn ping(raw: &mut RawConnection) -> anyhow::Result<()> {
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Ping(Ping { client_time_ms: 1 })),
    })
    .await?;
    loop {
        match raw.next_frame(PATIENCE).await? {
            RawEvent::Frame(f) if matches!(f.frame, Some(server_frame::Frame::Pong(_))) => {
                return Ok(());
            }
            RawEvent::Frame(f) if matches!(f.frame, Some(server_frame::Frame::Ephemeral(_))) => {}
            other => anyhow::bail!("expected a pong, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_and_a_pinging_one_stays() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.heartbeat_ms = HEARTBEAT_MS;
        cfg.conn.idle_heartbeats = IDLE_HEARTBEATS;
    })
    .await?;
    let mut silent = cluster.raw().await?;
    silent.hello(&token("silent"), PATIENCE).await?;
    let silent_since = Instant::now();
    let mut talker = cluster.raw().await?;
    talker.hello(&token("talker"), PATIENCE).await?;

    // Three idle limits' worth of heartbeats, the talker pinging throughout.
    let idle_limit = Duration::from_millis(HEARTBEAT_MS * u64::from(IDLE_HEARTBEATS));
    while silent_since.elapsed() < idle_limit * 3 {
        ping(&mut talker).await?;
        tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS / 2)).await;
    }

    match silent.next_frame(PATIENCE).await? {
        RawEvent::Close { code, reason } => {
            assert_eq!(code, 1001, "going away");
            assert_eq!(reason, "idle timeout");
        }
        other => anyhow::bail!("expected the silent client's close, got {other:?}"),
    }
    ping(&mut talker).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_not_closed_before_its_limit() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.heartbeat_ms = HEARTBEAT_MS;
        cfg.conn.idle_heartbeats = IDLE_HEARTBEATS;
    })
    .await?;
    let mut silent = cluster.raw().await?;
    silent.hello(&token("silent"), PATIENCE).await?;
    let since = Instant::now();
    match silent.next_frame(PATIENCE).await? {
        RawEvent::Close { reason, .. } => {
            let waited = since.elapsed();
            let limit = Duration::from_millis(HEARTBEAT_MS * u64::from(IDLE_HEARTBEATS));
            assert_eq!(reason, "idle timeout");
            assert!(
                waited >= limit,
                "closed after {waited:?}, the limit is {limit:?}"
            );
        }
        other => anyhow::bail!("expected the close, got {other:?}"),
    }
    Ok(())
}
