//! Each biz node's short-lived copy of what the hot actions (likes,
//! reactions, comments, gifts) check per request: the room record and its
//! kicked, blocked and invited uids. One refresh per room per
//! `room_view_ms` however many requests arrive, so a room taking 100,000
//! likes a second costs a few store reads a second, not one per like.
//!
//! The cost is staleness: a kick, block or end made through another node is
//! seen here up to `room_view_ms` late by those actions (changes made
//! through this node invalidate the copy at once). Stage and moderation
//! actions never use it: their guards run in the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use room_store::RoomStore;
use room_store::StoreError;
use room_store::domain::entry::Standing;
use room_store::domain::room::Room;
use tokio::time::Instant;

/// Rooms cached at most; views of further rooms are read for the request only.
const MAX_ROOMS: usize = 50_000;
/// A view nobody used for this long is dropped by housekeeping.
const IDLE: Duration = Duration::from_secs(60);

/// A room as a biz node last read it.
#[derive(Debug)]
pub(crate) struct View {
    /// The record.
    pub(crate) room: Room,
    kicked: HashSet<String>,
    blocked: HashSet<String>,
    invited: HashSet<String>,
    moderators: HashSet<String>,
}

impl View {
    /// Whether `uid` moderates (host or moderator), as of the view.
    pub(crate) fn moderates(&self, uid: &str) -> bool {
        self.room.owner.as_deref() == Some(uid) || self.moderators.contains(uid)
    }

    /// What the hot actions know about `uid`.
    pub(crate) fn standing(&self, uid: &str) -> Standing {
        Standing {
            kicked: self.kicked.contains(uid),
            blocked: self.blocked.contains(uid),
            may_enter: !self.room.private
                || self.room.owner.as_deref() == Some(uid)
                || self.invited.contains(uid),
        }
    }
}

struct Slot {
    view: Arc<View>,
    loaded: Instant,
    used: Instant,
    /// One caller refreshes a stale view; the others keep using it meanwhile.
    refreshing: bool,
}

/// The cache.
pub(crate) struct Views {
    store: Arc<dyn RoomStore>,
    ttl: Duration,
    // Lookups are short and never await: a std mutex.
    slots: Mutex<HashMap<String, Slot>>,
}

enum Lookup {
    Fresh(Arc<View>),
    Refresh,
    Load,
}

impl Views {
    /// Views trusted for `ttl`.
    pub(crate) fn new(store: Arc<dyn RoomStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            slots: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // Single inserts and removes: a poisoned map is still consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view of `room`, `None` if it does not exist.
    pub(crate) async fn get(&self, room: &str) -> Result<Option<Arc<View>>, StoreError> {
        let lookup = {
            let mut slots = self.lock();
            let now = Instant::now();
            match slots.get_mut(room) {
                Some(slot) => {
                    slot.used = now;
                    if now.duration_since(slot.loaded) < self.ttl || slot.refreshing {
                        Lookup::Fresh(slot.view.clone())
                    } else {
                        slot.refreshing = true;
                        Lookup::Refresh
                    }
                }
                None => Lookup::Load,
            }
        };
        if let Lookup::Fresh(view) = lookup {
            return Ok(Some(view));
        }
        let loaded = self.load(room).await;
        let mut slots = self.lock();
        match loaded {
            Ok(Some(view)) => {
                let view = Arc::new(view);
                if slots.len() < MAX_ROOMS || slots.contains_key(room) {
                    let now = Instant::now();
                    slots.insert(
                        room.to_owned(),
                        Slot {
                            view: view.clone(),
                            loaded: now,
                            used: now,
                            refreshing: false,
                        },
                    );
                }
                Ok(Some(view))
            }
            Ok(None) => {
                slots.remove(room);
                Ok(None)
            }
            Err(error) => {
                if let Some(slot) = slots.get_mut(room) {
                    // Keep serving the stale copy; the next caller retries.
                    slot.refreshing = false;
                    return Ok(Some(slot.view.clone()));
                }
                Err(error)
            }
        }
    }

    async fn load(&self, room: &str) -> Result<Option<View>, StoreError> {
        let Some(found) = self.store.get_room(room).await? else {
            return Ok(None);
        };
        let lists = self.store.room_lists(room).await?;
        let blocked = match &found.owner {
            Some(host) => self.store.blocked_by(host).await?,
            None => Vec::new(),
        };
        Ok(Some(View {
            room: found,
            kicked: lists.kicked.into_iter().collect(),
            blocked: blocked.into_iter().collect(),
            invited: lists.invited.into_iter().collect(),
            moderators: lists.moderators.into_iter().collect(),
        }))
    }

    /// Forget `room`: the next request reads it again (after a change made here).
    pub(crate) fn invalidate(&self, room: &str) {
        self.lock().remove(room);
    }

    /// Drop views nobody used lately.
    pub(crate) fn housekeep(&self) {
        self.lock().retain(|_, slot| slot.used.elapsed() < IDLE);
    }
}
