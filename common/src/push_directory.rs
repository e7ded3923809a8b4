//! Finding the push node that owns a room (or a user): rendezvous hash of the
//! key over the live push nodes, with one lazily connected gRPC channel per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proto::internal::v1::push_client::PushClient;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::discovery::{Discovery, NodeSet, ServiceKind};
use crate::hashing::rendezvous_owner;

/// Why no push node could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum PushDirectoryError {
    /// Discovery lists no push node.
    #[error("no push node is available")]
    NoPushNode,
    /// The owner's address is not a valid endpoint.
    #[error("push node {node} has a bad address: {reason}")]
    BadAddress {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
}

/// The owner chosen for a key.
#[derive(Clone, Debug)]
pub struct PushOwner {
    /// The owning node's id.
    pub node_id: String,
    /// A client on the node's channel (cheap to clone).
    pub client: PushClient<Channel>,
}

/// Cheap-to-clone view of the push nodes.
#[derive(Clone)]
pub struct PushDirectory {
    view: watch::Receiver<NodeSet>,
    // Channels are created once per node and reused; tonic channels multiplex.
    channels: Arc<Mutex<HashMap<String, (String, Channel)>>>,
}

impl PushDirectory {
    /// Watch push nodes through `discovery`.
    pub fn new(discovery: &dyn Discovery) -> Self {
        Self {
            view: discovery.watch(ServiceKind::Push),
            channels: Arc::default(),
        }
    }

    /// The live push nodes.
    pub fn nodes(&self) -> NodeSet {
        self.view.borrow().clone()
    }

    /// A receiver that changes whenever the push node set changes.
    pub fn watch(&self) -> watch::Receiver<NodeSet> {
        self.view.clone()
    }

    /// The owner of `key` (a room id, or `user:<uid>` for users).
    pub fn owner(&self, key: &str) -> Result<PushOwner, PushDirectoryError> {
        let nodes = self.nodes();
        let node_id = rendezvous_owner(
            key,
            nodes
                .iter()
                .filter(|n| n.grpc_addr.is_some())
                .map(|n| n.id.as_str()),
        )
        .ok_or(PushDirectoryError::NoPushNode)?
        .to_string();
        let addr = nodes
            .iter()
            .find(|n| n.id == node_id)
            .and_then(|n| n.grpc_addr.clone())
            .ok_or(PushDirectoryError::NoPushNode)?;
        let client = PushClient::new(self.channel(&node_id, &addr)?);
        Ok(PushOwner { node_id, client })
    }

    /// A client for a given node (for per-node streams).
    pub fn client_for(
        &self,
        node_id: &str,
        addr: &str,
    ) -> Result<PushClient<Channel>, PushDirectoryError> {
        Ok(PushClient::new(self.channel(node_id, addr)?))
    }

    fn channel(&self, node_id: &str, addr: &str) -> Result<Channel, PushDirectoryError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known_addr, channel)) = channels.get(node_id)
            && known_addr == addr
        {
            return Ok(channel.clone());
        }
        let channel =
            crate::grpc::lazy_channel(addr).map_err(|e| PushDirectoryError::BadAddress {
                node: node_id.to_string(),
                reason: e.to_string(),
            })?;
        channels.insert(node_id.to_string(), (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

/// The key a user is sharded by.
pub fn user_key(uid: &str) -> String {
    format!("user:{uid}")
}
