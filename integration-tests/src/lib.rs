//! Test harness: a whole Roomcast (every service, real sockets, real gRPC)
//! started in-process on ephemeral ports ([`Cluster`]), or as real OS processes
//! with etcd and Redis ([`procs::Topology`]), or just a push node and a biz
//! node ([`biz_stack::BizStack`]), plus helpers to drive them.

pub mod biz_stack;
pub mod otlp;
pub mod procs;

use std::time::Duration;

use anyhow::{Context as _, bail};
use common::push_directory::PushDirectory;
use proto::client::v1::{ServerFrame, server_frame};
use proto::internal::v1::PushRoomRequest;
use roomcast::standalone::{Standalone, StandaloneConfig};
use roomcast_client::{
    Client, ConnectOptions, Event, Events, RawConnection, RawEvent, RoomMessage,
};
use tokio_util::sync::CancellationToken;

/// The secret every test cluster uses.
pub const SECRET: &str = "integration-secret-0123456789abcdef";
/// The admin token every test cluster uses.
pub const ADMIN_TOKEN: &str = "integration-admin";
/// How long a test waits for something that should take milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Test logs: warnings and errors only, unless `RUST_LOG` says otherwise.
pub fn init_logs() {
    common::telemetry::init("warn");
}

/// A running system for one test.
pub struct Cluster {
    /// The running services.
    pub sys: Standalone,
    shutdown: CancellationToken,
    http: reqwest::Client,
    push: PushDirectory,
}

impl Cluster {
    /// Start with defaults (all ports ephemeral).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Start after `tune` adjusted the configuration.
    pub async fn start_with(tune: impl FnOnce(&mut StandaloneConfig)) -> anyhow::Result<Self> {
        init_logs();
        let mut cfg = StandaloneConfig {
            router_port: 0,
            ws_port: 0,
            biz_port: 0,
            backend_port: 0,
            metrics_port: 0,
            quic_port: Some(0),
            admin_port: 0,
            admin_token: ADMIN_TOKEN.into(),
            secret: SECRET.into(),
            ..StandaloneConfig::default()
        };
        tune(&mut cfg);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", cfg.api_key).parse()?,
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        let shutdown = CancellationToken::new();
        let sys = Standalone::start(cfg, shutdown.clone()).await?;
        let push = PushDirectory::new(sys.discovery.as_ref(), sys.internal_auth.clone());
        Ok(Self {
            sys,
            shutdown,
            http,
            push,
        })
    }

    /// A valid token for `uid`.
    pub fn token(&self, uid: &str) -> String {
        common::auth::mint_hs256(SECRET, uid, 3600).unwrap_or_default()
    }

    /// An HTTP client sending the system's API key (backend API calls to
    /// `sys.backend_url`).
    pub fn backend(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// Create a room through the room API.
    pub async fn create_room(&self, title: &str) -> anyhow::Result<String> {
        let url = format!("{}/v1/rooms", self.sys.backend_url);
        let resp = self
            .http
            .post(url)
            .json(&serde_json::json!({ "title": title, "owner": "host" }))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("room create failed: {}", resp.status());
        }
        let body: serde_json::Value = resp.json().await?;
        body["room_id"]
            .as_str()
            .map(str::to_string)
            .context("no room_id in reply")
    }

    /// Publish a durable message through the push API; returns its seq.
    pub async fn publish(&self, room: &str, text: &str) -> anyhow::Result<u64> {
        self.publish_body(room, text.as_bytes().to_vec()).await
    }

    /// Publish a durable message with an arbitrary body; returns its seq.
    pub async fn publish_body(&self, room: &str, body: Vec<u8>) -> anyhow::Result<u64> {
        self.publish_as(room, body, proto::client::v1::Priority::Normal)
            .await
    }

    /// Publish a durable message of `priority`; returns its seq.
    pub async fn publish_as(
        &self,
        room: &str,
        body: Vec<u8>,
        priority: proto::client::v1::Priority,
    ) -> anyhow::Result<u64> {
        let mut owner = self.push.owner(room)?;
        let request = PushRoomRequest {
            room: room.to_string(),
            kind: "test".into(),
            body: body.into(),
            sender: "tester".into(),
            priority: priority as i32,
            durable: true,
        };
        Ok(owner.client.push_room(request).await?.into_inner().seq)
    }

    /// An SDK client for `uid`, connected through the router.
    pub async fn client(&self, uid: &str) -> anyhow::Result<(Client, Events)> {
        let opts = ConnectOptions::new(self.sys.router_url.clone(), self.token(uid)).uid(uid);
        Ok(Client::connect(opts).await?)
    }

    /// A raw protobuf WebSocket, not yet authenticated.
    pub async fn raw(&self) -> anyhow::Result<RawConnection> {
        Ok(RawConnection::connect(&self.sys.ws_url, Some(proto::PROTOBUF_SUBPROTOCOL)).await?)
    }

    /// A raw protobuf WebSocket after a successful hello.
    pub async fn raw_authed(&self, uid: &str) -> anyhow::Result<RawConnection> {
        let mut raw = self.raw().await?;
        raw.hello(&self.token(uid), PATIENCE).await?;
        Ok(raw)
    }

    /// Read a Prometheus sample (`name` or `name{labels}` exactly as exposed); 0 if absent.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.sys.metrics_url))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0))
    }

    /// Wait until `series` reaches at least `at_least`.
    pub async fn wait_metric(&self, series: &str, at_least: f64) -> anyhow::Result<f64> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let v = self.metric(series).await?;
            if v >= at_least {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{series} stayed at {v}, expected at least {at_least}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cancel the shutdown token (clients get go-away) without waiting.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Shut down and wait for every service to stop.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.sys.wait())
            .await
            .context("shutdown hung")?
    }
}

/// Collect `n` messages of `room` from SDK events, failing on timeout.
pub async fn collect(
    events: &mut Events,
    room: &str,
    n: usize,
) -> anyhow::Result<Vec<RoomMessage>> {
    let mut got = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while got.len() < n {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .with_context(|| format!("timed out with {} of {n} messages", got.len()))?
            .context("event stream ended")?;
        match event {
            Event::Message {
                room: r, message, ..
            } if r == room => got.push(message),
            Event::Message { room: r, .. } => {
                bail!("received a message of room {r} while in {room}")
            }
            _ => {}
        }
    }
    Ok(got)
}

/// Assert seqs are exactly `from..=to` in order.
pub fn assert_seqs(messages: &[RoomMessage], from: u64, to: u64) {
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let expected: Vec<u64> = (from..=to).collect();
    assert_eq!(
        seqs, expected,
        "messages must be exactly {from}..={to} in order"
    );
}

/// Next server frame on a raw connection (skipping pongs and ephemeral events),
/// failing on timeout or close.
pub async fn next_frame(raw: &mut RawConnection) -> anyhow::Result<server_frame::Frame> {
    loop {
        match raw.next_frame(PATIENCE).await? {
            // Heartbeats and best-effort events (presence, totals) are not what
            // these tests wait for.
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Pong(_) | server_frame::Frame::Ephemeral(_)),
            }) => continue,
            RawEvent::Frame(ServerFrame { frame: Some(f) }) => return Ok(f),
            RawEvent::Frame(ServerFrame { frame: None }) => bail!("empty server frame"),
            RawEvent::Close { code, reason } => bail!("closed: {code} {reason}"),
            RawEvent::Text(t) => bail!("unexpected text frame: {t}"),
        }
    }
}

/// Ping on a raw connection and wait for the pong (ephemeral events and
/// token warnings in between are skipped).
pub async fn ping(raw: &mut RawConnection) -> anyhow::Result<()> {
    raw.send_frame(&proto::client::v1::ClientFrame {
        frame: Some(proto::client::v1::client_frame::Frame::Ping(
            proto::client::v1::Ping { client_time_ms: 1 },
        )),
    })
    .await?;
    loop {
        match raw.next_frame(PATIENCE).await? {
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Pong(_)),
            }) => return Ok(()),
            RawEvent::Frame(ServerFrame {
                frame:
                    Some(server_frame::Frame::Ephemeral(_) | server_frame::Frame::TokenExpiring(_)),
            }) => {}
            other => bail!("expected a pong, got {other:?}"),
        }
    }
}

/// Read Delivery frames until `n` messages arrived; returns the messages.
pub async fn read_deliveries(
    raw: &mut RawConnection,
    n: usize,
) -> anyhow::Result<Vec<RoomMessage>> {
    let mut got = Vec::new();
    while got.len() < n {
        match next_frame(raw).await? {
            server_frame::Frame::Delivery(d) => {
                anyhow::ensure!(
                    d.messages.first().map(|m| m.seq) == Some(d.first_seq)
                        && d.messages.last().map(|m| m.seq) == Some(d.last_seq),
                    "delivery coverage {}..={} does not match its messages",
                    d.first_seq,
                    d.last_seq
                );
                got.extend(d.messages);
            }
            other => bail!("expected a delivery, got {other:?}"),
        }
    }
    Ok(got)
}

/// Send a Join on a raw connection and wait for its Joined (or fail on Error).
pub async fn raw_join(
    raw: &mut RawConnection,
    room: &str,
    resume: Option<(u64, u64)>,
) -> anyhow::Result<proto::client::v1::Joined> {
    use proto::client::v1::{ClientFrame, Join, Resume, client_frame};
    let join = Join {
        r#ref: 7,
        room: room.to_string(),
        resume: resume.map(|(epoch, last_seq)| Resume { epoch, last_seq }),
    };
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Join(join)),
    })
    .await?;
    match next_frame(raw).await? {
        server_frame::Frame::Joined(j) => Ok(j),
        other => bail!("expected joined, got {other:?}"),
    }
}

impl Cluster {
    /// Wait until the conn node holds exactly `n` connections.
    pub async fn wait_until_connections(&self, n: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let v = self.metric("roomcast_conn_connections").await?;
            if v as usize == n {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("conn node holds {v} connections, expected {n}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An extra conn node started next to a cluster's own.
pub struct ExtraConn {
    /// Its node id.
    pub id: String,
    /// `ws://…/v1/ws`.
    pub ws_url: String,
    /// Cancel to shut it down.
    pub shutdown: CancellationToken,
    /// Ends when the node has stopped (after a drain or shutdown).
    pub task: tokio::task::JoinHandle<Result<(), conn_layer::Error>>,
}

impl Cluster {
    /// Start another conn node in the same system (shares discovery, live
    /// config and the token secret).
    pub async fn add_conn_node(
        &self,
        id: &str,
        tune: impl FnOnce(&mut conn_layer::Config),
    ) -> anyhow::Result<ExtraConn> {
        let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let quic = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let ws_url = format!(
            "ws://127.0.0.1:{}{}",
            ws.local_addr()?.port(),
            conn_layer::WS_PATH
        );
        let mut cfg = conn_layer::Config {
            node_id: id.to_string(),
            token_secret: SECRET.into(),
            internal_token: self.sys.internal_token.clone(),
            ..conn_layer::Config::default()
        };
        tune(&mut cfg);
        let deps = conn_layer::Deps {
            discovery: self.sys.discovery.clone(),
            live_config: self.sys.live_config.clone(),
            registry: prometheus::Registry::new(),
            local_push: None,
            local_biz: None,
        };
        let shutdown = CancellationToken::new();
        let listeners = conn_layer::Listeners {
            ws,
            quic: Some(quic),
        };
        let task = tokio::spawn(conn_layer::run(cfg, deps, listeners, shutdown.clone()));
        let mut view = self
            .sys
            .discovery
            .watch(common::discovery::ServiceKind::Conn);
        tokio::time::timeout(
            PATIENCE,
            view.wait_for(|nodes| nodes.iter().any(|n| n.id == id)),
        )
        .await??;
        Ok(ExtraConn {
            id: id.to_string(),
            ws_url,
            shutdown,
            task,
        })
    }

    /// The id of the cluster's own conn node.
    pub fn conn_node_id(&self) -> String {
        let view = self
            .sys
            .discovery
            .watch(common::discovery::ServiceKind::Conn);
        let nodes = view.borrow();
        nodes.first().map(|n| n.id.clone()).unwrap_or_default()
    }
}
