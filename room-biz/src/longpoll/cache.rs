//! The per-node long-poll cache: one copy of each polled room's recent messages, so
//! that thousands of pollers of one room cost one push-layer read per refresh,
//! not one per poll.
//!
//! Each cached room has one background task. It reads the room's stream from
//! the push owner (`Pull` after the cached head) about every
//! `poll_refresh_ms` (small rooms) or `poll_large_refresh_ms` (rooms of at
//! least `poll_large_room_members`), keeps the newest `poll_cache_window`
//! messages, and publishes the result in a `watch` channel: waiting long-polls
//! wake when the head moves. It also re-reads the room (state, owner) and its
//! member count once a second, so polls need no store read either.
//!
//! Memory is bounded: at most `poll_cache_rooms_max` rooms, each dropped after
//! `poll_cache_idle_ms` without a poll. Polls of rooms that do not fit read the
//! push layer directly (`crate::http` answers those).
//!
//! Pollers are members, as socket clients are: the task records each uid
//! polling a cached room as a member session `http@<node>` held by this node,
//! and removes it once the uid stopped polling for `poll_cache_idle_ms` (or
//! the room leaves the cache). Doing the store writes from the one task keeps
//! a uid's join and leave in order. Should the node die, other biz nodes drop
//! its sessions (`crate::healing`). Polls read directly are not counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use prometheus::IntGauge;
use prost::Message as _;
use proto::client::v1::RoomMessage;
use proto::internal::v1::{PullReply, PullRequest};
use room_store::StoreError;
use room_store::{Room, RoomState, RoomStore};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::actions::Backends;
use crate::config::Config;
use crate::error::PushError;
use crate::metrics::Metrics;
use crate::pusher::RoomPusher;

/// How often a cached room's metadata and member count are re-read. They pick
/// the reply cap and the refresh pace, and end the room for pollers; a second
/// of lag on those is harmless.
const META_REFRESH: Duration = Duration::from_secs(1);
/// Pulls one refresh makes at most to catch up with the head; a room that
/// outruns this is caught up over the next refreshes. A pull is a page of at
/// most a window of messages and the push node's byte budget (1 MiB by
/// default), so this matters after a push-layer outage or with large messages.
const CATCH_UP_PAGES: usize = 4;
/// Pulls the first read of a room makes at most: enough to read a window of
/// large messages page after page (the window keeps only the newest
/// [`WINDOW_BYTES`] of them); a room larger still is caught up by refreshes.
const LOAD_PAGES: usize = 64;
/// Encoded message bytes a cached window keeps at most (besides
/// `poll_cache_window` messages): rooms of large messages cost bounded memory;
/// positions older than the window are read from the push layer directly.
const WINDOW_BYTES: usize = 4 * proto::paging::PAGE_BYTES;
/// Member joins or leaves of pollers one refresh writes at most: a flash crowd
/// is counted over a few refreshes instead of stalling one.
const MEMBER_WRITES_PER_TICK: usize = 1024;
/// Member writes in flight at once.
const MEMBER_WRITE_CONCURRENCY: usize = 16;

/// Pacing and bounds of the cache, from [`Config`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Messages kept per room.
    pub(crate) window: usize,
    /// Rooms kept at most.
    pub(crate) rooms_max: usize,
    /// A room nobody polled for this long is dropped.
    pub(crate) idle: Duration,
    /// Refresh period of small rooms.
    pub(crate) refresh: Duration,
    /// Refresh period of large rooms.
    pub(crate) large_refresh: Duration,
    /// Members from which a room is large.
    pub(crate) large_members: u32,
    /// How long a poll waits for a newly cached room to load.
    pub(crate) load_timeout: Duration,
    /// This node: pollers' member sessions are held by it.
    node_id: String,
    /// The session id of pollers' memberships on this node.
    session_id: String,
}

impl Settings {
    fn new(cfg: &Config) -> Self {
        Self {
            window: cfg.poll_cache_window,
            rooms_max: cfg.poll_cache_rooms_max,
            idle: Duration::from_millis(cfg.poll_cache_idle_ms),
            refresh: Duration::from_millis(cfg.poll_refresh_ms),
            large_refresh: Duration::from_millis(cfg.poll_large_refresh_ms),
            large_members: cfg.poll_large_room_members,
            // Loading is a store read and two pulls, each bounded by the push timeout.
            load_timeout: Duration::from_millis(cfg.push_timeout_ms.saturating_mul(3)),
            node_id: cfg.node_id.clone(),
            session_id: format!("http@{}", cfg.node_id),
        }
    }

    /// Whether a room of `members` is large.
    pub(crate) fn is_large(&self, members: u32) -> bool {
        members >= self.large_members
    }

    /// How often a room of `members` is refreshed: news older than this is
    /// in the cache.
    pub(crate) fn period(&self, members: u32) -> Duration {
        if self.is_large(members) {
            self.large_refresh
        } else {
            self.refresh
        }
    }

    fn limit(&self) -> u32 {
        u32::try_from(self.window).unwrap_or(u32::MAX)
    }
}

/// Whether a cached room can serve polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// The first read has not finished.
    Loading,
    /// Serving.
    Ready,
    /// The first read failed; the room leaves the cache and the next poll retries.
    Failed(String),
}

/// One room as the cache holds it.
#[derive(Debug)]
pub(crate) struct Window {
    /// Whether the rest can be used.
    pub(crate) status: Status,
    /// The room, re-read every second.
    pub(crate) room: Room,
    /// Its member count, re-read every second.
    pub(crate) members: u32,
    /// The stream's epoch.
    pub(crate) epoch: u64,
    /// The last seq the cache has read (the stream's head as of the last refresh).
    pub(crate) head: u64,
    /// The newest messages, contiguous, the last one being `head`.
    messages: VecDeque<RoomMessage>,
    /// Encoded bytes of `messages`.
    bytes: usize,
}

impl Window {
    fn loading(room: Room) -> Self {
        Self {
            status: Status::Loading,
            room,
            members: 0,
            epoch: 0,
            head: 0,
            messages: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The oldest seq held (`head + 1` when none is).
    pub(crate) fn first(&self) -> u64 {
        self.messages
            .front()
            .map_or(self.head.saturating_add(1), |m| m.seq)
    }

    /// The messages after `after`, or `None` if `after` is past the head or
    /// older than the window.
    pub(crate) fn after(&self, after: u64) -> Option<Vec<&RoomMessage>> {
        if after > self.head || after.saturating_add(1) < self.first() {
            return None;
        }
        let skip = usize::try_from(after.saturating_add(1) - self.first()).ok()?;
        Some(self.messages.iter().skip(skip).collect())
    }
}

/// A poll's hold on a cached room.
pub(crate) struct Cached {
    /// Changes when the room's head moves.
    pub(crate) rx: watch::Receiver<Window>,
    entry: Arc<Entry>,
}

impl Cached {
    /// Note that `uid` polls the room: it becomes (or stays) a member.
    pub(crate) fn attend(&self, uid: &str) {
        let mut pollers = self.entry.pollers();
        let now = Instant::now();
        match pollers.seen.get_mut(uid) {
            Some(last) => *last = now,
            None => {
                pollers.seen.insert(uid.to_owned(), now);
            }
        }
    }
}

/// Where a poll reads a room from.
pub(crate) enum Source {
    /// The cache.
    Cached(Cached),
    /// The push layer, directly (the cache is full or shutting down).
    Direct {
        /// The room, read from the store for this poll.
        room: Room,
        /// Its member count.
        members: u32,
    },
}

/// Why a poll cannot read the room.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The room does not exist.
    #[error("room {0} not found")]
    NotFound(String),
    /// The room has ended.
    #[error("room {0} has ended")]
    Ended(String),
    /// The store or the push layer failed.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for OpenError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::RoomNotFound(room) => Self::NotFound(room),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Cheap handle to the cache (one per biz node, in [`crate::shared::Shared`]).
pub(crate) struct LongPollCache {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    store: Arc<dyn RoomStore>,
    pusher: Arc<dyn RoomPusher>,
    // Lookups and inserts are short and never await, so a std mutex fits; the
    // refresh tasks never hold it while reading the push layer.
    rooms: Mutex<HashMap<String, Slot>>,
    gauge: IntGauge,
    stop: CancellationToken,
    tasks: TaskTracker,
}

struct Slot {
    entry: Arc<Entry>,
    /// Updated by every poll under the map lock, so the idle check (also under
    /// the lock) cannot drop a room a poll just found.
    last_poll: Instant,
}

impl Slot {
    fn hold(&self) -> Cached {
        Cached {
            rx: self.entry.tx.subscribe(),
            entry: self.entry.clone(),
        }
    }
}

struct Entry {
    tx: watch::Sender<Window>,
    pollers: Mutex<Pollers>,
}

impl Entry {
    fn pollers(&self) -> std::sync::MutexGuard<'_, Pollers> {
        // Each update is one insert or remove, so a poisoned set is consistent.
        self.pollers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Who polls a cached room from this node.
#[derive(Default)]
struct Pollers {
    /// uid → its last poll.
    seen: HashMap<String, Instant>,
    /// uids recorded as members in the store.
    joined: HashSet<String>,
}

impl LongPollCache {
    /// An empty cache reading through `backends`.
    pub(crate) fn new(cfg: &Config, backends: &Backends, metrics: &Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: Settings::new(cfg),
                store: backends.store.clone(),
                pusher: backends.pusher.clone(),
                rooms: Mutex::default(),
                gauge: metrics.longpoll_cache_rooms.clone(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// The cache's pacing and bounds.
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Cancelled by [`Self::close`]: long-polls stop waiting.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// Stop every refresh task and end waiting polls (node shutdown).
    pub(crate) fn close(&self) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
    }

    /// Resolves once every refresh task has ended after [`Self::close`].
    pub(crate) async fn closed(&self) {
        self.inner.tasks.wait().await;
    }

    /// Rooms held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Where a poll of `room` reads from: the cache (loading the room if it is
    /// new and there is space), else directly. Refuses unknown and ended rooms.
    pub(crate) async fn open(&self, room: &str) -> Result<Source, OpenError> {
        if let Some(cached) = self.inner.lookup(room) {
            return ready(cached, self.inner.settings.load_timeout).await;
        }
        // A miss reads the store first, so unknown room ids never take a slot.
        let found = self
            .inner
            .store
            .get_room(room)
            .await?
            .ok_or_else(|| OpenError::NotFound(room.to_owned()))?;
        if found.state == RoomState::Ended {
            return Err(OpenError::Ended(room.to_owned()));
        }
        match Inner::insert(&self.inner, room, found.clone()) {
            Some(cached) => ready(cached, self.inner.settings.load_timeout).await,
            None => {
                let members = self.inner.store.member_count(room).await?;
                Ok(Source::Direct {
                    room: found,
                    members,
                })
            }
        }
    }
}

/// Wait until a cached room has loaded.
async fn ready(mut cached: Cached, patience: Duration) -> Result<Source, OpenError> {
    let loaded = cached.rx.wait_for(|w| w.status != Status::Loading);
    let outcome = match tokio::time::timeout(patience, loaded).await {
        Err(_) => Err(OpenError::Unavailable(
            "the push layer did not answer in time".into(),
        )),
        // Dropped while loading: shutdown.
        Ok(Err(_)) => Err(OpenError::Unavailable("the node is shutting down".into())),
        Ok(Ok(window)) => match &window.status {
            Status::Failed(why) => Err(OpenError::Unavailable(why.clone())),
            _ if window.room.state == RoomState::Ended => {
                Err(OpenError::Ended(window.room.id.clone()))
            }
            _ => Ok(()),
        },
    };
    outcome.map(|()| Source::Cached(cached))
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // Every update is one insert or remove, so a poisoned map is consistent.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached room, marking it polled.
    fn lookup(&self, room: &str) -> Option<Cached> {
        let mut rooms = self.lock();
        let slot = rooms.get_mut(room)?;
        slot.last_poll = Instant::now();
        Some(slot.hold())
    }

    /// Cache `room` (already found live) and start its refresh task; `None`
    /// when the cache is full or closing.
    fn insert(this: &Arc<Self>, room: &str, found: Room) -> Option<Cached> {
        let mut rooms = this.lock();
        if let Some(slot) = rooms.get_mut(room) {
            // Another poll inserted it meanwhile.
            slot.last_poll = Instant::now();
            return Some(slot.hold());
        }
        if this.stop.is_cancelled() || rooms.len() >= this.settings.rooms_max {
            return None;
        }
        let (tx, rx) = watch::channel(Window::loading(found));
        let entry = Arc::new(Entry {
            tx,
            pollers: Mutex::default(),
        });
        let slot = Slot {
            entry: entry.clone(),
            last_poll: Instant::now(),
        };
        rooms.insert(room.to_owned(), slot);
        let cached = Cached {
            rx,
            entry: entry.clone(),
        };
        this.gauge
            .set(i64::try_from(rooms.len()).unwrap_or(i64::MAX));
        drop(rooms);
        let span = tracing::debug_span!("poll_cache", room);
        this.tasks
            .spawn(keep_fresh(this.clone(), room.to_owned(), entry).instrument(span));
        Some(cached)
    }

    /// Drop `room` if it still holds `entry`.
    fn forget(&self, room: &str, entry: &Arc<Entry>) {
        let mut rooms = self.lock();
        if rooms
            .get(room)
            .is_some_and(|slot| Arc::ptr_eq(&slot.entry, entry))
        {
            rooms.remove(room);
        }
        self.gauge
            .set(i64::try_from(rooms.len()).unwrap_or(i64::MAX));
    }

    /// Drop `room` if nobody polled it for `idle`; true if this task should end.
    fn forget_if_idle(&self, room: &str, entry: &Arc<Entry>) -> bool {
        let mut rooms = self.lock();
        match rooms.get(room) {
            Some(slot) if Arc::ptr_eq(&slot.entry, entry) => {
                if slot.last_poll.elapsed() < self.settings.idle {
                    return false;
                }
                rooms.remove(room);
                self.gauge
                    .set(i64::try_from(rooms.len()).unwrap_or(i64::MAX));
                true
            }
            // Already dropped or replaced: nobody reads what this task refreshes.
            _ => true,
        }
    }

    async fn pull(&self, room: &str, after_seq: u64, limit: u32) -> Result<PullReply, PushError> {
        let request = PullRequest {
            room: room.to_owned(),
            after_seq,
            limit,
        };
        self.pusher.pull(request).await
    }
}

/// The refresh task of one cached room: load, then refresh until the room is
/// idle, ends, or the node shuts down.
async fn keep_fresh(inner: Arc<Inner>, room: String, entry: Arc<Entry>) {
    if let Err(why) = load(&inner, &room, &entry).await {
        // Debug: every poll of the room retries (and answers 503) while this lasts.
        tracing::debug!(room, error = %why, "Cannot load a polled room.");
        entry.tx.send_modify(|w| w.status = Status::Failed(why));
        inner.forget(&room, &entry);
        return;
    }
    let mut meta_due = Instant::now() + META_REFRESH;
    loop {
        let period = inner.settings.period(entry.tx.borrow().members);
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = inner.stop.cancelled() => break,
        }
        if inner.forget_if_idle(&room, &entry) {
            tracing::debug!(
                room,
                "Nobody polls this room any more; it leaves the cache."
            );
            break;
        }
        sync_members(&inner, &room, &entry, false).await;
        if Instant::now() >= meta_due {
            meta_due = Instant::now() + META_REFRESH;
            if !refresh_meta(&inner, &room, &entry).await {
                break;
            }
        }
        if let Err(error) = refresh_stream(&inner, &room, &entry).await {
            // Polls keep the last window meanwhile; the next refresh retries.
            tracing::debug!(room, %error, "Cannot refresh a polled room.");
        }
    }
    inner.forget(&room, &entry);
    // Nobody here serves these pollers any more: they are no longer members
    // through this node (their next poll, wherever it lands, joins again).
    sync_members(&inner, &room, &entry, true).await;
}

/// Record new pollers as members and remove those that stopped polling (all
/// of them with `everyone_leaves`).
async fn sync_members(inner: &Inner, room: &str, entry: &Entry, everyone_leaves: bool) {
    let idle = inner.settings.idle;
    let (joins, leaves) = {
        let mut pollers = entry.pollers();
        let Pollers { seen, joined } = &mut *pollers;
        let leaves: Vec<String> = if everyone_leaves {
            seen.clear();
            joined.drain().collect()
        } else {
            let gone: Vec<String> = joined
                .iter()
                .filter(|uid| seen.get(*uid).is_none_or(|at| at.elapsed() >= idle))
                .take(MEMBER_WRITES_PER_TICK)
                .cloned()
                .collect();
            for uid in &gone {
                joined.remove(uid);
                seen.remove(uid);
            }
            gone
        };
        // Idle uids that were never recorded are simply forgotten.
        seen.retain(|uid, at| joined.contains(uid) || at.elapsed() < idle);
        let joins: Vec<String> = seen
            .keys()
            .filter(|uid| !joined.contains(*uid))
            .take(MEMBER_WRITES_PER_TICK)
            .cloned()
            .collect();
        joined.extend(joins.iter().cloned());
        (joins, leaves)
    };
    if joins.is_empty() && leaves.is_empty() {
        return;
    }
    let store = &*inner.store;
    let session = inner.settings.session_id.as_str();
    let node = inner.settings.node_id.as_str();
    // Leaves first: a uid that left and came back is in both lists only across
    // ticks, never within one, so the order per uid is kept.
    let left = futures::stream::iter(leaves)
        .map(|uid| async move {
            let result = store.member_left(room, &uid, session).await;
            (uid, result)
        })
        .buffer_unordered(MEMBER_WRITE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let joined = futures::stream::iter(joins)
        .map(|uid| async move {
            let result = store.member_joined(room, &uid, session, node).await;
            (uid, result)
        })
        .buffer_unordered(MEMBER_WRITE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut members = None;
    for (uid, result) in left {
        match result {
            Ok(count) => members = Some(count),
            // The session stays until presence healing or the room's TTL.
            Err(error) => tracing::warn!(room, uid, %error, "Cannot record that a poller left."),
        }
    }
    for (uid, result) in joined {
        match result {
            Ok(count) => members = Some(count),
            Err(error) => {
                tracing::warn!(room, uid, %error, "Cannot record a poller as a member; retrying.");
                entry.pollers().joined.remove(&uid);
            }
        }
    }
    if let Some(members) = members {
        // The count picks the cap and pace; waiting polls need not wake for it.
        entry.tx.send_if_modified(|w| {
            w.members = members;
            false
        });
    }
}

/// First read of a cached room: member count and the newest window of messages.
async fn load(inner: &Inner, room: &str, entry: &Entry) -> Result<(), String> {
    let members = inner
        .store
        .member_count(room)
        .await
        .map_err(|e| e.to_string())?;
    let fresh = read_fresh(inner, room)
        .await
        .map_err(|e| format!("cannot read the room's messages: {e}"))?;
    entry.tx.send_modify(|w| {
        w.members = members;
        w.epoch = fresh.epoch;
        w.head = fresh.head;
        w.messages = fresh.messages;
        w.bytes = fresh.bytes;
        w.status = Status::Ready;
    });
    Ok(())
}

/// Re-read the room and its member count; false when it ended or is gone (the
/// room then leaves the cache and later polls are refused from the store).
async fn refresh_meta(inner: &Inner, room: &str, entry: &Entry) -> bool {
    let found = match inner.store.get_room(room).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(room, %error, "Cannot re-read a polled room; keeping the last copy.");
            return true;
        }
    };
    let Some(found) = found.filter(|r| r.state != RoomState::Ended) else {
        // Wake waiting polls so they see the room ended.
        entry.tx.send_modify(|w| w.room.state = RoomState::Ended);
        return false;
    };
    let members = inner.store.member_count(room).await;
    entry.tx.send_if_modified(|w| {
        w.room = found;
        if let Ok(members) = members {
            w.members = members;
        }
        // Waiting polls care about the head only.
        false
    });
    true
}

/// A stream read: the newest contiguous messages up to `head`.
struct Fresh {
    epoch: u64,
    head: u64,
    messages: VecDeque<RoomMessage>,
    bytes: usize,
}

/// Read the newest window of the stream from scratch.
async fn read_fresh(inner: &Inner, room: &str) -> Result<Fresh, PushError> {
    let window = inner.settings.window;
    let top = inner.pull(room, 0, 0).await?;
    let mut fresh = Fresh {
        epoch: top.epoch,
        head: top.head_seq.saturating_sub(window as u64),
        messages: VecDeque::new(),
        bytes: 0,
    };
    // Page after page: a window of large messages is many pulls.
    for _ in 0..LOAD_PAGES {
        let reply = inner.pull(room, fresh.head, inner.settings.limit()).await?;
        if reply.epoch != fresh.epoch {
            // The stream restarted between the two reads: start at its new head.
            fresh.epoch = reply.epoch;
            fresh.head = reply.head_seq.saturating_sub(window as u64);
            fresh.messages.clear();
            fresh.bytes = 0;
            continue;
        }
        let target = reply.head_seq;
        let mut held = Held {
            messages: &mut fresh.messages,
            bytes: &mut fresh.bytes,
            head: &mut fresh.head,
        };
        held.extend(reply, window);
        if fresh.head >= target {
            break;
        }
    }
    Ok(fresh)
}

/// Read what is new after the cached head and publish it.
async fn refresh_stream(inner: &Inner, room: &str, entry: &Entry) -> Result<(), PushError> {
    let window = inner.settings.window;
    let (epoch, mut head) = {
        let w = entry.tx.borrow();
        (w.epoch, w.head)
    };
    for _ in 0..CATCH_UP_PAGES {
        let reply = inner.pull(room, head, inner.settings.limit()).await?;
        if reply.epoch != epoch {
            // The log was lost and the stream restarted: what we hold is of the
            // old epoch. Replace it whole; waiting polls then see the new epoch.
            tracing::info!(
                room,
                old = epoch,
                new = reply.epoch,
                "Polled room's stream restarted."
            );
            let fresh = read_fresh(inner, room).await?;
            entry.tx.send_modify(|w| {
                w.epoch = fresh.epoch;
                w.head = fresh.head;
                w.messages = fresh.messages;
                w.bytes = fresh.bytes;
            });
            return Ok(());
        }
        let target = reply.head_seq;
        let moved = entry.tx.send_if_modified(|w| {
            let before = w.head;
            let mut held = Held {
                messages: &mut w.messages,
                bytes: &mut w.bytes,
                head: &mut w.head,
            };
            held.extend(reply, window);
            head = w.head;
            w.head != before
        });
        if !moved || head >= target {
            break;
        }
    }
    Ok(())
}

/// A window being extended: its messages, their encoded bytes and its head.
struct Held<'a> {
    messages: &'a mut VecDeque<RoomMessage>,
    bytes: &'a mut usize,
    head: &'a mut u64,
}

impl Held<'_> {
    /// Append a pull after the head, keeping the messages contiguous, at most
    /// `window` long and at most [`WINDOW_BYTES`] (the newest message always).
    fn extend(&mut self, reply: PullReply, window: usize) {
        self.extend_within(reply, window, WINDOW_BYTES);
    }

    fn extend_within(&mut self, reply: PullReply, window: usize, max_bytes: usize) {
        if reply.truncated && reply.messages.is_empty() {
            // Nothing after the head is readable any more (history expired).
            self.messages.clear();
            *self.bytes = 0;
            *self.head = (*self.head).max(reply.head_seq);
        }
        for message in reply.messages {
            if message.seq <= *self.head {
                continue;
            }
            if message.seq != *self.head + 1 {
                // History skips ahead (we fell behind more than it holds): what we
                // hold no longer continues into it, so the window restarts here.
                self.messages.clear();
                *self.bytes = 0;
            }
            *self.head = message.seq;
            *self.bytes += message.encoded_len();
            self.messages.push_back(RoomMessage {
                // A decoded body is a slice of the pull reply's receive buffer
                // (8 KiB and up): the window keeps copies, so what it holds is
                // what `bytes` counts, not one buffer per pull.
                body: bytes::Bytes::copy_from_slice(&message.body),
                ..message
            });
        }
        while self.messages.len() > window || (self.messages.len() > 1 && *self.bytes > max_bytes) {
            if let Some(old) = self.messages.pop_front() {
                *self.bytes -= old.encoded_len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(epoch: u64, head_seq: u64, seqs: &[u64], truncated: bool) -> PullReply {
        PullReply {
            epoch,
            head_seq,
            messages: seqs
                .iter()
                .map(|&seq| RoomMessage {
                    seq,
                    ..RoomMessage::default()
                })
                .collect(),
            truncated,
        }
    }

    fn window(messages: VecDeque<RoomMessage>, head: u64) -> Window {
        let room = room_store::NewRoom::titled("t", None).into_room("r1".into(), 0);
        Window {
            status: Status::Ready,
            messages,
            head,
            ..Window::loading(room)
        }
    }

    /// Extend `(messages, head)` as a window does, with a bytes bound.
    fn extend_within(
        messages: &mut VecDeque<RoomMessage>,
        head: &mut u64,
        reply: PullReply,
        window: usize,
        max_bytes: usize,
    ) {
        let mut bytes = messages.iter().map(|m| m.encoded_len()).sum();
        let mut held = Held {
            messages,
            bytes: &mut bytes,
            head,
        };
        held.extend_within(reply, window, max_bytes);
        assert_eq!(
            bytes,
            messages.iter().map(|m| m.encoded_len()).sum::<usize>()
        );
    }

    fn extend(messages: &mut VecDeque<RoomMessage>, head: &mut u64, r: PullReply, window: usize) {
        extend_within(messages, head, r, window, WINDOW_BYTES);
    }

    fn seqs(found: Option<Vec<&RoomMessage>>) -> Option<Vec<u64>> {
        found.map(|ms| ms.iter().map(|m| m.seq).collect())
    }

    #[test]
    fn held_bodies_do_not_hold_the_reply_buffer_they_were_sliced_from() {
        let received = bytes::Bytes::from(vec![7u8; 8192]);
        let mut r = reply(1, 1, &[1], false);
        r.messages[0].body = received.slice(10..60);
        let (mut messages, mut head) = (VecDeque::new(), 0);
        extend(&mut messages, &mut head, r, 3);
        assert_eq!(messages[0].body, received.slice(10..60));
        assert!(
            !received.as_ptr_range().contains(&messages[0].body.as_ptr()),
            "the window's body points into the reply's buffer"
        );
    }

    #[test]
    fn the_window_stays_contiguous_and_bounded() {
        let mut messages = VecDeque::new();
        let mut head = 0;
        extend(
            &mut messages,
            &mut head,
            reply(1, 5, &[1, 2, 3, 4, 5], false),
            3,
        );
        assert_eq!(head, 5);
        let w = window(messages, head);
        assert_eq!(w.first(), 3, "only the newest 3 are kept");
        assert_eq!(seqs(w.after(2)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(w.after(4)), Some(vec![5]));
        assert_eq!(seqs(w.after(5)), Some(vec![]), "nothing new at the head");
        assert_eq!(seqs(w.after(1)), None, "older than the window");
        assert_eq!(seqs(w.after(6)), None, "past the head");

        // A pull that skips ahead restarts the window there.
        let mut messages = w.messages;
        let mut head = w.head;
        extend(&mut messages, &mut head, reply(1, 9, &[8, 9], true), 3);
        let w = window(messages, head);
        assert_eq!((w.first(), w.head), (8, 9));
        assert_eq!(seqs(w.after(7)), Some(vec![8, 9]));
        assert_eq!(seqs(w.after(6)), None);
    }

    #[test]
    fn an_empty_window_covers_nothing_before_its_head() {
        let mut messages = VecDeque::new();
        let mut head = 4;
        extend(&mut messages, &mut head, reply(1, 12, &[], true), 3);
        let w = window(messages, head);
        assert_eq!((w.first(), w.head), (13, 12));
        assert_eq!(seqs(w.after(12)), Some(vec![]));
        assert_eq!(seqs(w.after(11)), None);
    }

    #[test]
    fn the_window_keeps_the_newest_messages_within_its_bytes() {
        let mut r = reply(1, 6, &[1, 2, 3, 4, 5, 6], false);
        for m in &mut r.messages {
            m.body = vec![0; 100].into();
        }
        let size = r.messages[0].encoded_len();
        let mut messages = VecDeque::new();
        let mut head = 0;
        extend_within(&mut messages, &mut head, r, 100, size * 5 / 2);
        let w = window(messages, head);
        assert_eq!((w.first(), w.head), (5, 6), "two fit in two and a half");
        // The newest message stays even if it alone is over the bound.
        let mut messages = VecDeque::new();
        let mut head = 0;
        let mut r = reply(1, 1, &[1], false);
        r.messages[0].body = vec![0; 100].into();
        extend_within(&mut messages, &mut head, r, 100, 10);
        assert_eq!(messages.len(), 1);
    }
}
