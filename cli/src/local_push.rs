//! Standalone's room-biz publishes through its push node in process: the
//! `RoomPusher` of room-biz over [`push_layer::LocalPush`], so a publish costs
//! no gRPC encoding, HTTP/2 stream or task hops between two services of the
//! same process. Distributed room-biz keeps gRPC to the room's push node.

use std::future::Future;
use std::time::Duration;

use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};
use push_layer::LocalPush;
use room_biz::{PushError, RoomPusher};
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::discovery::MemoryDiscovery;
    use message_log::{HistoryLimits, MemoryLog};
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
        let push = crate::standalone::started_push(&slot)
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
