//! Presence healing with in-process discovery: through `run` and its gRPC
//! service, and the loop alone for grace periods and retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::discovery::{MemoryDiscovery, NodeInfo};
use proto::internal::v1::JoinRequest;
use proto::internal::v1::biz_client::BizClient;
use room_store::StoreError;
use room_store::domain::state::{Counters, RoomRead};
use room_store::domain::transition::{Applied, Transition};
use room_store::{
    AudienceSet, MemberEntry, MemberFilter, MemoryRoomStore, NewRoom, Room, RoomLists, RoomStore,
};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::test_util::{RecordingPusher, bind, shared_on};
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
    };
    let listeners = Listeners {
        http: bind().await,
        backend: bind().await,
        grpc: bind().await,
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

/// A memory store whose `remove_node` fails the first `failures` times.
struct FlakyStore {
    inner: MemoryRoomStore,
    failures: AtomicUsize,
}

#[async_trait::async_trait]
impl RoomStore for FlakyStore {
    async fn create_room(&self, new: NewRoom) -> Result<Room, StoreError> {
        self.inner.create_room(new).await
    }
    async fn get_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        self.inner.get_room(id).await
    }
    async fn end_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        self.inner.end_room(id).await
    }
    async fn member_joined(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
        node_id: &str,
    ) -> Result<u32, StoreError> {
        self.inner
            .member_joined(room, uid, session_id, node_id)
            .await
    }
    async fn member_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<u32, StoreError> {
        self.inner.member_left(room, uid, session_id).await
    }
    async fn member_count(&self, room: &str) -> Result<u32, StoreError> {
        self.inner.member_count(room).await
    }
    async fn apply(&self, room: &str, t: &Transition) -> Result<Applied, StoreError> {
        self.inner.apply(room, t).await
    }
    async fn read(
        &self,
        room: &str,
        viewer: Option<&str>,
        hands_max: usize,
    ) -> Result<Option<RoomRead>, StoreError> {
        self.inner.read(room, viewer, hands_max).await
    }
    async fn add_counters(
        &self,
        room: &str,
        deltas: &[(String, u64)],
    ) -> Result<Option<Counters>, StoreError> {
        self.inner.add_counters(room, deltas).await
    }
    async fn slow_comment(
        &self,
        room: &str,
        uid: &str,
        secs: u32,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.slow_comment(room, uid, secs, now_ms).await
    }
    async fn members_page(
        &self,
        room: &str,
        filter: MemberFilter,
        after: Option<&MemberEntry>,
        limit: usize,
    ) -> Result<Vec<MemberEntry>, StoreError> {
        self.inner.members_page(room, filter, after, limit).await
    }
    async fn audience_page(
        &self,
        room: &str,
        set: AudienceSet,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        self.inner.audience_page(room, set, cursor, count).await
    }
    async fn room_lists(&self, room: &str) -> Result<RoomLists, StoreError> {
        self.inner.room_lists(room).await
    }
    async fn set_blocked(&self, host: &str, uid: &str, blocked: bool) -> Result<(), StoreError> {
        self.inner.set_blocked(host, uid, blocked).await
    }
    async fn is_blocked(&self, host: &str, uid: &str) -> Result<bool, StoreError> {
        self.inner.is_blocked(host, uid).await
    }
    async fn blocked_by(&self, host: &str) -> Result<Vec<String>, StoreError> {
        self.inner.blocked_by(host).await
    }
    async fn revoke_tokens(
        &self,
        uid: &str,
        before_secs: u64,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        self.inner.revoke_tokens(uid, before_secs, ttl_secs).await
    }
    async fn tokens_revoked_before(&self, uid: &str) -> Result<Option<u64>, StoreError> {
        self.inner.tokens_revoked_before(uid).await
    }
    fn ledger(&self) -> Arc<dyn room_store::Ledger> {
        self.inner.ledger()
    }
    async fn remove_node(&self, node_id: &str) -> Result<Vec<(String, u32)>, StoreError> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable("Redis is down".into()));
        }
        self.inner.remove_node(node_id).await
    }
}

#[tokio::test]
async fn a_failed_cleanup_is_retried() {
    let discovery = MemoryDiscovery::new();
    register_conn(&discovery, "conn-1").await;
    let store = Arc::new(FlakyStore {
        inner: MemoryRoomStore::new(),
        failures: AtomicUsize::new(1),
    });
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
