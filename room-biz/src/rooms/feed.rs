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
//! Joins and leaves reach the feed through a bounded queue and are pushed by
//! one task, so a slow push layer never slows a join; when the queue is full,
//! notices are dropped (the next one carries the total again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::client::v1::Priority;
use proto::internal::v1::PushRoomRequest;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events;
use crate::domain::rate::PresenceMode;
use crate::domain::room::Role;
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

#[derive(Default)]
struct Window {
    joined: u64,
    left: u64,
    members: u32,
}

/// The feed of one biz node.
pub(crate) struct Feed {
    /// Off: notices are dropped at once.
    enabled: bool,
    tx: mpsc::Sender<Notice>,
    rx: Mutex<Option<mpsc::Receiver<Notice>>>,
    aggregate_from: u32,
    window: Duration,
}

impl Feed {
    /// A feed queueing up to `queue` notices (none when not `enabled`).
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

    /// Push notices until the process ends. Runs once per feed (a second call
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
                    if let Some((room, kind, body)) = self.route(notice, &mut windows) {
                        push(&*pusher, room, kind, body).await;
                    }
                }
                _ = tick.tick() => {
                    for (room, w) in windows.drain() {
                        let body = json!({"joined": w.joined, "left": w.left, "members": w.members});
                        push(&*pusher, room, events::PRESENCE, body).await;
                    }
                }
            }
        }
    }

    /// An event to push now, or `None` after adding it to the room's window.
    fn route(
        &self,
        notice: Notice,
        windows: &mut HashMap<String, Window>,
    ) -> Option<(String, &'static str, Value)> {
        let (room, members) = match &notice {
            Notice::Joined { room, members, .. } | Notice::Left { room, members, .. } => {
                (room.clone(), *members)
            }
        };
        let aggregated = PresenceMode::of(members, self.aggregate_from) == PresenceMode::Aggregated
            || windows.contains_key(&room);
        if aggregated {
            let w = windows.entry(room).or_default();
            w.members = members;
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

    #[test]
    fn small_rooms_name_people_and_large_rooms_count_them() {
        let feed = Feed::new(true, 8, 100, Duration::from_secs(1));
        let mut windows = HashMap::new();
        let (room, kind, body) = feed
            .route(joined("r1", "bob", 3), &mut windows)
            .expect("pushed now");
        assert_eq!((room.as_str(), kind), ("r1", events::MEMBER_JOINED));
        assert_eq!(
            body,
            json!({"uid": "bob", "role": "listener", "members": 3})
        );

        for n in 0..120 {
            assert!(
                feed.route(joined("big", &format!("u{n}"), 100 + n), &mut windows)
                    .is_none()
            );
        }
        let left = Notice::Left {
            room: "big".into(),
            uid: None,
            members: 219,
        };
        assert!(feed.route(left, &mut windows).is_none());
        let w = &windows["big"];
        assert_eq!((w.joined, w.left, w.members), (120, 1, 219));
        // A room being aggregated stays so until its window is flushed.
        assert!(feed.route(joined("big", "x", 5), &mut windows).is_none());
    }
}
