//! Room-biz's action stream for a conn node in the same process
//! (standalone): joins, leaves and client actions without encoding them,
//! an HTTP/2 stream and the connection tasks between. Distributed
//! deployments keep gRPC.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use futures::{Stream, StreamExt as _};
use proto::internal::v1::{ActionReply, ActionRequest};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::shared::Shared;

/// The replies of one action stream, each with its request's id.
pub type ActionReplies = Pin<Box<dyn Stream<Item = Result<ActionReply, Status>> + Send>>;

/// A room-biz node, called in process.
#[derive(Clone)]
pub struct LocalBiz {
    shared: Arc<Shared>,
    drain: CancellationToken,
}

/// Where a room-biz node started with one hands out its [`LocalBiz`] (filled
/// before the node registers itself, so before anyone can route to it).
pub type LocalBizSlot = Arc<OnceLock<LocalBiz>>;

impl LocalBiz {
    pub(crate) fn new(shared: Arc<Shared>, drain: CancellationToken) -> Self {
        Self { shared, drain }
    }

    /// This node's id in discovery (what a conn node routes rooms to).
    pub fn node_id(&self) -> &str {
        &self.shared.cfg.node_id
    }

    /// `Actions` for a conn node in this process: requests on `up`, replies
    /// (matched by id) on the answer, as the gRPC stream carries them. The
    /// stream stops reading when the node drains, like the gRPC one.
    pub fn actions<S>(&self, up: S) -> ActionReplies
    where
        S: Stream<Item = ActionRequest> + Send + Unpin + 'static,
    {
        let span = tracing::debug_span!("actions", peer = "in-process");
        Box::pin(crate::grpc::open_actions(
            self.shared.clone(),
            self.drain.clone(),
            up.map(Ok),
            span,
        ))
    }
}
