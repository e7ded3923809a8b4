//! The local room index: for each room with members on this node, the sessions
//! in it and a feed task that turns notify/broadcast from the push layer into
//! contiguous batches, encoded once and offered to every session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use proto::client::v1::RoomMessage;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::Ctx;
use crate::codec::SharedFrame;
use crate::commands::UpstreamCmd;
use crate::cursor::{Cursor, History, Place};
use crate::handle::SessionHandle;
use crate::intake::{NotifyAction, on_notify};
use crate::outbound::{Outbound, RoomBatch};
use crate::pull::pull_range;
use crate::sampling::{Covered, HELD_COVERAGE_MAX, RoomSampler, SamplingRule};

/// Events per feed waiting to be processed; overflow forces a resync pull.
const FEED_QUEUE: usize = 1024;

/// What the push layer told us about a room.
#[derive(Debug)]
pub(crate) enum FeedEvent {
    Subscribed {
        epoch: u64,
        head: u64,
    },
    Notify {
        epoch: u64,
        seq: u64,
        /// The appended messages up to `seq` when the push node inlined them
        /// (empty: pull them).
        messages: Vec<RoomMessage>,
        /// `traceparent` of the message at `seq` (empty: not traced).
        trace: String,
    },
    Broadcast {
        epoch: u64,
        messages: Vec<RoomMessage>,
        /// `traceparent` of the newest traced message (empty: none).
        trace: String,
    },
    Ephemeral(Arc<SharedFrame>),
}

/// One room on this node.
pub(crate) struct Feed {
    pub(crate) room: Arc<str>,
    sessions: Mutex<Members>,
    events_tx: mpsc::Sender<FeedEvent>,
    /// `(epoch, head)` once the push layer acknowledged the subscription.
    ready: watch::Receiver<Option<(u64, u64)>>,
    /// The last batch handed to the sessions: a session that joins (or
    /// resets) now starts right after it. Set before the fan-out, so a
    /// session added after a fan-out always sees that fan-out's position.
    position: Mutex<Cursor>,
    /// Set when an event was dropped; the feed then pulls to the head.
    resync: std::sync::atomic::AtomicBool,
    /// The room samples its low-priority messages (it is big here): history
    /// replayed to one of its sessions is thinned the same way.
    sampled: std::sync::atomic::AtomicBool,
    closed: CancellationToken,
}

impl Feed {
    pub(crate) fn members(&self) -> u32 {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len() as u32
    }

    /// Wait for the push layer to acknowledge the subscription.
    pub(crate) async fn ready(&self, timeout: Duration) -> Option<(u64, u64)> {
        let mut ready = self.ready.clone();
        let wait = async {
            loop {
                if let Some(v) = *ready.borrow_and_update() {
                    return Some(v);
                }
                if ready.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// Where a session joining now starts. Batches after it reach the
    /// session through the fan-out, so no pull is needed to join.
    pub(crate) fn position(&self) -> Cursor {
        *self.position.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_position(&self, position: Cursor) {
        *self.position.lock().unwrap_or_else(|p| p.into_inner()) = position;
    }

    /// Hand an event to the feed task without waiting.
    pub(crate) fn push_event(&self, event: FeedEvent) {
        if self.events_tx.try_send(event).is_err() {
            self.resync
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether the room samples its low-priority messages now.
    pub(crate) fn sampled(&self) -> bool {
        self.sampled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hand contiguous `messages` (right after the last ones) to every
    /// session: sampled when the room is big, in one frame encoded once.
    fn deliver(
        &self,
        ctx: &Ctx,
        sampler: &mut RoomSampler,
        epoch: u64,
        messages: Vec<RoomMessage>,
    ) {
        let active = sampler.set_members(self.members());
        self.sampled
            .store(active, std::sync::atomic::Ordering::Relaxed);
        let covered = sampler.sample(epoch, messages);
        ctx.metrics.sampled_out.inc_by(sampler.take_sampled_out());
        if let Some(covered) = covered {
            self.send_covered(ctx, covered);
        }
    }

    fn send_covered(&self, ctx: &Ctx, covered: Covered) {
        let batch = RoomBatch::covering(
            &self.room,
            covered.epoch,
            covered.first_seq,
            covered.last_seq,
            covered.messages,
        );
        observe(ctx, &batch);
        self.fanout(ctx, batch);
    }

    /// Offer `batch` to every session: written straight to the sockets of
    /// sessions that wait with nothing queued, queued for the others.
    fn fanout(&self, ctx: &Ctx, batch: Arc<RoomBatch>) {
        self.set_position(Cursor::new(batch.epoch, batch.last_seq));
        let direct = self.keeping_up();
        for session in self.session_list().iter() {
            session.offer_as(
                Outbound::Batch(batch.clone()),
                ctx.cfg.lag_disconnect_ms,
                &ctx.metrics,
                direct,
            );
        }
    }

    fn fanout_ephemeral(&self, ctx: &Ctx, frame: Arc<SharedFrame>) {
        let direct = self.keeping_up();
        for session in self.session_list().iter() {
            session.offer_ephemeral_as(Outbound::Shared(frame.clone()), &ctx.metrics, direct);
        }
    }

    /// No event waits for this feed: it may write to the sockets itself. A
    /// feed that is behind queues instead, so the sessions write in parallel
    /// and each merges what piled up into one write, rather than this one
    /// task sending frame by frame (one `send` per frame costs more than a
    /// wakeup when frames pile up).
    fn keeping_up(&self) -> bool {
        self.events_tx.capacity() == self.events_tx.max_capacity()
    }

    /// The sessions now, taken out of the lock: an offer may write to a
    /// socket, and joins and leaves of the room must not wait for a
    /// fan-out's socket writes. One that joins after this starts after the
    /// position set before it; one that leaves is offered what it ignores.
    fn session_list(&self) -> Arc<[SessionHandle]> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .list()
    }
}

/// A room's sessions on this node, and the list a fan-out walks: built once
/// after a join or leave and then shared, so a fan-out clones one `Arc`, not
/// one handle per session (in a 10,000-member room collecting and dropping
/// those clones was ~6 % of the server's CPU).
#[derive(Default)]
struct Members {
    by_id: HashMap<Arc<str>, SessionHandle>,
    /// `by_id`'s handles; `None` after a change until the next fan-out.
    list: Option<Arc<[SessionHandle]>>,
}

impl Members {
    fn insert(&mut self, session: SessionHandle) {
        self.by_id.insert(session.id().clone(), session);
        self.list = None;
    }

    fn remove(&mut self, session_id: &str) {
        if self.by_id.remove(session_id).is_some() {
            self.list = None;
        }
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn list(&mut self) -> Arc<[SessionHandle]> {
        let by_id = &self.by_id;
        self.list
            .get_or_insert_with(|| by_id.values().cloned().collect())
            .clone()
    }
}

/// Rooms with members on this node.
#[derive(Default)]
pub(crate) struct Feeds {
    map: DashMap<Arc<str>, Arc<Feed>>,
}

impl Feeds {
    pub(crate) fn get(&self, room: &str) -> Option<Arc<Feed>> {
        self.map.get(room).map(|f| f.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Rooms and their member counts.
    pub(crate) fn counts(&self) -> Vec<(Arc<str>, u32)> {
        self.map
            .iter()
            .map(|f| (f.key().clone(), f.members()))
            .collect()
    }

    /// Add `session` to `room`, creating the feed (and subscribing) if needed.
    pub(crate) async fn join(
        &self,
        ctx: &Arc<Ctx>,
        room: &str,
        session: SessionHandle,
    ) -> Arc<Feed> {
        let (feed, created) = {
            // The entry guard serialises join and the last leave of a room, so a
            // session never lands in a feed that is being removed.
            let mut created = false;
            let entry = self.map.entry(Arc::from(room)).or_insert_with(|| {
                created = true;
                spawn_feed(ctx, Arc::from(room))
            });
            entry
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(session);
            (entry.clone(), created)
        };
        if created {
            ctx.metrics.rooms.set(self.map.len() as i64);
        }
        let _ = ctx
            .upstream
            .send(UpstreamCmd::RoomChanged(feed.room.clone()))
            .await;
        feed
    }

    /// Remove `session` from `room`; the last one out closes the feed.
    pub(crate) async fn leave(&self, ctx: &Ctx, room: &str, session_id: &str) {
        let Some(feed) = self.get(room) else { return };
        feed.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session_id);
        let removed = self
            .map
            .remove_if(room, |_, f| {
                f.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
            })
            .is_some();
        if removed {
            feed.closed.cancel();
            ctx.metrics.rooms.set(self.map.len() as i64);
        }
        let _ = ctx
            .upstream
            .send(UpstreamCmd::RoomChanged(feed.room.clone()))
            .await;
    }

    /// Stop every feed task (shutdown).
    pub(crate) fn close_all(&self) {
        for feed in self.map.iter() {
            feed.closed.cancel();
        }
    }
}

fn spawn_feed(ctx: &Arc<Ctx>, room: Arc<str>) -> Arc<Feed> {
    let (events_tx, events_rx) = mpsc::channel(FEED_QUEUE);
    let (ready_tx, ready) = watch::channel(None);
    let feed = Arc::new(Feed {
        room,
        sessions: Mutex::new(Members::default()),
        events_tx,
        ready,
        position: Mutex::new(Cursor::new(0, 0)),
        resync: std::sync::atomic::AtomicBool::new(false),
        sampled: std::sync::atomic::AtomicBool::new(false),
        closed: CancellationToken::new(),
    });
    tokio::spawn(run_feed(ctx.clone(), feed.clone(), events_rx, ready_tx));
    feed
}

async fn run_feed(
    ctx: Arc<Ctx>,
    feed: Arc<Feed>,
    mut events: mpsc::Receiver<FeedEvent>,
    ready_tx: watch::Sender<Option<(u64, u64)>>,
) {
    let coalesce = Duration::from_millis(ctx.cfg.coalesce_ms);
    // None until the push layer acknowledged the subscription.
    let mut cursor: Option<Cursor> = None;
    // The newest `(epoch, seq)` a notify or broadcast announced before the
    // acknowledgement: the push node may hand a message to this node between
    // registering the interest and sending `Subscribed`, whose head then
    // trails it. Dropped, that message would wait for the room's next one.
    let mut early: Option<(u64, u64)> = None;
    let rule = SamplingRule {
        above_members: ctx.cfg.sample_above_members,
        low_per_sec: ctx.cfg.sample_low_per_sec,
    };
    let mut sampler = RoomSampler::new(rule, &ctx.limiter_clock);
    // Since when coverage is held back (all of it sampled out).
    let mut held_since: Option<tokio::time::Instant> = None;
    loop {
        // At the top: every way through the last event (some `continue`)
        // may have left coverage held, or sent it.
        if sampler.holds() {
            held_since.get_or_insert_with(tokio::time::Instant::now);
        } else {
            held_since = None;
        }
        let flush_at = held_since.map(|t| t + HELD_COVERAGE_MAX);
        let event = tokio::select! {
            event = events.recv() => event,
            _ = feed.closed.cancelled() => None,
            () = sleep_until(flush_at) => {
                if let Some(covered) = sampler.flush_held() {
                    feed.send_covered(&ctx, covered);
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        match event {
            FeedEvent::Subscribed { epoch, head } => match &mut cursor {
                None => {
                    let c = cursor.insert(Cursor::new(epoch, head));
                    feed.set_position(Cursor::new(epoch, head));
                    ready_tx.send_replace(Some((epoch, head)));
                    if crate::intake::early_news_past_head(early.take(), epoch, head) {
                        pulled(&ctx, "before_subscribed");
                        catch_up(&ctx, &feed, &mut sampler, c, epoch).await;
                    }
                }
                // A re-subscription (push stream re-established): catch up.
                Some(c) if c.covers(epoch, head) => {}
                Some(c) => {
                    pulled(&ctx, "resubscribed");
                    catch_up(&ctx, &feed, &mut sampler, c, epoch).await;
                }
            },
            FeedEvent::Notify {
                epoch,
                seq,
                messages,
                trace,
            } => {
                let Some(c) = &mut cursor else {
                    note_early(&mut early, epoch, seq);
                    continue;
                };
                match on_notify(c, epoch, seq, messages) {
                    NotifyAction::Covered => {}
                    NotifyAction::Apply(fresh) => {
                        let span = fanout_span("conn.notify", &feed.room, &trace);
                        if let Some(last) = fresh.last().map(|m| m.seq) {
                            ctx.metrics.intake.inline_applied.inc_by(fresh.len() as u64);
                            c.advance(last);
                            span.in_scope(|| feed.deliver(&ctx, &mut sampler, epoch, fresh));
                        }
                    }
                    NotifyAction::Pull(reason) => {
                        let span = fanout_span("conn.notify", &feed.room, &trace);
                        // Wait a little so the notifies behind this one
                        // are read by the same pull.
                        if !coalesce.is_zero() {
                            tokio::time::sleep(coalesce).await;
                        }
                        pulled(&ctx, reason.label());
                        catch_up(&ctx, &feed, &mut sampler, c, epoch)
                            .instrument(span)
                            .await;
                    }
                }
            }
            FeedEvent::Broadcast {
                epoch,
                messages,
                trace,
            } => {
                let Some(c) = &mut cursor else {
                    if let Some(last) = messages.last() {
                        note_early(&mut early, epoch, last.seq);
                    }
                    continue;
                };
                let span = fanout_span("conn.broadcast", &feed.room, &trace);
                if matches!(
                    c.place_messages(epoch, &messages),
                    Place::OtherEpoch | Place::Gap { .. }
                ) {
                    // Epoch change or hole: pull what is missing first.
                    pulled(&ctx, "broadcast_gap");
                    catch_up(&ctx, &feed, &mut sampler, c, epoch)
                        .instrument(span.clone())
                        .await;
                }
                let fresh = match c.place_messages(epoch, &messages) {
                    Place::Next => messages,
                    Place::Overlap { .. } => c.fresh(messages),
                    // Caught up past it, or the pull failed (the next event or
                    // resync tries again).
                    Place::Covered | Place::Gap { .. } | Place::OtherEpoch => continue,
                };
                if let Some(last) = fresh.last().map(|m| m.seq) {
                    c.advance(last);
                    span.in_scope(|| feed.deliver(&ctx, &mut sampler, epoch, fresh));
                }
            }
            FeedEvent::Ephemeral(frame) => feed.fanout_ephemeral(&ctx, frame),
        }
        if feed
            .resync
            .swap(false, std::sync::atomic::Ordering::Relaxed)
            && let Some(c) = &mut cursor
        {
            let epoch = c.epoch;
            pulled(&ctx, "resync");
            catch_up(&ctx, &feed, &mut sampler, c, epoch).await;
        }
    }
}

/// Remember the position announced last before the subscription was
/// acknowledged (events arrive in stream order: the last one is the newest).
fn note_early(early: &mut Option<(u64, u64)>, epoch: u64, seq: u64) {
    *early = Some((epoch, seq));
}

/// Count one catch-up read of a feed, by why it was needed.
fn pulled(ctx: &Ctx, reason: &str) {
    ctx.metrics
        .intake
        .feed_pulls
        .with_label_values(&[reason])
        .inc();
}

/// Sleep until `at`; never without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Pull everything after the cursor and fan it out. An announced new epoch
/// restarts the cursor at 0 (sessions see the epoch change and reset).
async fn catch_up(
    ctx: &Ctx,
    feed: &Feed,
    sampler: &mut RoomSampler,
    cursor: &mut Cursor,
    announced_epoch: u64,
) {
    cursor.follow_epoch(announced_epoch);
    let timeout = Duration::from_millis(ctx.cfg.request_timeout_ms);
    for attempt in 0..3u32 {
        let range = match pull_range(
            &ctx.directory,
            &feed.room,
            cursor.seq,
            None,
            ctx.cfg.pull_batch,
            timeout,
        )
        .await
        {
            Ok(range) => range,
            Err(error) => {
                tracing::warn!(room = %feed.room, %error, attempt, "Pull failed.");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                continue;
            }
        };
        match cursor.history(&range.facts()) {
            History::NewEpoch => {
                // The stream was reset: start over in the new epoch.
                cursor.follow_epoch(range.epoch);
                if range.head == 0 {
                    feed.set_position(*cursor);
                    return;
                }
                continue;
            }
            History::Truncated => {
                // History does not reach back: skip to what exists. Sessions
                // notice the hole and tell their clients recovered=false.
                tracing::warn!(room = %feed.room, from = cursor.seq, "Feed fell behind history.");
            }
            History::Continues => {}
        }
        // One batch per page: each becomes one frame to every session, and a
        // frame must stay small enough for clients to decode.
        for page in
            proto::paging::split_pages(range.messages, usize::MAX, proto::paging::PAGE_BYTES)
        {
            if let Some(last) = page.last().map(|m| m.seq) {
                cursor.advance(last);
                feed.deliver(ctx, sampler, cursor.epoch, page);
            }
        }
        return;
    }
}

/// The span of one traced notify or broadcast on this node: a child of the
/// push node's append (`trace`); none when `trace` is empty.
fn fanout_span(name: &'static str, room: &str, trace: &str) -> tracing::Span {
    if trace.is_empty() || !common::trace::enabled() {
        return tracing::Span::none();
    }
    let span = match name {
        "conn.notify" => tracing::info_span!("conn.notify", room = %room),
        _ => tracing::info_span!("conn.broadcast", room = %room),
    };
    common::trace::follow(&span, trace);
    span
}

fn observe(ctx: &Ctx, batch: &RoomBatch) {
    let now = common::time::now_ms();
    for m in batch.messages() {
        ctx.metrics
            .publish_to_deliver
            .observe(now.saturating_sub(m.ts_ms) as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> SessionHandle {
        SessionHandle::new(Arc::from(id), Arc::from("uid"), 8, None).0
    }

    fn ids(list: &[SessionHandle]) -> Vec<String> {
        let mut ids: Vec<String> = list.iter().map(|s| s.id().to_string()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn the_fan_out_list_is_shared_until_a_join_or_leave_changes_it() {
        let mut members = Members::default();
        members.insert(session("a"));
        members.insert(session("b"));
        let first = members.list();
        assert_eq!(ids(&first), ["a", "b"]);
        assert!(Arc::ptr_eq(&first, &members.list()), "no change, same list");

        members.insert(session("c"));
        let joined = members.list();
        assert_eq!(ids(&joined), ["a", "b", "c"]);
        assert_eq!(
            ids(&first),
            ["a", "b"],
            "a list taken earlier stays as it was"
        );

        members.remove("a");
        members.remove("nobody");
        assert_eq!(ids(&members.list()), ["b", "c"]);
        assert_eq!(members.len(), 2);
        members.remove("b");
        members.remove("c");
        assert!(members.is_empty() && members.list().is_empty());
    }
}
