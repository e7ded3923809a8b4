//! Scheduled rooms starting themselves: on the memory store, and on a real
//! Redis shared by two biz nodes (one start between them, a node restart in
//! between, a node that died after claiming).

use std::sync::Arc;
use std::time::{Duration, Instant};

use room_store::{MemoryRoomStore, NewRoom, RedisRoomStore, RoomState, RoomStore};
use test_servers::RedisServer;

use crate::Config;
use crate::config::ScheduleConfig;
use crate::shared::Shared;
use crate::test_util::{RecordingPusher, shared_on};

/// How long a test waits for a due job to run.
const PATIENCE: Duration = Duration::from_secs(10);

fn fast_config(lease_ms: u64, lead_ms: u64) -> Config {
    Config {
        schedules: ScheduleConfig {
            poll_ms: 20,
            claim_lease_ms: lease_ms,
            reminder_lead_ms: lead_ms,
            ..ScheduleConfig::default()
        },
        ..Config::default()
    }
}

/// A biz node's shared state and pusher on `store`, polling its schedules
/// until the returned task is aborted (a node stopping).
fn node(store: Arc<dyn RoomStore>, cfg: Config) -> (Arc<Shared>, Arc<RecordingPusher>, Poller) {
    let pusher = RecordingPusher::new();
    let shared = shared_on(store, cfg, pusher.clone());
    let poller = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.schedules.run(&shared.backends.rooms).await })
    };
    (shared, pusher, Poller(poller))
}

/// A node's poll loop; stops when dropped.
struct Poller(tokio::task::JoinHandle<()>);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Create a room scheduled `in_ms` from now with an interested and an
/// invited user, indexed as the HTTP API does.
async fn scheduled_room(shared: &Shared, in_ms: u64) -> String {
    let store = &shared.backends.store;
    let room = store
        .create_room(NewRoom {
            scheduled_at_ms: Some(common::time::now_ms() + in_ms),
            invited: vec!["bob".into()],
            ..NewRoom::titled("Later", Some("alice"))
        })
        .await
        .expect("create");
    shared.schedules.scheduled(&room).await.expect("index");
    let plan = room_store::domain::rules::interest("carol");
    shared
        .backends
        .rooms
        .apply(&room.id, &plan)
        .await
        .expect("interest");
    room.id
}

async fn wait_live(store: &dyn RoomStore, room: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = store.get_room(room).await.expect("get").expect("room");
        if found.state == RoomState::Live {
            return;
        }
        assert!(Instant::now() < deadline, "{room} never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `room` is live and its `room_started` event is out (a start
/// writes the state first, then publishes), then count its starts.
async fn wait_started(store: &dyn RoomStore, pushers: &[&RecordingPusher], room: &str) -> usize {
    wait_live(store, room).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let started = started_events(pushers, room);
        if started > 0 {
            return started;
        }
        assert!(
            Instant::now() < deadline,
            "{room} went live without a room_started event"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn started_events(pushers: &[&RecordingPusher], room: &str) -> usize {
    pushers
        .iter()
        .flat_map(|p| p.events(room))
        .filter(|(kind, _)| kind == "room_started")
        .count()
}

async fn redis_store(redis: &RedisServer) -> Arc<dyn RoomStore> {
    Arc::new(
        RedisRoomStore::connect(&[redis.url()], "sched:")
            .await
            .expect("connect"),
    )
}

#[tokio::test]
async fn a_due_room_starts_itself_and_tells_its_audience_and_their_inboxes() {
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let (shared, pusher, _poller) = node(store.clone(), fast_config(5_000, 0));
    let room = scheduled_room(&shared, 200).await;
    assert_eq!(
        store
            .get_room(&room)
            .await
            .expect("get")
            .expect("room")
            .state,
        RoomState::Scheduled
    );
    wait_live(&*store, &room).await;

    let events = pusher.events(&room);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "room_started");
    assert_eq!(events[0].1["by"], serde_json::Value::Null);
    let told = pusher
        .sent_users()
        .into_iter()
        .find(|u| u.kind == "room_started")
        .expect("audience told");
    let mut uids = told.uids.clone();
    uids.sort();
    assert_eq!(uids, vec!["bob", "carol"]);
    for uid in ["bob", "carol"] {
        let inbox = store.ledger().inbox_read(uid).await.expect("inbox");
        assert_eq!(inbox.len(), 1, "{uid}: {inbox:?}");
        let item: serde_json::Value = serde_json::from_str(&inbox[0]).expect("json");
        assert_eq!(item["kind"], "room_started");
        assert_eq!(item["body"]["room"], room.as_str());
    }
    assert_eq!(
        store
            .ledger()
            .due_at(&format!("start:{room}"))
            .await
            .expect("due_at"),
        None,
        "the job is finished"
    );
}

#[tokio::test]
async fn reminders_go_out_once_before_the_start() {
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    // Due in 1.5 s with a 1.2 s lead: the reminder is due 300 ms from now.
    let (shared, pusher, _poller) = node(store.clone(), fast_config(5_000, 1_200));
    let room = scheduled_room(&shared, 1_500).await;
    let deadline = Instant::now() + PATIENCE;
    while !pusher
        .sent_users()
        .iter()
        .any(|u| u.kind == "room_reminder")
    {
        assert!(Instant::now() < deadline, "no reminder");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store
            .get_room(&room)
            .await
            .expect("get")
            .expect("room")
            .state,
        RoomState::Scheduled,
        "reminded before the start"
    );
    wait_live(&*store, &room).await;
    let reminders: Vec<_> = pusher
        .sent_users()
        .into_iter()
        .filter(|u| u.kind == "room_reminder")
        .collect();
    assert_eq!(reminders.len(), 1, "sent once");
    let note: serde_json::Value = serde_json::from_slice(&reminders[0].body).expect("json");
    assert_eq!(note["room"], room.as_str());
    assert!(note["scheduled_at_ms"].as_u64().is_some());
}

#[tokio::test]
async fn a_room_started_by_hand_is_not_started_again() {
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let (shared, pusher, poller) = node(store.clone(), fast_config(5_000, 0));
    drop(poller);
    let room = scheduled_room(&shared, 100).await;
    shared
        .backends
        .rooms
        .start(&room, None)
        .await
        .expect("manual start");
    // Once due, running the job finds the room live and drops it.
    let deadline = Instant::now() + PATIENCE;
    while shared.schedules.run_due(&shared.backends.rooms).await == 0 {
        assert!(Instant::now() < deadline, "the start never came due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(started_events(&[&pusher], &room), 1);
    assert_eq!(
        store
            .ledger()
            .due_at(&format!("start:{room}"))
            .await
            .expect("due_at"),
        None
    );
}

#[tokio::test]
async fn two_nodes_on_redis_start_a_room_once_even_across_a_restart() {
    let redis = RedisServer::start().expect("start redis-server");
    let (store_a, store_b) = (redis_store(&redis).await, redis_store(&redis).await);

    // Several rooms due at once, two nodes polling: each starts once.
    let (shared_a, pusher_a, poller_a) = node(store_a.clone(), fast_config(5_000, 0));
    let (_shared_b, pusher_b, poller_b) = node(store_b.clone(), fast_config(5_000, 0));
    let mut rooms = Vec::new();
    for _ in 0..10 {
        rooms.push(scheduled_room(&shared_a, 300).await);
    }
    for room in &rooms {
        wait_started(&*store_b, &[&pusher_a, &pusher_b], room).await;
    }
    for room in &rooms {
        assert_eq!(
            started_events(&[&pusher_a, &pusher_b], room),
            1,
            "{room} started once"
        );
    }

    // Restart: both nodes stop before the next room is due; a fresh node
    // (new connection, new process state) finds it in the index and starts it.
    let later = scheduled_room(&shared_a, 600).await;
    drop((poller_a, poller_b, shared_a));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        store_b
            .get_room(&later)
            .await
            .expect("get")
            .expect("room")
            .state,
        RoomState::Scheduled,
        "nobody polls while the nodes are down"
    );
    let (_shared_c, pusher_c, poller_c) = node(redis_store(&redis).await, fast_config(5_000, 0));
    assert_eq!(wait_started(&*store_b, &[&pusher_c], &later).await, 1);
    drop(poller_c);

    // A node that claimed a start and died before doing it: the job comes
    // back after its lease and another node starts the room.
    let orphan = {
        let (shared_d, _, poller_d) = node(redis_store(&redis).await, fast_config(300, 0));
        drop(poller_d);
        scheduled_room(&shared_d, 50).await
    };
    let ledger = store_b.ledger();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = common::time::now_ms();
        let claimed = ledger.claim_due(now, 300, 100).await.expect("claim");
        if claimed.contains(&format!("start:{orphan}")) {
            break;
        }
        assert!(Instant::now() < deadline, "the orphan never came due");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and the claimer "dies" here. Node E picks the job up once the
    // 300 ms lease ran out.
    let (_shared_e, pusher_e, _poller_e) = node(redis_store(&redis).await, fast_config(300, 0));
    assert_eq!(wait_started(&*store_b, &[&pusher_e], &orphan).await, 1);
}

#[tokio::test]
async fn an_overdue_room_missing_from_the_index_starts_on_first_use() {
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let (shared, pusher, poller) = node(store.clone(), fast_config(5_000, 0));
    drop(poller);
    let room = scheduled_room(&shared, 50).await;
    // The index lost it (a Redis that restarted empty, say).
    store
        .ledger()
        .finish_due(&format!("start:{room}"))
        .await
        .expect("drop the job");
    let rooms = &shared.backends.rooms;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let view = rooms.gate(&room, "carol").await.expect("gate");
        if view.room.state == RoomState::Live {
            break;
        }
        assert!(Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(started_events(&[&pusher], &room), 1);
    rooms.gate(&room, "carol").await.expect("gate again");
    assert_eq!(started_events(&[&pusher], &room), 1, "started once");
}
