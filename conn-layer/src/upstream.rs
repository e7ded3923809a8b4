//! Links to the push nodes: one Attach stream per push node, carrying this
//! node's room interest and user presence up and notify/broadcast down.
//!
//! One actor owns the links and the "where did I subscribe each room" map, so
//! ownership changes (push nodes coming and going) are handled in one place:
//! every room is re-sent to its current owner, and a re-established stream gets
//! the whole interest again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::backoff::Backoff;
use common::discovery::NodeSet;
use common::hashing::rendezvous_order;
use common::push_directory::user_key;
use futures::StreamExt;
use proto::client::v1::{Code, Ephemeral, ServerFrame, server_frame};
use proto::internal::v1::{
    AttachHello, ConnToPush, PushToConn, RoomCount, RoomInterest, UserPresence, conn_to_push,
    push_to_conn,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::codec::SharedFrame;
use crate::commands::UpstreamCmd;
use crate::feeds::FeedEvent;
use crate::outbound::{Outbound, Removal};

/// Frames queued towards one push node.
const LINK_QUEUE: usize = 4096;
/// How often batched member-count changes are sent.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

struct Link {
    addr: String,
    cancel: CancellationToken,
    tx: Option<(mpsc::Sender<ConnToPush>, u64)>,
}

struct Upstream {
    ctx: Arc<Ctx>,
    cmd_tx: mpsc::Sender<UpstreamCmd>,
    links: HashMap<String, Link>,
    /// The push node each room's interest was last sent to.
    room_owner: HashMap<Arc<str>, String>,
    /// Push nodes still in discovery that this node cannot attach to: they
    /// own nothing here until they attach again (the push API and pulls skip
    /// them the same way), so a dead node costs a reconnect attempt, not
    /// its lease TTL of paused deliveries.
    unreachable: HashSet<String>,
    dirty: HashSet<Arc<str>>,
    online: Vec<Arc<str>>,
    offline: Vec<Arc<str>>,
}

/// Run the upstream actor until shutdown.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    cmd_tx: mpsc::Sender<UpstreamCmd>,
    mut cmds: mpsc::Receiver<UpstreamCmd>,
    shutdown: CancellationToken,
) {
    let mut view = ctx.directory.watch();
    let mut up = Upstream {
        ctx,
        cmd_tx,
        links: HashMap::new(),
        room_owner: HashMap::new(),
        unreachable: HashSet::new(),
        dirty: HashSet::new(),
        online: Vec::new(),
        offline: Vec::new(),
    };
    let initial = view.borrow_and_update().clone();
    up.sync_links(&initial);
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { break };
                up.handle(cmd);
            }
            changed = view.changed() => {
                if changed.is_err() { break; }
                let nodes = view.borrow_and_update().clone();
                up.sync_links(&nodes);
                // Ownership may have moved: re-send every room to its owner.
                up.dirty.extend(up.ctx.feeds.counts().into_iter().map(|(r, _)| r));
                up.dirty.extend(up.room_owner.keys().cloned());
                up.flush();
            }
            _ = tick.tick() => up.flush(),
        }
    }
    for link in up.links.values() {
        link.cancel.cancel();
    }
}

impl Upstream {
    fn handle(&mut self, cmd: UpstreamCmd) {
        match cmd {
            UpstreamCmd::RoomChanged(room) => {
                // New and vanished rooms go out at once (a join waits for the
                // acknowledgement); count changes ride the next tick.
                let urgent =
                    !self.room_owner.contains_key(&room) || self.ctx.feeds.get(&room).is_none();
                self.dirty.insert(room);
                if urgent {
                    self.flush();
                }
            }
            UpstreamCmd::UserOnline(uid) => self.online.push(uid),
            UpstreamCmd::UserOffline(uid) => self.offline.push(uid),
            UpstreamCmd::LinkUp {
                node,
                tx,
                generation,
            } => {
                if let Some(link) = self.links.get_mut(&node) {
                    link.tx = Some((tx, generation));
                    if self.unreachable.remove(&node) {
                        // Its rooms come back from their stand-in owners.
                        self.reassign_all();
                    }
                    self.resend_all_to(&node);
                }
            }
            UpstreamCmd::LinkDown { node, generation } => {
                if let Some(link) = self.links.get_mut(&node)
                    && link.tx.as_ref().is_some_and(|(_, g)| *g == generation)
                {
                    link.tx = None;
                }
            }
            UpstreamCmd::LinkFailed { node } => {
                if self.links.contains_key(&node) && self.unreachable.insert(node.clone()) {
                    tracing::warn!(push_node = %node, "Cannot attach to push node; its rooms go to the next owner.");
                    self.reassign_all();
                }
            }
        }
    }

    /// The set of reachable push nodes changed: send every room to its owner
    /// now (and a zero count to the one it leaves), and every online user to
    /// the node that owns it now.
    fn reassign_all(&mut self) {
        self.dirty
            .extend(self.ctx.feeds.counts().into_iter().map(|(r, _)| r));
        self.dirty.extend(self.room_owner.keys().cloned());
        self.flush();
        let nodes: Vec<String> = self
            .links
            .iter()
            .filter(|(id, link)| link.tx.is_some() && !self.unreachable.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for node in nodes {
            self.resend_users_to(&node);
        }
    }

    fn sync_links(&mut self, nodes: &NodeSet) {
        let live: HashMap<&str, &str> = nodes
            .iter()
            .filter_map(|n| n.grpc_addr.as_deref().map(|a| (n.id.as_str(), a)))
            .collect();
        self.links.retain(|id, link| {
            let keep = live.get(id.as_str()).is_some_and(|a| *a == link.addr);
            if !keep {
                link.cancel.cancel();
            }
            keep
        });
        let links = &self.links;
        self.unreachable.retain(|id| links.contains_key(id));
        for (id, addr) in live {
            if self.links.contains_key(id) {
                continue;
            }
            let cancel = CancellationToken::new();
            tokio::spawn(run_link(
                self.ctx.clone(),
                id.to_string(),
                addr.to_string(),
                cancel.clone(),
                self.cmd_tx.clone(),
            ));
            self.links.insert(
                id.to_string(),
                Link {
                    addr: addr.to_string(),
                    cancel,
                    tx: None,
                },
            );
        }
    }

    fn send(&self, node: &str, msg: conn_to_push::Msg) {
        if let Some((tx, _)) = self.links.get(node).and_then(|l| l.tx.as_ref()) {
            // A full or closed link is re-synchronised wholesale on its next LinkUp.
            let _ = tx.try_send(ConnToPush { msg: Some(msg) });
        }
    }

    /// A stream to `node` (re)started: send it every room and user it owns.
    fn resend_all_to(&mut self, node: &str) {
        let mut rooms = Vec::new();
        for (room, members) in self.ctx.feeds.counts() {
            if members > 0 && self.owner(&room).as_deref() == Some(node) {
                self.room_owner.insert(room.clone(), node.to_string());
                rooms.push(RoomCount {
                    room: room.to_string(),
                    members,
                });
            }
        }
        if !rooms.is_empty() {
            self.send(node, conn_to_push::Msg::Interest(RoomInterest { rooms }));
        }
        self.resend_users_to(node);
    }

    /// Tell `node` every online user it owns.
    fn resend_users_to(&self, node: &str) {
        let online: Vec<String> = self
            .ctx
            .registry
            .users()
            .into_iter()
            .filter(|u| self.owner(&user_key(u)).as_deref() == Some(node))
            .collect();
        if !online.is_empty() {
            self.send(
                node,
                conn_to_push::Msg::Presence(UserPresence {
                    online,
                    offline: Vec::new(),
                }),
            );
        }
    }

    /// The push node that serves `key` for this node: the first in
    /// rendezvous order that is not unreachable (the owner itself when all are).
    fn owner(&self, key: &str) -> Option<String> {
        let nodes = self.ctx.directory.nodes();
        let order = rendezvous_order(
            key,
            nodes
                .iter()
                .filter(|n| n.grpc_addr.is_some())
                .map(|n| n.id.as_str()),
        );
        order
            .iter()
            .find(|id| !self.unreachable.contains(**id))
            .or(order.first())
            .map(|id| (*id).to_string())
    }

    fn flush(&mut self) {
        let mut per_node: HashMap<String, Vec<RoomCount>> = HashMap::new();
        for room in std::mem::take(&mut self.dirty) {
            let members = self.ctx.feeds.get(&room).map(|f| f.members()).unwrap_or(0);
            let owner = self.owner(&room);
            let previous = self.room_owner.get(&room).cloned();
            if let Some(prev) = &previous
                && Some(prev) != owner.as_ref()
            {
                per_node.entry(prev.clone()).or_default().push(RoomCount {
                    room: room.to_string(),
                    members: 0,
                });
            }
            match owner {
                Some(owner) if members > 0 => {
                    per_node.entry(owner.clone()).or_default().push(RoomCount {
                        room: room.to_string(),
                        members,
                    });
                    self.room_owner.insert(room, owner);
                }
                Some(owner) => {
                    per_node.entry(owner).or_default().push(RoomCount {
                        room: room.to_string(),
                        members: 0,
                    });
                    self.room_owner.remove(&room);
                }
                None => {
                    self.room_owner.remove(&room);
                }
            }
        }
        for (node, rooms) in per_node {
            self.send(&node, conn_to_push::Msg::Interest(RoomInterest { rooms }));
        }
        if self.online.is_empty() && self.offline.is_empty() {
            return;
        }
        let mut presence: HashMap<String, UserPresence> = HashMap::new();
        for uid in std::mem::take(&mut self.online) {
            if let Some(owner) = self.owner(&user_key(&uid)) {
                presence
                    .entry(owner)
                    .or_default()
                    .online
                    .push(uid.to_string());
            }
        }
        for uid in std::mem::take(&mut self.offline) {
            if let Some(owner) = self.owner(&user_key(&uid)) {
                presence
                    .entry(owner)
                    .or_default()
                    .offline
                    .push(uid.to_string());
            }
        }
        for (node, p) in presence {
            self.send(&node, conn_to_push::Msg::Presence(p));
        }
    }
}

/// Keep an Attach stream to one push node open, reconnecting with backoff.
async fn run_link(
    ctx: Arc<Ctx>,
    node: String,
    addr: String,
    cancel: CancellationToken,
    cmd_tx: mpsc::Sender<UpstreamCmd>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut generation = 0u64;
    while !cancel.is_cancelled() {
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let hello = ConnToPush {
            msg: Some(conn_to_push::Msg::Hello(AttachHello {
                node_id: ctx.cfg.node_id.clone(),
                accepts_batches: true,
            })),
        };
        let _ = tx.try_send(hello);
        let attached = tokio::select! {
            r = crate::attach::open(&ctx, &node, &addr, rx) => Some(r),
            _ = cancel.cancelled() => None,
        };
        match attached {
            None => break,
            Some(Ok(mut stream)) => {
                backoff.reset();
                generation += 1;
                tracing::info!(push_node = %node, "Attached to push node.");
                let _ = cmd_tx
                    .send(UpstreamCmd::LinkUp {
                        node: node.clone(),
                        tx: tx.clone(),
                        generation,
                    })
                    .await;
                loop {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        _ = cancel.cancelled() => break,
                    };
                    match next {
                        Some(Ok(msg)) => read_frame(&ctx, msg),
                        None => break,
                        Some(Err(status)) => {
                            tracing::debug!(push_node = %node, %status, "Push stream failed.");
                            break;
                        }
                    }
                }
                let _ = cmd_tx
                    .send(UpstreamCmd::LinkDown {
                        node: node.clone(),
                        generation,
                    })
                    .await;
                tracing::info!(push_node = %node, "Push stream ended.");
            }
            Some(Err(status)) => {
                tracing::debug!(push_node = %node, %status, "Cannot attach to push node.");
                let _ = cmd_tx
                    .send(UpstreamCmd::LinkFailed { node: node.clone() })
                    .await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = cancel.cancelled() => break,
        }
    }
}

/// One frame of a push stream: a batch is its entries in order.
fn read_frame(ctx: &Ctx, frame: PushToConn) {
    ctx.metrics.intake.push_frames.inc();
    match frame.msg {
        Some(push_to_conn::Msg::Batch(batch)) => {
            ctx.metrics
                .intake
                .push_entries
                .inc_by(batch.frames.len() as u64);
            for entry in batch.frames {
                dispatch(ctx, entry);
            }
        }
        msg => {
            ctx.metrics.intake.push_entries.inc();
            dispatch(ctx, PushToConn { msg });
        }
    }
}

/// Hand one entry to its room feed or its users' sessions.
fn dispatch(ctx: &Ctx, msg: PushToConn) {
    let Some(msg) = msg.msg else { return };
    match msg {
        push_to_conn::Msg::Batch(_) => {
            // Push nodes never nest batches; a nested one is not read.
            tracing::debug!("Ignoring a batch nested in a batch.");
        }
        push_to_conn::Msg::Notify(n) => {
            if let Some(feed) = ctx.feeds.get(&n.room) {
                feed.push_event(FeedEvent::Notify {
                    epoch: n.epoch,
                    seq: n.seq,
                    messages: n.messages,
                    trace: n.traceparent,
                });
            }
        }
        push_to_conn::Msg::Broadcast(b) => {
            if let Some(feed) = ctx.feeds.get(&b.room) {
                feed.push_event(FeedEvent::Broadcast {
                    epoch: b.epoch,
                    messages: b.messages,
                    trace: b.traceparent,
                });
            }
        }
        push_to_conn::Msg::Subscribed(s) => {
            if let Some(feed) = ctx.feeds.get(&s.room) {
                feed.push_event(FeedEvent::Subscribed {
                    epoch: s.epoch,
                    head: s.head_seq,
                });
            }
        }
        push_to_conn::Msg::Ephemeral(e) => {
            if let Some(feed) = ctx.feeds.get(&e.room) {
                let frame = ServerFrame {
                    frame: Some(server_frame::Frame::Ephemeral(Ephemeral {
                        room: e.room,
                        kind: e.kind,
                        body: e.body,
                        ts_ms: e.ts_ms,
                    })),
                };
                feed.push_event(FeedEvent::Ephemeral(Arc::new(SharedFrame::new(frame))));
            }
        }
        push_to_conn::Msg::Users(u) => {
            // A revocation closes the users' sessions whose token is older,
            // and is remembered for hellos and refreshes.
            if let Some(revocation) = &u.revocation {
                let before = revocation.revoked_before_secs;
                let now = common::time::now_ms() / 1000;
                for uid in &u.uids {
                    ctx.revocations.record(uid, before, now);
                    for session in ctx.registry.sessions_of(uid) {
                        if session.token_iat() < before {
                            session.disconnect(Code::TokenRevoked, "token revoked", &ctx.metrics);
                        }
                    }
                }
            }
            // A removal (kick, block) also ends the fan-out to that user's
            // sockets in the room; the push itself still reaches them.
            if let Some(removal) = &u.removal {
                let room = Arc::<str>::from(removal.room.as_str());
                for uid in &u.uids {
                    for session in ctx.registry.sessions_of(uid) {
                        session.offer_ephemeral(
                            Outbound::Remove(Box::new(Removal {
                                room: room.clone(),
                                reason: u.kind.clone(),
                            })),
                            &ctx.metrics,
                        );
                    }
                }
            }
            let frame = Arc::new(SharedFrame::new(ServerFrame {
                frame: Some(server_frame::Frame::Ephemeral(Ephemeral {
                    room: String::new(),
                    kind: u.kind,
                    body: u.body,
                    ts_ms: u.ts_ms,
                })),
            }));
            for uid in &u.uids {
                for session in ctx.registry.sessions_of(uid) {
                    session.offer_ephemeral(Outbound::Shared(frame.clone()), &ctx.metrics);
                }
            }
        }
    }
}
