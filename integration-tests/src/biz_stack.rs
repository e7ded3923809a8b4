//! A push node and a biz node on loopback, sharing in-process discovery, with
//! the room store in reach ([`BizStack`]): for tests of room-biz's HTTP API
//! (long polling, actions) that need a real push node, without the conn
//! layer and router of a [`crate::Cluster`].

use std::sync::Arc;

use anyhow::{Context as _, bail};
use common::api_keys::Keyring;
use common::discovery::{Discovery, MemoryDiscovery, ServiceKind};
use common::live_config::{LiveConfig as _, MemoryLiveConfig, keys};
use message_log::{HistoryLimits, MemoryLog};
use room_biz::{MemoryRoomStore, NewRoom, RoomStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::PATIENCE;

/// The API key of a [`BizStack`]'s backend API (every scope).
pub const STACK_API_KEY: &str = "rck_stack_0123456789abcdefABCDEF";

/// A running push node and biz node.
pub struct BizStack {
    /// `http://host:port` of room-biz's client HTTP routes.
    pub base: String,
    /// `http://host:port` of room-biz's backend API (key [`STACK_API_KEY`]).
    pub backend: String,
    /// `host:port` of room-biz's gRPC service.
    pub grpc: String,
    /// The biz node's room store.
    pub store: Arc<MemoryRoomStore>,
    /// Stops both nodes.
    pub shutdown: CancellationToken,
    /// The biz node's `run`.
    pub biz: JoinHandle<Result<(), room_biz::Error>>,
}

async fn bind() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind 127.0.0.1:0")
}

impl BizStack {
    /// Start room-biz with `cfg` beside a push node whose memory log keeps
    /// `history` messages per room and whose ring holds `ring`.
    pub async fn start(cfg: room_biz::Config, history: usize, ring: usize) -> anyhow::Result<Self> {
        crate::init_logs();
        let discovery = Arc::new(MemoryDiscovery::new());
        let shutdown = CancellationToken::new();
        let log = MemoryLog::new(HistoryLimits {
            max_len: history,
            ..HistoryLimits::default()
        });
        let push_cfg = push_layer::Config {
            node_id: "push-test".into(),
            ring_size: ring,
            ..push_layer::Config::default()
        };
        let push_deps = push_layer::Deps {
            discovery: discovery.clone(),
            log: Arc::new(log),
            registry: prometheus::Registry::new(),
            local: None,
        };
        let mut pushers = discovery.watch(ServiceKind::Push);
        tokio::spawn(push_layer::run(
            push_cfg,
            push_deps,
            bind().await?,
            shutdown.clone(),
        ));
        tokio::time::timeout(PATIENCE, pushers.wait_for(|nodes| !nodes.is_empty()))
            .await
            .context("the push node did not register in time")?
            .context("discovery view")?;

        let store = Arc::new(MemoryRoomStore::new());
        let live = Arc::new(MemoryLiveConfig::default());
        let mut ring = Keyring::default();
        ring.insert(STACK_API_KEY, "biz stack", &[], 1)?;
        live.put(keys::API_KEYS, &ring.to_stored()).await?;
        let deps = room_biz::Deps {
            discovery: discovery.clone(),
            registry: prometheus::Registry::new(),
            store: store.clone(),
            live_config: live,
            archiving: None,
            pusher: None,
            local: None,
        };
        let listeners = room_biz::Listeners {
            http: bind().await?,
            backend: bind().await?,
            grpc: bind().await?.into(),
            ops: None,
        };
        let base = format!("http://{}", listeners.http.local_addr()?);
        let backend = format!("http://{}", listeners.backend.local_addr()?);
        let grpc = listeners.grpc.advertised("127.0.0.1")?;
        let biz = tokio::spawn(room_biz::run(cfg, deps, listeners, shutdown.clone()));
        Ok(Self {
            base,
            backend,
            grpc,
            store,
            shutdown,
            biz,
        })
    }

    /// A live room titled "Night talk", owned by `owner`; its id.
    pub async fn room(&self, owner: Option<&str>) -> anyhow::Result<String> {
        let new = NewRoom {
            owner: owner.map(Into::into),
            ..NewRoom::titled("Night talk", None)
        };
        Ok(self.store.create_room(new).await?.id)
    }

    /// A client sending [`STACK_API_KEY`] (backend API calls).
    pub fn backend_client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_static("Bearer rck_stack_0123456789abcdefABCDEF"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap_or_default()
    }

    /// Publish through the app-backend API (the real push path); the seq.
    pub async fn publish(
        &self,
        room: &str,
        body: serde_json::Value,
        priority: &str,
    ) -> anyhow::Result<u64> {
        let response = self
            .backend_client()
            .post(format!("{}/v1/rooms/{room}/messages", self.backend))
            .json(&serde_json::json!({"kind": "system", "body": body, "priority": priority}))
            .send()
            .await?;
        let status = response.status();
        let reply: serde_json::Value = response.json().await?;
        if !status.is_success() {
            bail!("publish failed: {status} {reply}");
        }
        reply["seq"].as_u64().context("no seq in reply")
    }
}
