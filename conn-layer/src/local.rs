//! Services in this process (standalone) that a conn node calls without
//! gRPC: a push node's Attach stream and room-biz's action stream carry the
//! same messages, without protobuf encoding, HTTP/2 frames and the connection
//! tasks between. Links to nodes in other processes keep gRPC.

use std::pin::Pin;

use futures::Stream;
use futures::future::BoxFuture;
use proto::internal::v1::{ActionReply, ActionRequest, ConnToPush, PushToConn};
use tokio_stream::wrappers::ReceiverStream;

/// A push node's frames for this node, in order.
pub type PushFrames = Pin<Box<dyn Stream<Item = Result<PushToConn, tonic::Status>> + Send>>;

/// Room-biz's replies on one action stream, each with its request's id.
pub type ActionReplies = Pin<Box<dyn Stream<Item = Result<ActionReply, tonic::Status>> + Send>>;

/// A push node running in this process.
pub trait LocalPushNode: Send + Sync {
    /// Its node id in discovery: links to that node use [`Self::attach`].
    fn node_id(&self) -> &str;

    /// Open an Attach stream: `up` carries the hello, then this node's room
    /// interest and user presence, as it would over gRPC.
    fn attach(
        &self,
        up: ReceiverStream<ConnToPush>,
    ) -> BoxFuture<'static, Result<PushFrames, tonic::Status>>;
}

/// A room-biz node running in this process.
pub trait LocalBizNode: Send + Sync {
    /// Its node id in discovery: rooms routed to it use [`Self::actions`].
    fn node_id(&self) -> &str;

    /// Open an action stream: requests (joins, leaves, actions) on `up`,
    /// replies matched by id, as over gRPC.
    fn actions(&self, up: ReceiverStream<ActionRequest>) -> ActionReplies;
}
