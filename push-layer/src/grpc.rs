//! The `Push` gRPC service: proto ↔ hub, and forwarding to the owning node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use common::grpc::InternalChannel;
use common::push_directory::user_key;
use futures::{Stream, StreamExt};
use proto::client::v1::RoomMessage;
use proto::internal::v1::push_client::PushClient;
use proto::internal::v1::push_server::Push;
use proto::internal::v1::{
    ConnToPush, PublishCall, PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushToConn,
    PushUsersReply, PushUsersRequest, RoomEphemeral, conn_to_push, push_to_conn,
};
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::hub::Hub;

/// Metadata marking a call already forwarded once, so views that disagree
/// during a membership change cannot bounce a request forever.
const FORWARDED: &str = "x-roomcast-forwarded";
/// Longest room id accepted.
const MAX_ROOM_ID: usize = 128;
/// Owners tried after the first when connections to them fail.
const MAX_REROUTES: usize = 2;

pub(crate) struct PushService {
    hub: Arc<Hub>,
}

impl PushService {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }

    /// Count one PushRoom call that came `via` a stream or as a unary call.
    pub(crate) fn count_room_call(&self, via: &str) {
        self.hub.metrics.room_calls.with_label_values(&[via]).inc();
    }

    /// This node's id in discovery.
    pub(crate) fn node_id(&self) -> &str {
        &self.hub.cfg.node_id
    }

    /// An Attach stream from a conn node: its hello first, then its room
    /// interest and user presence on `inbound`; the answer is the stream of
    /// frames for that node. Over gRPC `inbound` is the request stream; in
    /// process (standalone) it is the conn node's channel itself.
    pub(crate) async fn attach_conn<S>(&self, mut inbound: S) -> Result<AttachStream, Status>
    where
        S: Stream<Item = Result<ConnToPush, Status>> + Send + Unpin + 'static,
    {
        if self.hub.is_shutting_down() {
            return Err(Error::ShuttingDown.into());
        }
        let (node_id, accepts_batches): (Arc<str>, bool) = match inbound.next().await.transpose()? {
            Some(ConnToPush {
                msg: Some(conn_to_push::Msg::Hello(hello)),
            }) if !hello.node_id.is_empty() => (Arc::from(hello.node_id), hello.accepts_batches),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of Attach must be a hello with a node id",
                ));
            }
        };
        let (handle, rx) = self.hub.attach(node_id.clone());
        let hub = self.hub.clone();
        let reader_handle = handle.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = inbound.next() => next,
                    _ = reader_handle.kill.cancelled() => break,
                };
                match next {
                    Some(Ok(ConnToPush {
                        msg: Some(conn_to_push::Msg::Interest(interest)),
                    })) => {
                        hub.interest(&node_id, &reader_handle, interest.rooms).await;
                    }
                    Some(Ok(ConnToPush {
                        msg: Some(conn_to_push::Msg::Presence(p)),
                    })) => {
                        hub.presence(&node_id, p.online, p.offline);
                    }
                    Some(Ok(_)) => {
                        tracing::debug!(%node_id, "Ignoring an unexpected attach message.");
                    }
                    None => break,
                    Some(Err(status)) => {
                        tracing::debug!(%node_id, %status, "Attach stream failed.");
                        break;
                    }
                }
            }
            reader_handle.kill.cancel();
            hub.detach(&node_id, reader_handle.generation);
        });
        let stream = crate::conn_nodes::downstream(
            rx,
            accepts_batches,
            self.hub.cfg.pull_bytes_max,
            self.hub.metrics.clone(),
        )
        .take_until(handle.kill.cancelled_owned())
        .map(Ok);
        Ok(Box::pin(stream))
    }

    /// The node to forward a call for `key` to, if it is another node and
    /// this call may still be forwarded. A node this one could not connect to
    /// a moment ago is skipped for the next in rendezvous order (see
    /// `common::push_directory`), which may be this node.
    fn remote_owner<T>(
        &self,
        key: &str,
        request: &Request<T>,
    ) -> Option<common::push_directory::PushOwner> {
        if request.metadata().contains_key(FORWARDED) {
            return None;
        }
        match self.hub.directory.route(key) {
            Ok(owner) if owner.node_id != self.hub.cfg.node_id => Some(owner),
            _ => None,
        }
    }

    /// Forward `request` for `key` to its owner with `call`, or `None` to
    /// serve it here: when this node owns `key`, or when the owner could not
    /// be connected to (the call was never sent; the owner is suspect and
    /// the next one in rendezvous order is tried — this node accepts any
    /// room, seqs coming from the log whichever node appends).
    async fn forward<Req, Rep, F, Fut>(
        &self,
        key: &str,
        request: &Request<Req>,
        call: F,
    ) -> Option<Result<Response<Rep>, Status>>
    where
        Req: Clone,
        F: Fn(PushClient<InternalChannel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Rep>, Status>>,
    {
        for _ in 0..=MAX_REROUTES {
            let owner = self.remote_owner(key, request)?;
            match call(owner.client, forwarded(request.get_ref().clone())).await {
                Ok(reply) => return Some(Ok(reply)),
                Err(status) if common::grpc::never_sent(&status) => {
                    self.hub.directory.suspect(&owner.node_id);
                }
                Err(status) => {
                    return Some(Err(Status::from(Error::Forward(format!(
                        "{}: {}",
                        owner.node_id,
                        status.message()
                    )))));
                }
            }
        }
        None
    }
}

fn forwarded<T>(message: T) -> Request<T> {
    let mut request = common::trace::request(message);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}

fn check_room(room: &str) -> Result<(), Status> {
    if room.is_empty() || room.len() > MAX_ROOM_ID {
        return Err(Error::Invalid(format!("room id must be 1..={MAX_ROOM_ID} bytes")).into());
    }
    Ok(())
}

/// The frames of one Attach stream, for its conn node.
pub type AttachStream = Pin<Box<dyn Stream<Item = Result<PushToConn, Status>> + Send + 'static>>;

impl PushService {
    /// One PushRoom call, as a unary call or from a Publish stream.
    pub(crate) async fn push_room_call(
        &self,
        request: Request<PushRoomRequest>,
    ) -> Result<PushRoomReply, Status> {
        check_room(&request.get_ref().room)?;
        let room = request.get_ref().room.clone();
        let forwarded = self
            .forward(&room, &request, |mut client, request| async move {
                client.push_room(request).await
            })
            .await;
        if let Some(reply) = forwarded {
            return reply.map(Response::into_inner);
        }
        let req = request.into_inner();
        let ts_ms = common::time::now_ms();
        if !req.durable {
            let frame = PushToConn {
                msg: Some(push_to_conn::Msg::Ephemeral(RoomEphemeral {
                    room: req.room.clone(),
                    kind: req.kind,
                    body: req.body,
                    ts_ms,
                })),
            };
            self.hub.publish_ephemeral(&req.room, frame);
            return Ok(PushRoomReply { epoch: 0, seq: 0 });
        }
        let message = RoomMessage {
            seq: 0,
            kind: req.kind,
            body: req.body,
            sender: req.sender,
            ts_ms,
            priority: req.priority,
        };
        let (epoch, seq) = self.hub.publish(&req.room, message).await?;
        Ok(PushRoomReply { epoch, seq })
    }
}

#[tonic::async_trait]
impl Push for PushService {
    async fn push_room(
        &self,
        request: Request<PushRoomRequest>,
    ) -> Result<Response<PushRoomReply>, Status> {
        self.count_room_call("unary");
        self.push_room_call(request).await.map(Response::new)
    }

    async fn push_users(
        &self,
        request: Request<PushUsersRequest>,
    ) -> Result<Response<PushUsersReply>, Status> {
        let forward_allowed = !request.metadata().contains_key(FORWARDED);
        let req = request.into_inner();
        let ts_ms = common::time::now_ms();
        let mut local = Vec::new();
        let mut remote: std::collections::HashMap<
            String,
            (common::push_directory::PushOwner, Vec<String>),
        > = std::collections::HashMap::new();
        for uid in req.uids {
            match self.hub.directory.owner(&user_key(&uid)) {
                Ok(owner) if forward_allowed && owner.node_id != self.hub.cfg.node_id => {
                    remote
                        .entry(owner.node_id.clone())
                        .or_insert_with(|| (owner, Vec::new()))
                        .1
                        .push(uid);
                }
                _ => local.push(uid),
            }
        }
        let mut online = self.hub.push_users_local(
            &local,
            &req.kind,
            &req.body,
            ts_ms,
            req.removal.as_ref(),
            req.revocation.as_ref(),
        );
        for (node, (mut owner, uids)) in remote {
            let sub = PushUsersRequest {
                uids,
                kind: req.kind.clone(),
                body: req.body.clone(),
                removal: req.removal.clone(),
                revocation: req.revocation,
            };
            match owner.client.push_users(forwarded(sub)).await {
                Ok(reply) => online += reply.into_inner().online,
                Err(status) => {
                    return Err(Error::Forward(format!("{node}: {}", status.message())).into());
                }
            }
        }
        Ok(Response::new(PushUsersReply { online }))
    }

    async fn pull(&self, request: Request<PullRequest>) -> Result<Response<PullReply>, Status> {
        check_room(&request.get_ref().room)?;
        let room = request.get_ref().room.clone();
        let forwarded = self
            .forward(&room, &request, |mut client, request| async move {
                client.pull(request).await
            })
            .await;
        if let Some(reply) = forwarded {
            return reply;
        }
        let req = request.into_inner();
        Ok(Response::new(
            self.hub.pull(&req.room, req.after_seq, req.limit).await?,
        ))
    }

    type AttachStream = AttachStream;

    type PublishStream = crate::publish_stream::PublishStream;

    async fn publish(
        &self,
        request: Request<Streaming<PublishCall>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        if self.hub.is_shutting_down() {
            return Err(Error::ShuttingDown.into());
        }
        let service = Arc::new(PushService::new(self.hub.clone()));
        let stopping = self.hub.shutdown_token();
        Ok(Response::new(crate::publish_stream::serve(
            request.into_inner(),
            stopping,
            move |request| {
                let service = service.clone();
                async move {
                    service.count_room_call("stream");
                    service.push_room_call(Request::new(request)).await
                }
            },
        )))
    }

    async fn attach(
        &self,
        request: Request<Streaming<ConnToPush>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        Ok(Response::new(self.attach_conn(request.into_inner()).await?))
    }
}
