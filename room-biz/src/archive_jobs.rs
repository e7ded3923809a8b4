//! Archive jobs: one per ended room, handed to one archiver at a time, and
//! handed again if that archiver stops acknowledging (at-least-once).
//!
//! A job is taken by a named consumer; the consumer [`ArchiveQueue::touch`]es
//! it after each batch it writes and [`ArchiveQueue::ack`]s it once the
//! archive holds everything and the live keys are gone. A job untouched for
//! the claim time (its consumer died, or was killed mid-batch) goes to the
//! next consumer that asks: archive writes are idempotent, so doing part of a
//! job twice is harmless.

mod redis_stream;

pub use self::redis_stream::RedisQueue;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One room to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveJob {
    /// The queue's id of the job (a stream entry id in Redis).
    pub id: String,
    /// The ended room.
    pub room: String,
}

/// Why a queue operation failed; the caller retries later.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue's store cannot be reached or refused the command.
    #[error("archive queue unavailable: {0}")]
    Unavailable(String),
    /// The store answered something this code does not understand.
    #[error("archive queue reply not understood: {0}")]
    Malformed(String),
}

/// Where ended rooms wait for an archiver.
#[async_trait::async_trait]
pub trait ArchiveQueue: Send + Sync + 'static {
    /// Add a job for `room`.
    async fn enqueue(&self, room: &str) -> Result<(), QueueError>;
    /// The next job for `consumer`: a job idle for at least `claim_idle`
    /// (any consumer's, its own after a restart included) first, else a new
    /// one; `None` when there is none.
    async fn next(
        &self,
        consumer: &str,
        claim_idle: Duration,
    ) -> Result<Option<ArchiveJob>, QueueError>;
    /// Reset `job`'s idle time: `consumer` is still working on it.
    async fn touch(&self, consumer: &str, job: &ArchiveJob) -> Result<(), QueueError>;
    /// `job` is done: never hand it out again.
    async fn ack(&self, job: &ArchiveJob) -> Result<(), QueueError>;
    /// Jobs waiting or taken but not acknowledged.
    async fn backlog(&self) -> Result<u64, QueueError>;
}

/// First wait before queueing a room again after a failed enqueue.
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Ended rooms whose enqueue failed (the queue's Redis was down), queued
/// again with backoff until it works, so that no ended room is left
/// unarchived by a passing outage. One retry task runs while rooms wait;
/// a room is queued again at most once per attempt.
///
/// The waiting rooms live in this process: a biz node that stops during an
/// outage leaves its rooms' live keys to expire (the room-store TTL),
/// unarchived.
#[derive(Default)]
pub(crate) struct EnqueueRetry {
    inner: Arc<RetryState>,
}

#[derive(Default)]
struct RetryState {
    /// Rooms waiting, and whether a retry task runs.
    waiting: Mutex<(BTreeSet<String>, bool)>,
}

impl RetryState {
    fn with<T>(&self, f: impl FnOnce(&mut (BTreeSet<String>, bool)) -> T) -> T {
        // A few set operations per call: a poisoned lock guards a consistent set.
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut waiting)
    }
}

impl EnqueueRetry {
    /// Queue `room` on `queue`; if that fails, keep trying in the
    /// background (with backoff) until it works.
    pub(crate) async fn enqueue(&self, queue: &Arc<dyn ArchiveQueue>, room: &str) {
        let Err(error) = queue.enqueue(room).await else {
            return;
        };
        tracing::warn!(room, %error, "Cannot queue the ended room for archiving; retrying in the background.");
        let start = self.inner.with(|(rooms, running)| {
            rooms.insert(room.to_owned());
            !std::mem::replace(running, true)
        });
        if start {
            tokio::spawn(retry(self.inner.clone(), queue.clone()));
        }
    }

    /// Rooms waiting to be queued again.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.inner.with(|(rooms, _)| rooms.len())
    }
}

/// Queue the waiting rooms until none is left, waiting longer after each
/// round with a failure.
async fn retry(state: Arc<RetryState>, queue: Arc<dyn ArchiveQueue>) {
    let mut wait = RETRY_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        let rooms: Vec<String> = state.with(|(rooms, _)| rooms.iter().cloned().collect());
        let mut failed = false;
        for room in rooms {
            match queue.enqueue(&room).await {
                Ok(()) => {
                    tracing::info!(room, "Ended room queued for archiving after a retry.");
                    state.with(|(rooms, _)| rooms.remove(&room));
                }
                Err(error) => {
                    tracing::debug!(room, %error, "Still cannot queue the ended room for archiving.");
                    failed = true;
                    // The queue is down: the others would fail too.
                    break;
                }
            }
        }
        wait = if failed {
            (wait * 2).min(RETRY_MAX)
        } else {
            RETRY_FIRST
        };
        let done = state.with(|(rooms, running)| {
            if rooms.is_empty() {
                *running = false;
            }
            rooms.is_empty()
        });
        if done {
            return;
        }
    }
}

/// The in-process queue of standalone mode; same semantics, gone with the
/// process (as is the in-memory room state it archives).
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    next_id: u64,
    new: VecDeque<ArchiveJob>,
    /// Taken, not acknowledged: id → (job, consumer, last touch).
    pending: BTreeMap<String, (ArchiveJob, String, Instant)>,
}

impl MemoryQueue {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> T {
        // Each update is a few map operations: a poisoned lock still guards
        // consistent maps.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }
}

#[async_trait::async_trait]
impl ArchiveQueue for MemoryQueue {
    async fn enqueue(&self, room: &str) -> Result<(), QueueError> {
        self.with(|s| {
            s.next_id += 1;
            let job = ArchiveJob {
                id: format!("{:020}", s.next_id),
                room: room.to_owned(),
            };
            s.new.push_back(job);
        });
        Ok(())
    }

    async fn next(
        &self,
        consumer: &str,
        claim_idle: Duration,
    ) -> Result<Option<ArchiveJob>, QueueError> {
        Ok(self.with(|s| {
            let now = Instant::now();
            let idle = s
                .pending
                .iter()
                .find(|(_, (_, _, touched))| now.duration_since(*touched) >= claim_idle)
                .map(|(id, _)| id.clone());
            let job = match idle {
                Some(id) => s.pending.remove(&id).map(|(job, _, _)| job),
                None => s.new.pop_front(),
            }?;
            s.pending
                .insert(job.id.clone(), (job.clone(), consumer.to_owned(), now));
            Some(job)
        }))
    }

    async fn touch(&self, consumer: &str, job: &ArchiveJob) -> Result<(), QueueError> {
        self.with(|s| {
            if let Some(entry) = s.pending.get_mut(&job.id) {
                entry.1 = consumer.to_owned();
                entry.2 = Instant::now();
            }
        });
        Ok(())
    }

    async fn ack(&self, job: &ArchiveJob) -> Result<(), QueueError> {
        self.with(|s| s.pending.remove(&job.id));
        Ok(())
    }

    async fn backlog(&self) -> Result<u64, QueueError> {
        Ok(self.with(|s| (s.new.len() + s.pending.len()) as u64))
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! What every queue does, run on the memory and Redis queues.

    use super::*;

    /// Jobs come out once, in order; an untouched job goes to the next
    /// consumer after the claim time; acked jobs never come back.
    pub(crate) async fn jobs_are_handed_out_until_acked(queue: &dyn ArchiveQueue) {
        let long = Duration::from_secs(3600);
        assert_eq!(queue.next("a", long).await.expect("next"), None);
        queue.enqueue("r1").await.expect("enqueue");
        queue.enqueue("r2").await.expect("enqueue");
        assert_eq!(queue.backlog().await.expect("backlog"), 2);
        let first = queue.next("a", long).await.expect("next").expect("a job");
        assert_eq!(first.room, "r1");
        let second = queue.next("b", long).await.expect("next").expect("a job");
        assert_eq!(second.room, "r2");
        assert_eq!(
            queue.next("c", long).await.expect("next"),
            None,
            "both taken"
        );
        // "a" dies: with a short claim time, "c" takes its job over.
        let claim = Duration::from_millis(50);
        let deadline = Instant::now() + Duration::from_secs(5);
        let taken = loop {
            // "b" keeps its job alive.
            queue.touch("b", &second).await.expect("touch");
            if let Some(job) = queue.next("c", claim).await.expect("next") {
                break job;
            }
            assert!(Instant::now() < deadline, "the idle job was never claimed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(taken, first, "the dead consumer's job, not the touched one");
        queue.ack(&taken).await.expect("ack");
        queue.ack(&second).await.expect("ack");
        assert_eq!(queue.backlog().await.expect("backlog"), 0);
        tokio::time::sleep(claim * 2).await;
        assert_eq!(
            queue.next("c", claim).await.expect("next"),
            None,
            "acked jobs stay done"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_queue_hands_jobs_out_until_acked() {
        conformance::jobs_are_handed_out_until_acked(&MemoryQueue::default()).await;
    }
}
