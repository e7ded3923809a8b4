//! The conn nodes attached to this push node: one downstream queue each, and
//! the non-blocking send that room publishers and the hub fan out through.
//! Below both, so a room's publisher never reaches back into the hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use proto::internal::v1::PushToConn;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

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
