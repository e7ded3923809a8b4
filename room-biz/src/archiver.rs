//! The archiver: moves an ended room from the live stores to the archive,
//! then deletes its live keys.
//!
//! A job (see `archive_jobs`) names a room. For a live room it is a
//! checkpoint ([`live`]): the messages the archive lacks are copied and
//! nothing is deleted, so a long room's live log can stay small and the end
//! pass only copies the tail. For an ended room (the end pass) the worker
//! writes the room row and summary, then the room's durable messages from the
//! message log in batches (each batch one idempotent archive transaction,
//! resuming after the highest seq the archive already holds), then
//! participation, polls, counters and the analytics (session stays, likes
//! and reactions per minute); marks the room archived; deletes the
//! message log and the room-store keys; and only then acknowledges the job.
//! A worker killed anywhere in between leaves the job unacknowledged: another
//! worker claims it once it has been idle for the claim time and does the
//! rest, and no message is written twice (`(room, seq)` is the archive's key).

pub(crate) mod collect;
pub(crate) mod live;

use std::sync::Arc;
use std::time::{Duration, Instant};

use archive::{ArchiveBatch, ArchiveError, ArchiveStore};
use message_log::{LogError, MessageLog, ReadLimit};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use room_store::domain::state::RoomRead;
use room_store::{MemberFilter, RoomState, RoomStore, StoreError};

use crate::archive_jobs::{ArchiveJob, ArchiveQueue, QueueError};

/// Members read per page when collecting participation.
const MEMBERS_PAGE: usize = 1000;
/// Hands read with the final state (the archive keeps none).
const HANDS: usize = 0;

/// Why a job did not complete; it is retried (by this or another worker).
#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    /// The room store failed.
    #[error("room store: {0}")]
    Store(#[from] StoreError),
    /// The message log failed.
    #[error("message log: {0}")]
    Log(#[from] LogError),
    /// The archive failed.
    #[error("archive: {0}")]
    Archive(#[from] ArchiveError),
    /// The job queue failed.
    #[error("{0}")]
    Queue(#[from] QueueError),
}

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct ArchiverSettings {
    /// This worker's consumer name (unique per biz node).
    pub consumer: String,
    /// Messages per archive transaction.
    pub batch: usize,
    /// A job untouched this long is taken over from its worker.
    pub claim_idle: Duration,
    /// Pause between queue polls when there is nothing to do.
    pub poll: Duration,
}

/// What one job did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Archived {
    /// Messages this run wrote (earlier runs' are not counted again).
    pub new_messages: u64,
    /// Batches written.
    pub batches: u64,
    /// The log no longer reached back to the archive's last seq: messages
    /// in between were lost before archiving (history bounds, a lost log).
    pub gap: bool,
    /// The room was live: a checkpoint, its live keys stay.
    pub checkpoint: bool,
}

/// The archiver's series (`roomcast_biz_archive_*`).
#[derive(Clone)]
pub(crate) struct ArchiveMetrics {
    jobs: IntCounterVec,
    messages: IntCounter,
    lag: Histogram,
    backlog: IntGauge,
}

impl ArchiveMetrics {
    /// Create the series and register them in `registry` (already there: reuse).
    pub(crate) fn new(registry: &Registry) -> Self {
        let jobs = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_archive_jobs_total",
                "Archive jobs by result (done, checkpoint: a live room's messages so far, failed, gap: done with messages lost before archiving).",
            ),
            &["result"],
        )
        .expect("static metric definition");
        let messages = IntCounter::new(
            "roomcast_biz_archived_messages_total",
            "Durable messages written to the archive.",
        )
        .expect("static metric definition");
        let lag = Histogram::with_opts(
            HistogramOpts::new(
                "roomcast_biz_archive_lag_seconds",
                "From a room's end to its archive being complete.",
            )
            .buckets(vec![
                0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
        )
        .expect("static metric definition");
        let backlog = IntGauge::new(
            "roomcast_biz_archive_backlog",
            "Archive jobs waiting or in progress, as last seen by this node.",
        )
        .expect("static metric definition");
        for c in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(messages.clone()),
            Box::new(lag.clone()),
            Box::new(backlog.clone()),
        ] {
            // Registered once per registry; a second archiver in the same
            // process (tests) shares the series.
            let _ = registry.register(c);
        }
        Self {
            jobs,
            messages,
            lag,
            backlog,
        }
    }
}

/// One archive worker.
pub struct Archiver {
    store: Arc<dyn RoomStore>,
    log: Arc<dyn MessageLog>,
    archive: Arc<dyn ArchiveStore>,
    queue: Arc<dyn ArchiveQueue>,
    settings: ArchiverSettings,
    metrics: ArchiveMetrics,
}

impl Archiver {
    /// A worker moving rooms from `store` and `log` to `archive`, taking
    /// jobs from `queue`.
    pub fn new(
        store: Arc<dyn RoomStore>,
        log: Arc<dyn MessageLog>,
        archive: Arc<dyn ArchiveStore>,
        queue: Arc<dyn ArchiveQueue>,
        settings: ArchiverSettings,
        registry: &Registry,
    ) -> Self {
        Self {
            store,
            log,
            archive,
            queue,
            settings,
            metrics: ArchiveMetrics::new(registry),
        }
    }

    /// Take jobs and archive their rooms, forever. A failed job is left
    /// unacknowledged and taken again after the claim time.
    pub async fn run(&self) {
        let consumer = &self.settings.consumer;
        loop {
            if let Ok(n) = self.queue.backlog().await {
                self.metrics
                    .backlog
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let job = match self.queue.next(consumer, self.settings.claim_idle).await {
                Ok(Some(job)) => job,
                Ok(None) => {
                    tokio::time::sleep(self.settings.poll).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "Cannot read the archive queue; retrying.");
                    tokio::time::sleep(self.settings.poll).await;
                    continue;
                }
            };
            let started = Instant::now();
            match self.archive_room(&job).await {
                Ok(done) => {
                    let result = match (done.gap, done.checkpoint) {
                        (true, _) => "gap",
                        (false, true) => "checkpoint",
                        (false, false) => "done",
                    };
                    self.metrics.jobs.with_label_values(&[result]).inc();
                    tracing::info!(
                        room = %job.room,
                        new_messages = done.new_messages,
                        batches = done.batches,
                        ms = started.elapsed().as_millis() as u64,
                        "Room archived."
                    );
                }
                Err(error) => {
                    self.metrics.jobs.with_label_values(&["failed"]).inc();
                    tracing::warn!(room = %job.room, %error, "Archiving failed; the job will be retried.");
                    tokio::time::sleep(self.settings.poll).await;
                }
            }
        }
    }

    /// Archive `job`'s room: completely for an ended room (then delete its
    /// live keys), the messages so far for a live one (a checkpoint, see
    /// [`live`]); then acknowledge the job. Safe to run again at any point
    /// (see the module docs).
    pub async fn archive_room(&self, job: &ArchiveJob) -> Result<Archived, ArchiverError> {
        let id = job.room.as_str();
        let Some(read) = self.store.read(id, None, HANDS).await? else {
            // Gone from the store: an earlier run deleted it after the
            // archive was complete (or the room never existed).
            if self.archive.room(id).await?.is_none() {
                tracing::warn!(room = %id, "Archive job for an unknown room; dropping it.");
            }
            self.queue.ack(job).await?;
            return Ok(Archived::default());
        };
        match read.room.state {
            RoomState::Ended => {}
            RoomState::Live => return self.checkpoint(job, &read).await,
            RoomState::Scheduled => {
                tracing::warn!(room = %id, "Archive job for a room that has not started; dropping it.");
                self.queue.ack(job).await?;
                return Ok(Archived::default());
            }
        }
        let lists = self.store.room_lists(id).await?;
        self.archive
            .put_room(&collect::room_row(&read, &lists))
            .await?;
        let done = self.copy_messages(job, &read).await?;
        let members = self.members(id).await?;
        let analytics = self.store.analytics(id).await?;
        let now = common::time::now_ms();
        let side = ArchiveBatch {
            room: id.to_owned(),
            members: collect::participation(&read, &members),
            polls: collect::polls(&read),
            counters: collect::counters(&read),
            sessions: collect::sessions(&read, &analytics, now),
            minutes: collect::minutes(&read, &analytics),
            ..ArchiveBatch::default()
        };
        self.archive.write_batch(&side).await?;
        self.archive.mark_archived(id, now).await?;
        // The archive holds everything: the live copies can go.
        self.log.delete(id).await?;
        self.store.delete_room(id).await?;
        self.queue.ack(job).await?;
        if let Some(ended) = read.room.ended_at_ms {
            self.metrics
                .lag
                .observe(now.saturating_sub(ended) as f64 / 1000.0);
        }
        Ok(done)
    }

    /// A live room's checkpoint: its durable messages up to the head, the
    /// room row if the archive has none yet (the end pass writes the final
    /// one; a checkpoint never overwrites it). Deletes nothing.
    async fn checkpoint(
        &self,
        job: &ArchiveJob,
        read: &RoomRead,
    ) -> Result<Archived, ArchiverError> {
        let id = job.room.as_str();
        if self.archive.room(id).await?.is_none() {
            let lists = self.store.room_lists(id).await?;
            self.archive
                .put_room(&collect::room_row(read, &lists))
                .await?;
        }
        let done = self.copy_messages(job, read).await?;
        self.queue.ack(job).await?;
        Ok(Archived {
            checkpoint: true,
            ..done
        })
    }

    /// Copy the room's durable messages after the archive's last seq from
    /// the message log, in batches (with their gifts).
    async fn copy_messages(
        &self,
        job: &ArchiveJob,
        read: &RoomRead,
    ) -> Result<Archived, ArchiverError> {
        let id = job.room.as_str();
        let origin = collect::origin_ms(&read.room);
        let mut done = Archived::default();
        let mut after = self.archive.last_seq(id).await?;
        loop {
            let page = self
                .log
                .read_after(id, after, ReadLimit::messages(self.settings.batch))
                .await?;
            if page.truncated && !done.gap {
                done.gap = true;
                tracing::warn!(room = %id, after, "The message log no longer reaches the archive's last seq; archiving what is left.");
            }
            if page.messages.is_empty() {
                break;
            }
            let batch = ArchiveBatch {
                room: id.to_owned(),
                messages: page
                    .messages
                    .iter()
                    .map(|m| collect::message(m, origin))
                    .collect(),
                gifts: page.messages.iter().filter_map(collect::gift).collect(),
                ..ArchiveBatch::default()
            };
            let new = self.archive.write_batch(&batch).await?;
            done.new_messages += new;
            done.batches += 1;
            self.metrics.messages.inc_by(new);
            after = page.messages.last().map_or(after, |m| m.seq);
            // Still alive: keep the job from being taken over.
            self.queue.touch(&self.settings.consumer, job).await?;
            if !page.more {
                break;
            }
        }
        Ok(done)
    }

    async fn members(&self, room: &str) -> Result<Vec<room_store::MemberEntry>, StoreError> {
        let mut all = Vec::new();
        loop {
            let page = self
                .store
                .members_page(room, MemberFilter::All, all.last(), MEMBERS_PAGE)
                .await?;
            let full = page.len() == MEMBERS_PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }
}

#[cfg(test)]
mod tests;
