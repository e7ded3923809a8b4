//! Join and leave events. Small rooms get one ephemeral event per person
//! (`member_joined`/`member_left` with the uid and the member total); rooms
//! of `presence_aggregate_members` or more get one ephemeral `presence` per
//! window ("120 people joined, 3 left, 10,412 here"), so a flash crowd of a
//! hundred thousand costs one push a second, not a hundred thousand.
//!
//! Both are ephemeral: presence is soft state, the totals make a lost event
//! harmless, and durable join events would flood history and resumes. Exact
//! lists of the stage are in the snapshot and role events; the audience is
//! paged over HTTP.
//!
//! Joins and leaves reach the [`PresenceQueue`], a bounded queue, and are pushed by
//! one task, so a slow push layer never slows a join; when the queue is full,
//! notices are dropped (the next one carries the total again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use proto::client::v1::Priority;
use proto::internal::v1::PushRoomRequest;
use room_store::domain::rate::PresenceMode;
use room_store::domain::room::Role;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events;
use crate::pusher::RoomPusher;

/// A join or leave seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// `uid` joined; the room has `members` now.
    Joined {
        /// The room.
        room: String,
        /// Who.
        uid: String,
        /// Their role.
        role: Role,
        /// Members now.
        members: u32,
    },
    /// `uid` (or, for a dead conn node, someone unnamed) left.
    Left {
        /// The room.
        room: String,
        /// Who, if known.
        uid: Option<String>,
        /// Members now.
        members: u32,
    },
}

impl Notice {
    fn room_and_members(&self) -> (&str, u32) {
        match self {
            Self::Joined { room, members, .. } | Self::Left { room, members, .. } => {
                (room, *members)
            }
        }
    }
}

/// Notices routed together: what queued up while the last pushes went out.
const ROUTE_BATCH: usize = 1024;
/// Rooms whose presence events are being pushed at once.
const PUSHES_IN_FLIGHT: usize = 32;

#[derive(Default)]
struct Window {
    joined: u64,
    left: u64,
    members: u32,
}

/// The presence queue of one biz node: join and leave notices, pushed as
/// presence events by one task.
pub(crate) struct PresenceQueue {
    /// Off: notices are dropped at once.
    enabled: bool,
    tx: mpsc::Sender<Notice>,
    rx: Mutex<Option<mpsc::Receiver<Notice>>>,
    aggregate_from: u32,
    window: Duration,
}

impl PresenceQueue {
    /// A queue of up to `queue` notices (none when not `enabled`).
    pub(crate) fn new(enabled: bool, queue: usize, aggregate_from: u32, window: Duration) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        Self {
            enabled,
            tx,
            rx: Mutex::new(Some(rx)),
            aggregate_from,
            window,
        }
    }

    /// Queue a notice; dropped when the queue is full.
    pub(crate) fn notice(&self, notice: Notice) {
        if self.enabled && self.tx.try_send(notice).is_err() {
            tracing::debug!("Presence queue full; a join/leave notice is dropped.");
        }
    }

    /// Push notices until the process ends. Runs once per queue (a second call
    /// returns at once).
    pub(crate) async fn run(&self, pusher: Arc<dyn RoomPusher>) {
        let taken = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut rx) = taken else {
            return;
        };
        let mut windows: HashMap<String, Window> = HashMap::new();
        let mut tick = tokio::time::interval(self.window);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                notice = rx.recv() => {
                    let Some(notice) = notice else { return };
                    let mut batch = vec![notice];
                    while batch.len() < ROUTE_BATCH {
                        let Ok(more) = rx.try_recv() else { break };
                        batch.push(more);
                    }
                    let events = self.route_batch(batch, &mut windows);
                    push_all(&*pusher, events).await;
                }
                _ = tick.tick() => {
                    let events = windows
                        .drain()
                        .map(|(room, w)| {
                            let body = json!({"joined": w.joined, "left": w.left, "members": w.members});
                            (room, events::PRESENCE, body)
                        })
                        .collect();
                    push_all(&*pusher, events).await;
                }
            }
        }
    }

    /// The events to push now for notices queued together. A room is judged
    /// by its size after the last of them: in a flash crowd the first
    /// joiners' notices say "3 members" while the room already holds
    /// thousands, and naming each of them to all those thousands would cost a
    /// frame per member per joiner.
    fn route_batch(
        &self,
        batch: Vec<Notice>,
        windows: &mut HashMap<String, Window>,
    ) -> Vec<(String, &'static str, Value)> {
        let mut latest: HashMap<String, u32> = HashMap::new();
        for notice in &batch {
            let (room, members) = notice.room_and_members();
            latest.insert(room.to_owned(), members);
        }
        batch
            .into_iter()
            .filter_map(|notice| {
                let now = latest
                    .get(notice.room_and_members().0)
                    .copied()
                    .unwrap_or_default();
                self.route(notice, now, windows)
            })
            .collect()
    }

    /// An event to push now, or `None` after adding it to the room's window.
    /// `members_now` is the room's latest known size.
    fn route(
        &self,
        notice: Notice,
        members_now: u32,
        windows: &mut HashMap<String, Window>,
    ) -> Option<(String, &'static str, Value)> {
        let room = notice.room_and_members().0.to_owned();
        let aggregated = PresenceMode::of(members_now, self.aggregate_from)
            == PresenceMode::Aggregated
            || windows.contains_key(&room);
        if aggregated {
            let w = windows.entry(room).or_default();
            w.members = members_now;
            match notice {
                Notice::Joined { .. } => w.joined += 1,
                Notice::Left { .. } => w.left += 1,
            }
            return None;
        }
        Some(match notice {
            Notice::Joined {
                room,
                uid,
                role,
                members,
            } => (
                room,
                events::MEMBER_JOINED,
                json!({"uid": uid, "role": role.as_str(), "members": members}),
            ),
            Notice::Left { room, uid, members } => (
                room,
                events::MEMBER_LEFT,
                json!({"uid": uid, "members": members}),
            ),
        })
    }
}

/// Push `events`, in order within each room and up to [`PUSHES_IN_FLIGHT`]
/// rooms at a time: one at a time, a burst of joins over many small rooms
/// (each push a round trip to the push layer) left presence seconds behind.
async fn push_all(pusher: &dyn RoomPusher, events: Vec<(String, &'static str, Value)>) {
    let mut by_room: Vec<Vec<(String, &'static str, Value)>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for event in events {
        let slot = *index.entry(event.0.clone()).or_insert_with(|| {
            by_room.push(Vec::new());
            by_room.len() - 1
        });
        by_room[slot].push(event);
    }
    futures::stream::iter(by_room)
        .for_each_concurrent(PUSHES_IN_FLIGHT, |room_events| async move {
            for (room, kind, body) in room_events {
                push(pusher, room, kind, body).await;
            }
        })
        .await;
}

async fn push(pusher: &dyn RoomPusher, room: String, kind: &str, body: Value) {
    let request = PushRoomRequest {
        room,
        kind: kind.to_owned(),
        body: body.to_string().into(),
        sender: String::new(),
        priority: Priority::Normal as i32,
        durable: false,
    };
    if let Err(error) = pusher.push_room(request).await {
        tracing::debug!(%error, "Cannot push a presence event.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(room: &str, uid: &str, members: u32) -> Notice {
        Notice::Joined {
            room: room.into(),
            uid: uid.into(),
            role: Role::Listener,
            members,
        }
    }

    fn route_one(
        queue: &PresenceQueue,
        notice: Notice,
        windows: &mut HashMap<String, Window>,
    ) -> Option<(String, &'static str, Value)> {
        queue.route_batch(vec![notice], windows).pop()
    }

    #[test]
    fn small_rooms_name_people_and_large_rooms_count_them() {
        let queue = PresenceQueue::new(true, 8, 100, Duration::from_secs(1));
        let mut windows = HashMap::new();
        let (room, kind, body) =
            route_one(&queue, joined("r1", "bob", 3), &mut windows).expect("pushed now");
        assert_eq!((room.as_str(), kind), ("r1", events::MEMBER_JOINED));
        assert_eq!(
            body,
            json!({"uid": "bob", "role": "listener", "members": 3})
        );

        for n in 0..120 {
            assert!(
                route_one(
                    &queue,
                    joined("big", &format!("u{n}"), 100 + n),
                    &mut windows
                )
                .is_none()
            );
        }
        let left = Notice::Left {
            room: "big".into(),
            uid: None,
            members: 219,
        };
        assert!(route_one(&queue, left, &mut windows).is_none());
        let w = &windows["big"];
        assert_eq!((w.joined, w.left, w.members), (120, 1, 219));
        // A room being aggregated stays so until its window is flushed.
        assert!(route_one(&queue, joined("big", "x", 5), &mut windows).is_none());
    }

    #[test]
    fn a_flash_crowd_is_counted_not_named() {
        let queue = PresenceQueue::new(true, 8, 100, Duration::from_secs(1));
        let mut windows = HashMap::new();
        // Notices that queued up together: the room went from 1 to 150
        // members, and a small room beside it got two joins.
        let mut batch: Vec<Notice> = (1..=150)
            .map(|n| joined("crowd", &format!("u{n}"), n))
            .collect();
        batch.insert(10, joined("quiet", "ann", 4));
        batch.push(joined("quiet", "bea", 5));
        let now = queue.route_batch(batch, &mut windows);
        let named: Vec<(&str, &str)> = now
            .iter()
            .map(|(room, kind, _)| (room.as_str(), *kind))
            .collect();
        assert_eq!(
            named,
            vec![
                ("quiet", events::MEMBER_JOINED),
                ("quiet", events::MEMBER_JOINED)
            ],
            "only the small room names its joiners"
        );
        assert_eq!(now[1].2["uid"], "bea");
        let w = &windows["crowd"];
        assert_eq!((w.joined, w.left, w.members), (150, 0, 150));
        assert!(!windows.contains_key("quiet"));
    }

    /// Records pushes after a round trip of 10 ms.
    #[derive(Default)]
    struct SlowPusher {
        sent: Mutex<Vec<(String, String)>>,
    }

    #[async_trait::async_trait]
    impl RoomPusher for SlowPusher {
        async fn push_room(
            &self,
            req: PushRoomRequest,
        ) -> Result<proto::internal::v1::PushRoomReply, crate::error::PushError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let uid = body["uid"].as_str().unwrap_or_default().to_owned();
            self.sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((req.room, uid));
            Ok(Default::default())
        }

        async fn pull(
            &self,
            _: proto::internal::v1::PullRequest,
        ) -> Result<proto::internal::v1::PullReply, crate::error::PushError> {
            Ok(Default::default())
        }

        async fn push_users(
            &self,
            _: proto::internal::v1::PushUsersRequest,
        ) -> Result<proto::internal::v1::PushUsersReply, crate::error::PushError> {
            Ok(Default::default())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rooms_are_pushed_side_by_side_each_in_order() {
        let queue = PresenceQueue::new(true, 8, 100, Duration::from_secs(1));
        let pusher = SlowPusher::default();
        let mut windows = HashMap::new();
        let batch: Vec<Notice> = (0..64)
            .flat_map(|r| {
                let room = format!("r{r}");
                [joined(&room, "first", 2), joined(&room, "second", 3)]
            })
            .collect();
        let events = queue.route_batch(batch, &mut windows);
        assert_eq!(events.len(), 128);

        let started = tokio::time::Instant::now();
        push_all(&pusher, events).await;
        let took = started.elapsed();
        // One at a time: 128 round trips (1.28 s). 32 rooms at a time, two
        // events each: two waves of two round trips.
        assert!(took <= Duration::from_millis(50), "took {took:?}");

        let sent = pusher
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        assert_eq!(sent.len(), 128);
        for r in 0..64 {
            let room = format!("r{r}");
            let order: Vec<&str> = sent
                .iter()
                .filter(|(to, _)| *to == room)
                .map(|(_, uid)| uid.as_str())
                .collect();
            assert_eq!(order, ["first", "second"], "{room}");
        }
    }
}
