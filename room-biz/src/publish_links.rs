//! PushRoom calls to push nodes on one `Publish` stream per node.
//!
//! A publish used to be a unary call: an HTTP/2 stream, request and response
//! headers, trailers and a server task each. Here each push node gets one
//! long-lived stream, opened on first use; a call is one message each way,
//! matched by id. When the stream cannot be had (the node is unreachable,
//! refuses it, or predates the Publish RPC) the caller falls back to the
//! unary call, which also keeps its rerouting when a node cannot be reached.
//!
//! Outcomes keep the unary call's meaning: the node's answer comes back as
//! the same status; a call that was never handed to the stream is given
//! back to the caller to send otherwise; a call in flight when the stream
//! ends or past its deadline is *unknown* (it may have been applied).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::grpc::InternalChannel;
use common::push_directory::PushOwner;
use futures::StreamExt as _;
use proto::internal::v1::push_client::PushClient;
use proto::internal::v1::{
    PublishCall, PublishResult, PushRoomReply, PushRoomRequest, publish_result,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// Calls queued for one stream before callers fall back to unary calls.
const LINK_QUEUE: usize = 4096;
/// How long a node that refused a stream is left alone before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// The same for a node without the Publish RPC (an older version).
const RETRY_AFTER_UNIMPLEMENTED: Duration = Duration::from_secs(60);
/// Longest wait for a node to answer a new stream (calls wait meanwhile).
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call on a stream did not get the node's answer.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// Never handed to the stream: send it another way.
    NotSent(PushRoomRequest),
    /// The stream ended, or the deadline passed, with the call in flight: it
    /// may have been applied.
    Unknown(Status),
}

/// One Publish stream per push node, by node id.
#[derive(Default)]
pub(crate) struct PublishLinks {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Default)]
struct Slot {
    link: Option<Arc<Link>>,
    retry_at: Option<Instant>,
}

impl PublishLinks {
    /// `owner`'s stream: the open one, a new one, or `None` while the node
    /// cannot have one (then the caller uses a unary call).
    pub(crate) async fn link(&self, owner: &PushOwner) -> Option<Arc<Link>> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(owner.node_id.clone()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(link) = slot.link.as_ref().filter(|l| !l.closed.is_cancelled()) {
            return Some(link.clone());
        }
        slot.link = None;
        if slot.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        let opened = tokio::time::timeout(OPEN_TIMEOUT, Link::open(owner.client.clone()))
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(
                    "no answer to a new publish stream",
                ))
            });
        match opened {
            Ok(link) => {
                slot.retry_at = None;
                slot.link = Some(link.clone());
                Some(link)
            }
            Err(status) => {
                let wait = if status.code() == tonic::Code::Unimplemented {
                    RETRY_AFTER_UNIMPLEMENTED
                } else {
                    RETRY_AFTER_FAILURE
                };
                tracing::debug!(node = %owner.node_id, %status, "No publish stream; unary calls for now.");
                slot.retry_at = Some(Instant::now() + wait);
                None
            }
        }
    }
}

/// An open Publish stream to one push node.
pub(crate) struct Link {
    calls: mpsc::Sender<PublishCall>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<PushRoomReply, Status>>>>,
    next_id: AtomicU64,
    /// Cancelled when the stream ended.
    closed: CancellationToken,
}

impl Link {
    /// Open a stream on `client`; it is open once the node answered.
    async fn open(mut client: PushClient<InternalChannel>) -> Result<Arc<Self>, Status> {
        let (calls, queued) = mpsc::channel(LINK_QUEUE);
        let results = client
            .publish(ReceiverStream::new(queued))
            .await?
            .into_inner();
        let link = Arc::new(Self {
            calls,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
        });
        tokio::spawn(read_results(link.clone(), results));
        Ok(link)
    }

    /// Send `request` (with the caller's `traceparent`) and wait at most
    /// `timeout` for the node's answer.
    pub(crate) async fn call(
        &self,
        request: PushRoomRequest,
        traceparent: String,
        timeout: Duration,
    ) -> Result<Result<PushRoomReply, Status>, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.pending().insert(id, answer);
        let call = PublishCall {
            id,
            request: Some(request),
            traceparent,
        };
        // Not handed over (full, or the stream has ended): nothing was sent.
        if let Err(refused) = self.calls.try_send(call) {
            self.pending().remove(&id);
            let call = refused.into_inner();
            return Err(LinkError::NotSent(call.request.unwrap_or_default()));
        }
        // Queued just as the stream ended, after its waiting calls were told.
        if self.closed.is_cancelled() && self.pending().remove(&id).is_some() {
            return Err(LinkError::Unknown(Status::unavailable(
                "the publish stream to the push node ended with the call queued",
            )));
        }
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(LinkError::Unknown(Status::unavailable(
                "the publish stream to the push node ended with the call in flight",
            ))),
            Err(_) => {
                self.pending().remove(&id);
                Err(LinkError::Unknown(Status::deadline_exceeded(format!(
                    "no answer from the push node within {} ms",
                    timeout.as_millis()
                ))))
            }
        }
    }

    fn pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<PushRoomReply, Status>>>>
    {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hand each result to its caller until the stream ends; then the link is
/// closed and every call still waiting learns its outcome is unknown.
async fn read_results(link: Arc<Link>, mut results: tonic::Streaming<PublishResult>) {
    loop {
        match results.next().await {
            Some(Ok(result)) => {
                if let Some(answer) = link.pending().remove(&result.id) {
                    let _ = answer.send(outcome(result.outcome));
                }
            }
            Some(Err(status)) => {
                tracing::debug!(%status, "Publish stream failed.");
                break;
            }
            None => break,
        }
    }
    link.closed.cancel();
    // Dropping the senders tells each waiting caller.
    link.pending().clear();
}

fn outcome(outcome: Option<publish_result::Outcome>) -> Result<PushRoomReply, Status> {
    match outcome {
        Some(publish_result::Outcome::Reply(reply)) => Ok(reply),
        Some(publish_result::Outcome::Error(error)) => {
            Err(Status::new(tonic::Code::from(error.code), error.message))
        }
        None => Err(Status::unknown("the push node answered without an outcome")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::grpc::{InternalAuth, lazy_channel};

    #[tokio::test]
    async fn a_node_without_a_stream_is_left_to_unary_calls_for_a_while() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let channel =
            lazy_channel(&format!("127.0.0.1:{port}"), &InternalAuth::default()).expect("channel");
        let owner = PushOwner {
            node_id: "push-gone".into(),
            client: PushClient::new(channel),
        };
        let links = PublishLinks::default();
        assert!(
            links.link(&owner).await.is_none(),
            "no stream to a dead node"
        );
        let slot = links.slots.lock().expect("slots")["push-gone"].clone();
        let retry_at = slot.lock().await.retry_at.expect("a retry time");
        assert!(retry_at > Instant::now(), "not retried at once");
        // Until then, no new attempt: the same answer, the same retry time.
        assert!(links.link(&owner).await.is_none());
        assert_eq!(slot.lock().await.retry_at, Some(retry_at));
    }

    /// A push node of a version without the Publish RPC.
    struct OlderPushNode;

    #[tonic::async_trait]
    impl proto::internal::v1::push_server::Push for OlderPushNode {
        async fn push_room(
            &self,
            _request: tonic::Request<PushRoomRequest>,
        ) -> Result<tonic::Response<PushRoomReply>, Status> {
            Ok(tonic::Response::new(PushRoomReply { epoch: 1, seq: 1 }))
        }

        async fn push_users(
            &self,
            _request: tonic::Request<proto::internal::v1::PushUsersRequest>,
        ) -> Result<tonic::Response<proto::internal::v1::PushUsersReply>, Status> {
            Err(Status::unimplemented("not here"))
        }

        async fn pull(
            &self,
            _request: tonic::Request<proto::internal::v1::PullRequest>,
        ) -> Result<tonic::Response<proto::internal::v1::PullReply>, Status> {
            Err(Status::unimplemented("not here"))
        }

        type AttachStream = tokio_stream::Empty<Result<proto::internal::v1::PushToConn, Status>>;

        async fn attach(
            &self,
            _request: tonic::Request<tonic::Streaming<proto::internal::v1::ConnToPush>>,
        ) -> Result<tonic::Response<Self::AttachStream>, Status> {
            Err(Status::unimplemented("not here"))
        }

        type PublishStream = tokio_stream::Empty<Result<PublishResult, Status>>;

        async fn publish(
            &self,
            _request: tonic::Request<tonic::Streaming<PublishCall>>,
        ) -> Result<tonic::Response<Self::PublishStream>, Status> {
            Err(Status::unimplemented("an older push node"))
        }
    }

    #[tokio::test]
    async fn a_node_without_the_publish_rpc_gets_unary_calls_for_a_minute() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(proto::internal::v1::push_server::PushServer::new(
                    OlderPushNode,
                ))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = lazy_channel(&addr.to_string(), &InternalAuth::default()).expect("channel");
        let owner = PushOwner {
            node_id: "push-old".into(),
            client: PushClient::new(channel),
        };
        let links = PublishLinks::default();
        assert!(
            links.link(&owner).await.is_none(),
            "no stream from an older node"
        );
        let slot = links.slots.lock().expect("slots")["push-old"].clone();
        let retry_at = slot.lock().await.retry_at.expect("a retry time");
        assert!(
            retry_at > Instant::now() + RETRY_AFTER_FAILURE * 10,
            "an older node is left alone longer than a failing one"
        );
        server.abort();
    }

    #[test]
    fn outcomes_keep_the_nodes_status() {
        let reply = || PushRoomReply { epoch: 3, seq: 9 };
        assert_eq!(
            outcome(Some(publish_result::Outcome::Reply(reply()))).ok(),
            Some(reply())
        );
        let refused = outcome(Some(publish_result::Outcome::Error(
            proto::internal::v1::PublishError {
                code: tonic::Code::ResourceExhausted as i32,
                message: "room r is overloaded".into(),
            },
        )))
        .expect_err("an error");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(refused.message(), "room r is overloaded");
        assert_eq!(
            outcome(None).expect_err("no outcome").code(),
            tonic::Code::Unknown
        );
    }
}
