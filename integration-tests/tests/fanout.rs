//! Every client of a room receives every message of that room exactly once,
//! in seq order, and nothing of other rooms.

use integration_tests::{Cluster, assert_seqs, collect};

const CLIENTS_PER_ROOM: usize = 12;
const MESSAGES: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rooms_each_client_gets_its_room_exactly_once_in_order() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let rooms = [
        cluster.create_room("one").await?,
        cluster.create_room("two").await?,
    ];
    let mut members = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        for i in 0..CLIENTS_PER_ROOM {
            let (client, events) = cluster.client(&format!("u{r}-{i}")).await?;
            let joined = client.join(room.as_str()).await?;
            assert_eq!(joined.start_seq, 0);
            assert!(!joined.recovered);
            members.push((room.clone(), client, events));
        }
    }
    // One publisher per room, both at once.
    let publishers = rooms.iter().map(|room| {
        let room = room.clone();
        let cluster = &cluster;
        async move {
            for i in 1..=MESSAGES {
                let seq = cluster.publish(&room, &format!("{room}:{i}")).await?;
                assert_eq!(seq, i, "seqs are dense per room");
            }
            anyhow::Ok(())
        }
    });
    futures::future::try_join_all(publishers).await?;

    for (room, _client, events) in &mut members {
        let got = collect(events, room, MESSAGES as usize).await?;
        assert_seqs(&got, 1, MESSAGES);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.body.as_ref(), format!("{room}:{}", i + 1).as_bytes());
        }
    }
    // Nothing more arrives (no duplicates): publish one marker and expect it next.
    for room in &rooms {
        cluster.publish(room, "marker").await?;
    }
    for (room, _client, events) in &mut members {
        let got = collect(events, room, 1).await?;
        assert_seqs(&got, MESSAGES + 1, MESSAGES + 1);
    }
    assert!(
        cluster.metric("roomcast_conn_deliveries_total").await?
            >= (2 * CLIENTS_PER_ROOM as u64 * MESSAGES) as f64
    );
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_subprotocol_clients_get_the_same_stream() -> anyhow::Result<()> {
    use roomcast_client::RawConnection;
    use roomcast_client::RawEvent;
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("json").await?;
    let mut raw =
        RawConnection::connect(&cluster.sys.ws_url, Some(proto::JSON_SUBPROTOCOL)).await?;
    let hello = format!(
        r#"{{"frame":{{"hello":{{"token":"{}"}}}}}}"#,
        cluster.token("browser")
    );
    raw.send_text(hello).await?;
    let mut texts = Vec::new();
    let join = format!(r#"{{"frame":{{"join":{{"ref":1,"room":"{room}"}}}}}}"#);
    raw.send_text(join).await?;
    // Messages published before the join completes precede the client's start.
    loop {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Text(t) if t.contains("\"joined\"") => {
                texts.push(t);
                break;
            }
            RawEvent::Text(t) => texts.push(t),
            other => anyhow::bail!("expected JSON text frames, got {other:?}"),
        }
    }
    for i in 1..=3 {
        cluster.publish(&room, &format!("m{i}")).await?;
    }
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        match raw.next_frame(integration_tests::PATIENCE).await? {
            RawEvent::Text(t) => {
                let frame = proto::json::decode_server(&t)?;
                if let Some(proto::client::v1::server_frame::Frame::Delivery(d)) = frame.frame {
                    seqs.extend(d.messages.iter().map(|m| m.seq));
                }
                texts.push(t);
            }
            other => anyhow::bail!("expected JSON text frames, got {other:?}"),
        }
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(texts[0].contains("\"welcome\""), "{}", texts[0]);
    assert!(texts.iter().any(|t| t.contains("\"joined\"")));
    cluster.stop().await
}
