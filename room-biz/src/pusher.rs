//! Publishing to a room, and reading its stream, through the push API.
//!
//! Handlers talk to a [`RoomPusher`], not to gRPC: production uses
//! [`DirectoryPusher`] (the room's push owner), standalone its push node in
//! process (through [`crate::Deps::pusher`]), unit tests a recorder.

use std::future::Future;
use std::time::Duration;

use common::push_directory::{PushDirectory, user_key};
use proto::internal::v1::push_client::PushClient;
use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};

use common::grpc::InternalChannel;

use crate::error::PushError;
use crate::publish_links::{LinkError, PublishLinks};

/// Hands room messages to the push layer and reads room streams back.
#[async_trait::async_trait]
pub trait RoomPusher: Send + Sync + 'static {
    /// Publish to everyone in `req.room`; durable messages come back with their seq.
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError>;

    /// Read `req.room`'s stream after `req.after_seq` (`limit` 0: epoch and head only).
    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError>;

    /// Publish to users wherever they are connected (ephemeral); how many
    /// had a connection.
    async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, PushError>;
}

/// Pushes to the push node that owns the room (rendezvous over live push
/// nodes), or to the next one in rendezvous order while the owner cannot be
/// reached (see `common::push_directory`).
pub(crate) struct DirectoryPusher {
    directory: PushDirectory,
    timeout: Duration,
    /// Room publishes go on one stream per push node (unary calls while a
    /// node has none).
    links: PublishLinks,
}

impl DirectoryPusher {
    /// Push through `directory`, failing a push that takes longer than `timeout`.
    pub(crate) fn new(directory: PushDirectory, timeout: Duration) -> Self {
        Self {
            directory,
            timeout,
            links: PublishLinks::default(),
        }
    }
}

/// Push nodes tried after the first when connections fail: with the dead
/// node suspect, the next one in rendezvous order is normally the new owner.
const MAX_REROUTES: usize = 2;

impl DirectoryPusher {
    /// Call `key`'s push node with `call`; a call that could not connect was
    /// never sent, so the node is marked suspect and the call goes to the next
    /// node in rendezvous order at once (which accepts the room: seqs come
    /// from the log, whichever node appends).
    async fn call<Req, Rep, F, Fut>(&self, key: &str, req: Req, call: F) -> Result<Rep, PushError>
    where
        Req: Clone,
        F: Fn(PushClient<InternalChannel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Rep>, tonic::Status>>,
    {
        let mut reroutes = 0;
        loop {
            let owner = self.directory.route(key)?;
            let mut request = common::trace::request(req.clone());
            // A stuck push node must not hold the caller (an action and its
            // stream slot, a poller) forever.
            request.set_timeout(self.timeout);
            match call(owner.client, request).await {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) if common::grpc::never_sent(&status) => {
                    self.directory.suspect(&owner.node_id);
                    if reroutes == MAX_REROUTES {
                        return Err(PushError::Rpc {
                            node: owner.node_id,
                            status,
                        });
                    }
                    reroutes += 1;
                    tracing::debug!(node = %owner.node_id, key, %status, "Push node unreachable; trying the next owner.");
                }
                Err(status) => {
                    return Err(PushError::Rpc {
                        node: owner.node_id,
                        status,
                    });
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl RoomPusher for DirectoryPusher {
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
        let owner = self.directory.route(&req.room)?;
        let req = match self.links.link(&owner).await {
            Some(link) => {
                let traceparent = common::trace::traceparent(&tracing::Span::current());
                match link.call(req, traceparent, self.timeout).await {
                    Ok(outcome) => {
                        return outcome.map_err(|status| PushError::Rpc {
                            node: owner.node_id,
                            status,
                        });
                    }
                    Err(LinkError::Unknown(status)) => {
                        return Err(PushError::Rpc {
                            node: owner.node_id,
                            status,
                        });
                    }
                    Err(LinkError::NotSent(req)) => req,
                }
            }
            None => req,
        };
        let room = req.room.clone();
        self.call(&room, req, |mut client, request| async move {
            client.push_room(request).await
        })
        .await
    }

    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError> {
        let room = req.room.clone();
        self.call(&room, req, |mut client, request| async move {
            client.pull(request).await
        })
        .await
    }

    async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
        let Some(first) = req.uids.first() else {
            return Ok(PushUsersReply { online: 0 });
        };
        // Any push node forwards each uid to the node owning it; starting at
        // the owner of the first saves one hop for single-user pushes.
        let key = user_key(first);
        self.call(&key, req, |mut client, request| async move {
            client.push_users(request).await
        })
        .await
    }
}
