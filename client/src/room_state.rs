//! The room-state model: a snapshot plus every event after it, as a value UI code
//! subscribes to (docs/room-api.md, "Reconstructing the room"; the same model as the
//! TypeScript SDK's store).
//!
//! - [`RoomStore`] is the pure model (no I/O, time passed in): `reset` to a snapshot,
//!   `apply` events in order. State events carry absolute values and the room's version
//!   `v`; one already applied (or already in the snapshot) is skipped, and an event older
//!   than the last one applied to the same subject never rolls it back (events from two
//!   biz nodes may arrive out of `v` order). A `v` more than one above the last applied
//!   that stays missing for the gap timeout (1 s) means something was lost: refetch.
//! - [`RoomWatcher`] drives a store from a client's [`Event`]s, refetches
//!   `GET /v1/rooms/{id}/state` ([`Client::read_state`]) on a gap, and publishes every
//!   change on a `watch` channel.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use crate::Client;
use crate::error::Error;
use crate::event::Event;
use crate::room_event::{RoomEvent, RoomUpdate, TypedEvent};
use crate::room_types::{Hand, Invite, Lifecycle, Poll, RoomStateJson, Snapshot, UserState};

/// How long a gap in `v` may stay open before the state is refetched.
pub const DEFAULT_GAP_TIMEOUT: Duration = Duration::from_secs(1);

/// The pure room-state model of one room.
#[derive(Debug, Clone)]
pub struct RoomStore {
    view: Snapshot,
    /// Every state change up to this `v` has been applied.
    applied_v: u64,
    /// `v`s applied above `applied_v` (arrived early).
    ahead: BTreeSet<u64>,
    /// When the current gap opened.
    gap_since: Option<Instant>,
    /// The last `v` applied per subject (`user:<uid>`, `poll:<id>`, `slow_mode`, ...).
    latest: HashMap<String, u64>,
    /// The highest `v` seen in any event; a snapshot older than it is stale.
    max_seen_v: u64,
}

impl RoomStore {
    /// An empty store for `room` (not [`ready`](Self::ready) until a snapshot).
    pub fn new(room: impl Into<String>) -> Self {
        Self {
            view: Snapshot {
                room: room.into(),
                ..Snapshot::default()
            },
            applied_v: 0,
            ahead: BTreeSet::new(),
            gap_since: None,
            latest: HashMap::new(),
            max_seen_v: 0,
        }
    }

    /// The current view.
    pub fn view(&self) -> &Snapshot {
        &self.view
    }

    /// Whether a snapshot with state was taken.
    pub fn ready(&self) -> bool {
        self.view.state.is_some()
    }

    /// The highest `v` up to which every change has been applied.
    pub fn applied_v(&self) -> u64 {
        self.applied_v
    }

    /// Take a snapshot as the truth.
    pub fn reset(&mut self, snapshot: Snapshot, now: Instant) {
        let room = if snapshot.room.is_empty() {
            std::mem::take(&mut self.view.room)
        } else {
            snapshot.room.clone()
        };
        let v = snapshot.state.as_ref().map_or(0, |s| s.v);
        self.view = Snapshot { room, ..snapshot };
        self.applied_v = v;
        self.ahead.clear();
        self.latest.clear();
        // A snapshot older than an event already seen lacks that event's effect (it was
        // applied to the state just replaced): keep the gap open so a newer read follows.
        self.gap_since = (v < self.max_seen_v).then_some(now);
    }

    /// When the open gap, if any, calls for a refetch.
    pub fn refetch_at(&self, gap_timeout: Duration) -> Option<Instant> {
        self.gap_since.map(|since| since + gap_timeout)
    }

    /// Whether a gap has stayed open for `gap_timeout` at `now`.
    pub fn needs_refetch(&self, now: Instant, gap_timeout: Duration) -> bool {
        self.refetch_at(gap_timeout).is_some_and(|at| now >= at)
    }

    /// Apply one event; returns whether the view changed. Events before the first
    /// snapshot are dropped (the snapshot will contain them).
    pub fn apply(&mut self, update: &RoomUpdate, now: Instant) -> bool {
        let Some(state) = self.view.state.as_mut() else {
            return false;
        };
        let event = &update.event;
        if let Some(v) = event.version() {
            if v <= self.applied_v || self.ahead.contains(&v) {
                return false; // in the snapshot, or applied already
            }
            self.max_seen_v = self.max_seen_v.max(v);
            self.ahead.insert(v);
            while self.ahead.remove(&(self.applied_v + 1)) {
                self.applied_v += 1;
            }
            if self.ahead.is_empty() {
                if self.applied_v >= self.max_seen_v {
                    self.gap_since = None;
                }
            } else if self.gap_since.is_none() {
                self.gap_since = Some(now);
            }
            if let Some(key) = subject_key(event) {
                let latest = self.latest.entry(key).or_default();
                if v < *latest {
                    // Older than what this subject already shows: keep the newer state.
                    state.v = state.v.max(self.applied_v);
                    return true;
                }
                *latest = v;
            }
        }
        let changed = apply_to(state, &mut self.view.role, &mut self.view.members, event);
        if let Some(state) = self.view.state.as_mut() {
            state.v = state.v.max(self.applied_v);
        }
        changed || event.version().is_some()
    }

    /// Record the caller's own vote (the reply to `vote`).
    pub fn voted(&mut self, poll_id: &str, option: u32) {
        if let Some(you) = self.view.state.as_mut().and_then(|s| s.you.as_mut()) {
            you.votes.insert(poll_id.to_owned(), option);
        }
    }
}

/// What an event's `v` orders: later events of the same subject supersede earlier ones.
fn subject_key(event: &RoomEvent) -> Option<String> {
    if let Some(user) = event.user() {
        return Some(format!("user:{}", user.uid));
    }
    match event {
        RoomEvent::PollOpened(e) => Some(format!("poll:{}", e.poll.poll_id)),
        RoomEvent::PollClosed(e) => Some(format!("poll:{}", e.poll.poll_id)),
        RoomEvent::SlowMode(_) => Some("slow_mode".into()),
        RoomEvent::RoomStarted(_) | RoomEvent::RoomEnded(_) => Some("lifecycle".into()),
        _ => None,
    }
}

/// Apply `event` to `state`; false when nothing changed.
fn apply_to(
    state: &mut RoomStateJson,
    role: &mut crate::room_types::Role,
    members: &mut u64,
    event: &RoomEvent,
) -> bool {
    match event {
        RoomEvent::RoomStarted(e) => {
            if state.state != Lifecycle::Ended {
                state.state = Lifecycle::Live;
                state.started_at_ms = Some(e.started_at_ms);
            }
        }
        RoomEvent::RoomEnded(e) => {
            state.state = Lifecycle::Ended;
            state.ended_at_ms = Some(e.ended_at_ms);
        }
        RoomEvent::SlowMode(e) => state.slow_mode_secs = e.seconds,
        RoomEvent::Gift(e) => {
            state.gifts = state.gifts.saturating_add(e.count);
            state.gift_value = state.gift_value.saturating_add(e.total_value);
        }
        RoomEvent::PollOpened(e) => put_poll(state, &e.poll),
        RoomEvent::PollClosed(e) => put_poll(state, &e.poll),
        RoomEvent::Comment(_) => state.comments = state.comments.saturating_add(1),
        RoomEvent::Totals(e) => {
            state.likes = e.likes;
            state.reactions = e.reactions.clone();
        }
        RoomEvent::PollTally(e) => {
            let Some(poll) = state.polls.iter_mut().find(|p| p.poll_id == e.poll_id) else {
                return false;
            };
            // A late tally never reopens a closed poll or lowers its counts.
            if poll.votes > e.votes || poll.state == crate::room_types::PollState::Closed {
                return false;
            }
            poll.tallies = e.tallies.clone();
            poll.votes = e.votes;
            poll.state = e.state;
        }
        RoomEvent::MemberJoined(e) => set_members(state, members, e.members),
        RoomEvent::MemberLeft(e) => set_members(state, members, e.members),
        RoomEvent::Presence(e) => set_members(state, members, e.members),
        other => match other.user() {
            Some(user) => apply_user(state, role, user),
            // `comment_removed` changes nothing in the state (the UI hides the comment);
            // unknown kinds are the app's.
            None => return false,
        },
    }
    true
}

fn set_members(state: &mut RoomStateJson, members: &mut u64, now: u64) {
    state.members = now;
    *members = now;
    let stage = (state.speakers.len() + state.moderators.len()) as u64;
    state.listeners = now.saturating_sub(stage);
}

fn apply_user(state: &mut RoomStateJson, role: &mut crate::room_types::Role, user: &UserState) {
    use crate::room_types::Role;
    let uid = &user.uid;
    state.moderators.retain(|u| u != uid);
    state.speakers.retain(|u| u != uid);
    match user.role {
        Role::Moderator => {
            state.moderators.push(uid.clone());
            state.moderators.sort();
        }
        Role::Speaker => {
            state.speakers.push(uid.clone());
            state.speakers.sort();
        }
        _ => {}
    }

    let had_hand = state.hands.iter().any(|h| &h.uid == uid);
    state.hands.retain(|h| &h.uid != uid);
    if let Some(at_ms) = user.hand_raised_at_ms {
        state.hands.push(Hand {
            uid: uid.clone(),
            at_ms,
        });
        state
            .hands
            .sort_by(|a, b| (a.at_ms, &a.uid).cmp(&(b.at_ms, &b.uid)));
    }
    let has_hand = user.hand_raised_at_ms.is_some();
    state.hands_count =
        (state.hands_count + u64::from(has_hand)).saturating_sub(u64::from(had_hand));

    state.invites.retain(|i| &i.uid != uid);
    if let Some(by) = &user.invited_by {
        state.invites.push(Invite {
            uid: uid.clone(),
            by: by.clone(),
        });
    }

    state.muted.remove(uid);
    if let Some(mute) = user.muted {
        state.muted.insert(uid.clone(), mute);
    }

    if let Some(you) = state.you.as_mut().filter(|you| &you.uid == uid) {
        you.role = user.role;
        you.hand_raised_at_ms = user.hand_raised_at_ms;
        you.invited_by = user.invited_by.clone();
        you.muted = user.muted;
        *role = user.role;
    }
}

fn put_poll(state: &mut RoomStateJson, poll: &Poll) {
    match state.polls.iter_mut().find(|p| p.poll_id == poll.poll_id) {
        Some(existing) => *existing = poll.clone(),
        None => state.polls.push(poll.clone()),
    }
}

/// Drives a [`RoomStore`] for one room from a client's events, refetches the state on a
/// gap, and publishes the view on a `watch` channel.
///
/// ```no_run
/// # async fn demo(client: roomcast_client::Client, mut events: roomcast_client::Events)
/// # -> Result<(), roomcast_client::Error> {
/// use roomcast_client::RoomWatcher;
///
/// let mut watcher = RoomWatcher::new(&client, "r1");
/// let mut view = watcher.subscribe(); // hand this to the UI
/// client.join("r1").await?;
/// loop {
///     tokio::select! {
///         event = events.next() => match event {
///             Some(event) => watcher.handle(&event).await,
///             None => break,
///         },
///         () = watcher.gap_timer() => watcher.resync().await?,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RoomWatcher {
    client: Client,
    store: RoomStore,
    tx: watch::Sender<Snapshot>,
    gap_timeout: Duration,
}

impl RoomWatcher {
    /// Watch `room` through `client` (join it separately, before or after).
    pub fn new(client: &Client, room: impl Into<String>) -> Self {
        let store = RoomStore::new(room);
        let (tx, _) = watch::channel(store.view().clone());
        Self {
            client: client.clone(),
            store,
            tx,
            gap_timeout: DEFAULT_GAP_TIMEOUT,
        }
    }

    /// Change how long a gap in `v` may stay open before a refetch (default 1 s).
    pub fn gap_timeout(mut self, timeout: Duration) -> Self {
        self.gap_timeout = timeout;
        self
    }

    /// The room id.
    pub fn room(&self) -> &str {
        &self.store.view().room
    }

    /// A receiver of the view: the current one now, then every change.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }

    /// The model.
    pub fn store(&self) -> &RoomStore {
        &self.store
    }

    /// Feed one client event. Events of other rooms and connection events are ignored; a
    /// join's snapshot resets the model (a resumed join keeps it: the missed events
    /// follow). An event of a known kind with an unreadable body is logged and skipped
    /// (a `v` it carried shows up as a gap, which refetches).
    pub async fn handle(&mut self, event: &Event) {
        let now = Instant::now();
        match event {
            Event::Joined(joined) if joined.room == self.room() => {
                let snapshot = joined.snapshot.as_ref().map(Snapshot::from_proto);
                match snapshot {
                    Some(Ok(snapshot)) if !joined.recovered || !self.store.ready() => {
                        self.store.reset(snapshot, now);
                        self.publish();
                    }
                    Some(Err(error)) => {
                        warn!(room = self.room(), %error, "Unreadable join snapshot; reading the state.");
                        self.refetch_logged().await;
                    }
                    // Resumed without a snapshot and nothing to resume from: read it.
                    None if !self.store.ready() => self.refetch_logged().await,
                    _ => {}
                }
            }
            Event::Message { room, .. } | Event::Ephemeral { room, .. } if room == self.room() => {
                match TypedEvent::from_event(event) {
                    Some(Ok(TypedEvent::Room(update))) if self.store.apply(&update, now) => {
                        self.publish();
                    }
                    Some(Err(error)) => warn!(room = self.room(), %error, "Skipped a room event."),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Completes when an open gap calls for a refetch; never while there is none. Owns
    /// nothing, so it fits in a `select!` beside [`handle`](Self::handle).
    pub fn gap_timer(&self) -> impl Future<Output = ()> + Send + 'static {
        let at = self.store.refetch_at(self.gap_timeout);
        async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }

    /// Read `GET /v1/rooms/{id}/state` and take it as the truth.
    pub async fn resync(&mut self) -> Result<(), Error> {
        let snapshot = self.client.read_state(self.room().to_owned()).await?;
        self.store.reset(snapshot, Instant::now());
        self.publish();
        Ok(())
    }

    /// Record the caller's own vote (call with the poll id and option after a successful
    /// [`Room::vote`](crate::Room::vote)): the server's `you.votes` is not pushed.
    pub fn voted(&mut self, poll_id: &str, option: u32) {
        self.store.voted(poll_id, option);
        self.publish();
    }

    async fn refetch_logged(&mut self) {
        if let Err(error) = self.resync().await {
            warn!(room = self.room(), %error, "Room state read failed.");
        }
    }

    fn publish(&self) {
        self.tx.send_replace(self.store.view().clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room_types::{Mute, PollState, Role};
    use bytes::Bytes;
    use serde_json::{Value, json};

    fn snapshot(v: u64) -> Snapshot {
        let state: RoomStateJson = serde_json::from_value(json!({
            "v": v, "title": "T", "state": "live", "members": 3, "listeners": 3,
            "you": {"uid": "carol", "role": "listener", "member": true}
        }))
        .expect("state");
        Snapshot {
            room: "r1".into(),
            title: "T".into(),
            role: Role::Listener,
            members: 3,
            state: Some(state),
        }
    }

    fn update(kind: &str, body: Value, seq: Option<u64>) -> RoomUpdate {
        RoomUpdate {
            room: "r1".into(),
            seq,
            sender: String::new(),
            ts_ms: 0,
            event: RoomEvent::parse(kind, &Bytes::from(body.to_string())).expect("event"),
        }
    }

    fn user(
        uid: &str,
        role: &str,
        hand: Option<u64>,
        invited: Option<&str>,
        muted: Value,
    ) -> Value {
        json!({"uid": uid, "role": role, "hand_raised_at_ms": hand, "invited_by": invited, "muted": muted})
    }

    fn hand_raised(uid: &str, v: u64, at: u64) -> RoomUpdate {
        update(
            "hand_raised",
            json!({"uid": uid, "by": uid, "v": v, "at_ms": at, "user": user(uid, "listener", Some(at), None, Value::Null)}),
            Some(v),
        )
    }

    fn state(store: &RoomStore) -> &RoomStateJson {
        store.view().state.as_ref().expect("state")
    }

    #[test]
    fn events_apply_in_order_and_a_full_stage_story_is_rebuilt() {
        let now = Instant::now();
        let mut store = RoomStore::new("r1");
        assert!(
            !store.apply(&hand_raised("carol", 11, 5), now),
            "nothing before a snapshot"
        );
        store.reset(snapshot(10), now);
        assert!(store.apply(&hand_raised("carol", 11, 5), now));
        assert_eq!(
            state(&store).hands,
            [Hand {
                uid: "carol".into(),
                at_ms: 5
            }]
        );
        assert_eq!(state(&store).hands_count, 1);
        assert_eq!(
            state(&store).you.as_ref().map(|y| y.hand_raised_at_ms),
            Some(Some(5))
        );
        store.apply(
            &update(
                "speaker_invited",
                json!({"uid": "carol", "by": "host", "v": 12, "user": user("carol", "listener", Some(5), Some("host"), Value::Null)}),
                Some(2),
            ),
            now,
        );
        assert_eq!(
            state(&store).invites,
            [Invite {
                uid: "carol".into(),
                by: "host".into()
            }]
        );
        store.apply(
            &update(
                "role_changed",
                json!({"uid": "carol", "by": "carol", "v": 13, "role": "speaker", "previous": "listener",
                       "reason": "accepted_invite", "user": user("carol", "speaker", None, None, json!("self"))}),
                Some(3),
            ),
            now,
        );
        let s = state(&store);
        assert_eq!(s.speakers, ["carol"]);
        assert!(s.hands.is_empty() && s.invites.is_empty());
        assert_eq!(s.hands_count, 0);
        assert_eq!(s.muted.get("carol"), Some(&Mute::SelfMuted));
        assert_eq!(
            store.view().role,
            Role::Speaker,
            "the caller's role follows"
        );
        store.apply(
            &update(
                "mute_changed",
                json!({"uid": "carol", "by": "host", "v": 14, "muted": "moderator", "user": user("carol", "speaker", None, None, json!("moderator"))}),
                Some(4),
            ),
            now,
        );
        assert_eq!(state(&store).muted.get("carol"), Some(&Mute::Moderator));
        store.apply(
            &update(
                "role_changed",
                json!({"uid": "carol", "by": "host", "v": 15, "role": "moderator", "previous": "speaker",
                       "reason": "promoted", "user": user("carol", "moderator", None, None, json!("moderator"))}),
                Some(5),
            ),
            now,
        );
        assert_eq!(state(&store).moderators, ["carol"]);
        assert!(state(&store).speakers.is_empty());
        store.apply(
            &update(
                "slow_mode",
                json!({"seconds": 30, "by": "host", "v": 16}),
                Some(6),
            ),
            now,
        );
        assert_eq!(state(&store).slow_mode_secs, 30);
        let poll = json!({"poll_id": "p1", "question": "Q?", "options": ["a", "b"], "opened_by": "host",
                          "opened_at_ms": 1, "closes_at_ms": null, "state": "open", "tallies": [0, 0], "votes": 0, "closed_at_ms": null});
        store.apply(
            &update(
                "poll_opened",
                json!({"poll": poll, "by": "host", "v": 17}),
                Some(7),
            ),
            now,
        );
        store.apply(
            &update(
                "poll_tally",
                json!({"poll_id": "p1", "tallies": [2, 1], "votes": 3, "state": "open"}),
                None,
            ),
            now,
        );
        assert_eq!(state(&store).polls[0].tallies, [2, 1]);
        let mut closed = poll.clone();
        closed["state"] = json!("closed");
        closed["tallies"] = json!([3, 1]);
        closed["votes"] = json!(4);
        store.apply(
            &update(
                "poll_closed",
                json!({"poll": closed, "reason": "closed", "by": "host", "v": 18}),
                Some(8),
            ),
            now,
        );
        // A late tally does not reopen it.
        store.apply(
            &update(
                "poll_tally",
                json!({"poll_id": "p1", "tallies": [2, 1], "votes": 3, "state": "open"}),
                None,
            ),
            now,
        );
        assert_eq!(state(&store).polls[0].state, PollState::Closed);
        assert_eq!(state(&store).polls[0].tallies, [3, 1]);
        store.apply(
            &update("comment", json!({"uid": "bob", "text": "hi"}), Some(9)),
            now,
        );
        store.apply(
            &update(
                "gift",
                json!({"uid": "bob", "gift_id": "rose", "count": 2, "value": 5, "total_value": 10}),
                Some(10),
            ),
            now,
        );
        store.apply(
            &update(
                "totals",
                json!({"likes": 40, "reactions": {"🔥": 2}, "reactions_total": 2}),
                None,
            ),
            now,
        );
        store.apply(
            &update(
                "member_joined",
                json!({"uid": "dan", "role": "listener", "members": 4}),
                None,
            ),
            now,
        );
        let s = state(&store);
        assert_eq!((s.comments, s.gifts, s.gift_value, s.likes), (1, 2, 10, 40));
        assert_eq!((s.members, s.listeners, store.view().members), (4, 3, 4));
        store.apply(
            &update(
                "room_ended",
                json!({"reason": "host", "by": "host", "ended_at_ms": 99, "summary": {}, "v": 19}),
                Some(11),
            ),
            now,
        );
        assert_eq!(state(&store).state, Lifecycle::Ended);
        assert_eq!(state(&store).v, 19);
        assert_eq!(
            store.refetch_at(DEFAULT_GAP_TIMEOUT),
            None,
            "no gap on the way"
        );
        // Unknown kinds change nothing.
        assert!(!store.apply(&update("custom", json!({"v": 20}), Some(12)), now));
    }

    #[test]
    fn duplicates_and_events_already_in_the_snapshot_are_skipped() {
        let now = Instant::now();
        let mut store = RoomStore::new("r1");
        store.reset(snapshot(10), now);
        // v 10 is in the snapshot: applying it would raise a hand the snapshot lowered.
        assert!(!store.apply(&hand_raised("carol", 10, 5), now));
        assert!(state(&store).hands.is_empty());
        assert!(store.apply(&hand_raised("carol", 11, 5), now));
        let before = store.view().clone();
        assert!(
            !store.apply(&hand_raised("carol", 11, 5), now),
            "a duplicate"
        );
        assert_eq!(store.view(), &before);
        assert_eq!(state(&store).hands_count, 1);
    }

    #[test]
    fn out_of_order_events_close_the_gap_without_rolling_back_a_subject() {
        let now = Instant::now();
        let mut store = RoomStore::new("r1");
        store.reset(snapshot(10), now);
        // v 12 (bob's hand down) before v 11 (bob's hand up): two biz nodes.
        let lowered = update(
            "hand_lowered",
            json!({"uid": "bob", "by": "bob", "v": 12, "user": user("bob", "listener", None, None, Value::Null)}),
            Some(2),
        );
        store.apply(&lowered, now);
        assert_eq!(
            store.refetch_at(DEFAULT_GAP_TIMEOUT),
            Some(now + DEFAULT_GAP_TIMEOUT)
        );
        store.apply(&hand_raised("bob", 11, 5), now + Duration::from_millis(10));
        assert_eq!(
            store.refetch_at(DEFAULT_GAP_TIMEOUT),
            None,
            "the gap closed"
        );
        assert_eq!(store.applied_v(), 12);
        assert!(
            state(&store).hands.is_empty(),
            "the older event did not roll bob back"
        );
        assert_eq!(state(&store).hands_count, 0);
        assert_eq!(state(&store).v, 12);
    }

    #[test]
    fn a_gap_that_stays_open_asks_for_a_refetch_and_a_fresh_snapshot_closes_it() {
        let now = Instant::now();
        let mut store = RoomStore::new("r1");
        store.reset(snapshot(10), now);
        store.apply(&hand_raised("carol", 13, 5), now);
        assert!(!store.needs_refetch(now + Duration::from_millis(999), DEFAULT_GAP_TIMEOUT));
        assert!(store.needs_refetch(now + DEFAULT_GAP_TIMEOUT, DEFAULT_GAP_TIMEOUT));
        // A stale read (v 12 < 13 already seen) does not close it.
        store.reset(snapshot(12), now + DEFAULT_GAP_TIMEOUT);
        assert!(store.refetch_at(DEFAULT_GAP_TIMEOUT).is_some());
        // A read that covers everything seen does.
        store.reset(snapshot(13), now + DEFAULT_GAP_TIMEOUT * 2);
        assert_eq!(store.refetch_at(DEFAULT_GAP_TIMEOUT), None);
        assert!(
            !store.apply(&hand_raised("carol", 13, 5), now),
            "13 is in the read"
        );
        assert!(store.apply(&hand_raised("dan", 14, 6), now));
        assert_eq!(store.refetch_at(DEFAULT_GAP_TIMEOUT), None);
    }

    #[test]
    fn the_callers_vote_is_recorded() {
        let mut store = RoomStore::new("r1");
        store.reset(snapshot(1), Instant::now());
        store.voted("p1", 1);
        let you = state(&store).you.as_ref().expect("you");
        assert_eq!(you.votes.get("p1"), Some(&1));
    }
}
