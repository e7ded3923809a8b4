//! Test doubles shared by the crate's unit tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::push_directory::PushDirectoryError;
use proto::client::v1::RoomMessage;
use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};
use room_store::{MemoryRoomStore, RoomStore};

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
