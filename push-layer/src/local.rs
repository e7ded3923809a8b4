//! The push node's calls for callers in the same process (standalone's
//! room-biz and conn node): what the `Push` gRPC service answers, without
//! encoding the request, an HTTP/2 stream and the task hops around it.
//! Distributed deployments keep gRPC.

use std::sync::{Arc, OnceLock};

use futures::{Stream, StreamExt};
use proto::internal::v1::push_server::Push as _;
use proto::internal::v1::{
    ConnToPush, PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply,
    PushUsersRequest,
};
use tonic::Status;

pub use crate::grpc::AttachStream;
use crate::grpc::PushService;

/// A push node's service, called in process.
#[derive(Clone)]
pub struct LocalPush {
    service: Arc<PushService>,
}

/// Where a push node started with one hands out its [`LocalPush`] (filled
/// before the node registers itself, so before anyone can route to it).
pub type LocalPushSlot = Arc<OnceLock<LocalPush>>;

impl LocalPush {
    pub(crate) fn new(service: Arc<PushService>) -> Self {
        Self { service }
    }

    /// `PushRoom`: the seq of a durable message (0 for an ephemeral one).
    pub async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, Status> {
        // The request carries the caller's trace context as a gRPC call
        // would, so the push node's spans hang under the publish.
        let request = common::trace::request(req);
        Ok(self.service.push_room(request).await?.into_inner())
    }

    /// `Pull`: a room's stream after `after_seq`.
    pub async fn pull(&self, req: PullRequest) -> Result<PullReply, Status> {
        Ok(self
            .service
            .pull(common::trace::request(req))
            .await?
            .into_inner())
    }

    /// `PushUsers`: how many of the users had a connection.
    pub async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, Status> {
        Ok(self
            .service
            .push_users(common::trace::request(req))
            .await?
            .into_inner())
    }

    /// This push node's id in discovery (what a conn node attaches to).
    pub fn node_id(&self) -> &str {
        self.service.node_id()
    }

    /// `Attach` for a conn node in this process: `up` carries its hello, then
    /// its room interest and user presence; the answer is its frames, the
    /// same ones a gRPC stream would carry, without encoding them.
    pub async fn attach<S>(&self, up: S) -> Result<AttachStream, Status>
    where
        S: Stream<Item = ConnToPush> + Send + Unpin + 'static,
    {
        self.service.attach_conn(up.map(Ok)).await
    }
}
