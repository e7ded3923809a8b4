//! Long rooms archive while they are live, so their live log can stay small:
//! [`LiveArchiving`] sits in front of the push API and queues an archive job
//! for a live room (a "checkpoint": the archiver copies the durable messages
//! the archive does not have yet, and deletes nothing) when
//!
//! - a durable message's seq is a multiple of `every`: the one node that
//!   pushed it queues the job, so a busy room is checkpointed every `every`
//!   messages whatever the number of biz nodes; or
//! - a room this node pushed to has had messages waiting for `interval`
//!   (quiet rooms: their messages must reach the archive before they age
//!   out of the live log).
//!
//! Both bounds must stay below the live log's own (`history.max_len`,
//! `history.max_age`), or messages leave the log before they are archived.
//! Queueing happens off the push path; a failed enqueue is retried by the
//! next checkpoint (the archiver copies everything up to the head).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};

use crate::archive_jobs::ArchiveQueue;
use crate::error::PushError;
use crate::pusher::RoomPusher;

/// When live rooms are checkpointed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveArchiveSettings {
    /// A checkpoint every this many durable messages (0: never by count).
    pub every: u64,
    /// A checkpoint once messages have waited this long (zero: never by time).
    pub interval: Duration,
}

/// The push API, queueing checkpoints of the live rooms it pushes to.
pub(crate) struct LiveArchiving {
    inner: Arc<dyn RoomPusher>,
    queue: Arc<dyn ArchiveQueue>,
    settings: LiveArchiveSettings,
    /// Rooms with durable messages pushed here since their last checkpoint
    /// from this node, and since when.
    waiting: Mutex<HashMap<String, Instant>>,
}

impl LiveArchiving {
    /// `inner`, queueing checkpoints on `queue` as `settings` say.
    pub(crate) fn new(
        inner: Arc<dyn RoomPusher>,
        queue: Arc<dyn ArchiveQueue>,
        settings: LiveArchiveSettings,
    ) -> Self {
        Self {
            inner,
            queue,
            settings,
            waiting: Mutex::default(),
        }
    }

    fn with_waiting<T>(&self, f: impl FnOnce(&mut HashMap<String, Instant>) -> T) -> T {
        // One map operation per call: a poisoned lock still guards a
        // consistent map.
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut waiting)
    }

    /// A durable message `seq` was appended to `room`.
    fn appended(&self, room: &str, seq: u64) {
        let every = self.settings.every;
        if every > 0 && seq > 0 && seq.is_multiple_of(every) {
            self.with_waiting(|w| w.remove(room));
            self.checkpoint(room.to_owned());
        } else if !self.settings.interval.is_zero() {
            self.with_waiting(|w| {
                w.entry(room.to_owned()).or_insert_with(Instant::now);
            });
        }
    }

    /// Queue a checkpoint of `room`, off the caller's path.
    fn checkpoint(&self, room: String) {
        let queue = self.queue.clone();
        tokio::spawn(async move {
            match queue.enqueue(&room).await {
                Ok(()) => tracing::debug!(room, "Live room queued for an archive checkpoint."),
                Err(error) => {
                    tracing::warn!(room, %error, "Cannot queue an archive checkpoint; the next one covers it.");
                }
            }
        });
    }

    /// Checkpoint the rooms whose messages have waited for the interval,
    /// forever (returns at once when checkpoints are by count only).
    pub(crate) async fn run(&self) {
        let interval = self.settings.interval;
        if interval.is_zero() {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval((interval / 4).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for room in self.due(Instant::now()) {
                self.checkpoint(room);
            }
        }
    }

    /// Rooms whose messages have waited `interval` at `now`, taken out of
    /// the waiting map.
    fn due(&self, now: Instant) -> Vec<String> {
        let interval = self.settings.interval;
        self.with_waiting(|w| {
            let due: Vec<String> = w
                .iter()
                .filter(|(_, since)| now.duration_since(**since) >= interval)
                .map(|(room, _)| room.clone())
                .collect();
            for room in &due {
                w.remove(room);
            }
            due
        })
    }
}

#[async_trait::async_trait]
impl RoomPusher for LiveArchiving {
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
        let durable = req.durable;
        let room = if durable {
            Some(req.room.clone())
        } else {
            None
        };
        let reply = self.inner.push_room(req).await?;
        if let Some(room) = room {
            self.appended(&room, reply.seq);
        }
        Ok(reply)
    }

    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError> {
        self.inner.pull(req).await
    }

    async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
        self.inner.push_users(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive_jobs::MemoryQueue;

    /// Durable pushes get seqs 1, 2, 3…; nothing else is pushed anywhere.
    #[derive(Default)]
    struct Counting {
        seq: std::sync::atomic::AtomicU64,
    }

    #[async_trait::async_trait]
    impl RoomPusher for Counting {
        async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
            let seq = if req.durable {
                self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
            } else {
                0
            };
            Ok(PushRoomReply { epoch: 1, seq })
        }
        async fn pull(&self, _req: PullRequest) -> Result<PullReply, PushError> {
            Ok(PullReply::default())
        }
        async fn push_users(&self, _req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
            Ok(PushUsersReply { online: 0 })
        }
    }

    fn push(room: &str, durable: bool) -> PushRoomRequest {
        PushRoomRequest {
            room: room.into(),
            durable,
            ..PushRoomRequest::default()
        }
    }

    async fn backlog_reaches(queue: &MemoryQueue, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while queue.backlog().await.unwrap_or(0) != want {
            assert!(Instant::now() < deadline, "backlog never reached {want}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn every_nth_durable_message_queues_one_checkpoint() {
        let queue = Arc::new(MemoryQueue::default());
        let pusher = LiveArchiving::new(
            Arc::new(Counting::default()),
            queue.clone(),
            LiveArchiveSettings {
                every: 10,
                interval: Duration::ZERO,
            },
        );
        for i in 0..25 {
            pusher.push_room(push("r1", true)).await.expect("push");
            // Ephemeral messages have no seq and never count.
            if i % 2 == 0 {
                pusher.push_room(push("r1", false)).await.expect("push");
            }
        }
        backlog_reaches(&queue, 2).await;
        let job = queue
            .next("a", Duration::from_secs(60))
            .await
            .expect("next");
        assert_eq!(job.map(|j| j.room).as_deref(), Some("r1"));
        assert!(
            pusher
                .due(Instant::now() + Duration::from_secs(3600))
                .is_empty()
        );
    }

    #[tokio::test]
    async fn messages_waiting_for_the_interval_queue_a_checkpoint() {
        let queue = Arc::new(MemoryQueue::default());
        let interval = Duration::from_millis(50);
        let pusher = LiveArchiving::new(
            Arc::new(Counting::default()),
            queue.clone(),
            LiveArchiveSettings {
                every: 1000,
                interval,
            },
        );
        pusher.push_room(push("quiet", true)).await.expect("push");
        pusher.push_room(push("quiet", true)).await.expect("push");
        pusher
            .push_room(push("live-only", false))
            .await
            .expect("push");
        assert!(pusher.due(Instant::now()).is_empty(), "not yet");
        assert_eq!(
            pusher.due(Instant::now() + interval),
            vec!["quiet".to_owned()],
            "once, for the room with durable messages"
        );
        assert!(pusher.due(Instant::now() + interval * 2).is_empty());
        // The loop queues it by itself.
        pusher.push_room(push("quiet", true)).await.expect("push");
        let run = pusher.run();
        tokio::select! {
            () = run => unreachable!("runs forever"),
            () = backlog_reaches(&queue, 1) => {}
        }
    }
}
