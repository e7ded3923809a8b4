//! On a plain WebSocket the fan-out writes room batches straight to the
//! socket while the session waits; the session's own frames (replies,
//! pongs) take its queue. Interleaved, every frame still arrives whole and
//! in order: deliveries continue each other seq by seq, and each ping and
//! publish gets its answer.

use integration_tests::Cluster;
use proto::client::v1::{ClientFrame, Ping, Publish, ServerFrame, client_frame, server_frame};
use roomcast_client::{RawConnection, RawEvent};

/// Messages the backend publishes while the client talks.
const PUBLISHED: u64 = 400;
/// Pings and publishes the client sends meanwhile: 38 frames, which with
/// the join stay within the conn node's per-connection burst (40) however
/// fast the rounds go, so the default frame limit holds.
const ROUNDS: u32 = 19;

/// What the client has read so far.
#[derive(Debug, Default)]
struct Seen {
    last_seq: u64,
    pongs: u32,
    replies: u32,
    /// Publishes accepted (the others were refused by the comment rate rule).
    accepted: u32,
}

impl Seen {
    /// Read one frame and check it against what came before.
    async fn read(&mut self, raw: &mut RawConnection) -> anyhow::Result<()> {
        let frame = match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Frame(ServerFrame { frame: Some(f) }) => f,
            other => anyhow::bail!("unexpected {other:?} after seq {}", self.last_seq),
        };
        match frame {
            server_frame::Frame::Delivery(d) => {
                let seqs: Vec<u64> = d.messages.iter().map(|m| m.seq).collect();
                let expected: Vec<u64> = (self.last_seq + 1..=d.last_seq).collect();
                anyhow::ensure!(
                    d.first_seq == self.last_seq + 1 && seqs == expected,
                    "delivery {}..={} does not continue seq {}",
                    d.first_seq,
                    d.last_seq,
                    self.last_seq
                );
                self.last_seq = d.last_seq;
            }
            server_frame::Frame::Pong(p) => {
                anyhow::ensure!(p.client_time_ms == u64::from(self.pongs), "pongs in order");
                self.pongs += 1;
            }
            server_frame::Frame::Reply(r) => {
                anyhow::ensure!(r.r#ref == self.replies + 1, "replies in order: {r:?}");
                self.replies += 1;
                if r.code == 0 {
                    self.accepted += 1;
                }
            }
            server_frame::Frame::Ephemeral(_) => {}
            other => anyhow::bail!("unexpected {other:?}"),
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_writes_and_session_replies_interleave_in_order() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("direct").await?;
    let mut raw = cluster.raw_authed("talker").await?;
    let joined = integration_tests::raw_join(&mut raw, &room, None).await?;
    anyhow::ensure!(joined.start_seq == 0, "{joined:?}");
    // A quiet member too: everything it gets is a fan-out write or queued batch.
    let mut quiet = cluster.raw_authed("quiet").await?;
    integration_tests::raw_join(&mut quiet, &room, None).await?;

    let publisher = {
        let cluster = &cluster;
        let room = room.clone();
        async move {
            for i in 0..PUBLISHED {
                cluster.publish(&room, &format!("m{i}")).await?;
            }
            anyhow::Ok(())
        }
    };
    let talker = async {
        let mut seen = Seen::default();
        for round in 0..ROUNDS {
            let ping = client_frame::Frame::Ping(Ping {
                client_time_ms: u64::from(round),
            });
            let publish = client_frame::Frame::Publish(Publish {
                r#ref: round + 1,
                room: room.clone(),
                action: "comment".into(),
                payload: format!(r#"{{"text":"round {round}"}}"#).into_bytes().into(),
            });
            for frame in [ping, publish] {
                raw.send_frame(&ClientFrame { frame: Some(frame) }).await?;
            }
            while seen.pongs <= round || seen.replies <= round {
                seen.read(&mut raw).await?;
            }
        }
        anyhow::Ok(seen)
    };
    let (published, seen) = tokio::join!(publisher, talker);
    published?;
    let mut seen = seen?;
    let total = PUBLISHED + u64::from(seen.accepted);
    while seen.last_seq < total {
        seen.read(&mut raw).await?;
    }
    anyhow::ensure!(seen.last_seq == total && seen.pongs == ROUNDS && seen.replies == ROUNDS);
    let mut quiet_seen = Seen::default();
    while quiet_seen.last_seq < total {
        quiet_seen.read(&mut quiet).await?;
    }
    // The fast path was taken (most of these frames never woke a session).
    let direct = cluster
        .wait_metric("roomcast_conn_frames_direct_total", 1.0)
        .await?;
    anyhow::ensure!(direct >= 1.0);
    cluster.stop().await
}
