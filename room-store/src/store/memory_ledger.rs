//! The in-memory [`Ledger`] of standalone mode and unit tests: one lock,
//! short updates, expiry checked against the clock on access.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::ledger::{Ledger, Once};
use crate::error::StoreError;

/// Inboxes and idempotency keys held at most each; beyond it expired ones are
/// swept, and if none expired the oldest go (memory of the embedded engine is
/// bounded, like every resource a client can grow).
const MAX_ENTRIES: usize = 100_000;

/// The ledger in process memory.
#[derive(Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (due at, job), for claims in time order.
    due: BTreeSet<(u64, String)>,
    /// job → due at.
    due_by_job: HashMap<String, u64>,
    /// uid → (expires at ms, items newest first).
    inboxes: HashMap<String, (u64, VecDeque<String>)>,
    /// key → (expires at ms, `None` pending or the reply).
    once: HashMap<String, (u64, Option<String>)>,
}

fn expiry(ttl: Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    common::time::now_ms().saturating_add(ttl_ms)
}

/// Make room for one more entry in `map`: drop expired entries, then the
/// soonest to expire if still full.
fn make_room<V>(map: &mut HashMap<String, (u64, V)>, now: u64) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, (until, _)| *until > now);
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, (until, _))| *until)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

impl MemoryLedger {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // Short updates with no await inside: a poisoned lock holds
        // consistent maps.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }
}

impl State {
    fn set_due(&mut self, job: &str, at_ms: u64) {
        if let Some(old) = self.due_by_job.insert(job.to_owned(), at_ms) {
            self.due.remove(&(old, job.to_owned()));
        }
        self.due.insert((at_ms, job.to_owned()));
    }
}

#[async_trait::async_trait]
impl Ledger for MemoryLedger {
    async fn schedule_due(&self, job: &str, at_ms: u64) -> Result<(), StoreError> {
        self.with(|s| s.set_due(job, at_ms));
        Ok(())
    }

    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|s| {
            let due: Vec<String> = s
                .due
                .iter()
                .take_while(|(at, _)| *at <= now_ms)
                .take(limit)
                .map(|(_, job)| job.clone())
                .collect();
            for job in &due {
                s.set_due(job, now_ms.saturating_add(lease_ms));
            }
            due
        }))
    }

    async fn finish_due(&self, job: &str) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(at) = s.due_by_job.remove(job) {
                s.due.remove(&(at, job.to_owned()));
            }
        });
        Ok(())
    }

    async fn due_at(&self, job: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.with(|s| s.due_by_job.get(job).copied()))
    }

    async fn inbox_push(
        &self,
        uids: &[String],
        item: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let until = expiry(ttl);
        let now = common::time::now_ms();
        self.with(|s| {
            for uid in uids {
                if !s.inboxes.contains_key(uid) {
                    make_room(&mut s.inboxes, now);
                }
                let (expires, items) = s.inboxes.entry(uid.clone()).or_default();
                if *expires <= now {
                    items.clear();
                }
                *expires = until;
                items.push_front(item.to_owned());
                items.truncate(max);
            }
        });
        Ok(())
    }

    async fn inbox_read(&self, uid: &str) -> Result<Vec<String>, StoreError> {
        let now = common::time::now_ms();
        Ok(self.with(|s| match s.inboxes.get(uid) {
            Some((until, items)) if *until > now => items.iter().cloned().collect(),
            _ => Vec::new(),
        }))
    }

    async fn once_begin(&self, key: &str, ttl: Duration) -> Result<Once, StoreError> {
        let now = common::time::now_ms();
        let until = expiry(ttl);
        Ok(self.with(|s| match s.once.get(key) {
            Some((expires, reply)) if *expires > now => match reply {
                Some(reply) => Once::Done(reply.clone()),
                None => Once::Pending,
            },
            _ => {
                make_room(&mut s.once, now);
                s.once.insert(key.to_owned(), (until, None));
                Once::First
            }
        }))
    }

    async fn once_finish(&self, key: &str, reply: &str, ttl: Duration) -> Result<(), StoreError> {
        let until = expiry(ttl);
        let now = common::time::now_ms();
        self.with(|s| {
            if !s.once.contains_key(key) {
                make_room(&mut s.once, now);
            }
            s.once
                .insert(key.to_owned(), (until, Some(reply.to_owned())));
        });
        Ok(())
    }

    async fn once_abort(&self, key: &str) -> Result<(), StoreError> {
        self.with(|s| {
            // Only a pending key: a recorded reply stays the answer.
            if matches!(s.once.get(key), Some((_, None))) {
                s.once.remove(key);
            }
        });
        Ok(())
    }
}
