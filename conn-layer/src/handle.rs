//! The cheap handle others hold to a connection: its bounded outbound queue
//! and the flags fan-out uses to report lag without ever waiting on it.
//!
//! The queue is a mutex-guarded `VecDeque` with two `Notify`s rather than a
//! `tokio::sync::mpsc` channel: an idle connection then holds ~200 bytes for
//! its queue instead of ~1.6 KB (the channel's cache-padded state plus one or
//! two 32-slot blocks), and its buffer shrinks back after a burst.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use proto::client::v1::Code;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::outbound::Outbound;

/// A drained queue keeps at most this many slots allocated.
const IDLE_QUEUE_SLOTS: usize = 4;

#[derive(Debug)]
pub(crate) struct SessionShared {
    queue: Mutex<VecDeque<Outbound>>,
    capacity: usize,
    /// An item was queued (one permit is stored when the session is busy).
    queued: Notify,
    /// An item left the queue: a waiting `send` retries.
    space: Notify,
    /// The session ended: offers are discarded without counting drops.
    closed: AtomicBool,
    /// Set (then `queued` notified) when the session must look at
    /// [`Self::killed`] or [`Self::draining`]: the session loop then needs no
    /// future per signal, which every delivery's wakeup would poll.
    signalled: AtomicBool,
    /// [`SessionHandle::disconnect`] was called; the reason is set.
    killed: AtomicBool,
    /// The node is draining: send a go-away within the drain window.
    draining: AtomicBool,
    /// Unix ms of the first drop of the current lag episode, 0 when keeping up.
    lagged_since_ms: AtomicU64,
    /// Cancelled to disconnect the session; the reason is set first. Waited
    /// on only while a socket write is blocked (a slow client).
    pub(crate) kill: CancellationToken,
    pub(crate) kill_reason: OnceLock<(Code, &'static str)>,
    /// `iat` of the session's current token (Unix s): a revocation closes
    /// sessions whose token is older.
    token_iat: AtomicU64,
}

/// A connection as seen by the room index and the user index.
#[derive(Clone, Debug)]
pub(crate) struct SessionHandle {
    pub(crate) id: Arc<str>,
    pub(crate) uid: Arc<str>,
    pub(crate) shared: Arc<SessionShared>,
}

/// Why an item was not queued.
enum Refused {
    Full(Outbound),
    Closed,
}

/// The session's end of its queue. Dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct Receiver {
    shared: Arc<SessionShared>,
    /// Items left behind by the last [`Self::try_recv`].
    remaining: usize,
}

/// What woke the session.
#[derive(Debug)]
pub(crate) enum Wake {
    Item(Outbound),
    /// Look at [`Receiver::killed`] and [`Receiver::draining`].
    Signal,
}

impl Receiver {
    /// The next queued item or signal (waits for one).
    pub(crate) async fn recv(&mut self) -> Wake {
        loop {
            if let Some(item) = self.try_recv() {
                return Wake::Item(item);
            }
            if self.shared.signalled.swap(false, Ordering::Acquire) {
                return Wake::Signal;
            }
            self.shared.queued.notified().await;
        }
    }

    /// The next queued item, if any.
    pub(crate) fn try_recv(&mut self) -> Option<Outbound> {
        let (item, was_full) = {
            let mut queue = self.shared.lock();
            let was_full = queue.len() >= self.shared.capacity;
            let item = queue.pop_front();
            if queue.is_empty() && queue.capacity() > IDLE_QUEUE_SLOTS {
                queue.shrink_to(IDLE_QUEUE_SLOTS);
            }
            self.remaining = queue.len();
            (item, was_full)
        };
        // Only a full queue has waiting senders (`send` waits after finding
        // it full, registered before it looked): wake them when it stops
        // being full, not on every pop.
        if item.is_some() && was_full {
            self.shared.space.notify_waiters();
        }
        item
    }

    /// Items left in the queue after the last item taken.
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }

    /// The session was told to disconnect.
    pub(crate) fn killed(&self) -> bool {
        self.shared.killed.load(Ordering::Acquire)
    }

    /// The node is draining.
    pub(crate) fn draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.lock().clear();
        self.shared.space.notify_waiters();
    }
}

impl SessionShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Outbound>> {
        // A panic while holding the lock cannot leave the deque inconsistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_push(&self, item: Outbound) -> Result<(), Refused> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Refused::Closed);
        }
        {
            let mut queue = self.lock();
            if queue.len() >= self.capacity {
                return Err(Refused::Full(item));
            }
            queue.push_back(item);
        }
        self.queued.notify_one();
        Ok(())
    }
}

impl SessionHandle {
    pub(crate) fn new(id: Arc<str>, uid: Arc<str>, capacity: usize) -> (Self, Receiver) {
        let shared = Arc::new(SessionShared {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            queued: Notify::new(),
            space: Notify::new(),
            closed: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            lagged_since_ms: AtomicU64::new(0),
            kill: CancellationToken::new(),
            kill_reason: OnceLock::new(),
            token_iat: AtomicU64::new(0),
        });
        let rx = Receiver {
            shared: shared.clone(),
            remaining: 0,
        };
        (Self { id, uid, shared }, rx)
    }

    /// Queue a durable batch without waiting. A full queue starts (or extends)
    /// a lag episode; one that lasts longer than `lag_disconnect_ms` disconnects.
    pub(crate) fn offer(&self, item: Outbound, lag_disconnect_ms: u64, metrics: &Metrics) {
        match self.shared.try_push(item) {
            Ok(()) => {}
            Err(Refused::Full(_)) => {
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
            Err(Refused::Closed) => {}
        }
    }

    /// Queue a best-effort frame; dropped when the queue is full.
    pub(crate) fn offer_ephemeral(&self, item: Outbound, metrics: &Metrics) {
        if let Err(Refused::Full(_)) = self.shared.try_push(item) {
            metrics.drops.inc();
        }
    }

    /// Queue a frame for this connection, waiting for room (replies).
    pub(crate) async fn send(&self, item: Outbound) {
        let mut item = item;
        loop {
            // Registered before the attempt, so a pop in between is not missed.
            let space = self.shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match self.shared.try_push(item) {
                Ok(()) | Err(Refused::Closed) => return,
                Err(Refused::Full(back)) => item = back,
            }
            space.await;
        }
    }

    pub(crate) fn disconnect(&self, code: Code, reason: &'static str, metrics: &Metrics) {
        if self.shared.kill_reason.set((code, reason)).is_ok() && code == Code::SlowConsumer {
            metrics.slow_disconnects.inc();
        }
        self.shared.killed.store(true, Ordering::Release);
        self.signal();
        self.shared.kill.cancel();
    }

    /// `iat` of the session's current token.
    pub(crate) fn token_iat(&self) -> u64 {
        self.shared.token_iat.load(Ordering::Relaxed)
    }

    /// The session's token was replaced by one issued at `iat`.
    pub(crate) fn set_token_iat(&self, iat: u64) {
        self.shared.token_iat.store(iat, Ordering::Relaxed);
    }

    /// The node is draining: the session sends a go-away within the window.
    pub(crate) fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
        self.signal();
    }

    fn signal(&self) {
        self.shared.signalled.store(true, Ordering::Release);
        self.shared.queued.notify_one();
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
