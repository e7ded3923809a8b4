//! Scheduled rooms, inboxes and retried gifts through the whole standalone
//! system and the Rust SDK: a past schedule is refused, a scheduled room
//! starts itself and tells the invited user who is online, a user who
//! connects later finds `room_started` in their inbox, and a gift retried
//! with its request id is counted once.

use anyhow::{Context as _, bail};
use integration_tests::{Cluster, PATIENCE};
use roomcast_client::Event;
use serde_json::{Value, json};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_room_starts_itself_and_late_users_find_it_in_their_inbox() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    let backend = cluster.backend();
    let rooms = format!("{}/v1/rooms", cluster.sys.backend_url);
    let now = common::time::now_ms();

    let past = backend
        .post(&rooms)
        .json(&json!({"title": "Yesterday", "scheduled_at_ms": now - 1_000}))
        .send()
        .await?;
    assert_eq!(past.status().as_u16(), 400);

    let at = now + 1_500;
    let created: Value = backend
        .post(&rooms)
        .json(
            &json!({"title": "Soon", "owner": "host", "scheduled_at_ms": at,
                      "invite": ["bob", "carol"]}),
        )
        .send()
        .await?
        .json()
        .await?;
    let room = created["room_id"].as_str().context("room_id")?.to_owned();
    assert_eq!(created["state"], "scheduled");

    // Bob is online when it starts: the user push reaches him.
    let (_bob, mut bob_events) = cluster.client("bob").await?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, bob_events.next()).await {
            Ok(Some(Event::Ephemeral { kind, body, .. })) if kind == "room_started" => {
                let body: Value = serde_json::from_slice(&body)?;
                assert_eq!(body["room"], room.as_str());
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => bail!("bob's client closed"),
            Err(_) => bail!("no room_started for bob"),
        }
    }
    let got: Value = backend
        .get(format!("{rooms}/{room}"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(got["state"], "live");
    let started = got["started_at_ms"].as_u64().context("started_at_ms")?;
    assert!(started >= at, "started at its time, not before");

    // Carol connects later: the notice waits in her inbox.
    let (carol, _carol_events) = cluster.client("carol").await?;
    let inbox = carol.inbox(0).await?;
    assert_eq!(inbox.uid, "carol");
    let item = inbox.items.first().context("an inbox item")?;
    assert_eq!(item.kind, "room_started");
    assert_eq!(item.body["room"], room.as_str());
    assert!(carol.inbox(item.at_ms).await?.items.is_empty());

    // A gift retried with its request id is counted once.
    carol.join(&room).await?;
    let on_carol = carol.room(&room);
    let first = on_carol.gift_once("rose", 3, "carol-tap-1").await?;
    let retry = on_carol.gift_once("rose", 3, "carol-tap-1").await?;
    assert_eq!(first.seq, retry.seq, "the retry gets the first reply");
    on_carol.gift_once("rose", 1, "carol-tap-2").await?;
    let summary: Value = backend
        .get(format!("{rooms}/{room}/summary"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(summary["gifts"], 4, "{summary}");
    cluster.stop().await
}
