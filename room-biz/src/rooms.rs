//! The room service of a biz node: everything actions, joins and the HTTP API
//! share beyond the store — checks, atomic changes, events, lifecycle (start,
//! end, auto-end), counters, poll tallies, timers and presence (join/leave events).
//!
//! Handlers turn requests into [`Plan`]s (`room_store::domain::rules`), [`Rooms::apply`]
//! runs them atomically in the store and maps a failed guard to its
//! refusal, and the handler pushes the events the change means.

pub(crate) mod counters;
pub(crate) mod events;
pub(crate) mod presence;
pub(crate) mod timers;
pub(crate) mod views;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt as _;
use prometheus::IntCounterVec;
use proto::client::v1::{Code, Priority};
use proto::internal::v1::{PushRoomRequest, PushUsersRequest, RoomRemoval};
use room_store::domain::entry::{self, Barred};
use room_store::domain::poll::{PollState, PollView};
use room_store::domain::room::{Role, Room, RoomState, UserStage};
use room_store::domain::rules::{self, Plan, Refusal};
use room_store::domain::state::{RoomRead, user_json};
use room_store::domain::transition::Applied;
use room_store::{AudienceSet, RoomStore, SessionLeft};
use serde_json::{Value, json};

use self::counters::Aggregator;
use self::presence::{Notice, PresenceQueue};
use self::timers::{Due, Timers};
use self::views::{View, Views};
use crate::archive_jobs::{ArchiveQueue, EnqueueRetry};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pusher::RoomPusher;
use crate::webhooks::{Webhooks, kinds};

/// uids per `PushUsers` request.
const USER_PUSH_BATCH: usize = 500;
/// uids read per page of an audience set.
const AUDIENCE_PAGE: usize = 1000;
/// Timer handlers running at once.
const TIMER_CONCURRENCY: usize = 16;
/// Slack added to auto-end timers so the store sees the room expired.
const AUTO_END_SLACK_MS: u64 = 50;

/// What the service needs from [`Config`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Hands in a snapshot.
    pub(crate) hands_max: usize,
    /// Polls in a snapshot.
    pub(crate) polls_max: usize,
    /// Polls open at once.
    pub(crate) polls_open_max: u32,
    /// Distinct reactions per room.
    pub(crate) reaction_kinds_max: usize,
    /// Pace of live poll tallies.
    pub(crate) poll_tally: Duration,
    /// Items kept per user inbox.
    pub(crate) inbox_max: usize,
    /// How long a user inbox lives after its last item.
    pub(crate) inbox_ttl: Duration,
}

/// A change that went through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Done {
    /// Whether anything changed (false: a repeat).
    pub(crate) changed: bool,
    /// The room's state version after.
    pub(crate) version: u64,
    /// The subject before.
    pub(crate) before: Option<UserStage>,
    /// The subject after.
    pub(crate) after: Option<UserStage>,
}

/// The service.
pub(crate) struct Rooms {
    pub(crate) settings: Settings,
    pub(crate) store: Arc<dyn RoomStore>,
    pub(crate) pusher: Arc<dyn RoomPusher>,
    pub(crate) views: Views,
    pub(crate) counters: Aggregator,
    pub(crate) timers: Timers,
    pub(crate) presence: PresenceQueue,
    /// Events for the app backend (event log, webhooks).
    pub(crate) webhooks: Webhooks,
    /// (room, poll) with votes not yet pushed as a tally.
    tallies: Mutex<HashSet<(String, String)>>,
    events_metric: IntCounterVec,
    ended_metric: IntCounterVec,
    /// Where ended rooms are queued for the archiver (unset: no archive).
    pub(crate) archive_queue: OnceLock<Arc<dyn ArchiveQueue>>,
    /// Ended rooms queued again after a failed enqueue.
    pub(crate) archive_retry: EnqueueRetry,
}

fn not_found(room: &str) -> Refusal {
    Refusal::new(Code::RoomNotFound, format!("room {room} not found"))
}

impl Rooms {
    /// The service for `cfg` on `store` and `pusher`.
    pub(crate) fn new(
        cfg: &Config,
        store: Arc<dyn RoomStore>,
        pusher: Arc<dyn RoomPusher>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            settings: Settings {
                hands_max: cfg.snapshot_hands_max,
                polls_max: cfg.snapshot_polls_max,
                polls_open_max: cfg.polls_open_max,
                reaction_kinds_max: cfg.reaction_kinds_max,
                poll_tally: Duration::from_millis(cfg.poll_tally_ms),
                inbox_max: cfg.schedules.inbox_max,
                inbox_ttl: Duration::from_secs(cfg.schedules.inbox_ttl_secs),
            },
            views: Views::new(store.clone(), Duration::from_millis(cfg.room_view_ms)),
            counters: Aggregator::new(
                store.clone(),
                pusher.clone(),
                Duration::from_millis(cfg.counter_window_ms),
                metrics.likes_received.clone(),
                metrics.reactions_received.clone(),
                metrics.counter_flushes.clone(),
            ),
            timers: Timers::default(),
            presence: PresenceQueue::new(
                cfg.presence_events,
                cfg.presence_queue,
                cfg.presence_aggregate_members,
                Duration::from_millis(cfg.presence_window_ms),
            ),
            webhooks: Webhooks::new(&cfg.webhooks),
            tallies: Mutex::default(),
            events_metric: metrics.events.clone(),
            ended_metric: metrics.rooms_ended.clone(),
            archive_queue: OnceLock::new(),
            archive_retry: EnqueueRetry::default(),
            store,
            pusher,
        }
    }

    /// The background work: counter flushes, poll tallies, timers, presence.
    /// Returns never.
    pub(crate) async fn run(&self) {
        tokio::join!(
            self.counters.run(),
            self.run_tallies(),
            self.run_timers(),
            self.presence.run(self.pusher.clone()),
        );
    }

    /// Drop idle cached state.
    pub(crate) fn housekeep(&self) {
        self.views.housekeep();
    }

    // === Checks and changes ===

    /// The cached view of `room` for an action by `uid`: refuses unknown
    /// rooms, ends a room found empty too long, and applies the entry rule
    /// ([`entry::check`]: ended, blocked, kicked, private). The store checks
    /// kicks and the invite list again, atomically, as the action's first
    /// guards, so a change made through another node is not missed.
    pub(crate) async fn gate(&self, room: &str, uid: &str) -> Result<Arc<View>, Refusal> {
        let mut view = self
            .views
            .get(room)
            .await
            .map_err(Refusal::from)?
            .ok_or_else(|| not_found(room))?;
        if view.room.state == RoomState::Scheduled
            && view
                .room
                .scheduled_at_ms
                .is_some_and(|at| at <= common::time::now_ms())
        {
            // Past its time and not started: the due index should have done
            // it (schedules), unless it was lost with a Redis that restarted
            // empty. Start it now; the store's guard makes this a no-op if
            // another node just did.
            if self.start(room, None).await.is_ok() {
                tracing::info!(room, "Started an overdue scheduled room on first use.");
            }
            self.views.invalidate(room);
            view = self
                .views
                .get(room)
                .await
                .map_err(Refusal::from)?
                .ok_or_else(|| not_found(room))?;
        }
        if view.room.empty_expired(common::time::now_ms()) && self.auto_end(room).await {
            return Err(Barred::Ended.into());
        }
        entry::check(view.room.state, view.standing(uid))?;
        Ok(view)
    }

    /// Apply `plan` atomically; a failed guard is its refusal.
    pub(crate) async fn apply(&self, room: &str, plan: &Plan) -> Result<Done, Refusal> {
        match self.store.apply(room, &plan.transition()).await {
            Ok(Applied::Refused { guard }) => Err(plan.refusal(guard)),
            Ok(Applied::Done {
                changed,
                version,
                before,
                after,
            }) => Ok(Done {
                changed,
                version,
                before,
                after,
            }),
            Err(error) => Err(Refusal::from(error)),
        }
    }

    /// Everything about `room`, for `viewer` if given.
    pub(crate) async fn read(&self, room: &str, viewer: Option<&str>) -> Result<RoomRead, Refusal> {
        self.store
            .read(room, viewer, self.settings.hands_max)
            .await
            .map_err(Refusal::from)?
            .ok_or_else(|| not_found(room))
    }

    // === Pushing ===

    fn count_event(&self, kind: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.events_metric.with_label_values(&[kind, result]).inc();
    }

    /// Push a durable, high-priority event; its seq, or `None` if the push
    /// layer failed (the change stands; clients catch up through `v`).
    pub(crate) async fn event(
        &self,
        room: &str,
        kind: &'static str,
        body: &Value,
        sender: &str,
    ) -> Option<u64> {
        let request = PushRoomRequest {
            room: room.to_owned(),
            kind: kind.to_owned(),
            body: body.to_string().into(),
            sender: sender.to_owned(),
            priority: Priority::High as i32,
            durable: true,
        };
        match self.pusher.push_room(request).await {
            Ok(reply) => {
                self.count_event(kind, true);
                Some(reply.seq)
            }
            Err(error) => {
                self.count_event(kind, false);
                tracing::warn!(room, kind, %error, "Cannot push a room event; the change stands.");
                None
            }
        }
    }

    /// Push an ephemeral event (best effort).
    pub(crate) async fn ephemeral(&self, room: &str, kind: &'static str, body: &Value) {
        let request = PushRoomRequest {
            room: room.to_owned(),
            kind: kind.to_owned(),
            body: body.to_string().into(),
            sender: String::new(),
            priority: Priority::Normal as i32,
            durable: false,
        };
        let ok = self.pusher.push_room(request).await.is_ok();
        self.count_event(kind, ok);
    }

    /// Push `kind` to `uids` wherever they are connected (best effort); how
    /// many were online.
    pub(crate) async fn notify_users(
        &self,
        uids: &[String],
        kind: &'static str,
        body: &Value,
    ) -> u32 {
        self.push_users(uids, kind, body, None).await
    }

    /// Tell `uid` it was removed from `room` (kick, block) with `kind`: the
    /// typed removal also makes conn nodes end that room's fan-out to it.
    pub(crate) async fn notify_removed(
        &self,
        uid: &str,
        room: &str,
        kind: &'static str,
        body: &Value,
    ) -> u32 {
        let removal = RoomRemoval {
            room: room.to_owned(),
        };
        self.push_users(&[uid.to_owned()], kind, body, Some(removal))
            .await
    }

    async fn push_users(
        &self,
        uids: &[String],
        kind: &'static str,
        body: &Value,
        removal: Option<RoomRemoval>,
    ) -> u32 {
        let body = bytes::Bytes::from(body.to_string());
        let mut online = 0;
        for batch in uids.chunks(USER_PUSH_BATCH) {
            let request = PushUsersRequest {
                uids: batch.to_vec(),
                kind: kind.to_owned(),
                body: body.clone(),
                removal: removal.clone(),
                revocation: None,
            };
            match self.pusher.push_users(request).await {
                Ok(reply) => {
                    online += reply.online;
                    self.count_event(kind, true);
                }
                Err(error) => {
                    self.count_event(kind, false);
                    tracing::warn!(kind, %error, users = batch.len(), "Cannot push to users.");
                }
            }
        }
        online
    }

    /// The body of a state event about `subject`: its whole stage state, who
    /// did it, the state version, plus `extra` fields.
    pub(crate) fn state_body(subject: &str, by: Option<&str>, done: &Done, extra: Value) -> Value {
        let mut body = json!({
            "uid": subject,
            "by": by,
            "v": done.version,
            "user": done.after.as_ref().map(|u| user_json(subject, u)),
        });
        if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), extra) {
            map.extend(extra);
        }
        body
    }

    // === Lifecycle ===

    /// Start a scheduled room (`actor` `None`: the app backend): push
    /// `room_started` and tell interested and invited users.
    pub(crate) async fn start(
        &self,
        room: &str,
        actor: Option<&str>,
    ) -> Result<(Room, Option<u64>), Refusal> {
        let now = common::time::now_ms();
        let done = self.apply(room, &rules::start_room(actor, now)).await?;
        self.views.invalidate(room);
        let started = self
            .store
            .get_room(room)
            .await
            .map_err(Refusal::from)?
            .ok_or_else(|| not_found(room))?;
        self.watch_empty(&started);
        let body = json!({"started_at_ms": started.started_at_ms, "by": actor, "v": done.version});
        let seq = self
            .event(room, events::ROOM_STARTED, &body, actor.unwrap_or(""))
            .await;
        self.webhooks.emit(
            kinds::ROOM_STARTED,
            room,
            json!({
                "title": started.title,
                "owner": started.owner,
                "scheduled_at_ms": started.scheduled_at_ms,
                "started_at_ms": started.started_at_ms,
                "by": actor,
            }),
        );
        let note = json!({
            "room": room,
            "title": started.title,
            "host": started.owner,
            "started_at_ms": started.started_at_ms,
        });
        let audience = self.audience(room).await;
        // Kept for those who connect later, then pushed to those online now.
        let item = json!({"kind": events::USER_ROOM_STARTED, "at_ms": now, "body": note});
        if let Err(error) = self
            .store
            .ledger()
            .inbox_push(
                &audience,
                &item.to_string(),
                self.settings.inbox_max,
                self.settings.inbox_ttl,
            )
            .await
        {
            tracing::warn!(room, %error, "Cannot keep room_started in user inboxes.");
        }
        self.notify_users(&audience, events::USER_ROOM_STARTED, &note)
            .await;
        Ok((started, seq))
    }

    /// Remind interested and invited users that `room` starts soon, if it is
    /// still scheduled; how many were online.
    pub(crate) async fn remind(&self, room: &str) -> Result<u32, Refusal> {
        let found = self
            .store
            .get_room(room)
            .await
            .map_err(Refusal::from)?
            .ok_or_else(|| not_found(room))?;
        if found.state != RoomState::Scheduled {
            return Ok(0);
        }
        let note = json!({
            "room": room,
            "title": found.title,
            "host": found.owner,
            "scheduled_at_ms": found.scheduled_at_ms,
        });
        let audience = self.audience(room).await;
        Ok(self
            .notify_users(&audience, events::USER_ROOM_REMINDER, &note)
            .await)
    }

    /// Everyone invited or interested (invited first), without repeats.
    async fn audience(&self, room: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for set in [AudienceSet::Invited, AudienceSet::Interested] {
            let mut cursor = 0;
            loop {
                match self
                    .store
                    .audience_page(room, set, cursor, AUDIENCE_PAGE)
                    .await
                {
                    Ok((next, uids)) => {
                        for uid in uids {
                            if seen.insert(uid.clone()) {
                                all.push(uid);
                            }
                        }
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                    Err(error) => {
                        tracing::warn!(room, %error, "Cannot read who to tell the room started.");
                        break;
                    }
                }
            }
        }
        all
    }

    /// End `room` (`actor` `None`: the app backend); returns the final summary.
    pub(crate) async fn end(
        &self,
        room: &str,
        actor: Option<&str>,
        reason: &'static str,
    ) -> Result<Value, Refusal> {
        let now = common::time::now_ms();
        let done = self.apply(room, &rules::end_room(actor, now)).await?;
        Ok(self.finish(room, reason, actor, done.version).await)
    }

    /// After the end: flush counters, close polls, push `room_ended` with the
    /// summary.
    async fn finish(
        &self,
        room: &str,
        reason: &'static str,
        by: Option<&str>,
        version: u64,
    ) -> Value {
        self.views.invalidate(room);
        self.ended_metric.with_label_values(&[reason]).inc();
        self.counters.flush_room(room).await;
        let mut version = version;
        if let Ok(read) = self.read(room, None).await {
            for poll in read.polls.iter().filter(|p| p.state == PollState::Open) {
                if let Ok((_, _, v)) = self
                    .close_poll(room, &poll.def.id, None, "room_ended")
                    .await
                {
                    version = version.max(v);
                }
            }
        }
        let now = common::time::now_ms();
        let summary = match self.read(room, None).await {
            Ok(read) => read.summary_json(now),
            Err(refusal) => {
                tracing::warn!(room, reason = %refusal.message, "Cannot read the final summary.");
                Value::Null
            }
        };
        let body = json!({
            "reason": reason,
            "by": by,
            "ended_at_ms": now,
            "summary": summary,
            "v": version,
        });
        self.event(room, events::ROOM_ENDED, &body, by.unwrap_or(""))
            .await;
        self.webhooks.emit(kinds::ROOM_ENDED, room, body);
        tracing::info!(room, reason, "Room ended.");
        self.queue_for_archive(room).await;
        summary
    }

    /// Hand the ended `room` to the archiver (after `room_ended` is in its
    /// log, so the archive has it too).
    async fn queue_for_archive(&self, room: &str) {
        let Some(queue) = self.archive_queue.get() else {
            return;
        };
        self.archive_retry.enqueue(queue, room).await;
    }

    /// End `room` if it has been empty for its auto-end time; true if it did.
    /// Reschedules when the room emptied again later than expected.
    pub(crate) async fn auto_end(&self, room: &str) -> bool {
        let now = common::time::now_ms();
        let found = match self.store.get_room(room).await {
            Ok(Some(found)) => found,
            Ok(None) => return false,
            Err(error) => {
                tracing::debug!(room, %error, "Cannot check an empty room.");
                return false;
            }
        };
        if found.state != RoomState::Live || found.auto_end_empty_secs == 0 {
            return false;
        }
        let empty_ms = u64::from(found.auto_end_empty_secs) * 1000;
        if !found.empty_expired(now) {
            // Someone came and went meanwhile: check again when this stretch
            // of emptiness is up.
            self.watch_empty(&found);
            return false;
        }
        match self.apply(room, &rules::auto_end(empty_ms, now)).await {
            Ok(done) if done.changed => {
                self.finish(room, "empty", None, done.version).await;
                true
            }
            Ok(_) => false,
            Err(_) => {
                // Someone joined meanwhile, or another node ended it.
                self.views.invalidate(room);
                false
            }
        }
    }

    /// If `room` is live and empty, check it again when its auto-end time is up.
    pub(crate) fn watch_empty(&self, room: &Room) {
        if room.state != RoomState::Live || room.auto_end_empty_secs == 0 {
            return;
        }
        if let Some(since) = room.empty_since_ms {
            let at = since + u64::from(room.auto_end_empty_secs) * 1000 + AUTO_END_SLACK_MS;
            self.timers.schedule(
                at,
                Due::AutoEnd {
                    room: room.id.clone(),
                },
            );
        }
    }

    /// Put `uids` on the invite list and tell them (`by` `None`: the app).
    pub(crate) async fn invite(
        &self,
        room: &str,
        uids: &[String],
        by: Option<&str>,
    ) -> Result<u32, Refusal> {
        self.apply(room, &rules::invite_users(uids)).await?;
        self.views.invalidate(room);
        let found = self
            .store
            .get_room(room)
            .await
            .map_err(Refusal::from)?
            .ok_or_else(|| not_found(room))?;
        let note = json!({
            "room": room,
            "title": found.title,
            "host": found.owner,
            "state": found.state,
            "scheduled_at_ms": found.scheduled_at_ms,
            "by": by,
        });
        Ok(self
            .notify_users(uids, events::USER_ROOM_INVITE, &note)
            .await)
    }

    /// Close `poll` (`actor` `None`: its timer or the room's end): the final
    /// view, the seq of the `poll_closed` event (none if it was closed
    /// already), and the state version.
    pub(crate) async fn close_poll(
        &self,
        room: &str,
        poll: &str,
        actor: Option<&str>,
        reason: &'static str,
    ) -> Result<(PollView, Option<u64>, u64), Refusal> {
        let now = common::time::now_ms();
        let done = self
            .apply(room, &rules::poll_close(actor, poll, now))
            .await?;
        let view = self.poll(room, poll).await?;
        let seq = if done.changed {
            let body = json!({"poll": view, "reason": reason, "by": actor, "v": done.version});
            self.webhooks.emit(kinds::POLL_CLOSED, room, body.clone());
            self.event(room, events::POLL_CLOSED, &body, actor.unwrap_or(""))
                .await
        } else {
            None
        };
        Ok((view, seq, done.version))
    }

    /// One poll as it stands.
    pub(crate) async fn poll(&self, room: &str, poll: &str) -> Result<PollView, Refusal> {
        let read = self.read(room, None).await?;
        read.polls
            .into_iter()
            .find(|p| p.def.id == poll)
            .ok_or_else(|| Refusal::bad_request(format!("no poll {poll}")))
    }

    /// A vote counted in `poll`: its tally goes out with the next pace.
    pub(crate) fn vote_counted(&self, room: &str, poll: &str) {
        self.tallies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((room.to_owned(), poll.to_owned()));
    }

    /// Push the tallies of polls with new votes, at most once per pace each.
    pub(crate) async fn push_tallies(&self) {
        let dirty: Vec<(String, String)> = self
            .tallies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (room, poll) in dirty {
            let Ok(view) = self.poll(&room, &poll).await else {
                continue;
            };
            let body = json!({
                "poll_id": view.def.id,
                "tallies": view.tallies,
                "votes": view.votes,
                "state": view.state,
            });
            self.ephemeral(&room, events::POLL_TALLY, &body).await;
        }
    }

    async fn run_tallies(&self) {
        let mut tick = tokio::time::interval(self.settings.poll_tally);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.push_tallies().await;
        }
    }

    async fn run_timers(&self) {
        let due = futures::stream::unfold(&self.timers, |timers| async move {
            Some((timers.next().await, timers))
        });
        due.for_each_concurrent(TIMER_CONCURRENCY, |due| async move {
            match due {
                Due::ClosePoll { room, poll } => {
                    if let Err(refusal) = self.close_poll(&room, &poll, None, "timer").await {
                        tracing::debug!(room, poll, reason = %refusal.message, "Timed poll not closed.");
                    }
                }
                Due::AutoEnd { room } => {
                    self.auto_end(&room).await;
                }
            }
        })
        .await;
    }

    // === Presence ===

    /// A member joined (the store has counted them).
    pub(crate) fn joined(&self, room: &str, uid: &str, role: Role, members: u32) {
        self.webhooks.emit_member(
            kinds::MEMBER_JOINED,
            room,
            json!({"uid": uid, "role": role.as_str(), "members": members}),
        );
        self.presence.notice(Notice::Joined {
            room: room.to_owned(),
            uid: uid.to_owned(),
            role,
            members,
        });
    }

    /// A member left (the store has counted it); an empty room may end later.
    pub(crate) async fn left(&self, room: &str, uid: Option<&str>, members: u32) {
        self.webhooks.emit_member(
            kinds::MEMBER_LEFT,
            room,
            json!({"uid": uid, "members": members}),
        );
        self.presence.notice(Notice::Left {
            room: room.to_owned(),
            uid: uid.map(str::to_owned),
            members,
        });
        self.maybe_auto_end(room, members).await;
    }

    /// A session of `uid` left (the store has counted it): announced only
    /// when it was the uid's last one, since presence is per distinct member
    /// (a uid's N sessions leaving would otherwise cost O(N²) frames).
    pub(crate) async fn session_left(&self, room: &str, uid: &str, left: SessionLeft) {
        if left.member_gone {
            self.left(room, Some(uid), left.members).await;
        } else {
            self.maybe_auto_end(room, left.members).await;
        }
    }

    /// An empty live room with an auto-end delay ends after it.
    async fn maybe_auto_end(&self, room: &str, members: u32) {
        if members > 0 {
            return;
        }
        let found = match self.views.get(room).await {
            Ok(Some(view)) => view.room.clone(),
            _ => return,
        };
        if found.state == RoomState::Live && found.auto_end_empty_secs > 0 {
            let at = common::time::now_ms()
                + u64::from(found.auto_end_empty_secs) * 1000
                + AUTO_END_SLACK_MS;
            self.timers.schedule(
                at,
                Due::AutoEnd {
                    room: room.to_owned(),
                },
            );
        }
    }
}
