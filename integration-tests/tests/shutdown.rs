//! Graceful shutdown: clients are told to go away, then every service stops.

use integration_tests::{Cluster, next_frame, raw_join};
use proto::client::v1::server_frame;
use roomcast_client::RawEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_clients_to_go_away_and_stops_cleanly() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| cfg.conn.drain_window_ms = 200).await?;
    let room = cluster.create_room("closing").await?;
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut raw = cluster.raw_authed(&format!("c{i}")).await?;
        raw_join(&mut raw, &room, None).await?;
        clients.push(raw);
    }
    cluster.begin_shutdown();
    for raw in &mut clients {
        match next_frame(raw).await? {
            server_frame::Frame::GoAway(g) => {
                assert!(g.reconnect_after_ms < 200, "spread over the drain window");
                assert!(!g.reason.is_empty());
            }
            other => anyhow::bail!("expected go-away, got {other:?}"),
        }
        loop {
            match raw.next_frame(integration_tests::PATIENCE).await? {
                RawEvent::Close { code, .. } => {
                    assert_eq!(code, 1001);
                    break;
                }
                RawEvent::Frame(f)
                    if matches!(f.frame, Some(server_frame::Frame::Ephemeral(_))) => {}
                other => anyhow::bail!("expected close 1001, got {other:?}"),
            }
        }
    }
    cluster.stop().await
}
