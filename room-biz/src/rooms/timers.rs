//! Work due later on this biz node: closing timed polls and ending rooms that
//! stayed empty. One heap and one task, however many timers.
//!
//! Timers are soft state: a node that dies loses its timers, so the same work
//! is also done lazily — a vote after a poll's end is refused by the store,
//! and a room found empty for too long is ended by the next join or action
//! that looks at it (see `Rooms::gate`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Timers held at most; beyond it new ones are dropped (the lazy path covers them).
const MAX_TIMERS: usize = 100_000;

/// What is due.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// Close a timed poll.
    ClosePoll {
        /// The room.
        room: String,
        /// The poll.
        poll: String,
    },
    /// End the room if it is still empty.
    AutoEnd {
        /// The room.
        room: String,
    },
}

/// A heap of `(due at, Due)`.
#[derive(Default)]
pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<Reverse<(u64, Due)>>>,
    changed: Notify,
}

impl Timers {
    fn lock(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<(u64, Due)>>> {
        // Single pushes and pops: a poisoned heap is consistent.
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Do `due` at `at_ms` (Unix ms).
    pub(crate) fn schedule(&self, at_ms: u64, due: Due) {
        let mut heap = self.lock();
        if heap.len() >= MAX_TIMERS {
            tracing::warn!(?due, "Too many timers; relying on the lazy path.");
            return;
        }
        heap.push(Reverse((at_ms, due)));
        drop(heap);
        self.changed.notify_one();
    }

    /// Timers waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Wait for the next due timer and take it.
    pub(crate) async fn next(&self) -> Due {
        loop {
            let wait = {
                let mut heap = self.lock();
                let now = common::time::now_ms();
                match heap.peek() {
                    Some(Reverse((at, _))) if *at <= now => {
                        if let Some(Reverse((_, due))) = heap.pop() {
                            return due;
                        }
                        continue;
                    }
                    Some(Reverse((at, _))) => Some(Duration::from_millis(at - now)),
                    None => None,
                }
            };
            // A timer scheduled meanwhile wakes us (Notify keeps one permit).
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timers_fire_in_order_of_time() {
        let timers = Timers::default();
        let now = common::time::now_ms();
        let poll = Due::ClosePoll {
            room: "r1".into(),
            poll: "p1".into(),
        };
        let end = Due::AutoEnd { room: "r1".into() };
        timers.schedule(now + 60, end.clone());
        timers.schedule(now + 10, poll.clone());
        timers.schedule(now.saturating_sub(5), end.clone());
        assert_eq!(timers.len(), 3);
        async fn next(t: &Timers) -> Due {
            tokio::time::timeout(Duration::from_secs(2), t.next())
                .await
                .expect("due in time")
        }
        assert_eq!(next(&timers).await, end, "already due");
        assert_eq!(next(&timers).await, poll);
        assert_eq!(next(&timers).await, end);
        assert_eq!(timers.len(), 0);
    }
}
