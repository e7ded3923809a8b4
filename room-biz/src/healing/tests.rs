//! Presence healing with in-process discovery: through `run` and its gRPC
//! service, and the loop alone for grace periods and retries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::discovery::{MemoryDiscovery, NodeInfo};
use proto::internal::v1::JoinRequest;
use proto::internal::v1::biz_client::BizClient;
use room_store::{MemoryRoomStore, NewRoom, RoomStore};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::test_util::{FlakyStore, RecordingPusher, bind, shared_on};
use crate::{Config, Deps, Listeners};

const PATIENCE: Duration = Duration::from_secs(5);

async fn register_conn(discovery: &MemoryDiscovery, id: &str) {
    let node = NodeInfo {
        id: id.into(),
        ..NodeInfo::default()
    };
    discovery
        .register(ServiceKind::Conn, node)
        .await
        .expect("register");
}

async fn new_room(store: &dyn RoomStore) -> String {
    let new = NewRoom {
        owner: None,
        ..NewRoom::titled("Jazz", None)
    };
    store.create_room(new).await.expect("create").id
}

/// Poll `room`'s member count until it is `want`; panics after `within`.
async fn wait_count(store: &dyn RoomStore, room: &str, want: u32, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let count = store.member_count(room).await.expect("count");
        if count == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "room {room} has {count} members, want {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counter(registry: &prometheus::Registry, result: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == "roomcast_biz_presence_cleanups_total")
        .flat_map(|family| family.get_metric())
        .filter(|m| m.get_label().iter().any(|l| l.value() == result))
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test]
async fn sessions_of_a_conn_node_that_leaves_discovery_leave_their_rooms() {
    let discovery = Arc::new(MemoryDiscovery::new());
    let store: Arc<dyn RoomStore> = Arc::new(MemoryRoomStore::new());
    let registry = prometheus::Registry::new();
    register_conn(&discovery, "conn-1").await;
    register_conn(&discovery, "conn-2").await;
    let mut biz_view = discovery.watch(ServiceKind::Biz);
    let shutdown = CancellationToken::new();
    let deps = Deps {
        discovery: discovery.clone(),
        registry: registry.clone(),
        store: store.clone(),
        live_config: Arc::new(common::live_config::MemoryLiveConfig::default()),
        archiving: None,
        pusher: None,
        local: None,
    };
    let listeners = Listeners {
        http: bind().await,
        backend: bind().await,
        grpc: bind().await.into(),
        ops: None,
    };
    let server = tokio::spawn(crate::run(
        Config::default(),
        deps,
        listeners,
        shutdown.clone(),
    ));
    let biz = tokio::time::timeout(PATIENCE, biz_view.wait_for(|nodes| !nodes.is_empty()))
        .await
        .expect("biz registered in time")
        .expect("view")[0]
        .clone();
    let addr = biz.grpc_addr.expect("grpc address");
    let mut client = BizClient::new(
        common::grpc::lazy_channel(&addr, &common::grpc::InternalAuth::default()).expect("channel"),
    );

    let jazz = new_room(&*store).await;
    let talk = new_room(&*store).await;
    // alice on both nodes, bob and carol only on conn-1, dave only on conn-2.
    for (room, uid, session, node) in [
        (&jazz, "alice", "a1", "conn-1"),
        (&jazz, "alice", "a2", "conn-2"),
        (&jazz, "bob", "b1", "conn-1"),
        (&jazz, "dave", "d1", "conn-2"),
        (&talk, "carol", "c1", "conn-1"),
        (&talk, "dave", "d2", "conn-2"),
    ] {
        let request = JoinRequest {
            uid: uid.into(),
            room: room.clone(),
            node_id: node.into(),
            session_id: session.into(),
            ..Default::default()
        };
        client.authorize_join(request).await.expect("join");
    }
    assert_eq!(store.member_count(&jazz).await.expect("count"), 3);
    assert_eq!(store.member_count(&talk).await.expect("count"), 2);

    discovery
        .deregister(ServiceKind::Conn, "conn-1")
        .await
        .expect("deregister");
    // Default grace (500 ms) included, the counts drop within a second.
    wait_count(&*store, &jazz, 2, Duration::from_secs(1)).await;
    wait_count(&*store, &talk, 1, Duration::from_secs(1)).await;
    assert_eq!(counter(&registry, "ok"), 1);

    shutdown.cancel();
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("clean stop");
}

#[tokio::test]
async fn a_node_back_within_the_grace_period_keeps_its_sessions() {
    let discovery = MemoryDiscovery::new();
    register_conn(&discovery, "conn-1").await;
    let cfg = Config {
        presence_grace_ms: 300,
        ..Config::default()
    };
    let shared = shared_on(
        Arc::new(MemoryRoomStore::new()),
        cfg,
        RecordingPusher::new(),
    );
    let store = &*shared.backends.store;
    let room = new_room(store).await;
    store
        .member_joined(&room, "bob", "s1", "conn-1")
        .await
        .expect("join");

    let healing = heal(&discovery, &shared);
    let checks = async {
        // A flicker: gone and back before the grace period ends.
        discovery
            .deregister(ServiceKind::Conn, "conn-1")
            .await
            .expect("deregister");
        tokio::time::sleep(Duration::from_millis(50)).await;
        register_conn(&discovery, "conn-1").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(store.member_count(&room).await.expect("count"), 1);

        // Gone for good.
        discovery
            .deregister(ServiceKind::Conn, "conn-1")
            .await
            .expect("deregister");
        wait_count(store, &room, 0, Duration::from_secs(1)).await;
    };
    // Biased: the healer takes its first view before the checks change it.
    tokio::select! {
        biased;
        () = healing => panic!("the healer never returns"),
        () = checks => {}
    }
}

#[tokio::test]
async fn a_failed_cleanup_is_retried() {
    let discovery = MemoryDiscovery::new();
    register_conn(&discovery, "conn-1").await;
    let store = Arc::new(FlakyStore::default());
    store.remove_node_failures.store(1, Ordering::SeqCst);
    let cfg = Config {
        presence_grace_ms: 0,
        ..Config::default()
    };
    let registry = prometheus::Registry::new();
    let shared = Arc::new(
        crate::shared::Shared::new(cfg, store.clone(), RecordingPusher::new(), &registry)
            .expect("valid config"),
    );
    let room = new_room(&*store).await;
    store
        .member_joined(&room, "bob", "s1", "conn-1")
        .await
        .expect("join");

    let healing = heal(&discovery, &shared);
    let checks = async {
        discovery
            .deregister(ServiceKind::Conn, "conn-1")
            .await
            .expect("deregister");
        wait_count(&*store, &room, 0, RETRY_DELAY + Duration::from_secs(2)).await;
        assert_eq!(counter(&registry, "error"), 1);
        assert_eq!(counter(&registry, "ok"), 1);
    };
    // Biased: the healer takes its first view before the checks change it.
    tokio::select! {
        biased;
        () = healing => panic!("the healer never returns"),
        () = checks => {}
    }
}

#[tokio::test]
async fn poller_sessions_of_a_biz_node_that_leaves_discovery_leave_their_rooms() {
    let discovery = MemoryDiscovery::new();
    let node = NodeInfo {
        id: "biz-2".into(),
        ..NodeInfo::default()
    };
    discovery
        .register(ServiceKind::Biz, node)
        .await
        .expect("register");
    register_conn(&discovery, "conn-1").await;
    let cfg = Config {
        presence_grace_ms: 0,
        ..Config::default()
    };
    let shared = shared_on(
        Arc::new(MemoryRoomStore::new()),
        cfg,
        RecordingPusher::new(),
    );
    let store = &*shared.backends.store;
    let room = new_room(store).await;
    // A poller held by biz-2, and a socket client held by conn-1.
    store
        .member_joined(&room, "bob", "http@biz-2", "biz-2")
        .await
        .expect("join");
    store
        .member_joined(&room, "carol", "s1", "conn-1")
        .await
        .expect("join");

    let healing = heal(&discovery, &shared);
    let checks = async {
        discovery
            .deregister(ServiceKind::Biz, "biz-2")
            .await
            .expect("deregister");
        wait_count(store, &room, 1, PATIENCE).await;
        // Only biz-2's poller left; the socket client stays.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.member_count(&room).await.expect("count"), 1);
    };
    // Biased: the healer takes its first view before the checks change it.
    tokio::select! {
        biased;
        () = healing => panic!("the healer never returns"),
        () = checks => {}
    }
}
