//! The cheap handle others hold to a connection: its bounded outbound queue
//! and the flags fan-out uses to report lag without ever waiting on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use proto::client::v1::Code;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codec::SharedFrame;
use crate::feeds::RoomBatch;
use crate::metrics::Metrics;

/// What is queued for a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Durable messages of one room, encoded once for all.
    Batch(Arc<RoomBatch>),
    /// An ephemeral frame shared by many connections.
    Shared(Arc<SharedFrame>),
    /// A frame for this connection only (replies). Boxed, like `Remove`, so
    /// a queue slot stays two words: every idle connection holds a block of
    /// slots.
    Own(Box<proto::client::v1::ServerFrame>),
    /// room-biz removed this user from a room (kick, block): stop delivering it.
    Remove(Box<Removal>),
}

/// Why a user's fan-out for a room stops.
#[derive(Debug)]
pub(crate) struct Removal {
    pub(crate) room: Arc<str>,
    pub(crate) reason: String,
}

#[derive(Debug)]
pub(crate) struct SessionShared {
    /// Unix ms of the first drop of the current lag episode, 0 when keeping up.
    lagged_since_ms: AtomicU64,
    /// Cancelled to disconnect the session; the reason is set first.
    pub(crate) kill: CancellationToken,
    pub(crate) kill_reason: OnceLock<(Code, &'static str)>,
}

/// A connection as seen by the room index and the user index.
#[derive(Clone, Debug)]
pub(crate) struct SessionHandle {
    pub(crate) id: Arc<str>,
    pub(crate) uid: Arc<str>,
    tx: mpsc::Sender<Outbound>,
    pub(crate) shared: Arc<SessionShared>,
}

impl SessionHandle {
    pub(crate) fn new(
        id: Arc<str>,
        uid: Arc<str>,
        capacity: usize,
    ) -> (Self, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(SessionShared {
            lagged_since_ms: AtomicU64::new(0),
            kill: CancellationToken::new(),
            kill_reason: OnceLock::new(),
        });
        (
            Self {
                id,
                uid,
                tx,
                shared,
            },
            rx,
        )
    }

    /// Queue a durable batch without waiting. A full queue starts (or extends)
    /// a lag episode; one that lasts longer than `lag_disconnect_ms` disconnects.
    pub(crate) fn offer(&self, item: Outbound, lag_disconnect_ms: u64, metrics: &Metrics) {
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.drops.inc();
                let now = common::time::now_ms().max(1);
                let since = self.shared.lagged_since_ms.load(Ordering::Relaxed);
                if since == 0 {
                    self.shared.lagged_since_ms.store(now, Ordering::Relaxed);
                    metrics.lagged.inc();
                } else if now.saturating_sub(since) > lag_disconnect_ms {
                    self.disconnect(Code::SlowConsumer, "slow consumer", metrics);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queue a best-effort frame; dropped when the queue is full.
    pub(crate) fn offer_ephemeral(&self, item: Outbound, metrics: &Metrics) {
        if self.tx.try_send(item).is_err() {
            metrics.drops.inc();
        }
    }

    /// Queue a frame for this connection, waiting for room (replies).
    pub(crate) async fn send(&self, item: Outbound) {
        let _ = self.tx.send(item).await;
    }

    pub(crate) fn disconnect(&self, code: Code, reason: &'static str, metrics: &Metrics) {
        if self.shared.kill_reason.set((code, reason)).is_ok() && code == Code::SlowConsumer {
            metrics.slow_disconnects.inc();
        }
        self.shared.kill.cancel();
    }

    /// True once if a lag episode started since the last call.
    pub(crate) fn lag_started(&self) -> bool {
        self.shared.lagged_since_ms.load(Ordering::Relaxed) != 0
    }

    /// The session caught up from history: the lag episode is over.
    pub(crate) fn lag_recovered(&self) {
        self.shared.lagged_since_ms.store(0, Ordering::Relaxed);
    }
}
