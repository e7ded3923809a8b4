//! Standalone's services call each other in process: room-biz publishes
//! through its push node ([`push_layer::LocalPush`] as a `RoomPusher`), the
//! conn node attaches to that push node (`LocalPushNode`) and sends joins,
//! leaves and actions to room-biz ([`room_biz::LocalBiz`] as a
//! `LocalBizNode`). So a publish, its notify and a join cost no gRPC
//! encoding, HTTP/2 stream or task hops between two services of the same
//! process. Distributed deployments keep gRPC.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use proto::internal::v1::{
    ActionRequest, ConnToPush, PullReply, PullRequest, PushRoomReply, PushRoomRequest,
    PushUsersReply, PushUsersRequest,
};
use push_layer::LocalPush;
use room_biz::{PushError, RoomPusher};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// The push node's name in errors.
const NODE: &str = "standalone";

/// Room-biz's pusher in standalone.
pub(crate) struct LocalPusher {
    push: LocalPush,
    /// Like the gRPC pusher's deadline: a stuck push layer must not hold an
    /// action or a poller forever.
    timeout: Duration,
}

impl LocalPusher {
    pub(crate) fn new(push: LocalPush, timeout: Duration) -> Self {
        Self { push, timeout }
    }

    async fn call<T>(&self, call: impl Future<Output = Result<T, Status>>) -> Result<T, PushError> {
        let status = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(status)) => status,
            Err(_) => Status::deadline_exceeded("the push layer did not answer in time"),
        };
        Err(PushError::Rpc {
            node: NODE.to_owned(),
            status,
        })
    }
}

#[async_trait::async_trait]
impl RoomPusher for LocalPusher {
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
        self.call(self.push.push_room(req)).await
    }

    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError> {
        self.call(self.push.pull(req)).await
    }

    async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
        self.call(self.push.push_users(req)).await
    }
}

/// The conn node's action stream to standalone's room-biz node.
pub(crate) struct LocalActions {
    biz: room_biz::LocalBiz,
}

impl LocalActions {
    pub(crate) fn new(biz: room_biz::LocalBiz) -> Self {
        Self { biz }
    }
}

impl conn_layer::LocalBizNode for LocalActions {
    fn node_id(&self) -> &str {
        self.biz.node_id()
    }

    fn actions(&self, up: ReceiverStream<ActionRequest>) -> conn_layer::ActionReplies {
        self.biz.actions(up)
    }
}

/// The conn node's link to standalone's push node.
pub(crate) struct LocalAttach {
    push: LocalPush,
}

impl LocalAttach {
    pub(crate) fn new(push: LocalPush) -> Self {
        Self { push }
    }
}

impl conn_layer::LocalPushNode for LocalAttach {
    fn node_id(&self) -> &str {
        self.push.node_id()
    }

    fn attach(
        &self,
        up: ReceiverStream<ConnToPush>,
    ) -> BoxFuture<'static, Result<conn_layer::PushFrames, Status>> {
        let push = self.push.clone();
        Box::pin(async move { push.attach(up).await })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::discovery::MemoryDiscovery;
    use futures::StreamExt;
    use message_log::{HistoryLimits, MemoryLog};
    use proto::internal::v1::{AttachHello, RoomCount, RoomInterest, conn_to_push, push_to_conn};
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A push node run as standalone runs it, and room-biz's pusher over it.
    async fn pusher(stop: &CancellationToken) -> LocalPusher {
        let slot = push_layer::LocalPushSlot::default();
        let cfg = push_layer::Config {
            node_id: "push-local-test".into(),
            internal_token: "local-push-test-token-0123456789abcdef".into(),
            ..push_layer::Config::default()
        };
        let deps = push_layer::Deps {
            discovery: Arc::new(MemoryDiscovery::new()),
            log: Arc::new(MemoryLog::new(HistoryLimits::default())),
            registry: prometheus::Registry::new(),
            local: Some(slot.clone()),
        };
        let listener = common::grpc::InProcessListener::bind();
        tokio::spawn(push_layer::run(cfg, deps, listener, stop.clone()));
        let push = crate::standalone::started(&slot, "the push layer")
            .await
            .expect("the push node starts");
        LocalPusher::new(push, Duration::from_secs(5))
    }

    fn message(room: &str, body: &str, durable: bool) -> PushRoomRequest {
        PushRoomRequest {
            room: room.into(),
            kind: "chat".into(),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
            durable,
            ..PushRoomRequest::default()
        }
    }

    #[tokio::test]
    async fn publishes_read_back_in_order_without_grpc() {
        let stop = CancellationToken::new();
        let pusher = pusher(&stop).await;
        let first = pusher
            .push_room(message("r1", "a", true))
            .await
            .expect("push");
        let second = pusher
            .push_room(message("r1", "b", true))
            .await
            .expect("push");
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(first.epoch, second.epoch);
        // Ephemeral messages take no seq.
        let ephemeral = pusher
            .push_room(message("r1", "c", false))
            .await
            .expect("push");
        assert_eq!(ephemeral.seq, 0);
        let read = pusher
            .pull(PullRequest {
                room: "r1".into(),
                after_seq: 0,
                limit: 10,
            })
            .await
            .expect("pull");
        let bodies: Vec<_> = read.messages.iter().map(|m| m.body.clone()).collect();
        assert_eq!(bodies, vec![&b"a"[..], &b"b"[..]]);
        stop.cancel();
    }

    fn hello(node_id: &str) -> ConnToPush {
        ConnToPush {
            msg: Some(conn_to_push::Msg::Hello(AttachHello {
                node_id: node_id.into(),
                accepts_batches: true,
            })),
        }
    }

    /// The next entry of an Attach stream (batches read entry by entry, as
    /// the conn node reads them); `None` when the stream ended.
    async fn next_entry(
        frames: &mut conn_layer::PushFrames,
        pending: &mut std::collections::VecDeque<push_to_conn::Msg>,
    ) -> Option<push_to_conn::Msg> {
        loop {
            if let Some(entry) = pending.pop_front() {
                return Some(entry);
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), frames.next())
                .await
                .expect("a frame within 5 s")?
                .expect("no stream error");
            match frame.msg {
                Some(push_to_conn::Msg::Batch(batch)) => {
                    pending.extend(batch.frames.into_iter().filter_map(|f| f.msg));
                }
                Some(msg) => pending.push_back(msg),
                None => {}
            }
        }
    }

    #[tokio::test]
    async fn a_conn_node_attached_in_process_gets_its_rooms_messages_and_is_let_go() {
        let stop = CancellationToken::new();
        let pusher = pusher(&stop).await;
        let attach = LocalAttach::new(pusher.push.clone());
        assert_eq!(
            conn_layer::LocalPushNode::node_id(&attach),
            "push-local-test"
        );
        let (up, rx) = tokio::sync::mpsc::channel(8);
        up.send(hello("conn-local-test")).await.expect("queued");
        let mut frames = conn_layer::LocalPushNode::attach(&attach, ReceiverStream::new(rx))
            .await
            .expect("attached");
        let interest = ConnToPush {
            msg: Some(conn_to_push::Msg::Interest(RoomInterest {
                rooms: vec![RoomCount {
                    room: "r1".into(),
                    members: 1,
                }],
            })),
        };
        up.send(interest).await.expect("queued");
        let mut pending = std::collections::VecDeque::new();
        match next_entry(&mut frames, &mut pending).await {
            Some(push_to_conn::Msg::Subscribed(s)) => {
                assert_eq!((s.room.as_str(), s.head_seq), ("r1", 0));
            }
            other => panic!("expected the subscription's ack, got {other:?}"),
        }
        let published = pusher
            .push_room(message("r1", "hello", true))
            .await
            .expect("push");
        match next_entry(&mut frames, &mut pending).await {
            Some(push_to_conn::Msg::Notify(n)) => {
                assert_eq!(
                    (n.room.as_str(), n.epoch, n.seq),
                    ("r1", published.epoch, 1)
                );
                let bodies: Vec<_> = n.messages.iter().map(|m| m.body.clone()).collect();
                assert_eq!(bodies, vec![&b"hello"[..]], "a small message rides inline");
            }
            other => panic!("expected the message's notify, got {other:?}"),
        }
        // The conn node's side closes (its link ended): the push node lets
        // it go and its stream ends, as a reset gRPC stream would.
        drop(up);
        assert!(next_entry(&mut frames, &mut pending).await.is_none());
        stop.cancel();
    }

    #[tokio::test]
    async fn an_attach_without_a_hello_is_refused() {
        let stop = CancellationToken::new();
        let pusher = pusher(&stop).await;
        let attach = LocalAttach::new(pusher.push.clone());
        let (up, rx) = tokio::sync::mpsc::channel(8);
        let interest = ConnToPush {
            msg: Some(conn_to_push::Msg::Interest(RoomInterest::default())),
        };
        up.send(interest).await.expect("queued");
        match conn_layer::LocalPushNode::attach(&attach, ReceiverStream::new(rx)).await {
            Err(status) => assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}"),
            Ok(_) => panic!("an attach without a hello was accepted"),
        }
        // A hello without a node id is no better.
        let (up, rx) = tokio::sync::mpsc::channel(8);
        up.send(hello("")).await.expect("queued");
        match conn_layer::LocalPushNode::attach(&attach, ReceiverStream::new(rx)).await {
            Err(status) => assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}"),
            Ok(_) => panic!("a hello without a node id was accepted"),
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn a_refused_request_is_an_error_that_says_it_was_not_applied() {
        let stop = CancellationToken::new();
        let pusher = pusher(&stop).await;
        let too_long = "r".repeat(500);
        match pusher.push_room(message(&too_long, "a", true)).await {
            Err(PushError::Rpc { status, .. }) => {
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn a_push_layer_that_does_not_answer_times_out() {
        let stop = CancellationToken::new();
        let mut pusher = pusher(&stop).await;
        pusher.timeout = Duration::from_millis(20);
        let stuck = std::future::pending::<Result<(), Status>>();
        match pusher.call(stuck).await {
            Err(PushError::Rpc { status, .. }) => {
                assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        stop.cancel();
    }
}
