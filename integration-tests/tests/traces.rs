//! OpenTelemetry traces across processes: room-biz, a push node and a conn
//! node as separate processes export to a real OTLP/gRPC receiver in the
//! test; one published message must be one trace that runs from the
//! publish in room-biz through the push node to the socket write on the
//! conn node, parent after parent: carried inline in the notify when it is
//! small, pulled by the conn node (the Pull in the same trace) when it is not.

use std::time::Duration;

use integration_tests::otlp::{OtlpReceiver, ReceivedSpan, ancestry};
use integration_tests::procs::{Topology, TopologyOptions};
use integration_tests::{raw_join, read_deliveries};
use roomcast_client::RawConnection;

/// How long spans may take to arrive (the exporters batch every 100 ms here).
const ARRIVAL: Duration = Duration::from_secs(30);

fn names(chain: &[&ReceivedSpan]) -> Vec<String> {
    chain
        .iter()
        .map(|s| format!("{}:{}", s.service, s.name))
        .collect()
}

/// Poll the receiver until `found` finds what it looks for, at most [`ARRIVAL`].
async fn wait_for<T>(
    receiver: &OtlpReceiver,
    what: &str,
    found: impl Fn(&[ReceivedSpan]) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    loop {
        let spans = receiver.spans();
        if let Some(result) = found(&spans) {
            return Ok(result);
        }
        if tokio::time::Instant::now() > deadline {
            let seen: Vec<String> = spans
                .iter()
                .map(|s| format!("{}:{} {}", s.service, s.name, s.trace_id))
                .collect();
            anyhow::bail!("{what} never arrived; spans received:\n{}", seen.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publish a note through the backend API; its seq.
async fn publish(t: &Topology, room: &str, text: &str) -> anyhow::Result<u64> {
    let published: serde_json::Value = t
        .backend()
        .post(format!("{}/v1/rooms/{room}/messages", t.backend_url))
        .json(&serde_json::json!({ "kind": "note", "body": { "text": text } }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    published["seq"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no seq in {published}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_published_message_is_one_trace_from_biz_through_push_to_the_socket_write()
-> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let t = Topology::start(TopologyOptions {
        push: 1,
        conn: 1,
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                receiver.endpoint.clone(),
            ),
            ("OTEL_TRACES_SAMPLER".into(), "always_on".into()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        ..TopologyOptions::default()
    })
    .await?;
    let room = t.create_room("traced").await?;
    let mut raw = RawConnection::connect(&t.ws_url(0)?, Some(proto::PROTOBUF_SUBPROTOCOL)).await?;
    raw.hello(&t.token("tracy"), integration_tests::PATIENCE)
        .await?;
    raw_join(&mut raw, &room, None).await?;

    // The join is traced too: the conn node's span is the parent of
    // room-biz's `biz.join` (the join rides the action stream).
    let join = wait_for(&receiver, "the join's trace", |spans| {
        spans
            .iter()
            .filter(|s| s.service == "roomcast-biz" && s.name == "biz.join")
            .map(|s| names(&ancestry(spans, s)))
            .find(|chain| chain.len() > 1)
    })
    .await?;
    assert_eq!(join, ["roomcast-biz:biz.join", "roomcast-conn:conn.join"]);

    let seq = publish(&t, &room, "follow me").await?;
    assert!(seq >= 1);
    let delivered = read_deliveries(&mut raw, 1).await?;
    assert_eq!(delivered.last().map(|m| m.seq), Some(seq));

    // The socket write of the delivery, its ancestry up to the publish.
    let chain = wait_for(&receiver, "the message's socket write", |spans| {
        spans
            .iter()
            .filter(|s| s.service == "roomcast-conn" && s.name == "conn.socket_write")
            .map(|s| ancestry(spans, s))
            .find(|chain| chain.last().is_some_and(|root| root.name == "biz.publish"))
            .map(|chain| chain.into_iter().cloned().collect::<Vec<ReceivedSpan>>())
    })
    .await?;
    let refs: Vec<&ReceivedSpan> = chain.iter().collect();
    let shown = names(&refs);
    let trace_id = &chain[0].trace_id;
    assert!(
        chain.iter().all(|s| &s.trace_id == trace_id),
        "one trace id: {shown:?}"
    );
    // Leaf first: the socket write, the conn node's notify, the push node's
    // append, its PushRoom call, room-biz's publish.
    let expected_order = [
        "roomcast-conn:conn.socket_write",
        "roomcast-conn:conn.notify",
        "roomcast-push:push.append",
        "roomcast-push:/roomcast.internal.v1.Push/PushRoom",
        "roomcast-biz:biz.publish",
    ];
    assert_eq!(shown, expected_order, "parent chain");
    for service in ["roomcast-biz", "roomcast-push", "roomcast-conn"] {
        assert!(
            chain.iter().any(|s| s.service == service),
            "no span from {service}: {shown:?}"
        );
    }

    // That small message rode its notify inline (no pull). One over the
    // inline limit (16 KiB) does not: the conn node pulls it, and the Pull
    // belongs to the message's trace, under the conn node's notify.
    let big_seq = publish(&t, &room, &"x".repeat(20 * 1024)).await?;
    let delivered = read_deliveries(&mut raw, 1).await?;
    assert_eq!(delivered.last().map(|m| m.seq), Some(big_seq));
    let pulled = wait_for(
        &receiver,
        "the pull of the message too big to ride inline",
        |spans| {
            spans
                .iter()
                .filter(|s| {
                    s.service == "roomcast-push"
                        && s.name.ends_with("/Pull")
                        && s.trace_id != *trace_id
                })
                .map(|s| names(&ancestry(spans, s)))
                .find(|chain| {
                    chain
                        .last()
                        .is_some_and(|root| root == "roomcast-biz:biz.publish")
                })
        },
    )
    .await?;
    assert_eq!(
        pulled,
        [
            "roomcast-push:/roomcast.internal.v1.Push/Pull",
            "roomcast-conn:conn.notify",
            "roomcast-push:push.append",
            "roomcast-push:/roomcast.internal.v1.Push/PushRoom",
            "roomcast-biz:biz.publish",
        ],
        "the pull's parent chain"
    );
    Ok(())
}
