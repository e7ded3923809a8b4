//! The link to room-biz against a biz node of the previous protocol (joins and
//! leaves only as unary calls), served on a real socket.

use std::sync::atomic::AtomicUsize;

use common::discovery::{MemoryDiscovery, NodeInfo};
use proto::internal::v1::LeaveAck;
use proto::internal::v1::biz_server::{Biz, BizServer};
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use super::*;

/// A room-biz node from before joins rode the action stream: it takes a join
/// or a leave on the stream for an unnamed action and refuses it.
#[derive(Default)]
struct OlderBiz {
    unary_joins: AtomicUsize,
    unary_leaves: AtomicUsize,
    stream_requests: Arc<AtomicUsize>,
}

/// The service wrapper (the test keeps the counters).
struct OlderBizService(Arc<OlderBiz>);

#[tonic::async_trait]
impl Biz for OlderBizService {
    async fn authorize_join(
        &self,
        request: Request<JoinRequest>,
    ) -> Result<Response<JoinDecision>, Status> {
        self.0.unary_joins.fetch_add(1, Ordering::SeqCst);
        let req = request.into_inner();
        Ok(Response::new(JoinDecision {
            snapshot: Some(RoomSnapshot {
                room: req.room,
                title: "from the unary call".into(),
                ..RoomSnapshot::default()
            }),
            code: Code::Ok as i32,
            message: String::new(),
        }))
    }

    async fn member_left(
        &self,
        _request: Request<LeaveNotice>,
    ) -> Result<Response<LeaveAck>, Status> {
        self.0.unary_leaves.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(LeaveAck {}))
    }

    type ActionsStream = tokio_stream::wrappers::ReceiverStream<Result<ActionReply, Status>>;

    async fn actions(
        &self,
        request: Request<Streaming<ActionRequest>>,
    ) -> Result<Response<Self::ActionsStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let seen = self.0.stream_requests.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = inbound.next().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let reply = ActionReply {
                    id: req.id,
                    code: Code::BadRequest as i32,
                    message: format!("unknown action {}", req.action),
                    ..ActionReply::default()
                };
                if tx.send(Ok(reply)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
}

async fn serve_older_biz() -> (Arc<OlderBiz>, MemoryDiscovery, CancellationToken) {
    let biz = Arc::new(OlderBiz::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let stop = CancellationToken::new();
    let server = tonic::transport::Server::builder()
        .add_service(BizServer::new(OlderBizService(biz.clone())))
        .serve_with_incoming_shutdown(
            common::grpc::incoming(listener),
            stop.clone().cancelled_owned(),
        );
    tokio::spawn(server);
    let discovery = MemoryDiscovery::new();
    discovery
        .register(
            ServiceKind::Biz,
            NodeInfo {
                id: "biz-old".into(),
                grpc_addr: Some(addr),
                ..NodeInfo::default()
            },
        )
        .await
        .expect("register");
    (biz, discovery, stop)
}

#[tokio::test]
async fn an_older_biz_node_gets_unary_joins_and_leaves() {
    let (biz, discovery, stop) = serve_older_biz().await;
    let link = BizLink::new(
        &discovery,
        "conn-1".into(),
        Duration::from_secs(5),
        InternalAuth::default(),
        None,
    );

    let snapshot = link
        .authorize("bob", "r1", "s1", JoinPurpose::Join, 0)
        .await
        .expect("the join falls back to the unary call and is granted");
    assert_eq!(snapshot.title, "from the unary call");
    assert_eq!(biz.unary_joins.load(Ordering::SeqCst), 1);
    assert_eq!(
        biz.stream_requests.load(Ordering::SeqCst),
        1,
        "the first join was tried on the stream"
    );

    // The node is remembered: later joins and leaves go unary at once.
    link.authorize("carol", "r1", "s2", JoinPurpose::Join, 0)
        .await
        .expect("granted");
    link.member_left("carol", "r1", "s2").await;
    assert_eq!(biz.unary_joins.load(Ordering::SeqCst), 2);
    assert_eq!(biz.unary_leaves.load(Ordering::SeqCst), 1);
    assert_eq!(biz.stream_requests.load(Ordering::SeqCst), 1);

    // Actions still ride the stream.
    let reply = link
        .action("bob", "r1", "comment".into(), bytes::Bytes::new(), "s1")
        .await;
    assert_eq!(reply.message, "unknown action comment");
    assert_eq!(biz.stream_requests.load(Ordering::SeqCst), 2);
    stop.cancel();
}
