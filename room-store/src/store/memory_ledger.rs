//! The in-memory [`Ledger`] of standalone mode and unit tests: one lock,
//! short updates, expiry checked against the clock on access.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::ledger::{Ledger, LoggedEvent, Once};
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
    /// The event log.
    events: EventLog,
}

/// An event id: (ms, n), printed `<ms>-<n>` like a Redis Stream id.
type EventId = (u64, u64);

fn print_id((ms, n): EventId) -> String {
    format!("{ms}-{n}")
}

/// `<ms>-<n>` (or `<ms>`, meaning `<ms>-0`) as an id.
fn parse_id(text: &str) -> Result<EventId, StoreError> {
    let bad = || StoreError::InvalidInput(format!("not an event id: {text:?}"));
    let (ms, n) = text.split_once('-').unwrap_or((text, "0"));
    Ok((
        ms.parse().map_err(|_| bad())?,
        n.parse().map_err(|_| bad())?,
    ))
}

#[derive(Default)]
struct EventLog {
    /// Events in id order.
    entries: VecDeque<(EventId, String)>,
    /// The last id issued (ids keep increasing after trims).
    last: EventId,
    groups: HashMap<String, Group>,
}

/// A reader group: where it is, and what its consumers hold.
struct Group {
    /// The last event handed out.
    delivered: EventId,
    /// id → (consumer, last claimed or touched, ms).
    pending: BTreeMap<EventId, (String, u64)>,
}

impl EventLog {
    fn get(&self, id: EventId) -> Option<&String> {
        let at = self.entries.binary_search_by(|(e, _)| e.cmp(&id)).ok()?;
        Some(&self.entries[at].1)
    }
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

    async fn events_append(&self, event: &str, max_len: usize) -> Result<String, StoreError> {
        let now = common::time::now_ms();
        Ok(self.with(|s| {
            let log = &mut s.events;
            let id = if now > log.last.0 {
                (now, 0)
            } else {
                (log.last.0, log.last.1 + 1)
            };
            log.last = id;
            log.entries.push_back((id, event.to_owned()));
            while log.entries.len() > max_len.max(1) {
                log.entries.pop_front();
            }
            print_id(id)
        }))
    }

    async fn events_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let after = after.map(parse_id).transpose()?;
        Ok(self.with(|s| {
            s.events
                .entries
                .iter()
                .filter(|(id, _)| after.is_none_or(|a| *id > a))
                .take(limit)
                .map(|(id, event)| LoggedEvent {
                    id: print_id(*id),
                    event: event.clone(),
                })
                .collect()
        }))
    }

    async fn events_join(&self, group: &str) -> Result<(), StoreError> {
        self.with(|s| {
            let last = s.events.last;
            s.events
                .groups
                .entry(group.to_owned())
                .or_insert_with(|| Group {
                    delivered: last,
                    pending: BTreeMap::new(),
                });
        });
        Ok(())
    }

    async fn events_claim(
        &self,
        group: &str,
        consumer: &str,
        limit: usize,
        stale_ms: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let now = common::time::now_ms();
        Ok(self.with(|s| {
            let log = &mut s.events;
            let last = log.last;
            let mut taken = Vec::new();
            let mut g = log.groups.remove(group).unwrap_or(Group {
                delivered: last,
                pending: BTreeMap::new(),
            });
            // Stale claims first (their consumer stopped), then new events.
            let stale: Vec<EventId> = g
                .pending
                .iter()
                .filter(|(_, (_, touched))| touched.saturating_add(stale_ms) <= now)
                .map(|(id, _)| *id)
                .take(limit)
                .collect();
            for id in stale {
                match log.get(id) {
                    Some(event) => {
                        taken.push(LoggedEvent {
                            id: print_id(id),
                            event: event.clone(),
                        });
                        g.pending.insert(id, (consumer.to_owned(), now));
                    }
                    // Trimmed from the log meanwhile.
                    None => {
                        g.pending.remove(&id);
                    }
                }
            }
            let fresh: Vec<(EventId, String)> = log
                .entries
                .iter()
                .filter(|(id, _)| *id > g.delivered)
                .take(limit.saturating_sub(taken.len()))
                .cloned()
                .collect();
            for (id, event) in fresh {
                g.delivered = id;
                g.pending.insert(id, (consumer.to_owned(), now));
                taken.push(LoggedEvent {
                    id: print_id(id),
                    event,
                });
            }
            log.groups.insert(group.to_owned(), g);
            taken
        }))
    }

    async fn events_touch(
        &self,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let ids = ids
            .iter()
            .map(|i| parse_id(i))
            .collect::<Result<Vec<_>, _>>()?;
        let now = common::time::now_ms();
        self.with(|s| {
            if let Some(g) = s.events.groups.get_mut(group) {
                for id in ids {
                    if let Some(claim) = g.pending.get_mut(&id) {
                        *claim = (consumer.to_owned(), now);
                    }
                }
            }
        });
        Ok(())
    }

    async fn events_ack(&self, group: &str, ids: &[String]) -> Result<(), StoreError> {
        let ids = ids
            .iter()
            .map(|i| parse_id(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.with(|s| {
            if let Some(g) = s.events.groups.get_mut(group) {
                for id in ids {
                    g.pending.remove(&id);
                }
            }
        });
        Ok(())
    }
}
