//! A bounded in-process copy of room metadata, so rooms survive a Redis that
//! lost its data (restarted empty, failed over to a replica that lagged).
//!
//! Metadata (title, owner, creation time, state) is small and changes once at
//! most (live → ended), so a copy taken when it was last seen is good enough
//! to write back. Members are not cached: they rebuild as clients rejoin.
//!
//! Bounded by two generations instead of a true LRU: entries go into the young
//! map; when it is full, it becomes the old map and the previous old map is
//! dropped. A hit in the old map moves the entry back to the young one, so rooms
//! in use stay and idle ones age out, with O(1) work and no per-hit bookkeeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::room::Room;

/// Rooms the Redis store keeps: about 100 bytes each, so ~10 MB.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

/// Room metadata by id, with when each was last seen in the store.
pub(crate) struct MetaCache {
    generations: Mutex<Generations>,
    /// Entries per generation: half the capacity.
    generation_cap: usize,
    /// Entries not seen in the store for this long are not handed out: the
    /// store would have expired them anyway, so a miss there is genuine.
    max_age: Duration,
}

#[derive(Default)]
struct Generations {
    young: HashMap<String, Cached>,
    old: HashMap<String, Cached>,
}

struct Cached {
    room: Room,
    seen: Instant,
}

impl MetaCache {
    /// A cache of at most `capacity` rooms, each usable for `max_age` after it
    /// was last seen.
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            generations: Mutex::default(),
            generation_cap: (capacity / 2).max(1),
            max_age,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Generations) -> T) -> T {
        // Every update is a single insert/remove/swap, so a poisoned lock still
        // guards consistent maps.
        let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut generations)
    }

    /// Remember `room` as just seen in the store.
    pub(crate) fn put(&self, room: &Room) {
        let cached = Cached {
            room: room.clone(),
            seen: Instant::now(),
        };
        self.with(|g| {
            g.old.remove(&room.id);
            g.insert_young(room.id.clone(), cached, self.generation_cap);
        });
    }

    /// The last copy of room `id`, if it is recent enough to restore.
    pub(crate) fn get(&self, id: &str) -> Option<Room> {
        self.with(|g| {
            if let Some(cached) = g.young.get(id) {
                return (cached.seen.elapsed() < self.max_age).then(|| cached.room.clone());
            }
            let cached = g.old.remove(id)?;
            if cached.seen.elapsed() >= self.max_age {
                return None;
            }
            let room = cached.room.clone();
            g.insert_young(id.to_owned(), cached, self.generation_cap);
            Some(room)
        })
    }

    /// Forget room `id` (deleted on purpose: never restore it).
    pub(crate) fn remove(&self, id: &str) {
        self.with(|g| {
            g.young.remove(id);
            g.old.remove(id);
        });
    }

    /// Rooms held (both generations).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.with(|g| g.young.len() + g.old.len())
    }
}

impl Generations {
    fn insert_young(&mut self, id: String, cached: Cached, cap: usize) {
        if self.young.len() >= cap && !self.young.contains_key(&id) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(id, cached);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RoomState;

    fn room(id: &str) -> Room {
        crate::store::NewRoom::titled(format!("title of {id}"), None).into_room(id.into(), 1)
    }

    #[test]
    fn recently_used_rooms_stay_and_the_size_is_bounded() {
        let cache = MetaCache::new(4, Duration::from_secs(60));
        for id in ["a", "b", "c", "d"] {
            cache.put(&room(id));
        }
        // "a" is used, so it moves to the young generation and survives.
        assert_eq!(cache.get("a"), Some(room("a")));
        for id in ["e", "f", "g"] {
            cache.put(&room(id));
        }
        assert!(cache.len() <= 4, "bounded: {}", cache.len());
        assert_eq!(cache.get("a"), Some(room("a")));
        assert_eq!(cache.get("b"), None, "idle rooms age out");
        assert_eq!(cache.get("g"), Some(room("g")));
    }

    #[test]
    fn updates_replace_and_stale_entries_are_not_handed_out() {
        let cache = MetaCache::new(10, Duration::from_secs(60));
        cache.put(&room("a"));
        let ended = Room {
            state: RoomState::Ended,
            ..room("a")
        };
        cache.put(&ended);
        assert_eq!(cache.get("a"), Some(ended));

        let stale = MetaCache::new(10, Duration::ZERO);
        stale.put(&room("a"));
        assert_eq!(stale.get("a"), None);
    }
}
