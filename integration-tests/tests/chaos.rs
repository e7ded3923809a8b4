//! Chaos: the delivery check through a conn-node `kill -9`, a drain through
//! the admin API and a push-node `kill -9`, in one sitting, while a backend
//! publishes 16 KB messages without pause. Every service is a real process
//! (etcd, Redis, 2 push nodes, 3 conn nodes, room-biz, router).
//!
//! The promise checked at the end, for every reader: the seqs it received are
//! dense from 1 and in order (no gap, no duplicate, no reorder), reach the last
//! acknowledged seq, carry every acknowledged body, and the stream was never
//! reset (Redis kept the log).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use integration_tests::ADMIN_TOKEN;
use integration_tests::procs::{Topology, TopologyOptions};
use proto::client::v1::RoomMessage;
use roomcast_client::{Client, ConnectOptions, Event, Events};
use tokio::sync::Mutex;

/// Readers, spread over the conn nodes by the router.
const READERS: usize = 6;
/// Size of each published body.
const BODY_BYTES: usize = 16 * 1024;
/// Pause between two publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// Messages published between two faults.
const PER_PHASE: u64 = 40;
/// How long a reader may take to catch up after the last publish.
const CATCH_UP: Duration = Duration::from_secs(60);

fn options() -> TopologyOptions {
    let env = [
        ("ROOMCAST_CONN_NODE__DRAIN_WINDOW_MS", "500"),
        ("ROOMCAST_CONN_NODE__DRAIN_DEADLINE_MS", "6000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    TopologyOptions {
        push: 2,
        conn: 3,
        env,
        ..TopologyOptions::default()
    }
}

/// What one reader saw.
#[derive(Default)]
struct Seen {
    messages: Vec<RoomMessage>,
    resets: u32,
    /// Conn nodes it was connected to, in order.
    nodes: Vec<String>,
}

/// Collect `room`'s messages and connections of one reader until `stop`.
fn spawn_reader(
    mut events: Events,
    room: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Acquire) {
            let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(200), events.next()).await
            else {
                continue;
            };
            let mut seen = seen.lock().await;
            match event {
                Event::Message {
                    room: r, message, ..
                } if r == room => seen.messages.push(message),
                Event::StreamReset { room: r, .. } if r == room => seen.resets += 1,
                Event::Connected { node_id, .. } => seen.nodes.push(node_id),
                _ => {}
            }
        }
    })
}

/// The text of message `i`: its number, then filler up to [`BODY_BYTES`].
fn text(i: u64) -> String {
    let head = format!("m{i}:");
    let mut text = String::with_capacity(BODY_BYTES);
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', BODY_BYTES - head.len()));
    text
}

/// The number of a delivered message (its body is the published JSON).
fn number(message: &RoomMessage) -> Option<u64> {
    let body: serde_json::Value = serde_json::from_slice(&message.body).ok()?;
    let text = body["text"].as_str()?;
    text.strip_prefix('m')?.split(':').next()?.parse().ok()
}

/// Publish message `i` through the push API until it is acknowledged,
/// retrying the answers the API marks retryable (counted by code).
async fn publish(
    http: &reqwest::Client,
    url: &str,
    i: u64,
    retries: &Mutex<HashMap<String, u32>>,
) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let request = serde_json::json!({"kind": "chaos", "body": {"text": text(i)}});
        let answer = http
            .post(url)
            .json(&request)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let code = match answer {
            Ok(answer) if answer.status().is_success() => {
                let reply: serde_json::Value = answer.json().await?;
                return reply["seq"].as_u64().context("no seq in the reply");
            }
            Ok(answer) if answer.status().as_u16() == 503 => {
                let reply: serde_json::Value = answer.json().await.unwrap_or_default();
                reply["error"]["code"]
                    .as_str()
                    .or_else(|| reply["code"].as_str())
                    .unwrap_or("503")
                    .to_string()
            }
            Ok(answer) => bail!("m{i}: not retryable: {}", answer.status()),
            Err(e) => format!("transport: {e}"),
        };
        *retries.lock().await.entry(code).or_default() += 1;
        ensure!(
            tokio::time::Instant::now() < deadline,
            "m{i}: publish kept failing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the publisher has had `n` publishes acknowledged.
async fn published(acked: &AtomicU64, n: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Acquire) < n {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "publisher stuck at {} of {n}",
            acked.load(Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The conn node most readers are on now.
async fn busiest_node(readers: &[Arc<Mutex<Seen>>], among: &HashSet<String>) -> Option<String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for seen in readers {
        if let Some(node) = seen.lock().await.nodes.last()
            && among.contains(node)
        {
            *count.entry(node.clone()).or_default() += 1;
        }
    }
    count.into_iter().max_by_key(|(_, n)| *n).map(|(id, _)| id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_holds_through_a_conn_kill_a_drain_and_a_push_kill() -> anyhow::Result<()> {
    let mut t = Topology::start(options()).await?;
    let room = t.create_room("chaos").await?;

    // Readers through the router, like apps.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut tasks = Vec::new();
    let mut clients: Vec<Client> = Vec::new();
    for i in 0..READERS {
        let uid = format!("reader-{i}");
        let opts = ConnectOptions::new(t.router_url()?, t.token(&uid)).uid(uid);
        let (client, events) = Client::connect(opts).await?;
        client.join(room.as_str()).await?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        tasks.push(spawn_reader(
            events,
            room.clone(),
            seen.clone(),
            stop.clone(),
        ));
        readers.push(seen);
        clients.push(client);
    }

    // The backend: publish through the push API without pause, retrying
    // what it is told to retry; remember what was acknowledged.
    let acked = Arc::new(AtomicU64::new(0));
    let acked_seqs = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let retries = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let (acked, acked_seqs, retries, publishing) = (
            acked.clone(),
            acked_seqs.clone(),
            retries.clone(),
            publishing.clone(),
        );
        let url = format!("{}/v1/rooms/{room}/messages", t.backend_url);
        let http = t.backend();
        tokio::spawn(async move {
            let mut i = 0u64;
            while publishing.load(Ordering::Acquire) {
                i += 1;
                let seq = publish(&http, &url, i, &retries).await?;
                acked_seqs.lock().await.push((i, seq));
                acked.store(i, Ordering::Release);
                tokio::time::sleep(PUBLISH_EVERY).await;
            }
            anyhow::Ok(i)
        })
    };

    // Fault 1: kill -9 the conn node with the most readers.
    published(&acked, PER_PHASE).await?;
    let ids = t.conn_ids();
    let all: HashSet<String> = ids.keys().cloned().collect();
    let killed = busiest_node(&readers, &all)
        .await
        .context("no reader connected")?;
    t.conn[ids[&killed]].kill9();

    // Fault 2: drain (admin API) the busiest of the other two; it exits 0.
    published(&acked, 2 * PER_PHASE).await?;
    let rest: HashSet<String> = all.iter().filter(|id| **id != killed).cloned().collect();
    let drained = match busiest_node(&readers, &rest).await {
        Some(id) => id,
        None => rest.iter().next().cloned().context("no conn node left")?,
    };
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/admin/nodes/{drained}/drain", t.admin_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    ensure!(
        answer.status().as_u16() == 202,
        "drain: {}",
        answer.status()
    );
    let status = t.conn[ids[&drained]]
        .wait_exit(Duration::from_secs(15))
        .await?;
    ensure!(status.success(), "drained node exited with {status}");

    // Fault 3: kill -9 the push node that owns the room.
    published(&acked, 3 * PER_PHASE).await?;
    let (owner, owner_index) = t.push_owner(&room)?;
    t.push[owner_index].kill9();

    published(&acked, 4 * PER_PHASE).await?;
    publishing.store(false, Ordering::Release);
    let last = publisher.await??;
    let acked_seqs = acked_seqs.lock().await.clone();
    let last_seq = acked_seqs.iter().map(|(_, s)| *s).max().unwrap_or(0);

    // Every reader catches up to the last acknowledged seq.
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    for (r, seen) in readers.iter().enumerate() {
        loop {
            let top = seen.lock().await.messages.last().map_or(0, |m| m.seq);
            if top >= last_seq {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("reader {r} stuck at seq {top} of {last_seq}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await?;
    }

    let mut delivered = 0usize;
    let mut repeated_bodies = 0usize;
    for (r, seen) in readers.iter().enumerate() {
        let seen = seen.lock().await;
        ensure!(
            seen.resets == 0,
            "reader {r}: stream reset {} times",
            seen.resets
        );
        for (k, message) in seen.messages.iter().enumerate() {
            ensure!(
                message.seq == k as u64 + 1,
                "reader {r}: position {k} holds seq {} (gap, duplicate or reorder)",
                message.seq
            );
        }
        let numbers: Vec<u64> = seen.messages.iter().filter_map(number).collect();
        let distinct: HashSet<u64> = numbers.iter().copied().collect();
        for (i, seq) in &acked_seqs {
            ensure!(distinct.contains(i), "reader {r}: m{i} (seq {seq}) lost");
        }
        delivered += seen.messages.len();
        repeated_bodies = repeated_bodies.max(numbers.len() - distinct.len());
        println!(
            "chaos reader {r}: {} messages, nodes {:?}",
            seen.messages.len(),
            seen.nodes
        );
    }
    println!(
        "chaos: published {last} ({} acknowledged, last seq {last_seq}, {BODY_BYTES} B each); \
         killed {killed}, drained {drained}, killed push {owner}; {READERS} readers, \
         {delivered} deliveries, 0 gaps, 0 duplicate seqs, 0 reorders, 0 resets; \
         bodies repeated by a retried publish: {repeated_bodies}; retried answers: {:?}",
        acked_seqs.len(),
        retries.lock().await
    );
    for client in clients {
        client.close().await;
    }
    drop(t);
    Ok(())
}
