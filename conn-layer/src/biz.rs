//! The link to room-biz: join authorization, leave notices, and client actions
//! over one multiplexed stream per biz node (replies matched by id).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::discovery::{Discovery, NodeSet, ServiceKind};
use common::grpc::{InternalAuth, InternalChannel};
use common::hashing::rendezvous_owner;
use proto::client::v1::{Code, RoomSnapshot};
use proto::internal::v1::biz_client::BizClient;
use proto::internal::v1::{
    ActionReply, ActionRequest, JoinDecision, JoinPurpose, JoinRequest, LeaveNotice,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::local::{ActionReplies, LocalBizNode};

/// How long a call waits for the first room-biz node to appear in discovery.
const VIEW_WAIT: Duration = Duration::from_secs(3);
/// Requests queued on one action stream.
const ACTION_QUEUE: usize = 1024;

/// A refusal with the client-facing code.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) code: Code,
    pub(crate) message: String,
}

impl Refusal {
    fn unavailable(message: impl Into<String>) -> Self {
        Self {
            code: Code::Unavailable,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for Refusal {
    /// A status means room-biz gave no answer (biz.proto, "Errors"): its
    /// refusals come as codes in the reply.
    fn from(status: tonic::Status) -> Self {
        let code = match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => Code::Unavailable,
            _ => Code::Internal,
        };
        Self {
            code,
            message: status.message().to_string(),
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<ActionReply>>>>;

#[derive(Clone)]
struct ActionStream {
    tx: mpsc::Sender<ActionRequest>,
    pending: Pending,
    dead: CancellationToken,
}

/// Room-biz as seen from a conn node.
pub(crate) struct BizLink {
    view: watch::Receiver<NodeSet>,
    channels: Mutex<HashMap<String, (String, InternalChannel)>>,
    /// The token every call to room-biz carries.
    auth: InternalAuth,
    streams: tokio::sync::Mutex<HashMap<String, ActionStream>>,
    next_id: AtomicU64,
    node_id: String,
    timeout: Duration,
    /// Leave notices in flight. When thousands of clients drop at once, one
    /// unbounded RPC each held ~8 KB of HTTP/2 buffers per notice and starved
    /// the joins of the clients coming back.
    leaves_in_flight: tokio::sync::Semaphore,
    /// Biz nodes that answered a join on the action stream without a
    /// decision (a version from before joins rode the stream): they get
    /// unary calls.
    unary_only: Mutex<std::collections::HashSet<String>>,
    /// The room-biz node in this process (standalone): its action stream
    /// skips gRPC.
    local: Option<Arc<dyn LocalBizNode>>,
}

/// Concurrent leave notices per conn node.
const LEAVES_IN_FLIGHT: usize = 64;

impl BizLink {
    pub(crate) fn new(
        discovery: &dyn Discovery,
        node_id: String,
        timeout: Duration,
        auth: InternalAuth,
        local: Option<Arc<dyn LocalBizNode>>,
    ) -> Self {
        Self {
            view: discovery.watch(ServiceKind::Biz),
            channels: Mutex::new(HashMap::new()),
            auth,
            streams: tokio::sync::Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            node_id,
            timeout,
            leaves_in_flight: tokio::sync::Semaphore::new(LEAVES_IN_FLIGHT),
            unary_only: Mutex::new(std::collections::HashSet::new()),
            local,
        }
    }

    /// A biz node for `room` (rendezvous, so one room's actions stay together).
    /// Right after start the view may still be empty: wait for it a little.
    async fn client(&self, room: &str) -> Result<(String, BizClient<InternalChannel>), Refusal> {
        let mut view = self.view.clone();
        let wait = async {
            loop {
                let nodes = view.borrow_and_update().clone();
                if nodes.iter().any(|n| n.grpc_addr.is_some()) {
                    return Some(nodes);
                }
                if view.changed().await.is_err() {
                    return None;
                }
            }
        };
        let Ok(Some(nodes)) = tokio::time::timeout(self.timeout.min(VIEW_WAIT), wait).await else {
            return Err(Refusal::unavailable("room service is not available"));
        };
        let node = rendezvous_owner(
            room,
            nodes
                .iter()
                .filter(|n| n.grpc_addr.is_some())
                .map(|n| n.id.as_str()),
        )
        .ok_or_else(|| Refusal::unavailable("room service is not available"))?
        .to_string();
        let addr = nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.grpc_addr.clone())
            .ok_or_else(|| Refusal::unavailable("room service is not available"))?;
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(&node) {
            Some((a, c)) if *a == addr => c.clone(),
            _ => {
                let c = common::grpc::lazy_channel(&addr, &self.auth)
                    .map_err(|e| Refusal::unavailable(e.to_string()))?;
                channels.insert(node.clone(), (addr, c.clone()));
                c
            }
        };
        Ok((node, BizClient::new(channel)))
    }

    /// May `uid` enter `room` (`purpose`: a client's join, or a re-read of
    /// the snapshot after the room's stream reset), and the snapshot it gets.
    /// Asked on the multiplexed action stream (a flash crowd of joins costs
    /// stream messages, not a unary call each), unary for an older biz node.
    pub(crate) async fn authorize(
        &self,
        uid: &str,
        room: &str,
        session_id: &str,
        purpose: JoinPurpose,
        token_iat: u64,
    ) -> Result<RoomSnapshot, Refusal> {
        let request = JoinRequest {
            uid: uid.to_string(),
            room: room.to_string(),
            node_id: self.node_id.clone(),
            session_id: session_id.to_string(),
            purpose: purpose as i32,
            token_iat,
        };
        let decision = match self.stream(room).await {
            Ok((node, stream)) if !self.is_unary_only(&node) => {
                let reply = self
                    .call(
                        &stream,
                        ActionRequest {
                            room: room.to_string(),
                            uid: uid.to_string(),
                            join: Some(request.clone()),
                            traceparent: common::trace::traceparent(&tracing::Span::current()),
                            ..Default::default()
                        },
                    )
                    .await?;
                match reply.decision {
                    Some(decision) => decision,
                    None => {
                        self.mark_unary_only(node);
                        self.authorize_unary(request).await?
                    }
                }
            }
            _ => self.authorize_unary(request).await?,
        };
        match Code::try_from(decision.code) {
            Ok(Code::Ok) => Ok(decision.snapshot.unwrap_or_default()),
            Ok(code) => Err(Refusal {
                code,
                message: decision.message,
            }),
            Err(_) => Err(Refusal {
                code: Code::Internal,
                message: format!("room service answered an unknown code {}", decision.code),
            }),
        }
    }

    async fn authorize_unary(&self, request: JoinRequest) -> Result<JoinDecision, Refusal> {
        let (_, mut client) = self.client(&request.room).await?;
        Ok(tokio::time::timeout(
            self.timeout,
            client.authorize_join(common::trace::request(request)),
        )
        .await
        .map_err(|_| Refusal::unavailable("room service did not answer in time"))??
        .into_inner())
    }

    fn is_unary_only(&self, node: &str) -> bool {
        self.unary_only
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(node)
    }

    fn mark_unary_only(&self, node: String) {
        tracing::info!(%node, "Room-biz node answers joins on the action stream without a decision (an older version): unary calls from now on.");
        self.unary_only
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node);
    }

    pub(crate) async fn member_left(&self, uid: &str, room: &str, session_id: &str) {
        // A notice that cannot even start in time is dropped like one that
        // times out: room-biz heals presence when this node leaves.
        let Ok(Ok(_permit)) =
            tokio::time::timeout(self.timeout, self.leaves_in_flight.acquire()).await
        else {
            tracing::debug!(%room, "Leave notice dropped: too many in flight.");
            return;
        };
        let notice = LeaveNotice {
            uid: uid.to_string(),
            room: room.to_string(),
            session_id: session_id.to_string(),
        };
        if let Ok((node, stream)) = self.stream(room).await
            && !self.is_unary_only(&node)
        {
            let request = ActionRequest {
                room: room.to_string(),
                uid: uid.to_string(),
                leave: Some(notice.clone()),
                ..Default::default()
            };
            match self.call(&stream, request).await {
                Ok(reply) if reply.leave_done => {
                    if reply.code != Code::Ok as i32 {
                        tracing::debug!(%room, message = %reply.message, "Leave notice refused.");
                    }
                    return;
                }
                // An older node: it took the notice for an unnamed action.
                Ok(_) => self.mark_unary_only(node),
                Err(refusal) => {
                    tracing::debug!(%room, message = %refusal.message, "Leave notice failed.");
                    return;
                }
            }
        }
        let Ok((_, mut client)) = self.client(room).await else {
            return;
        };
        match tokio::time::timeout(
            self.timeout,
            client.member_left(common::trace::request(notice)),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => tracing::debug!(%room, %status, "Leave notice refused."),
            Err(_) => tracing::debug!(%room, "Leave notice timed out."),
        }
    }

    /// Forward one client action; every failure becomes a reply with a code.
    pub(crate) async fn action(
        &self,
        uid: &str,
        room: &str,
        action: String,
        payload: bytes::Bytes,
        session_id: &str,
    ) -> ActionReply {
        let request = ActionRequest {
            uid: uid.to_string(),
            room: room.to_string(),
            action,
            payload,
            session_id: session_id.to_string(),
            traceparent: common::trace::traceparent(&tracing::Span::current()),
            ..Default::default()
        };
        let reply = match self.stream(room).await {
            Ok((_, stream)) => self.call(&stream, request).await,
            Err(refusal) => Err(refusal),
        };
        reply.unwrap_or_else(|r| ActionReply {
            code: r.code as i32,
            message: r.message,
            ..Default::default()
        })
    }

    /// Send one request on `stream` (its id assigned here) and wait for the
    /// reply with the same id.
    async fn call(
        &self,
        stream: &ActionStream,
        mut request: ActionRequest,
    ) -> Result<ActionReply, Refusal> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        request.id = id;
        let (reply_tx, reply_rx) = oneshot::channel();
        stream
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, reply_tx);
        let forget = || {
            stream
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        };
        match tokio::time::timeout(self.timeout, stream.tx.send(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                forget();
                return Err(Refusal::unavailable("room service stream closed"));
            }
            Err(_) => {
                forget();
                return Err(Refusal::unavailable("room service did not answer in time"));
            }
        }
        match tokio::time::timeout(self.timeout, reply_rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(Refusal::unavailable("room service stream closed")),
            Err(_) => {
                forget();
                Err(Refusal::unavailable("room service did not answer in time"))
            }
        }
    }

    /// The action stream to `room`'s biz node (opened on first use, again
    /// after it broke), with the node's id.
    async fn stream(&self, room: &str) -> Result<(String, ActionStream), Refusal> {
        let (node, mut client) = self.client(room).await?;
        let mut streams = self.streams.lock().await;
        if let Some(s) = streams.get(&node)
            && !s.dead.is_cancelled()
        {
            return Ok((node, s.clone()));
        }
        let (tx, rx) = mpsc::channel(ACTION_QUEUE);
        let up = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut replies: ActionReplies = match self.local.as_ref().filter(|l| l.node_id() == node) {
            Some(local) => local.actions(up),
            None => Box::pin(
                tokio::time::timeout(self.timeout, client.actions(up))
                    .await
                    .map_err(|_| Refusal::unavailable("room service did not answer in time"))??
                    .into_inner(),
            ),
        };
        let stream = ActionStream {
            tx,
            pending: Pending::default(),
            dead: CancellationToken::new(),
        };
        let reader = stream.clone();
        tokio::spawn(async move {
            loop {
                match replies.next().await.transpose() {
                    Ok(Some(reply)) => {
                        let waiter = reader
                            .pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&reply.id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(reply);
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "Action stream failed.");
                        break;
                    }
                }
            }
            reader.dead.cancel();
            // Dropping the senders fails every waiter with "stream closed".
            reader
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        });
        streams.insert(node.clone(), stream.clone());
        Ok((node, stream))
    }
}

#[cfg(test)]
mod tests;
