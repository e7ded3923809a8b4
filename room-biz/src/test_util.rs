//! Test doubles shared by the crate's unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::push_directory::PushDirectoryError;
use proto::client::v1::RoomMessage;
use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};
use room_store::domain::state::{Counters, RoomRead};
use room_store::domain::transition::{Applied, Transition};
use room_store::{
    AudienceSet, MemberEntry, MemberFilter, MemoryRoomStore, NewRoom, Room, RoomLists, RoomStore,
    StoreError,
};

use crate::actions::Backends;
use crate::error::PushError;
use crate::pusher::RoomPusher;

/// The epoch the recorder reports.
pub(crate) const TEST_EPOCH: u64 = 7;

/// A pusher that records what it is given and numbers durable messages per room,
/// or fails every push as if no push node were live. Pulls read the recorded
/// durable messages back (epoch [`TEST_EPOCH`], full history) and are counted.
#[derive(Default)]
pub(crate) struct RecordingPusher {
    sent: Mutex<Vec<PushRoomRequest>>,
    users: Mutex<Vec<PushUsersRequest>>,
    pulls: Mutex<HashMap<String, u64>>,
    fail: bool,
}

impl RecordingPusher {
    /// A recorder that accepts every push.
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A recorder that refuses every push.
    pub(crate) fn failing() -> Arc<Self> {
        Arc::new(Self {
            fail: true,
            ..Self::default()
        })
    }

    /// What was pushed, in order.
    pub(crate) fn sent(&self) -> Vec<PushRoomRequest> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// User-targeted pushes, in order.
    pub(crate) fn sent_users(&self) -> Vec<PushUsersRequest> {
        self.users.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Durable messages pushed to `room` as (kind, JSON body), in order.
    pub(crate) fn events(&self, room: &str) -> Vec<(String, serde_json::Value)> {
        self.sent()
            .into_iter()
            .filter(|s| s.room == room && s.durable)
            .map(|s| (s.kind, serde_json::from_slice(&s.body).unwrap_or_default()))
            .collect()
    }

    /// Ephemeral messages pushed to `room` as (kind, JSON body), in order.
    pub(crate) fn ephemerals(&self, room: &str) -> Vec<(String, serde_json::Value)> {
        self.sent()
            .into_iter()
            .filter(|s| s.room == room && !s.durable)
            .map(|s| (s.kind, serde_json::from_slice(&s.body).unwrap_or_default()))
            .collect()
    }

    /// How many pulls `room` has had.
    pub(crate) fn pulls(&self, room: &str) -> u64 {
        let pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
        pulls.get(room).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl RoomPusher for RecordingPusher {
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
        if self.fail {
            return Err(PushError::NoOwner(PushDirectoryError::NoPushNode));
        }
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let seq = if req.durable {
            sent.iter()
                .filter(|s| s.durable && s.room == req.room)
                .count() as u64
                + 1
        } else {
            0
        };
        sent.push(req);
        Ok(PushRoomReply {
            epoch: TEST_EPOCH,
            seq,
        })
    }

    async fn pull(&self, req: PullRequest) -> Result<PullReply, PushError> {
        if self.fail {
            return Err(PushError::NoOwner(PushDirectoryError::NoPushNode));
        }
        *self
            .pulls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(req.room.clone())
            .or_default() += 1;
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let stream: Vec<RoomMessage> = sent
            .iter()
            .filter(|s| s.durable && s.room == req.room)
            .zip(1..)
            .map(|(s, seq)| RoomMessage {
                seq,
                kind: s.kind.clone(),
                body: s.body.clone(),
                sender: s.sender.clone(),
                ts_ms: 0,
                priority: s.priority,
            })
            .collect();
        let head_seq = stream.len() as u64;
        let messages = stream
            .into_iter()
            .filter(|m| m.seq > req.after_seq)
            .take(req.limit as usize)
            .collect();
        Ok(PullReply {
            epoch: TEST_EPOCH,
            head_seq,
            messages,
            truncated: false,
        })
    }

    async fn push_users(&self, req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
        if self.fail {
            return Err(PushError::NoOwner(PushDirectoryError::NoPushNode));
        }
        let online = u32::try_from(req.uids.len()).unwrap_or(u32::MAX);
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(req);
        Ok(PushUsersReply { online })
    }
}

/// A memory store with `pusher` and the default configuration.
pub(crate) fn backends(pusher: Arc<dyn RoomPusher>) -> Backends {
    backends_on(
        Arc::new(MemoryRoomStore::new()),
        &crate::Config::default(),
        pusher,
    )
}

/// `store` with `pusher` and `cfg`, metrics in a fresh registry.
pub(crate) fn backends_on(
    store: Arc<dyn RoomStore>,
    cfg: &crate::Config,
    pusher: Arc<dyn RoomPusher>,
) -> Backends {
    let metrics = crate::metrics::Metrics::new(&prometheus::Registry::new());
    Backends::new(cfg, store, pusher, &metrics)
}

/// Shared state on a memory store with `pusher` and `cfg`, metrics in a fresh registry.
pub(crate) fn shared(
    cfg: crate::Config,
    pusher: Arc<dyn RoomPusher>,
) -> Arc<crate::shared::Shared> {
    shared_on(Arc::new(MemoryRoomStore::new()), cfg, pusher)
}

/// Shared state on `store` with `pusher` and `cfg`, metrics in a fresh registry.
pub(crate) fn shared_on(
    store: Arc<dyn RoomStore>,
    cfg: crate::Config,
    pusher: Arc<dyn RoomPusher>,
) -> Arc<crate::shared::Shared> {
    let registry = prometheus::Registry::new();
    Arc::new(crate::shared::Shared::new(cfg, store, pusher, &registry).expect("valid config"))
}

/// An API key with every scope, installed by [`install_test_key`].
pub(crate) const TEST_API_KEY: &str = "rck_testkey1_0123456789abcdefghijABCDEFGHIJ";

/// Put [`TEST_API_KEY`] in `shared`'s keyring.
pub(crate) fn install_test_key(shared: &crate::shared::Shared) {
    let mut ring = common::api_keys::Keyring::default();
    ring.insert(TEST_API_KEY, "test backend", &[], 1)
        .expect("a well-formed key");
    shared.api_keys.send_replace(Arc::new(ring));
}

/// A client sending [`TEST_API_KEY`] on every request.
pub(crate) fn backend_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static(
            "Bearer rck_testkey1_0123456789abcdefghijABCDEFGHIJ",
        ),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}

/// Bind 127.0.0.1:0.
pub(crate) async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// A memory store whose `remove_node` and `add_counters` fail as told: each
/// count is how many of the next calls fail.
#[derive(Default)]
pub(crate) struct FlakyStore {
    pub(crate) inner: MemoryRoomStore,
    /// `remove_node` fails as if Redis were down.
    pub(crate) remove_node_failures: AtomicUsize,
    /// `add_counters` fails before it writes anything.
    pub(crate) counter_failures: AtomicUsize,
    /// `add_counters` writes, then fails as if its reply were lost.
    pub(crate) counter_replies_lost: AtomicUsize,
}

/// Whether the next call fails: takes one from `count`.
fn fails(count: &AtomicUsize) -> bool {
    count
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
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
    async fn delete_room(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_room(id).await
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
    async fn member_session_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<room_store::SessionLeft, StoreError> {
        self.inner.member_session_left(room, uid, session_id).await
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
        batch: Option<room_store::CounterBatch<'_>>,
    ) -> Result<Option<Counters>, StoreError> {
        if fails(&self.counter_failures) {
            return Err(StoreError::Unavailable("Redis is down".into()));
        }
        let written = self.inner.add_counters(room, deltas, batch).await;
        if fails(&self.counter_replies_lost) {
            return Err(StoreError::Unavailable("response timed out".into()));
        }
        written
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
    async fn analytics(&self, room: &str) -> Result<room_store::RoomAnalytics, StoreError> {
        self.inner.analytics(room).await
    }
    fn ledger(&self) -> Arc<dyn room_store::Ledger> {
        self.inner.ledger()
    }
    async fn remove_node(&self, node_id: &str) -> Result<Vec<(String, u32)>, StoreError> {
        if fails(&self.remove_node_failures) {
            return Err(StoreError::Unavailable("Redis is down".into()));
        }
        self.inner.remove_node(node_id).await
    }
}
