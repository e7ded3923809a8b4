//! The conn nodes attached to this push node: one downstream queue each, and
//! the non-blocking send that room publishers and the hub fan out through.
//! Below both, so a room's publisher never reaches back into the hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use futures::Stream;
use prost::Message as _;
use proto::internal::v1::{PushBatch, PushToConn, push_to_conn};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Entries one batch frame carries at most.
const BATCH_MAX_ENTRIES: usize = 1024;

/// The downstream of one attached conn node.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub(crate) tx: mpsc::Sender<PushToConn>,
    /// Cancelled to reset the stream (overflow, replacement, shutdown).
    pub(crate) kill: CancellationToken,
    pub(crate) generation: u64,
}

/// Attached conn nodes by id.
pub(crate) struct ConnNodes {
    conns: DashMap<Arc<str>, ConnHandle>,
    generations: AtomicU64,
    queue_capacity: usize,
    metrics: Metrics,
}

impl ConnNodes {
    pub(crate) fn new(queue_capacity: usize, metrics: Metrics) -> Self {
        Self {
            conns: DashMap::new(),
            generations: AtomicU64::new(1),
            queue_capacity,
            metrics,
        }
    }

    /// Register a conn node's downstream; an older one is reset.
    pub(crate) fn attach(&self, node_id: Arc<str>) -> (ConnHandle, mpsc::Receiver<PushToConn>) {
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let handle = ConnHandle {
            tx,
            kill: CancellationToken::new(),
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(old) = self.conns.insert(node_id, handle.clone()) {
            old.kill.cancel();
        }
        self.metrics.conn_nodes.set(self.conns.len() as i64);
        (handle, rx)
    }

    /// Forget the stream of `generation`; false if a newer stream replaced it.
    pub(crate) fn detach(&self, node_id: &Arc<str>, generation: u64) -> bool {
        let removed = self
            .conns
            .remove_if(node_id, |_, h| h.generation == generation)
            .is_some();
        if removed {
            self.metrics.conn_nodes.set(self.conns.len() as i64);
        }
        removed
    }

    /// Reset every conn stream (shutdown).
    pub(crate) fn close(&self) {
        for conn in self.conns.iter() {
            conn.kill.cancel();
        }
    }

    pub(crate) fn send_to_nodes(&self, nodes: &[Arc<str>], frame: &PushToConn) {
        for node in nodes {
            if let Some(handle) = self.conns.get(node).map(|h| h.clone()) {
                self.send(node, &handle, frame.clone());
            }
        }
    }

    /// Never wait on a conn node: a full queue resets its stream, and the node
    /// re-attaches and pulls from where it was.
    pub(crate) fn send(&self, node_id: &Arc<str>, handle: &ConnHandle, frame: PushToConn) {
        match handle.tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !handle.kill.is_cancelled() {
                    tracing::warn!(%node_id, "Conn node stream is full; resetting it.");
                    self.metrics.conn_overflows.inc();
                    handle.kill.cancel();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => handle.kill.cancel(),
        }
    }
}

/// The frames written to one conn node's stream, read from its queue. When
/// the node accepts batches, each time the stream is ready to write it takes
/// everything queued (up to `max_bytes` of encoded entries, one entry
/// always) as one frame: a tick of many rooms' notifies costs one message on
/// the HTTP/2 stream and one decode on the conn node, not one per room.
pub(crate) fn downstream(
    rx: mpsc::Receiver<PushToConn>,
    batches: bool,
    max_bytes: usize,
    metrics: Metrics,
) -> impl Stream<Item = PushToConn> + Send + 'static {
    futures::stream::unfold((rx, None), move |(mut rx, carried)| {
        let metrics = metrics.clone();
        async move {
            let first = match carried {
                Some(frame) => frame,
                None => rx.recv().await?,
            };
            let (frames, carried) = if batches {
                take_queued(&mut rx, first, max_bytes)
            } else {
                (vec![first], None)
            };
            metrics.conn_frames.inc();
            metrics.conn_frame_entries.inc_by(frames.len() as u64);
            Some((into_frame(frames), (rx, carried)))
        }
    })
}

/// `first` and the frames queued behind it, within `max_bytes` and
/// `BATCH_MAX_ENTRIES`; the frame that did not fit is returned to go first
/// next time.
fn take_queued(
    rx: &mut mpsc::Receiver<PushToConn>,
    first: PushToConn,
    max_bytes: usize,
) -> (Vec<PushToConn>, Option<PushToConn>) {
    let mut bytes = first.encoded_len();
    let mut frames = vec![first];
    while frames.len() < BATCH_MAX_ENTRIES {
        let Ok(next) = rx.try_recv() else { break };
        let len = next.encoded_len();
        if bytes.saturating_add(len) > max_bytes {
            return (frames, Some(next));
        }
        bytes += len;
        frames.push(next);
    }
    (frames, None)
}

/// One frame as itself, several as a batch.
fn into_frame(mut frames: Vec<PushToConn>) -> PushToConn {
    if frames.len() == 1
        && let Some(frame) = frames.pop()
    {
        return frame;
    }
    PushToConn {
        msg: Some(push_to_conn::Msg::Batch(PushBatch { frames })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use proto::internal::v1::Notify;

    fn notify(room: &str, seq: u64) -> PushToConn {
        PushToConn {
            msg: Some(push_to_conn::Msg::Notify(Notify {
                room: room.into(),
                epoch: 1,
                seq,
                ..Default::default()
            })),
        }
    }

    fn metrics() -> Metrics {
        Metrics::new(&prometheus::Registry::new())
    }

    fn entries(frame: &PushToConn) -> Vec<PushToConn> {
        match &frame.msg {
            Some(push_to_conn::Msg::Batch(b)) => b.frames.clone(),
            _ => vec![frame.clone()],
        }
    }

    #[tokio::test]
    async fn queued_frames_leave_as_one_batch_in_order() {
        let (tx, rx) = mpsc::channel(16);
        for (i, room) in ["a", "b", "c"].into_iter().enumerate() {
            tx.try_send(notify(room, i as u64 + 1)).unwrap();
        }
        drop(tx);
        let m = metrics();
        let out: Vec<PushToConn> = downstream(rx, true, 1 << 20, m.clone()).collect().await;
        assert_eq!(out.len(), 1, "one frame for everything queued");
        assert_eq!(
            entries(&out[0]),
            vec![notify("a", 1), notify("b", 2), notify("c", 3)]
        );
        assert_eq!((m.conn_frames.get(), m.conn_frame_entries.get()), (1, 3));
    }

    #[tokio::test]
    async fn a_lone_frame_is_not_wrapped() {
        let (tx, rx) = mpsc::channel(16);
        tx.try_send(notify("a", 1)).unwrap();
        drop(tx);
        let out: Vec<PushToConn> = downstream(rx, true, 1 << 20, metrics()).collect().await;
        assert_eq!(out, vec![notify("a", 1)]);
    }

    #[tokio::test]
    async fn a_node_without_batches_gets_frames_one_by_one() {
        let (tx, rx) = mpsc::channel(16);
        tx.try_send(notify("a", 1)).unwrap();
        tx.try_send(notify("b", 2)).unwrap();
        drop(tx);
        let out: Vec<PushToConn> = downstream(rx, false, 1 << 20, metrics()).collect().await;
        assert_eq!(out, vec![notify("a", 1), notify("b", 2)]);
    }

    #[tokio::test]
    async fn the_byte_budget_splits_batches_without_losing_or_reordering() {
        let (tx, rx) = mpsc::channel(64);
        let sent: Vec<PushToConn> = (1..=20).map(|i| notify("room", i)).collect();
        for f in &sent {
            tx.try_send(f.clone()).unwrap();
        }
        drop(tx);
        // Room for about three notifies per frame.
        let budget = sent[0].encoded_len() * 3;
        let out: Vec<PushToConn> = downstream(rx, true, budget, metrics()).collect().await;
        assert!(out.len() >= 7, "{} frames for 20 entries", out.len());
        for frame in &out {
            let size: usize = entries(frame).iter().map(|e| e.encoded_len()).sum();
            assert!(size <= budget, "a frame of {size} bytes over {budget}");
        }
        let got: Vec<PushToConn> = out.iter().flat_map(entries).collect();
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_budget_still_leaves_alone() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(notify("a-long-room-name", 1)).unwrap();
        tx.try_send(notify("b", 2)).unwrap();
        drop(tx);
        let out: Vec<PushToConn> = downstream(rx, true, 1, metrics()).collect().await;
        assert_eq!(out, vec![notify("a-long-room-name", 1), notify("b", 2)]);
    }
}
