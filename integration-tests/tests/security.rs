//! The internal gRPC services refuse callers without the deployment's
//! internal token: nobody on the network can publish into a room or act as a
//! user by calling push or room-biz directly.

use common::discovery::ServiceKind;
use common::grpc::{InternalAuth, lazy_channel};
use integration_tests::Cluster;
use proto::internal::v1::biz_client::BizClient;
use proto::internal::v1::push_client::PushClient;
use proto::internal::v1::{ActionRequest, PushRoomRequest};

fn grpc_addr(cluster: &Cluster, kind: ServiceKind) -> anyhow::Result<String> {
    let nodes = cluster.sys.discovery.watch(kind).borrow().clone();
    nodes
        .iter()
        .find_map(|n| n.grpc_addr.clone())
        .ok_or_else(|| anyhow::anyhow!("no {kind:?} node with a gRPC address"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_services_refuse_calls_without_the_internal_token() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("private talk").await?;
    let wrong = InternalAuth::new("not-this-deployments-token-0000")?;

    // A forged system message straight into the push layer.
    let push = grpc_addr(&cluster, ServiceKind::Push)?;
    let forged = PushRoomRequest {
        room: room.clone(),
        kind: "room_ended".into(),
        body: br#"{"by":"mallory"}"#.to_vec().into(),
        sender: "system".into(),
        priority: 0,
        durable: true,
    };
    for auth in [InternalAuth::default(), wrong.clone()] {
        let mut client = PushClient::new(lazy_channel(&push, &auth)?);
        let status = client
            .push_room(forged.clone())
            .await
            .expect_err("an unauthenticated publish");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    }

    // Acting as the host over Biz/Actions: ending her room.
    let biz = grpc_addr(&cluster, ServiceKind::Biz)?;
    let end = ActionRequest {
        id: 1,
        uid: "host".into(),
        room: room.clone(),
        action: "end_room".into(),
        payload: bytes::Bytes::from_static(b"{}"),
        session_id: "forged".into(),
        ..ActionRequest::default()
    };
    for auth in [InternalAuth::default(), wrong] {
        let mut client = BizClient::new(lazy_channel(&biz, &auth)?);
        let status = client
            .actions(futures::stream::iter([end.clone()]))
            .await
            .expect_err("an unauthenticated action stream");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    }
    let state: serde_json::Value = cluster
        .backend()
        .get(format!("{}/v1/rooms/{room}", cluster.sys.backend_url))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(state["state"], "live", "nothing ended the room");

    // The services' own token works: the legitimate path.
    let seq = cluster.publish(&room, "hello").await?;
    assert!(seq > 0);
    Ok(())
}
