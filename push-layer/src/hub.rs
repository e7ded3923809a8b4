//! Shared state of a push node: rooms, attached conn nodes and the user → node map.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::push_directory::PushDirectory;
use dashmap::DashMap;
use message_log::{MessageLog, ReadLimit};
use proto::client::v1::RoomMessage;
use proto::internal::v1::{
    PullReply, PushToConn, RoomCount, RoomRemoval, Subscribed, UserDelivery, UserRevocation,
    push_to_conn,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::conn_nodes::{ConnHandle, ConnNodes};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::room::{self, Mode, PublishCmd, Publishing, Room};

pub(crate) struct Hub {
    pub(crate) cfg: Config,
    pub(crate) log: Arc<dyn MessageLog>,
    pub(crate) directory: PushDirectory,
    pub(crate) metrics: Metrics,
    shutdown: CancellationToken,
    rooms: DashMap<String, Arc<Room>>,
    conns: Arc<ConnNodes>,
    /// What each room's publisher task is given.
    publishing: Arc<Publishing>,
    /// Rooms each conn node subscribed, to clean up when its stream ends.
    node_rooms: DashMap<Arc<str>, HashSet<String>>,
    /// uid → conn nodes holding a session of that user: one or a few, so a
    /// list (a set would cost each online user a table of its own).
    users: Mutex<HashMap<String, Vec<Arc<str>>>>,
}

impl Hub {
    pub(crate) fn new(
        cfg: Config,
        log: Arc<dyn MessageLog>,
        directory: PushDirectory,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let conns = Arc::new(ConnNodes::new(cfg.conn_queue_capacity, metrics.clone()));
        let publishing = Arc::new(Publishing {
            log: log.clone(),
            conns: conns.clone(),
            metrics: metrics.clone(),
            batch_max: cfg.publish_batch_max.max(1),
            window: Duration::from_millis(cfg.broadcast_window_ms),
            frame_bytes: cfg.pull_bytes_max,
            // One notify must stay decodable like one broadcast frame.
            notify_inline_max_bytes: cfg.notify_inline_max_bytes.min(cfg.pull_bytes_max),
        });
        Arc::new(Self {
            cfg,
            log,
            directory,
            metrics,
            shutdown,
            rooms: DashMap::new(),
            conns,
            publishing,
            node_rooms: DashMap::new(),
            users: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn room_count(&self) -> usize {
        self.rooms.len()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Cancelled when the node starts shutting down.
    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stop every room task and reset every conn stream.
    pub(crate) fn close(&self) {
        for room in self.rooms.iter() {
            room.closed.cancel();
        }
        self.conns.close();
    }

    fn room(&self, id: &str) -> Arc<Room> {
        if let Some(room) = self.rooms.get(id).map(|r| r.clone()) {
            return room;
        }
        let created = self
            .rooms
            .entry(id.to_string())
            .or_insert_with(|| {
                let (room, rx) = Room::new(id, self.cfg.ring_size, self.cfg.room_queue_capacity);
                tokio::spawn(room::run_publisher(
                    self.publishing.clone(),
                    room.clone(),
                    rx,
                ));
                room
            })
            .clone();
        self.metrics.rooms.set(self.rooms.len() as i64);
        created
    }

    /// Append a durable message; returns `(epoch, seq)`.
    pub(crate) async fn publish(
        &self,
        room_id: &str,
        message: RoomMessage,
    ) -> Result<(u64, u64), Error> {
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        // A room dropped by the sweeper between lookup and send is recreated once.
        for _ in 0..2 {
            let room = self.room(room_id);
            let (reply, answer) = oneshot::channel();
            match room.publish_tx.try_send(PublishCmd {
                message: message.clone(),
                reply,
                trace: if common::trace::enabled() {
                    tracing::Span::current()
                } else {
                    tracing::Span::none()
                },
            }) {
                Ok(()) => return answer.await.map_err(|_| Error::ShuttingDown)?,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(Error::Overloaded(room_id.to_string()));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.rooms.remove_if(room_id, |_, r| Arc::ptr_eq(r, &room));
                }
            }
        }
        Err(Error::ShuttingDown)
    }

    /// Send an ephemeral room event to every subscribed conn node.
    pub(crate) fn publish_ephemeral(&self, room_id: &str, frame: PushToConn) {
        let targets: Vec<Arc<str>> = match self.rooms.get(room_id).map(|r| r.clone()) {
            Some(room) => room.lock().subscribers.keys().cloned().collect(),
            None => Vec::new(),
        };
        self.metrics.published.with_label_values(&["false"]).inc();
        self.conns.send_to_nodes(&targets, &frame);
    }

    /// Read one page after `after_seq`: ring first, message log otherwise. A
    /// page holds at most `limit` (and `pull_limit_max`) messages and
    /// `pull_bytes_max` bytes; the reader pulls again after the last message
    /// while it is below `head_seq`.
    pub(crate) async fn pull(
        &self,
        room_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<PullReply, Error> {
        let limit = ReadLimit::new(
            limit.min(self.cfg.pull_limit_max) as usize,
            self.cfg.pull_bytes_max,
        );
        if limit.max_messages == 0 {
            // Head only: where a fresh joiner starts.
            return self.head(room_id).await;
        }
        if let Some(room) = self.rooms.get(room_id).map(|r| r.clone()) {
            let state = room.lock();
            if state.epoch != 0 {
                let from_ring = if after_seq == state.head {
                    Some(Vec::new())
                } else {
                    state.ring.read_after(after_seq, limit)
                };
                if let Some(messages) = from_ring {
                    self.metrics.pulls.with_label_values(&["ring"]).inc();
                    return Ok(PullReply {
                        epoch: state.epoch,
                        head_seq: state.head,
                        messages,
                        truncated: false,
                    });
                }
            }
        }
        self.metrics.pulls.with_label_values(&["log"]).inc();
        let read = self.log.read_after(room_id, after_seq, limit).await?;
        Ok(PullReply {
            epoch: read.epoch,
            head_seq: read.head_seq,
            messages: read.messages,
            truncated: read.truncated,
        })
    }

    async fn head(&self, room_id: &str) -> Result<PullReply, Error> {
        if let Some(room) = self.rooms.get(room_id).map(|r| r.clone()) {
            let state = room.lock();
            if state.epoch != 0 {
                return Ok(PullReply {
                    epoch: state.epoch,
                    head_seq: state.head,
                    messages: Vec::new(),
                    truncated: false,
                });
            }
        }
        let head = self.log.head(room_id).await?;
        Ok(PullReply {
            epoch: head.epoch,
            head_seq: head.last_seq,
            messages: Vec::new(),
            truncated: false,
        })
    }

    // === conn node streams ===

    /// Register a conn node's downstream; replaces (and resets) an older one.
    pub(crate) fn attach(&self, node_id: Arc<str>) -> (ConnHandle, mpsc::Receiver<PushToConn>) {
        let (handle, rx) = self.conns.attach(node_id.clone());
        // The new stream re-sends its whole interest; forget the old one.
        self.clear_node(&node_id);
        tracing::info!(%node_id, "Conn node attached.");
        (handle, rx)
    }

    /// The stream of `generation` ended: forget the node unless a newer stream replaced it.
    pub(crate) fn detach(&self, node_id: &Arc<str>, generation: u64) {
        if self.conns.detach(node_id, generation) {
            self.clear_node(node_id);
            tracing::info!(%node_id, "Conn node detached.");
        }
    }

    fn clear_node(&self, node_id: &Arc<str>) {
        let rooms = self
            .node_rooms
            .remove(node_id)
            .map(|(_, r)| r)
            .unwrap_or_default();
        for room_id in rooms {
            if let Some(room) = self.rooms.get(&room_id).map(|r| r.clone()) {
                let mut state = room.lock();
                state.subscribers.remove(node_id);
                self.apply_mode(&room.id, &mut state);
            }
        }
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.retain(|_, nodes| {
            nodes.retain(|n| n != node_id);
            !nodes.is_empty()
        });
        self.metrics.online_users.set(users.len() as i64);
    }

    fn apply_mode(&self, room_id: &str, state: &mut room::RoomState) {
        if let Some(mode) = state.update_mode(
            self.cfg.broadcast_threshold,
            self.cfg.broadcast_exit_threshold,
        ) {
            let to = match mode {
                Mode::Notify => "notify",
                Mode::Broadcast => "broadcast",
            };
            self.metrics.mode_switches.with_label_values(&[to]).inc();
            tracing::info!(room = %room_id, members = state.members(), mode = to, "Room fan-out mode changed.");
        }
    }

    /// Apply a conn node's member counts; newly subscribed rooms are acknowledged
    /// with the head after which every message will reach the node.
    pub(crate) async fn interest(
        &self,
        node_id: &Arc<str>,
        handle: &ConnHandle,
        rooms: Vec<RoomCount>,
    ) {
        for rc in rooms {
            let room = self.room(&rc.room);
            let (newly, known_head) = {
                let mut state = room.lock();
                state.last_active = Instant::now();
                let newly = if rc.members == 0 {
                    state.subscribers.remove(node_id);
                    false
                } else {
                    state
                        .subscribers
                        .insert(node_id.clone(), rc.members)
                        .is_none()
                };
                self.apply_mode(&room.id, &mut state);
                // Read the head in the same critical section as the registration:
                // every later append will see this node as a target.
                (
                    newly,
                    (state.epoch != 0).then_some((state.epoch, state.head)),
                )
            };
            if rc.members == 0 {
                if let Some(mut set) = self.node_rooms.get_mut(node_id) {
                    set.remove(&rc.room);
                }
                continue;
            }
            self.node_rooms
                .entry(node_id.clone())
                .or_default()
                .insert(rc.room.clone());
            if !newly {
                continue;
            }
            let (epoch, head_seq) = match known_head {
                Some(h) => h,
                None => match self.log.head(&rc.room).await {
                    Ok(h) => {
                        let mut state = room.lock();
                        if state.epoch == 0 {
                            state.epoch = h.epoch;
                            state.head = h.last_seq;
                        }
                        (h.epoch, h.last_seq)
                    }
                    Err(error) => {
                        // Unacknowledged: the conn node's join times out and reports it.
                        tracing::warn!(room = %rc.room, %error, "Cannot read stream head for a subscription.");
                        room.lock().subscribers.remove(node_id);
                        continue;
                    }
                },
            };
            let ack = PushToConn {
                msg: Some(push_to_conn::Msg::Subscribed(Subscribed {
                    room: rc.room,
                    epoch,
                    head_seq,
                })),
            };
            self.conns.send(node_id, handle, ack);
        }
    }

    /// Apply a conn node's user presence changes.
    pub(crate) fn presence(&self, node_id: &Arc<str>, online: Vec<String>, offline: Vec<String>) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        for uid in online {
            let nodes = users.entry(uid).or_insert_with(|| Vec::with_capacity(1));
            if !nodes.contains(node_id) {
                nodes.push(node_id.clone());
            }
        }
        for uid in offline {
            if let Some(nodes) = users.get_mut(&uid) {
                nodes.retain(|n| n != node_id);
                if nodes.is_empty() {
                    users.remove(&uid);
                }
            }
        }
        self.metrics.online_users.set(users.len() as i64);
    }

    /// Deliver to users known to this node; returns how many were online.
    pub(crate) fn push_users_local(
        &self,
        uids: &[String],
        kind: &str,
        body: &bytes::Bytes,
        ts_ms: u64,
        removal: Option<&RoomRemoval>,
        revocation: Option<&UserRevocation>,
    ) -> u32 {
        let mut per_node: HashMap<Arc<str>, Vec<String>> = HashMap::new();
        let mut online = 0;
        {
            let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            for uid in uids {
                if let Some(nodes) = users.get(uid) {
                    online += 1;
                    for node in nodes {
                        per_node.entry(node.clone()).or_default().push(uid.clone());
                    }
                }
            }
        }
        for (node, uids) in per_node {
            let frame = PushToConn {
                msg: Some(push_to_conn::Msg::Users(UserDelivery {
                    uids,
                    kind: kind.to_string(),
                    body: body.clone(),
                    ts_ms,
                    removal: removal.cloned(),
                    revocation: revocation.copied(),
                })),
            };
            self.conns
                .send_to_nodes(std::slice::from_ref(&node), &frame);
        }
        self.metrics.user_pushes.inc();
        online
    }

    fn sweep(&self, idle: Duration) {
        let now = Instant::now();
        self.rooms.retain(|_, room| {
            let state = room.lock();
            let keep =
                !state.subscribers.is_empty() || now.duration_since(state.last_active) < idle;
            if !keep {
                room.closed.cancel();
            }
            keep
        });
        self.metrics.rooms.set(self.rooms.len() as i64);
    }
}

/// Drop rooms nobody subscribes to and nobody published to for a while.
pub(crate) async fn sweep_idle_rooms(hub: Arc<Hub>, shutdown: CancellationToken) {
    let idle = Duration::from_secs(hub.cfg.room_idle_secs);
    let mut tick = tokio::time::interval(Duration::from_secs(hub.cfg.room_idle_secs.clamp(1, 60)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => hub.sweep(idle),
        }
    }
}
