//! Scheduled rooms start themselves, and remind their audience first.
//!
//! Creating a scheduled room puts two jobs in the store's due index
//! ([`room_store::Ledger`]): `start:<room>` at `scheduled_at_ms` and, with a
//! reminder lead, `remind:<room>` that much earlier. Every biz node polls the
//! index; a claim is atomic, so each due job goes to one node, and it stays
//! in the index (hidden for a lease) until that node finished it: a node that
//! dies mid-start leaves the job to another node after the lease, and a
//! restarted cluster finds every schedule where it left it.
//!
//! A start goes through [`Rooms::start`], the path of a manual start (the
//! `room_started` event, the user notice, inboxes). The store's start is a
//! guarded transition (scheduled → live), so a start that runs twice (a
//! lease that ran out on a slow node) or after a manual start changes
//! nothing the second time: the room starts exactly once. A reminder is
//! finished before it is sent: at most once, never twice.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use proto::client::v1::Code;
use room_store::{Ledger, Room, RoomState, StoreError};

use crate::config::ScheduleConfig;
use crate::rooms::Rooms;

/// Due jobs claimed per poll.
const CLAIM_BATCH: usize = 100;
/// Job name prefix: start the room.
const START: &str = "start:";
/// Job name prefix: remind the audience.
const REMIND: &str = "remind:";

/// The due-job poller of one biz node.
pub(crate) struct Schedules {
    cfg: ScheduleConfig,
    ledger: Arc<dyn Ledger>,
    /// Jobs run by `kind` (`start`, `remind`) and `result`.
    jobs: IntCounterVec,
}

/// A due job, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Job<'a> {
    Start(&'a str),
    Remind(&'a str),
}

impl<'a> Job<'a> {
    fn parse(name: &'a str) -> Option<Self> {
        name.strip_prefix(START)
            .map(Job::Start)
            .or_else(|| name.strip_prefix(REMIND).map(Job::Remind))
    }
}

impl Schedules {
    /// The poller for `cfg` over `ledger`, with its metrics in `registry`.
    pub(crate) fn new(cfg: ScheduleConfig, ledger: Arc<dyn Ledger>, registry: &Registry) -> Self {
        // The definition is static; failing to build it is a programming error.
        let jobs = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_schedule_jobs_total",
                "Scheduled-room jobs run, by kind (start, remind) and result.",
            ),
            &["kind", "result"],
        )
        .expect("static metric definition");
        common::ops::register(registry, &jobs);
        Self { cfg, ledger, jobs }
    }

    /// Index the start (and reminder) of a room just created scheduled.
    pub(crate) async fn scheduled(&self, room: &Room) -> Result<(), StoreError> {
        let (RoomState::Scheduled, Some(at)) = (room.state, room.scheduled_at_ms) else {
            return Ok(());
        };
        self.ledger
            .schedule_due(&format!("{START}{}", room.id), at)
            .await?;
        let lead = self.cfg.reminder_lead_ms;
        if lead > 0 && at.saturating_sub(lead) > common::time::now_ms() {
            self.ledger
                .schedule_due(&format!("{REMIND}{}", room.id), at - lead)
                .await?;
        }
        Ok(())
    }

    /// Poll the due index and run what is due, forever.
    pub(crate) async fn run(&self, rooms: &Rooms) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.poll_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A full batch may mean more are due: claim again at once.
            while self.run_due(rooms).await >= CLAIM_BATCH {}
        }
    }

    /// Claim and run the jobs due now; how many were claimed.
    pub(crate) async fn run_due(&self, rooms: &Rooms) -> usize {
        let now = common::time::now_ms();
        let claimed = match self
            .ledger
            .claim_due(now, self.cfg.claim_lease_ms, CLAIM_BATCH)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "Cannot read due schedules; trying again next poll.");
                return 0;
            }
        };
        for name in &claimed {
            self.run_job(rooms, name).await;
        }
        claimed.len()
    }

    async fn run_job(&self, rooms: &Rooms, name: &str) {
        let (kind, result) = match Job::parse(name) {
            Some(Job::Start(room)) => ("start", self.start(rooms, name, room).await),
            Some(Job::Remind(room)) => ("remind", self.remind(rooms, name, room).await),
            None => {
                tracing::warn!(job = name, "Dropping a due job of unknown kind.");
                ("unknown", self.finish(name).await.map(|()| "dropped"))
            }
        };
        let result = result.unwrap_or("error");
        self.jobs.with_label_values(&[kind, result]).inc();
    }

    async fn start(
        &self,
        rooms: &Rooms,
        name: &str,
        room: &str,
    ) -> Result<&'static str, StoreError> {
        match rooms.start(room, None).await {
            Ok(_) => {
                tracing::info!(room, "Scheduled room started.");
                self.finish(name).await?;
                Ok("started")
            }
            // Left in the index: due again after the lease.
            Err(refusal) if refusal.code == Code::Unavailable => {
                tracing::warn!(room, reason = %refusal.message, "Cannot start a scheduled room yet.");
                Err(StoreError::Unavailable(refusal.message))
            }
            // Started by hand, ended, or gone: nothing left to do.
            Err(refusal) => {
                tracing::debug!(room, reason = %refusal.message, "Scheduled start not needed.");
                self.finish(name).await?;
                Ok("skipped")
            }
        }
    }

    async fn remind(
        &self,
        rooms: &Rooms,
        name: &str,
        room: &str,
    ) -> Result<&'static str, StoreError> {
        // Finished first: a reminder is sent at most once.
        self.finish(name).await?;
        match rooms.remind(room).await {
            Ok(online) => {
                tracing::debug!(room, online, "Reminded the audience of a scheduled room.");
                Ok("sent")
            }
            Err(refusal) => {
                tracing::debug!(room, reason = %refusal.message, "Reminder not sent.");
                Ok("skipped")
            }
        }
    }

    async fn finish(&self, name: &str) -> Result<(), StoreError> {
        self.ledger.finish_due(name).await.inspect_err(|error| {
            tracing::warn!(job = name, %error, "Cannot finish a due job; it comes back after its lease.");
        })
    }
}

#[cfg(test)]
mod tests;
