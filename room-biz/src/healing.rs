//! Node healing: when a conn node dies, the sessions it held leave
//! their rooms. The same holds for biz nodes, which hold the member sessions
//! of their long-polling clients (`crate::longpoll`).
//!
//! A conn node that crashes (or is partitioned until its discovery lease
//! expires) never sends the leaves of its clients, so their memberships would
//! stay counted until the room keys expire. Every membership records the conn
//! node holding it; this task watches the conn nodes in discovery and, when one
//! disappears and stays gone for `presence_grace_ms`, drops everything it held
//! with [`RoomStore::remove_node`](crate::RoomStore::remove_node).
//!
//! Every biz node runs this; the removal is idempotent, so several biz nodes
//! cleaning the same conn node at once is harmless. A conn node that died while
//! no biz node was running is not in the first view, so it is never noticed:
//! its memberships stay until the room keys expire (accepted; rare, bounded).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::discovery::{Discovery, NodeSet, ServiceKind};
use tokio::time::Instant;

use crate::shared::Shared;

/// Wait before retrying a cleanup that failed (the store is unavailable).
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Watch conn and biz nodes in `discovery` and remove the sessions of those
/// that leave, forever (returns never; it ends when its caller drops it).
pub(crate) async fn heal(discovery: &dyn Discovery, shared: &Shared) {
    tokio::join!(
        heal_kind(discovery, shared, ServiceKind::Conn),
        heal_kind(discovery, shared, ServiceKind::Biz),
    );
}

/// [`heal`] for the nodes of one kind.
async fn heal_kind(discovery: &dyn Discovery, shared: &Shared, kind: ServiceKind) {
    let kind_name = kind.as_str();
    let grace = Duration::from_millis(shared.cfg.presence_grace_ms);
    let mut view = discovery.watch(kind);
    // Nodes present when we start are the baseline: nothing is known about
    // nodes that vanished before it.
    let mut live = ids(&view.borrow_and_update());
    // Nodes gone from the view → when to clean them up.
    let mut gone: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let next_due = gone.values().min().copied();
        tokio::select! {
            changed = view.changed() => {
                if changed.is_err() {
                    // Discovery dropped its view: nothing more will leave.
                    return std::future::pending().await;
                }
                let now_live = ids(&view.borrow_and_update());
                for node in live.difference(&now_live) {
                    tracing::info!(node, kind = kind_name, ?grace, "Node left discovery; its sessions leave their rooms after the grace period.");
                    gone.insert(node.clone(), Instant::now() + grace);
                }
                for node in &now_live {
                    if gone.remove(node).is_some() {
                        tracing::info!(node, kind = kind_name, "Node is back within the grace period; its sessions stay.");
                    }
                }
                live = now_live;
            }
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                clean_due(shared, &mut gone).await;
            }
        }
    }
}

fn ids(nodes: &NodeSet) -> BTreeSet<String> {
    nodes.iter().map(|n| n.id.clone()).collect()
}

/// Remove the sessions of every node in `gone` whose time has come; failures
/// are rescheduled.
async fn clean_due(shared: &Shared, gone: &mut BTreeMap<String, Instant>) {
    let now = Instant::now();
    let due: Vec<String> = gone
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(node, _)| node.clone())
        .collect();
    let cleanups = &shared.metrics.healing_cleanups;
    for node in due {
        match shared.backends.store.remove_node(&node).await {
            Ok(rooms) => {
                gone.remove(&node);
                cleanups.with_label_values(&["ok"]).inc();
                tracing::info!(
                    node,
                    rooms = rooms.len(),
                    "Removed the room sessions of a node that left."
                );
                for (room, members) in rooms {
                    tracing::debug!(
                        node,
                        room,
                        members,
                        "Room lost the sessions of a dead node."
                    );
                    shared.backends.rooms.left(&room, None, members).await;
                }
            }
            Err(error) => {
                gone.insert(node.clone(), Instant::now() + RETRY_DELAY);
                cleanups.with_label_values(&["error"]).inc();
                tracing::warn!(node, %error, ?RETRY_DELAY, "Cannot remove the room sessions of a node that left; retrying.");
            }
        }
    }
}

#[cfg(test)]
mod tests;
