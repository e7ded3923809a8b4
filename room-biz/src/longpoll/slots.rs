//! Long polls waiting at once per uid on this node: one uid must not hold
//! the node's connections (each waiting poll holds one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts of waiting polls by uid, capped.
#[derive(Debug)]
pub(crate) struct UidSlots {
    max: usize,
    taken: Arc<Mutex<HashMap<String, usize>>>,
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    uid: String,
    taken: Arc<Mutex<HashMap<String, usize>>>,
}

impl UidSlots {
    /// At most `max` per uid; 0: no limit.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            taken: Arc::default(),
        }
    }

    /// The most a uid may hold.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Slots `uid` holds now.
    #[cfg(test)]
    pub(crate) fn held(&self, uid: &str) -> usize {
        let taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.get(uid).copied().unwrap_or(0)
    }

    /// Take a slot for `uid`, or `None` when it holds the most it may.
    pub(crate) fn try_take(&self, uid: &str) -> Option<Slot> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let count = taken.entry(uid.to_owned()).or_insert(0);
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            uid: uid.to_owned(),
            taken: self.taken.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = taken.get_mut(&self.uid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_holds_at_most_max_and_freed_slots_come_back() {
        let slots = UidSlots::new(2);
        let a1 = slots.try_take("a").expect("first");
        let _a2 = slots.try_take("a").expect("second");
        assert!(slots.try_take("a").is_none(), "third refused");
        let _b = slots.try_take("b").expect("another uid is not affected");
        drop(a1);
        assert!(slots.try_take("a").is_some(), "a freed slot is taken again");
        let unlimited = UidSlots::new(0);
        let held: Vec<_> = (0..100).filter_map(|_| unlimited.try_take("a")).collect();
        assert_eq!(held.len(), 100);
    }

    #[test]
    fn counts_are_dropped_when_the_last_slot_goes() {
        let slots = UidSlots::new(1);
        drop(slots.try_take("a"));
        assert!(slots.taken.lock().expect("lock").is_empty());
    }
}
