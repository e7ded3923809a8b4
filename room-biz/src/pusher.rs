//! Publishing to a room, and reading its stream, through the push API.
//!
//! Handlers talk to a [`RoomPusher`], not to gRPC: production uses
//! [`DirectoryPusher`] (the room's push owner), unit tests a recorder.

use std::time::Duration;

use common::push_directory::{PushDirectory, user_key};
use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};

use crate::error::PushError;

/// Hands room messages to the push layer and reads room streams back.
#[async_trait::async_trait]
pub(crate) trait RoomPusher: Send + Sync + 'static {
    /// Publish to everyone in `req.room`; durable messages come back with their seq.
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError>;

    /// Read `req.room`'s stream after `req.after_seq` (`limit` 0: epoch and head only).
    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError>;

    /// Publish to users wherever they are connected (ephemeral); how many
    /// had a connection.
    async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, PushError>;
}

/// Pushes to the push node that owns the room (rendezvous over live push nodes).
pub(crate) struct DirectoryPusher {
    directory: PushDirectory,
    timeout: Duration,
}

impl DirectoryPusher {
    /// Push through `directory`, failing a push that takes longer than `timeout`.
    pub(crate) fn new(directory: PushDirectory, timeout: Duration) -> Self {
        Self { directory, timeout }
    }
}

#[async_trait::async_trait]
impl RoomPusher for DirectoryPusher {
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
        let owner = self.directory.owner(&req.room)?;
        let mut request = tonic::Request::new(req);
        // A stuck push node must not hold the action (and its stream slot) forever.
        request.set_timeout(self.timeout);
        let mut client = owner.client;
        match client.push_room(request).await {
            Ok(reply) => Ok(reply.into_inner()),
            Err(status) => Err(PushError::Rpc {
                node: owner.node_id,
                status,
            }),
        }
    }

    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError> {
        let owner = self.directory.owner(&req.room)?;
        let mut request = tonic::Request::new(req);
        // Pollers wait on this read; a stuck push node must not hold them.
        request.set_timeout(self.timeout);
        let mut client = owner.client;
        match client.pull(request).await {
            Ok(reply) => Ok(reply.into_inner()),
            Err(status) => Err(PushError::Rpc {
                node: owner.node_id,
                status,
            }),
        }
    }

    async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
        let Some(first) = req.uids.first() else {
            return Ok(PushUsersReply { online: 0 });
        };
        // Any push node forwards each uid to the node owning it; starting at
        // the owner of the first saves one hop for single-user pushes.
        let owner = self.directory.owner(&user_key(first))?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(self.timeout);
        let mut client = owner.client;
        match client.push_users(request).await {
            Ok(reply) => Ok(reply.into_inner()),
            Err(status) => Err(PushError::Rpc {
                node: owner.node_id,
                status,
            }),
        }
    }
}
