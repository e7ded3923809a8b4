//! Service discovery: nodes register themselves with their addresses and load;
//! others watch the live set of a kind.
//!
//! The trait is the seam between standalone (in-process, [`MemoryDiscovery`])
//! and distributed mode (etcd leases); code above it is the same.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub mod etcd;

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Endpoint assignment.
    Router,
    /// Client sockets.
    Conn,
    /// Subscriptions, seqs, fan-out.
    Push,
    /// Room business.
    Biz,
}

impl ServiceKind {
    /// All kinds, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Router, Self::Conn, Self::Push, Self::Biz];

    /// Lower-case name used in keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Conn => "conn",
            Self::Push => "push",
            Self::Biz => "biz",
        }
    }
}

/// One registered node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Unique, stable for the life of the process.
    pub id: String,
    /// Internal gRPC address (`host:port`), if the node serves gRPC.
    pub grpc_addr: Option<String>,
    /// Public endpoints by name: `ws` (`ws://…/v1/ws`), `quic`, `http`.
    pub endpoints: BTreeMap<String, String>,
    /// Placement zone; the router prefers the client's zone.
    pub zone: String,
    /// Open client connections (conn nodes).
    pub connections: u64,
    /// Rooms held (conn and push nodes).
    pub rooms: u64,
    /// A draining node finishes its work but gets no new clients.
    pub draining: bool,
}

/// A live view of the nodes of one kind, sorted by id.
pub type NodeSet = Arc<Vec<NodeInfo>>;

/// Why a discovery operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The registry (etcd) cannot be reached; the last known view stays in use.
    #[error("discovery backend unavailable: {0}")]
    Unavailable(String),
}

/// The node registry.
#[async_trait::async_trait]
pub trait Discovery: Send + Sync + 'static {
    /// Register or update (load, draining) this node under `kind`.
    async fn register(&self, kind: ServiceKind, node: NodeInfo) -> Result<(), DiscoveryError>;
    /// Remove this node; others stop seeing it at once.
    async fn deregister(&self, kind: ServiceKind, node_id: &str) -> Result<(), DiscoveryError>;
    /// The live nodes of `kind`, updated as they come and go.
    fn watch(&self, kind: ServiceKind) -> watch::Receiver<NodeSet>;
    /// False while the backend cannot be reached (the view is then the last known one).
    fn healthy(&self) -> bool {
        true
    }
}

/// In-process discovery for standalone mode and unit tests.
#[derive(Clone)]
pub struct MemoryDiscovery {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    // Registrations are rare; a std mutex held for a map update is enough.
    nodes: Mutex<BTreeMap<(ServiceKind, String), NodeInfo>>,
    views: BTreeMap<ServiceKind, watch::Sender<NodeSet>>,
}

impl Default for MemoryDiscovery {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryDiscovery {
    /// An empty registry.
    pub fn new() -> Self {
        let views = ServiceKind::ALL
            .into_iter()
            .map(|k| (k, watch::channel(NodeSet::default()).0))
            .collect();
        Self {
            inner: Arc::new(MemoryInner {
                nodes: Mutex::new(BTreeMap::new()),
                views,
            }),
        }
    }

    fn publish(&self, kind: ServiceKind) {
        let set: Vec<NodeInfo> = {
            let nodes = self.inner.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|(_, n)| n.clone())
                .collect()
        };
        if let Some(view) = self.inner.views.get(&kind) {
            view.send_replace(Arc::new(set));
        }
    }
}

#[async_trait::async_trait]
impl Discovery for MemoryDiscovery {
    async fn register(&self, kind: ServiceKind, node: NodeInfo) -> Result<(), DiscoveryError> {
        {
            let mut nodes = self.inner.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.insert((kind, node.id.clone()), node);
        }
        self.publish(kind);
        Ok(())
    }

    async fn deregister(&self, kind: ServiceKind, node_id: &str) -> Result<(), DiscoveryError> {
        {
            let mut nodes = self.inner.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes.remove(&(kind, node_id.to_string()));
        }
        self.publish(kind);
        Ok(())
    }

    fn watch(&self, kind: ServiceKind) -> watch::Receiver<NodeSet> {
        match self.inner.views.get(&kind) {
            Some(view) => view.subscribe(),
            // Every kind has a view; this arm only satisfies the type checker.
            None => watch::channel(NodeSet::default()).1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_see_registrations_and_removals() {
        let discovery = MemoryDiscovery::new();
        let mut view = discovery.watch(ServiceKind::Push);
        let node = NodeInfo {
            id: "p1".into(),
            ..NodeInfo::default()
        };
        discovery
            .register(ServiceKind::Push, node)
            .await
            .expect("register");
        view.changed().await.expect("changed");
        assert_eq!(view.borrow().len(), 1);
        assert!(discovery.watch(ServiceKind::Conn).borrow().is_empty());
        discovery
            .deregister(ServiceKind::Push, "p1")
            .await
            .expect("deregister");
        view.changed().await.expect("changed");
        assert!(view.borrow().is_empty());
    }
}
