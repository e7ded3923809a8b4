//! Finding the push node that owns a room (or a user): rendezvous hash of the
//! key over the live push nodes, with one lazily connected gRPC channel per node.
//!
//! A push node that dies stays in discovery until its lease expires (about
//! `lease_ttl_secs`). Callers that route requests ([`PushDirectory::route`])
//! therefore skip nodes they could not connect to a moment ago
//! ([`PushDirectory::suspect`], for [`SUSPECT_FOR`]): the next node in
//! rendezvous order is the one that owns the key once the dead node has left,
//! so requests reach the new owner at once instead of failing until the lease
//! expires. Any push node accepts any room (seqs come from the message log),
//! so a wrong guess costs a forward, never a gap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::internal::v1::push_client::PushClient;
use tokio::sync::watch;

use crate::grpc::{InternalAuth, InternalChannel};

use crate::discovery::{Discovery, NodeSet, ServiceKind};
use crate::hashing::{rendezvous_order, rendezvous_owner};

/// How long a node that refused a connection is skipped by
/// [`PushDirectory::route`]: long enough that a dead node costs one failed
/// connect per caller every few seconds until discovery drops it, short
/// enough that a node back from a blip gets its rooms back soon.
pub const SUSPECT_FOR: Duration = Duration::from_secs(5);

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
    pub client: PushClient<InternalChannel>,
}

/// Cheap-to-clone view of the push nodes.
#[derive(Clone)]
pub struct PushDirectory {
    view: watch::Receiver<NodeSet>,
    // Channels are created once per node and reused; tonic channels multiplex.
    channels: Arc<Mutex<HashMap<String, (String, InternalChannel)>>>,
    /// The token every call carries.
    auth: InternalAuth,
    /// Nodes a connection failed to, and until when they are skipped.
    suspects: Arc<Mutex<HashMap<String, Instant>>>,
}

impl PushDirectory {
    /// Watch push nodes through `discovery`; calls carry `auth`'s token.
    pub fn new(discovery: &dyn Discovery, auth: InternalAuth) -> Self {
        Self {
            view: discovery.watch(ServiceKind::Push),
            channels: Arc::default(),
            auth,
            suspects: Arc::default(),
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

    /// Where to send a request for `key` now: its owner, unless a connection
    /// to the owner failed within [`SUSPECT_FOR`]; then the next node in
    /// rendezvous order that is not suspect (the key's owner once the suspect
    /// leaves). When every node is suspect, the owner.
    pub fn route(&self, key: &str) -> Result<PushOwner, PushDirectoryError> {
        let nodes = self.nodes();
        let order = rendezvous_order(
            key,
            nodes
                .iter()
                .filter(|n| n.grpc_addr.is_some())
                .map(|n| n.id.as_str()),
        );
        let now = Instant::now();
        let chosen = {
            let mut suspects = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
            suspects.retain(|_, until| *until > now);
            order
                .iter()
                .find(|id| !suspects.contains_key(**id))
                .or(order.first())
                .map(|id| (*id).to_string())
        };
        let node_id = chosen.ok_or(PushDirectoryError::NoPushNode)?;
        let addr = nodes
            .iter()
            .find(|n| n.id == node_id)
            .and_then(|n| n.grpc_addr.clone())
            .ok_or(PushDirectoryError::NoPushNode)?;
        let client = PushClient::new(self.channel(&node_id, &addr)?);
        Ok(PushOwner { node_id, client })
    }

    /// A connection to `node_id` failed: [`Self::route`] skips it for
    /// [`SUSPECT_FOR`]. Shared by every clone of this directory.
    pub fn suspect(&self, node_id: &str) {
        let mut suspects = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
        if suspects
            .insert(node_id.to_string(), Instant::now() + SUSPECT_FOR)
            .is_none()
        {
            tracing::warn!(
                node = node_id,
                "Cannot connect to a push node; routing its rooms to the next node for a while."
            );
        }
    }

    /// A client for a given node (for per-node streams).
    pub fn client_for(
        &self,
        node_id: &str,
        addr: &str,
    ) -> Result<PushClient<InternalChannel>, PushDirectoryError> {
        Ok(PushClient::new(self.channel(node_id, addr)?))
    }

    fn channel(&self, node_id: &str, addr: &str) -> Result<InternalChannel, PushDirectoryError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known_addr, channel)) = channels.get(node_id)
            && known_addr == addr
        {
            return Ok(channel.clone());
        }
        let channel = crate::grpc::lazy_channel(addr, &self.auth).map_err(|e| {
            PushDirectoryError::BadAddress {
                node: node_id.to_string(),
                reason: e.to_string(),
            }
        })?;
        channels.insert(node_id.to_string(), (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

/// The key a user is sharded by.
pub fn user_key(uid: &str) -> String {
    format!("user:{uid}")
}
