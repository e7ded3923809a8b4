//! The in-memory room store of standalone mode and unit tests.
//!
//! One lock over everything: every operation is a short update with no await
//! inside, so transitions are atomic exactly as the Redis scripts are, and the
//! reference semantics of [`RoomDoc::apply`] are used as they are.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::engine::{
    AudienceSet, CounterBatch, MAX_STAYS, MemberEntry, MemberFilter, MinuteCount, NewRoom, Room,
    RoomAnalytics, RoomLists, RoomState, RoomStore, SessionLeft, SessionStay, counter,
};
use super::ledger::Ledger;
use super::memory_ledger::MemoryLedger;
use super::redis_store::ROOM_TTL;
use crate::domain::rate;
use crate::domain::state::{Counters, RoomRead, Viewer};
use crate::domain::transition::{Applied, Membership, RoomDoc, Transition};
use crate::error::StoreError;
use crate::ids;

/// Rooms in a process-local map. A room goes [`ROOM_TTL`] after its last
/// write (a scheduled one never before that long after its start), like the
/// Redis engine's keys: ended and abandoned rooms give their memory back.
pub struct MemoryRoomStore {
    // Each operation is a short map update with no await inside, so a std
    // mutex is cheaper than an async one and cannot be held across an await.
    state: Mutex<State>,
    ttl_ms: u64,
    /// How often a call sweeps expired rooms (a scan of every room).
    sweep_every_ms: u64,
    ledger: Arc<MemoryLedger>,
}

impl Default for MemoryRoomStore {
    fn default() -> Self {
        Self::with_ttl(ROOM_TTL)
    }
}

#[derive(Default)]
struct State {
    rooms: HashMap<String, Entry>,
    /// When expired rooms were last swept, Unix ms.
    last_sweep_ms: u64,
    /// host → uids they blocked.
    blocks: HashMap<String, BTreeSet<String>>,
    /// uid → (tokens issued before this are revoked, Unix s; the mark
    /// expires at this Unix ms).
    revocations: HashMap<String, (u64, u64)>,
}

struct Entry {
    room: Room,
    members: Members,
    doc: RoomDoc,
    counters: BTreeMap<String, u64>,
    /// Every uid that ever joined.
    seen: HashSet<String>,
    /// uid → last comment (slow mode).
    last_comment: HashMap<String, u64>,
    /// The last write to the room, Unix ms: it expires `ttl` after this.
    last_write_ms: u64,
    /// Counter writer → the last batch applied from it.
    counter_batches: HashMap<String, u64>,
    /// (minute start, Unix ms; counter) → added in that minute (see
    /// [`counter::per_minute`]).
    minutes: BTreeMap<(u64, String), u64>,
}

/// uid → sessions, with a join-time index for pages.
#[derive(Default)]
struct Members {
    /// uid → (first join of this stay, its sessions in the room): a user
    /// holds one session or a few, so a list (a map would cost every member
    /// a table of its own).
    by_uid: HashMap<String, (u64, Vec<MemberSession>)>,
    /// (joined at, uid), for pages by join time.
    by_time: BTreeSet<(u64, String)>,
    /// Sessions that left, oldest first ([`MAX_STAYS`] at most).
    stays: VecDeque<SessionStay>,
}

/// One session of a member, while it is in the room.
struct MemberSession {
    session: String,
    /// The conn node holding it.
    node: String,
    /// When it joined (a re-join keeps the first time), Unix ms.
    joined_at_ms: u64,
}

impl MemberSession {
    fn new(session: &str, node: &str, joined_at_ms: u64) -> Self {
        Self {
            session: session.to_owned(),
            node: node.to_owned(),
            joined_at_ms,
        }
    }
}

impl Members {
    fn join(&mut self, uid: &str, session_id: &str, node_id: &str, now_ms: u64) {
        if let Some((_, sessions)) = self.by_uid.get_mut(uid) {
            match sessions.iter_mut().find(|s| s.session == session_id) {
                Some(known) => node_id.clone_into(&mut known.node),
                None => sessions.push(MemberSession::new(session_id, node_id, now_ms)),
            }
            return;
        }
        self.by_time.insert((now_ms, uid.to_owned()));
        let sessions = vec![MemberSession::new(session_id, node_id, now_ms)];
        self.by_uid.insert(uid.to_owned(), (now_ms, sessions));
    }

    /// Drop the sessions of `uid` for which `drop(session, node)` holds;
    /// whether any went. Each dropped session's stay is recorded.
    fn drop_sessions(&mut self, uid: &str, mut drop: impl FnMut(&str, &str) -> bool) -> bool {
        let Some((_, sessions)) = self.by_uid.get_mut(uid) else {
            return false;
        };
        let before = sessions.len();
        let mut left = Vec::new();
        sessions.retain_mut(|s| {
            let keep = !drop(&s.session, &s.node);
            if !keep {
                left.push((std::mem::take(&mut s.session), s.joined_at_ms));
            }
            keep
        });
        let dropped = sessions.len() < before;
        let now = common::time::now_ms();
        for (session, joined_at_ms) in left {
            self.stays.push_back(SessionStay {
                uid: uid.to_owned(),
                session,
                joined_at_ms,
                left_at_ms: Some(now),
            });
            if self.stays.len() > MAX_STAYS {
                self.stays.pop_front();
            }
        }
        let Some((joined, sessions)) = self.by_uid.get_mut(uid) else {
            return dropped;
        };
        if sessions.is_empty() {
            let joined = *joined;
            self.by_uid.remove(uid);
            self.by_time.remove(&(joined, uid.to_owned()));
        }
        dropped
    }

    fn count32(&self) -> u32 {
        u32::try_from(self.by_uid.len()).unwrap_or(u32::MAX)
    }
}

impl Membership for Members {
    fn contains(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    fn count(&self) -> u64 {
        self.by_uid.len() as u64
    }

    fn evict(&mut self, uid: &str) {
        self.drop_sessions(uid, |_, _| true);
    }
}

impl Entry {
    fn new(room: Room) -> Self {
        Self {
            room,
            members: Members::default(),
            doc: RoomDoc::default(),
            counters: BTreeMap::new(),
            seen: HashSet::new(),
            last_comment: HashMap::new(),
            last_write_ms: common::time::now_ms(),
            counter_batches: HashMap::new(),
            minutes: BTreeMap::new(),
        }
    }

    /// Unix ms from which the room is gone: `ttl` after its last write, and
    /// a scheduled room lives at least `ttl` past its start.
    fn expires_at_ms(&self, ttl_ms: u64) -> u64 {
        let written = self.last_write_ms.saturating_add(ttl_ms);
        match (self.room.state, self.room.scheduled_at_ms) {
            (RoomState::Scheduled, Some(start)) => written.max(start.saturating_add(ttl_ms)),
            _ => written,
        }
    }

    /// After a leave: a live room nobody is in is empty from now.
    fn mark_if_empty(&mut self, now_ms: u64) {
        if self.members.by_uid.is_empty()
            && self.room.state == RoomState::Live
            && self.room.empty_since_ms.is_none()
        {
            self.room.empty_since_ms = Some(now_ms);
        }
    }

    fn counters(&self) -> Counters {
        let get = |name: &str| self.counters.get(name).copied().unwrap_or(0);
        Counters {
            likes: get(counter::LIKES),
            comments: get(counter::COMMENTS),
            gifts: get(counter::GIFTS),
            gift_value: get(counter::GIFT_VALUE),
            reactions: self
                .counters
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(counter::REACTION_PREFIX)
                        .map(|e| (e.to_owned(), *v))
                })
                .collect(),
            peak: get("peak"),
        }
    }

    fn read(&self, viewer: Option<&str>, hands_max: usize) -> RoomRead {
        let doc = &self.doc;
        let mut hands: Vec<(String, u64)> =
            doc.hands.iter().map(|(u, at)| (u.clone(), *at)).collect();
        hands.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        hands.truncate(hands_max);
        let on_stage = self
            .room
            .owner
            .iter()
            .chain(doc.roles.keys())
            .filter(|uid| self.members.contains(uid))
            .count();
        let mut polls: Vec<_> = doc.polls.values().map(|p| p.view()).collect();
        polls.sort_by(|a, b| (a.def.opened_at_ms, &a.def.id).cmp(&(b.def.opened_at_ms, &b.def.id)));
        RoomRead {
            room: self.room.clone(),
            members: self.members.count32(),
            stage_present: u32::try_from(on_stage).unwrap_or(u32::MAX),
            unique_listeners: self.seen.len() as u64,
            roles: doc.roles.clone(),
            hands,
            hands_count: doc.hands.len() as u64,
            invites: doc.invites.clone(),
            muted: doc.muted.clone(),
            kicked_count: doc.kicked.len() as u64,
            interest_count: doc.interest.len() as u64,
            polls,
            counters: self.counters(),
            version: doc.version,
            viewer: viewer.map(|uid| Viewer {
                uid: uid.to_owned(),
                stage: doc.user(&self.room, &self.members, uid),
                may_enter: !self.room.private
                    || self.room.owner.as_deref() == Some(uid)
                    || doc.allowed.contains(uid),
                interested: doc.interest.contains(uid),
                votes: doc
                    .polls
                    .iter()
                    .filter_map(|(id, p)| p.voters.get(uid).map(|o| (id.clone(), *o)))
                    .collect(),
            }),
        }
    }
}

impl MemoryRoomStore {
    /// An empty store whose rooms expire [`ROOM_TTL`] after their last write.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose rooms expire `ttl` after their last write.
    pub fn with_ttl(ttl: Duration) -> Self {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Self {
            state: Mutex::default(),
            ttl_ms,
            // A sweep is a scan of every room: once a minute at most, and
            // often enough that a short test TTL is honoured.
            sweep_every_ms: ttl_ms.min(60_000),
            ledger: Arc::default(),
        }
    }

    /// How many rooms the store holds (expired ones not yet swept included).
    pub fn room_count(&self) -> usize {
        self.with(|s| s.rooms.len())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic while holding the lock leaves the maps usable (updates are
        // small and a half-applied one only affects that room), so a poisoned
        // lock is still used rather than failing every later request.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = common::time::now_ms();
        if now.saturating_sub(state.last_sweep_ms) >= self.sweep_every_ms {
            state.last_sweep_ms = now;
            let ttl_ms = self.ttl_ms;
            state.rooms.retain(|_, e| e.expires_at_ms(ttl_ms) > now);
        }
        f(&mut state)
    }

    /// `f` on the room as a write: its expiry moves on.
    fn with_room<T>(&self, room: &str, f: impl FnOnce(&mut Entry) -> T) -> Result<T, StoreError> {
        self.with(|s| {
            s.rooms
                .get_mut(room)
                .map(|e| {
                    e.last_write_ms = common::time::now_ms();
                    f(e)
                })
                .ok_or_else(|| StoreError::RoomNotFound(room.to_owned()))
        })
    }
}

#[async_trait::async_trait]
impl RoomStore for MemoryRoomStore {
    async fn create_room(&self, new: NewRoom) -> Result<Room, StoreError> {
        Ok(self.with(|s| {
            let id = loop {
                let id = ids::new_room_id();
                if !s.rooms.contains_key(&id) {
                    break id;
                }
            };
            let invited = new.invited.clone();
            let room = new.into_room(id.clone(), common::time::now_ms());
            let mut entry = Entry::new(room.clone());
            entry.doc.allowed.extend(invited);
            s.rooms.insert(id, entry);
            room
        }))
    }

    async fn get_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        Ok(self.with(|s| s.rooms.get(id).map(|e| e.room.clone())))
    }

    async fn end_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        let now = common::time::now_ms();
        Ok(self.with(|s| {
            s.rooms.get_mut(id).map(|e| {
                e.last_write_ms = now;
                if e.room.state != RoomState::Ended {
                    e.room.state = RoomState::Ended;
                    e.room.ended_at_ms = Some(now);
                }
                e.room.clone()
            })
        }))
    }

    async fn delete_room(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.rooms.remove(id).is_some()))
    }

    async fn member_joined(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
        node_id: &str,
    ) -> Result<u32, StoreError> {
        let now = common::time::now_ms();
        self.with_room(room, |e| {
            if e.doc.kicked.contains(uid) {
                return Err(StoreError::Kicked {
                    room: room.into(),
                    uid: uid.into(),
                });
            }
            if e.room.private
                && e.room.owner.as_deref() != Some(uid)
                && !e.doc.allowed.contains(uid)
            {
                return Err(StoreError::NotInvited {
                    room: room.into(),
                    uid: uid.into(),
                });
            }
            e.members.join(uid, session_id, node_id, now);
            e.seen.insert(uid.to_owned());
            e.room.empty_since_ms = None;
            let count = e.members.count32();
            let peak = e.counters.entry("peak".into()).or_insert(0);
            *peak = (*peak).max(u64::from(count));
            Ok(count)
        })?
    }

    async fn member_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<u32, StoreError> {
        Ok(self
            .member_session_left(room, uid, session_id)
            .await?
            .members)
    }

    async fn member_session_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<SessionLeft, StoreError> {
        let now = common::time::now_ms();
        Ok(self
            .with_room(room, |e| {
                let dropped = e
                    .members
                    .drop_sessions(uid, |session, _| session == session_id);
                if dropped {
                    e.mark_if_empty(now);
                }
                SessionLeft {
                    members: e.members.count32(),
                    member_gone: dropped && !e.members.by_uid.contains_key(uid),
                }
            })
            .unwrap_or(SessionLeft {
                members: 0,
                member_gone: false,
            }))
    }

    async fn member_count(&self, room: &str) -> Result<u32, StoreError> {
        Ok(self.with(|s| s.rooms.get(room).map_or(0, |e| e.members.count32())))
    }

    async fn remove_node(&self, node_id: &str) -> Result<Vec<(String, u32)>, StoreError> {
        if node_id.is_empty() {
            return Ok(Vec::new());
        }
        let now = common::time::now_ms();
        // A scan of every session: conn nodes die rarely, and a per-node index
        // would have to be kept in step on every join and leave.
        Ok(self.with(|s| {
            let mut changed = Vec::new();
            for (id, entry) in &mut s.rooms {
                let uids: Vec<String> = entry.members.by_uid.keys().cloned().collect();
                let mut dropped = false;
                for uid in uids {
                    dropped |= entry.members.drop_sessions(&uid, |_, node| node == node_id);
                }
                if dropped {
                    entry.last_write_ms = now;
                    entry.mark_if_empty(now);
                    changed.push((id.clone(), entry.members.count32()));
                }
            }
            changed
        }))
    }

    async fn apply(&self, room: &str, t: &Transition) -> Result<Applied, StoreError> {
        self.with_room(room, |e| e.doc.apply(&mut e.room, &mut e.members, t))
    }

    async fn read(
        &self,
        room: &str,
        viewer: Option<&str>,
        hands_max: usize,
    ) -> Result<Option<RoomRead>, StoreError> {
        Ok(self.with(|s| s.rooms.get(room).map(|e| e.read(viewer, hands_max))))
    }

    async fn add_counters(
        &self,
        room: &str,
        deltas: &[(String, u64)],
        batch: Option<CounterBatch<'_>>,
    ) -> Result<Option<Counters>, StoreError> {
        Ok(self.with(|s| {
            s.rooms.get_mut(room).map(|e| {
                e.last_write_ms = common::time::now_ms();
                if let Some(batch) = batch {
                    let last = e
                        .counter_batches
                        .entry(batch.writer.to_owned())
                        .or_insert(0);
                    if batch.seq <= *last {
                        return e.counters();
                    }
                    *last = batch.seq;
                }
                let minute = counter::minute_of(e.last_write_ms);
                for (name, delta) in deltas {
                    let value = e.counters.entry(name.clone()).or_insert(0);
                    *value = value.saturating_add(*delta);
                    if counter::per_minute(name) {
                        let value = e.minutes.entry((minute, name.clone())).or_insert(0);
                        *value = value.saturating_add(*delta);
                    }
                }
                e.counters()
            })
        }))
    }

    async fn analytics(&self, room: &str) -> Result<RoomAnalytics, StoreError> {
        Ok(self.with(|s| {
            s.rooms.get(room).map_or_else(RoomAnalytics::default, |e| {
                let mut stays: Vec<SessionStay> = e.members.stays.iter().cloned().collect();
                let mut open: Vec<SessionStay> = e
                    .members
                    .by_uid
                    .iter()
                    .flat_map(|(uid, (_, sessions))| {
                        sessions.iter().map(|s| SessionStay {
                            uid: uid.clone(),
                            session: s.session.clone(),
                            joined_at_ms: s.joined_at_ms,
                            left_at_ms: None,
                        })
                    })
                    .collect();
                open.sort_by(|a, b| (a.joined_at_ms, &a.uid).cmp(&(b.joined_at_ms, &b.uid)));
                stays.extend(open);
                RoomAnalytics {
                    stays,
                    minutes: e
                        .minutes
                        .iter()
                        .map(|((minute_ms, name), count)| MinuteCount {
                            minute_ms: *minute_ms,
                            name: name.clone(),
                            count: *count,
                        })
                        .collect(),
                }
            })
        }))
    }

    async fn slow_comment(
        &self,
        room: &str,
        uid: &str,
        secs: u32,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.with_room(room, |e| {
            let wait = rate::slow_mode_wait(e.last_comment.get(uid).copied(), secs, now_ms);
            if wait.is_none() {
                e.last_comment.insert(uid.to_owned(), now_ms);
            }
            wait
        })
    }

    async fn members_page(
        &self,
        room: &str,
        filter: MemberFilter,
        after: Option<&MemberEntry>,
        limit: usize,
    ) -> Result<Vec<MemberEntry>, StoreError> {
        Ok(self.with(|s| {
            let Some(e) = s.rooms.get(room) else {
                return Vec::new();
            };
            let start = after.map(|a| (a.joined_at_ms, a.uid.clone()));
            e.members
                .by_time
                .iter()
                .filter(|key| start.as_ref().is_none_or(|s| *key > s))
                .filter(|(_, uid)| match filter {
                    MemberFilter::All => true,
                    MemberFilter::Listeners => {
                        e.room.owner.as_deref() != Some(uid.as_str())
                            && !e.doc.roles.contains_key(uid)
                    }
                })
                .take(limit)
                .map(|(joined_at_ms, uid)| MemberEntry {
                    joined_at_ms: *joined_at_ms,
                    uid: uid.clone(),
                })
                .collect()
        }))
    }

    async fn audience_page(
        &self,
        room: &str,
        set: AudienceSet,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        Ok(self.with(|s| {
            let Some(e) = s.rooms.get(room) else {
                return (0, Vec::new());
            };
            let uids = match set {
                AudienceSet::Interested => &e.doc.interest,
                AudienceSet::Invited => &e.doc.allowed,
            };
            let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
            let page: Vec<String> = uids.iter().skip(skip).take(count).cloned().collect();
            let next = skip.saturating_add(page.len());
            let next = if next >= uids.len() { 0 } else { next as u64 };
            (next, page)
        }))
    }

    async fn room_lists(&self, room: &str) -> Result<RoomLists, StoreError> {
        Ok(self.with(|s| {
            s.rooms
                .get(room)
                .map(|e| RoomLists {
                    kicked: e.doc.kicked.iter().cloned().collect(),
                    invited: if e.room.private {
                        e.doc.allowed.iter().cloned().collect()
                    } else {
                        Vec::new()
                    },
                    moderators: e
                        .doc
                        .roles
                        .iter()
                        .filter(|(_, r)| **r == crate::domain::room::StageRole::Moderator)
                        .map(|(u, _)| u.clone())
                        .collect(),
                })
                .unwrap_or_default()
        }))
    }

    async fn set_blocked(&self, host: &str, uid: &str, blocked: bool) -> Result<(), StoreError> {
        self.with(|s| {
            if blocked {
                s.blocks
                    .entry(host.to_owned())
                    .or_default()
                    .insert(uid.to_owned());
            } else if let Some(set) = s.blocks.get_mut(host) {
                set.remove(uid);
            }
        });
        Ok(())
    }

    async fn is_blocked(&self, host: &str, uid: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.blocks.get(host).is_some_and(|b| b.contains(uid))))
    }

    async fn blocked_by(&self, host: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|s| {
            s.blocks
                .get(host)
                .map(|b| b.iter().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn revoke_tokens(
        &self,
        uid: &str,
        before_secs: u64,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let now = common::time::now_ms();
        let expires_at_ms = now.saturating_add(ttl_secs.saturating_mul(1000));
        self.with(|s| {
            // Expired marks go on each write: the map holds live ones only.
            s.revocations.retain(|_, (_, until)| *until > now);
            let mark = s
                .revocations
                .entry(uid.to_owned())
                .or_insert((before_secs, expires_at_ms));
            if before_secs >= mark.0 {
                *mark = (before_secs, expires_at_ms.max(mark.1));
            }
        });
        Ok(())
    }

    async fn tokens_revoked_before(&self, uid: &str) -> Result<Option<u64>, StoreError> {
        let now = common::time::now_ms();
        Ok(self.with(|s| {
            s.revocations
                .get(uid)
                .filter(|(_, until)| *until > now)
                .map(|(before, _)| *before)
        }))
    }

    fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    #[tokio::test]
    async fn passes_the_store_conformance_suite() {
        conformance::run_all(&MemoryRoomStore::new()).await;
    }

    fn new_room(scheduled_at_ms: Option<u64>) -> NewRoom {
        NewRoom {
            title: "t".into(),
            owner: Some("alice".into()),
            scheduled_at_ms,
            ..NewRoom::default()
        }
    }

    #[tokio::test]
    async fn ended_and_idle_rooms_give_their_memory_back_after_the_ttl() {
        let store = MemoryRoomStore::with_ttl(Duration::from_millis(100));
        let ended = store.create_room(new_room(None)).await.expect("create");
        store.end_room(&ended.id).await.expect("end");
        let idle = store.create_room(new_room(None)).await.expect("create");
        let in_an_hour = common::time::now_ms() + 3_600_000;
        let scheduled = store
            .create_room(new_room(Some(in_an_hour)))
            .await
            .expect("create");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.get_room(&ended.id).await.expect("get").is_some()
            || store.get_room(&idle.id).await.expect("get").is_some()
        {
            assert!(std::time::Instant::now() < deadline, "rooms never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A room scheduled ahead lives until the TTL after its start.
        assert!(store.get_room(&scheduled.id).await.expect("get").is_some());
        assert_eq!(store.room_count(), 1);
        // Gone means gone for every operation, as a room that never existed.
        assert!(matches!(
            store.member_joined(&ended.id, "bob", "s1", "n1").await,
            Err(StoreError::RoomNotFound(_))
        ));
    }

    #[tokio::test]
    async fn every_write_moves_the_expiry_on() {
        let ttl_ms = 3_600_000;
        let store = MemoryRoomStore::with_ttl(Duration::from_millis(ttl_ms));
        let room = store.create_room(new_room(None)).await.expect("create");
        let last_write = |store: &MemoryRoomStore| {
            store.with(|s| s.rooms.get(&room.id).map(|e| e.last_write_ms))
        };
        let age = |store: &MemoryRoomStore| {
            store.with(|s| {
                if let Some(e) = s.rooms.get_mut(&room.id) {
                    e.last_write_ms = 1;
                }
            })
        };
        age(&store);
        store
            .member_joined(&room.id, "bob", "s1", "n1")
            .await
            .expect("join");
        assert!(last_write(&store) > Some(1), "a join is a write");
        age(&store);
        store
            .add_counters(&room.id, &[(counter::LIKES.to_owned(), 1)], None)
            .await
            .expect("counters");
        assert!(last_write(&store) > Some(1), "a counter is a write");
        age(&store);
        store.remove_node("n1").await.expect("remove node");
        assert!(last_write(&store) > Some(1), "a dropped session is a write");
        age(&store);
        store.end_room(&room.id).await.expect("end");
        assert!(last_write(&store) > Some(1), "the end is a write");
        age(&store);
        store.get_room(&room.id).await.expect("get");
        assert_eq!(last_write(&store), Some(1), "a read is not a write");
    }

    #[test]
    fn a_scheduled_room_outlives_its_start_by_the_ttl() {
        let mut entry = Entry::new(new_room(Some(50_000)).into_room("r".into(), 1_000));
        entry.last_write_ms = 1_000;
        assert_eq!(entry.expires_at_ms(10), 50_010);
        entry.room.state = RoomState::Live;
        assert_eq!(entry.expires_at_ms(10), 1_010);
    }
}
