//! Above the broadcast threshold a room's messages travel in the push stream;
//! the result for clients is the same: every message, once, in order. When the
//! room shrinks below the exit threshold it returns to notify/pull.

use integration_tests::{Cluster, assert_seqs, collect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_room_broadcasts_in_order_and_switches_back_when_it_shrinks() -> anyhow::Result<()> {
    // Broadcast at 6 members, back to notify below 3.
    let cluster = Cluster::start_with(|cfg| cfg.broadcast_threshold = 6).await?;
    let room = cluster.create_room("big").await?;
    let mut members = Vec::new();
    for i in 0..8 {
        let (client, events) = cluster.client(&format!("fan{i}")).await?;
        client.join(room.as_str()).await?;
        members.push((client, events));
    }
    cluster
        .wait_metric("roomcast_push_mode_switches_total{to=\"broadcast\"}", 1.0)
        .await?;

    for i in 1..=200 {
        cluster.publish(&room, &format!("b{i}")).await?;
    }
    for (_, events) in &mut members {
        assert_seqs(&collect(events, &room, 200).await?, 1, 200);
    }
    assert!(
        cluster
            .metric("roomcast_push_broadcast_batches_total")
            .await?
            >= 1.0
    );

    // Six leave: two stay, below the exit threshold of 3.
    for (client, _) in members.drain(2..) {
        client.leave(room.as_str()).await?;
        client.close().await;
    }
    cluster
        .wait_metric("roomcast_push_mode_switches_total{to=\"notify\"}", 1.0)
        .await?;
    let notifies_before = cluster.metric("roomcast_push_notifies_total").await?;
    for i in 201..=230 {
        cluster.publish(&room, &format!("n{i}")).await?;
    }
    for (_, events) in &mut members {
        assert_seqs(&collect(events, &room, 30).await?, 201, 230);
    }
    assert!(cluster.metric("roomcast_push_notifies_total").await? > notifies_before);
    cluster.stop().await
}
