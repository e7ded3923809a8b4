//! The `Biz` gRPC service conn nodes call. Thin: proto in, domain call, proto
//! out; domain refusals become reply codes here and nowhere else (biz.proto,
//! "Errors").

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use proto::client::v1::{Code, RoomSnapshot};
use proto::internal::v1::biz_server::{Biz, BizServer};
use proto::internal::v1::{
    ActionReply, ActionRequest, JoinDecision, JoinPurpose, JoinRequest, LeaveAck, LeaveNotice,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::actions::ActionCall;
use crate::error::JoinError;
use crate::join::{self, Entry, JoinGrant};
use crate::revoke;
use crate::shared::Shared;

/// The service implementation.
pub(crate) struct BizService {
    shared: Arc<Shared>,
    /// Cancelled when the node drains: action streams stop reading, finish what
    /// they hold and end, so the conn node reconnects to another biz node.
    drain: CancellationToken,
}

impl BizService {
    /// A tonic server for `shared`, draining when `drain` is cancelled.
    pub(crate) fn server(shared: Arc<Shared>, drain: CancellationToken) -> BizServer<Self> {
        BizServer::new(Self { shared, drain })
    }
}

/// A refused join as the reply carries it (biz.proto, "Errors").
fn join_refusal(error: &JoinError) -> JoinDecision {
    let code = match error {
        JoinError::Missing(_) => Code::BadRequest,
        JoinError::NotFound(_) => Code::RoomNotFound,
        JoinError::Ended(_) => Code::RoomEnded,
        JoinError::Forbidden(_) => Code::Forbidden,
        JoinError::Store(_) => Code::Unavailable,
    };
    JoinDecision {
        snapshot: None,
        code: code as i32,
        message: error.to_string(),
    }
}

fn snapshot(grant: &JoinGrant) -> RoomSnapshot {
    RoomSnapshot {
        room: grant.room.id.clone(),
        title: grant.room.title.clone(),
        role: grant.role.as_str().to_owned(),
        members: grant.members,
        state: Bytes::from(grant.state_json()),
    }
}

#[tonic::async_trait]
impl Biz for BizService {
    async fn authorize_join(
        &self,
        request: Request<JoinRequest>,
    ) -> Result<Response<JoinDecision>, Status> {
        Ok(Response::new(
            decide_join(&self.shared, request.into_inner()).await,
        ))
    }

    async fn member_left(
        &self,
        request: Request<LeaveNotice>,
    ) -> Result<Response<LeaveAck>, Status> {
        record_leave(&self.shared, request.into_inner()).await?;
        Ok(Response::new(LeaveAck {}))
    }

    type ActionsStream = ReceiverStream<Result<ActionReply, Status>>;

    async fn actions(
        &self,
        request: Request<Streaming<ActionRequest>>,
    ) -> Result<Response<Self::ActionsStream>, Status> {
        let span = tracing::debug_span!("actions", peer = ?request.remote_addr());
        Ok(Response::new(open_actions(
            self.shared.clone(),
            self.drain.clone(),
            request.into_inner(),
            span,
        )))
    }
}

/// Serve one action stream from a conn node (over gRPC, or in process for
/// standalone): requests from `inbound`, replies on the returned stream.
pub(crate) fn open_actions<S>(
    shared: Arc<Shared>,
    drain: CancellationToken,
    inbound: S,
    span: tracing::Span,
) -> ReceiverStream<Result<ActionReply, Status>>
where
    S: futures::Stream<Item = Result<ActionRequest, Status>> + Send + Unpin + 'static,
{
    // Replies wait here while the conn node reads slowly; once it is full the
    // handlers below stop being polled, so memory stays bounded.
    let (reply_tx, reply_rx) = mpsc::channel(shared.cfg.action_concurrency);
    let task = serve_actions(shared, inbound, reply_tx, drain);
    // The task ends with the stream (or on drain), and tonic's graceful
    // shutdown waits for the response stream it feeds.
    tokio::spawn(task.instrument(span));
    ReceiverStream::new(reply_rx)
}

/// May the joiner enter, and with which snapshot: the answer to a unary
/// `AuthorizeJoin` and to a join carried on the action stream alike.
async fn decide_join(shared: &Shared, req: JoinRequest) -> JoinDecision {
    let rooms = &shared.backends.rooms;
    let entry = match req.purpose() {
        JoinPurpose::Join => Entry::Join,
        JoinPurpose::Resync => Entry::Resync,
    };
    // Revoked tokens join nothing, whatever the conn node remembers.
    if let Err(refused) = revoke::check(rooms.store.as_ref(), &req.uid, req.token_iat).await {
        tracing::debug!(room = %req.room, uid = %req.uid, error = %refused, "Join refused: token.");
        let (code, message, label) = match refused {
            revoke::Refused::Revoked(e) => {
                (Code::TokenRevoked, e.public_reason().to_owned(), "revoked")
            }
            revoke::Refused::Store(e) => (Code::Unavailable, e.to_string(), "unavailable"),
        };
        shared.metrics.joins.with_label_values(&[label]).inc();
        return JoinDecision {
            snapshot: None,
            code: code as i32,
            message,
        };
    }
    let result = join::authorize(
        rooms,
        &req.room,
        &req.uid,
        &req.session_id,
        &req.node_id,
        entry,
    )
    .await;
    // A resync is no join: it is counted apart.
    let label = match &result {
        Ok(_) if entry == Entry::Resync => "resync",
        Ok(_) => "ok",
        Err(error) => error.label(),
    };
    shared.metrics.joins.with_label_values(&[label]).inc();
    match result {
        Ok(grant) => {
            tracing::debug!(room = %req.room, uid = %req.uid, members = grant.members, ?entry, "Join authorized.");
            JoinDecision {
                snapshot: Some(snapshot(&grant)),
                code: Code::Ok as i32,
                message: String::new(),
            }
        }
        Err(error) => {
            tracing::debug!(room = %req.room, uid = %req.uid, %error, "Join refused.");
            join_refusal(&error)
        }
    }
}

/// A member session left: a unary `MemberLeft` or a leave on the action stream.
async fn record_leave(shared: &Shared, notice: LeaveNotice) -> Result<(), Status> {
    if notice.room.is_empty() || notice.uid.is_empty() {
        return Err(Status::invalid_argument("room and uid are required"));
    }
    let rooms = &shared.backends.rooms;
    let left = rooms
        .store
        .member_session_left(&notice.room, &notice.uid, &notice.session_id)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    rooms.session_left(&notice.room, &notice.uid, left).await;
    Ok(())
}

/// Handle one conn node's action stream: up to `action_concurrency` requests at
/// once, each replied to as soon as it is done, so one slow push does not stall
/// the others.
async fn serve_actions<S>(
    shared: Arc<Shared>,
    mut inbound: S,
    reply_tx: mpsc::Sender<Result<ActionReply, Status>>,
    drain: CancellationToken,
) where
    S: futures::Stream<Item = Result<ActionRequest, Status>> + Unpin,
{
    let limit = shared.cfg.action_concurrency;
    let mut in_flight = FuturesUnordered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                if reply_tx.send(Ok(reply)).await.is_err() {
                    tracing::debug!("Conn node closed the action stream.");
                    return;
                }
            }
            next = inbound.next(), if reading && in_flight.len() < limit => match next {
                Some(Ok(req)) => in_flight.push(perform(&shared, req)),
                Some(Err(status)) => {
                    tracing::debug!(%status, "Action stream broke.");
                    reading = false;
                }
                None => reading = false,
            },
            () = drain.cancelled(), if reading => {
                tracing::debug!("Draining: no more actions are read from this stream.");
                reading = false;
            }
            else => return,
        }
    }
}

/// Run one action and build its reply (recording metrics).
async fn perform(shared: &Shared, mut req: ActionRequest) -> ActionReply {
    if let Some(join) = req.join.take() {
        let span = common::span!("biz.join", room = %join.room);
        common::trace::follow(&span, &req.traceparent);
        let decision = decide_join(shared, join).instrument(span).await;
        return ActionReply {
            id: req.id,
            code: decision.code,
            message: decision.message.clone(),
            decision: Some(decision),
            ..Default::default()
        };
    }
    if let Some(leave) = req.leave.take() {
        let (code, message) = match record_leave(shared, leave).await {
            Ok(()) => (Code::Ok, String::new()),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                (Code::BadRequest, status.message().to_owned())
            }
            Err(status) => (Code::Unavailable, status.message().to_owned()),
        };
        return ActionReply {
            id: req.id,
            code: code as i32,
            message,
            leave_done: true,
            ..Default::default()
        };
    }
    // A child of the conn node's span for the action, when it is traced.
    let span = common::span!("biz.action", room = %req.room, action = %req.action);
    common::trace::follow(&span, &req.traceparent);
    perform_traced(shared, req).instrument(span).await
}

async fn perform_traced(shared: &Shared, req: ActionRequest) -> ActionReply {
    let call = ActionCall {
        uid: &req.uid,
        room: &req.room,
        session_id: &req.session_id,
        payload: &req.payload,
    };
    let (code, message, body) = match shared.perform(&req.action, call).await {
        Ok(body) => (Code::Ok, String::new(), body),
        Err(refusal) => (refusal.code, refusal.message, Bytes::new()),
    };
    ActionReply {
        id: req.id,
        code: code as i32,
        message,
        body,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
