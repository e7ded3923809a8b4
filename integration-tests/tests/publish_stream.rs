//! The push node's Publish stream, which carries room-biz's publishes in
//! distributed mode: calls answered by id, seqs in the order the calls were
//! sent, a bad call refused alone (the stream goes on), and no stream for a
//! caller without the internal token.

use std::collections::HashMap;
use std::time::Duration;

use common::discovery::ServiceKind;
use common::grpc::{InternalAuth, lazy_channel};
use integration_tests::Cluster;
use proto::internal::v1::push_client::PushClient;
use proto::internal::v1::{PublishCall, PullRequest, PushRoomRequest, publish_result};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const PATIENCE: Duration = Duration::from_secs(10);

fn push_addr(cluster: &Cluster) -> anyhow::Result<String> {
    let nodes = cluster
        .sys
        .discovery
        .watch(ServiceKind::Push)
        .borrow()
        .clone();
    nodes
        .iter()
        .find_map(|n| n.grpc_addr.clone())
        .ok_or_else(|| anyhow::anyhow!("no push node with a gRPC address"))
}

fn chat(room: &str, text: &str) -> PushRoomRequest {
    PushRoomRequest {
        room: room.to_owned(),
        kind: "chat".into(),
        body: format!("{text:?}").into_bytes().into(),
        sender: String::new(),
        priority: 0,
        durable: true,
    }
}

fn call(id: u64, request: Option<PushRoomRequest>) -> PublishCall {
    PublishCall {
        id,
        request,
        traceparent: String::new(),
    }
}

/// The next `n` results, by id: the seq of a reply, or the code of an error.
async fn results(
    stream: &mut tonic::Streaming<proto::internal::v1::PublishResult>,
    n: usize,
) -> anyhow::Result<HashMap<u64, Result<u64, tonic::Code>>> {
    let mut by_id = HashMap::new();
    while by_id.len() < n {
        let result = tokio::time::timeout(PATIENCE, stream.message())
            .await??
            .ok_or_else(|| anyhow::anyhow!("the stream ended after {} results", by_id.len()))?;
        let outcome = match result.outcome {
            Some(publish_result::Outcome::Reply(reply)) => Ok(reply.seq),
            Some(publish_result::Outcome::Error(error)) => Err(tonic::Code::from(error.code)),
            None => anyhow::bail!("result {} without an outcome", result.id),
        };
        anyhow::ensure!(
            by_id.insert(result.id, outcome).is_none(),
            "id {} twice",
            result.id
        );
    }
    Ok(by_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_calls_are_answered_by_id_in_order_and_bad_ones_alone() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("one stream").await?;
    let push = push_addr(&cluster)?;
    let auth = InternalAuth::new(&cluster.sys.internal_token)?;
    let mut client = PushClient::new(lazy_channel(&push, &auth)?);
    let (calls, queued) = mpsc::channel(16);
    let mut stream = client
        .publish(ReceiverStream::new(queued))
        .await?
        .into_inner();

    for (id, text) in [(7, "a"), (8, "b"), (9, "c")] {
        calls.send(call(id, Some(chat(&room, text)))).await?;
    }
    let got = results(&mut stream, 3).await?;
    let seq = |id: u64| got[&id].map_err(|code| anyhow::anyhow!("call {id} refused: {code:?}"));
    let first = seq(7)?;
    assert_eq!(
        (seq(8)?, seq(9)?),
        (first + 1, first + 2),
        "seqs in call order"
    );

    // A call without a request and one for no room: each refused by id.
    calls.send(call(10, None)).await?;
    calls.send(call(11, Some(chat("", "nowhere")))).await?;
    let refused = results(&mut stream, 2).await?;
    assert_eq!(refused[&10], Err(tonic::Code::InvalidArgument));
    assert_eq!(refused[&11], Err(tonic::Code::InvalidArgument));

    // The stream goes on, and the room holds exactly what was published.
    calls.send(call(12, Some(chat(&room, "d")))).await?;
    assert_eq!(results(&mut stream, 1).await?[&12], Ok(first + 3));
    let pulled = client
        .pull(PullRequest {
            room: room.clone(),
            after_seq: first - 1,
            limit: 10,
        })
        .await?
        .into_inner();
    let bodies: Vec<String> = pulled
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(bodies, ["\"a\"", "\"b\"", "\"c\"", "\"d\""]);

    // Closing the call side ends the stream once everything is answered.
    drop(calls);
    let end = tokio::time::timeout(PATIENCE, stream.message()).await??;
    assert!(end.is_none(), "the stream ends with its calls: {end:?}");

    // No stream without the deployment's internal token.
    let mut stranger = PushClient::new(lazy_channel(&push, &InternalAuth::default())?);
    let (_calls, queued) = mpsc::channel::<PublishCall>(1);
    let status = stranger
        .publish(ReceiverStream::new(queued))
        .await
        .expect_err("a stream without the internal token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    Ok(())
}
