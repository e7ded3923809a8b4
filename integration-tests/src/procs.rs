//! Real-process topologies: etcd, Redis and every Roomcast service as its own
//! OS process on free loopback ports, so tests can `kill -9` and restart them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use common::discovery::etcd::{EtcdConfig, EtcdDiscovery};
use common::discovery::{Discovery, NodeInfo, ServiceKind};
use common::push_directory::PushDirectory;
use proto::internal::v1::PushRoomRequest;
use test_servers::{Etcd, RedisServer};

use crate::{ADMIN_TOKEN, PATIENCE, SECRET};

/// The internal token of every service of a [`Topology`].
pub const INTERNAL_TOKEN: &str = "integration-internal-token-0123456789";

/// A loopback port free now, for listeners whose address a test must know
/// but the service does not register (ops, admin). From below the ephemeral
/// range: a port from a `:0` bind, released, was seen taken again by a
/// client's outgoing connection before the service bound it.
fn free_port() -> anyhow::Result<u16> {
    Ok(test_servers::free_port()?)
}

/// Where `cargo build --bins` put the service binaries (next to `deps/`).
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("no target dir")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build the service binaries first (cargo build --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

/// One service process.
pub struct Proc {
    /// Its node id.
    pub id: String,
    /// `http://127.0.0.1:port` of its own ops listener (conn, push and biz
    /// nodes; the router serves ops routes on its main listener).
    pub ops_url: Option<String>,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Start it again (same node id, flags and environment) after it exited
    /// or was killed.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// Wait until the process exits by itself, at most `within`.
    pub async fn wait_exit(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let child = self.child.as_mut().context("not running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} still running after {within:?}\n{}",
                    self.id,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Shape of a topology.
#[derive(Clone, Debug)]
pub struct TopologyOptions {
    /// Push nodes.
    pub push: usize,
    /// Conn nodes.
    pub conn: usize,
    /// Members at which rooms switch to broadcast.
    pub broadcast_threshold: u32,
    /// etcd lease TTL (a dead node disappears after about this long).
    pub lease_ttl_secs: i64,
    /// Extra environment of every service process (`ROOMCAST_CONN_…`).
    pub env: Vec<(String, String)>,
}

impl Default for TopologyOptions {
    fn default() -> Self {
        Self {
            push: 2,
            conn: 2,
            broadcast_threshold: 500,
            lease_ttl_secs: 3,
            env: Vec::new(),
        }
    }
}

/// etcd, Redis, push nodes, conn nodes, room-biz and the router, as processes.
pub struct Topology {
    /// etcd.
    pub etcd: Etcd,
    /// Redis.
    pub redis: RedisServer,
    /// Push nodes by index.
    pub push: Vec<Proc>,
    /// Conn nodes by index.
    pub conn: Vec<Proc>,
    /// Room-biz.
    pub biz: Proc,
    /// Router.
    pub router: Proc,
    /// A discovery client of the test itself.
    pub discovery: Arc<EtcdDiscovery>,
    /// `http://127.0.0.1:port` of the router's admin API (token [`ADMIN_TOKEN`]).
    pub admin_url: String,
    /// `http://127.0.0.1:port` of room-biz's backend API (key [`Self::api_key`]).
    pub backend_url: String,
    /// An API key with every scope, created through the admin API at start.
    pub api_key: String,
    _dir: tempfile::TempDir,
    /// Sends [`Self::api_key`] on every request (once started).
    http: reqwest::Client,
}

impl Topology {
    /// Start everything and wait until every node is registered.
    pub async fn start(opts: TopologyOptions) -> anyhow::Result<Self> {
        crate::init_logs();
        let etcd = Etcd::start()?;
        let redis = RedisServer::start()?;
        let dir = tempfile::Builder::new()
            .prefix("roomcast-topology-")
            .tempdir()?;
        let ttl = opts.lease_ttl_secs.to_string();
        let common_args = |id: &str| {
            vec![
                "--node-id".to_string(),
                id.to_string(),
                "--etcd".into(),
                etcd.endpoint(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--advertise-host".into(),
                "127.0.0.1".into(),
            ]
        };
        let proc = |bin: &str,
                    id: &str,
                    mut extra: Vec<String>,
                    env: Vec<(String, String)>|
         -> anyhow::Result<Proc> {
            let mut args = common_args(id);
            args.append(&mut extra);
            let mut env = env;
            env.extend(opts.env.iter().cloned());
            env.push(("ROOMCAST_TOKEN_SECRET".into(), SECRET.into()));
            env.push(("ROOMCAST_INTERNAL_TOKEN".into(), INTERNAL_TOKEN.into()));
            for prefix in [
                "ROOMCAST_PUSH",
                "ROOMCAST_CONN",
                "ROOMCAST_BIZ",
                "ROOMCAST_ROUTER",
            ] {
                env.push((format!("{prefix}_DISCOVERY__LEASE_TTL_SECS"), ttl.clone()));
            }
            let ops_url = args
                .iter()
                .position(|a| a == "--ops-listen")
                .and_then(|i| args.get(i + 1))
                .map(|addr| format!("http://{addr}"));
            Ok(Proc {
                id: id.into(),
                ops_url,
                bin: binary(bin)?,
                args,
                env,
                log: dir.path().join(format!("{id}.log")),
                child: None,
            })
        };
        let ops = || -> anyhow::Result<Vec<String>> {
            Ok(vec![
                "--ops-listen".to_string(),
                format!("127.0.0.1:{}", free_port()?),
            ])
        };
        let mut push = Vec::new();
        for i in 0..opts.push {
            let mut extra = ops()?;
            extra.extend(["--redis".into(), redis.url()]);
            let env = vec![
                (
                    "ROOMCAST_PUSH_NODE__BROADCAST_THRESHOLD".into(),
                    opts.broadcast_threshold.to_string(),
                ),
                (
                    "ROOMCAST_PUSH_NODE__BROADCAST_EXIT_THRESHOLD".into(),
                    (opts.broadcast_threshold / 2).to_string(),
                ),
            ];
            push.push(proc("roomcast-push", &format!("push-{i}"), extra, env)?);
        }
        let mut conn = Vec::new();
        for i in 0..opts.conn {
            let mut extra = ops()?;
            extra.extend(["--quic-listen".into(), "127.0.0.1:0".into()]);
            conn.push(proc("roomcast-conn", &format!("conn-{i}"), extra, vec![])?);
        }
        let backend_addr = format!("127.0.0.1:{}", free_port()?);
        let mut biz_args = ops()?;
        biz_args.extend([
            "--grpc-listen".into(),
            "127.0.0.1:0".into(),
            "--backend-listen".into(),
            backend_addr.clone(),
            "--redis".into(),
            redis.url(),
        ]);
        let biz = proc("roomcast-biz", "biz-0", biz_args, vec![])?;
        let admin_addr = format!("127.0.0.1:{}", free_port()?);
        let router = proc(
            "roomcast-router",
            "router-0",
            vec!["--admin-listen".into(), admin_addr.clone()],
            vec![(
                "ROOMCAST_ROUTER_NODE__ADMIN_TOKEN".into(),
                ADMIN_TOKEN.into(),
            )],
        )?;
        let discovery = Arc::new(
            EtcdDiscovery::connect(EtcdConfig {
                endpoints: vec![etcd.endpoint()],
                lease_ttl_secs: opts.lease_ttl_secs,
                ..EtcdConfig::default()
            })
            .await?,
        );
        let mut topology = Self {
            etcd,
            redis,
            push,
            conn,
            biz,
            router,
            discovery,
            admin_url: format!("http://{admin_addr}"),
            backend_url: format!("http://{backend_addr}"),
            api_key: String::new(),
            _dir: dir,
            http: reqwest::Client::new(),
        };
        for p in topology.push.iter_mut().chain(topology.conn.iter_mut()) {
            p.spawn()?;
        }
        topology.biz.spawn()?;
        topology.router.spawn()?;
        let expected: Vec<(ServiceKind, String)> = topology
            .push
            .iter()
            .map(|p| (ServiceKind::Push, p.id.clone()))
            .chain(
                topology
                    .conn
                    .iter()
                    .map(|p| (ServiceKind::Conn, p.id.clone())),
            )
            .chain([
                (ServiceKind::Biz, "biz-0".to_string()),
                (ServiceKind::Router, "router-0".to_string()),
            ])
            .collect();
        for (kind, id) in expected {
            if let Err(e) = topology.wait_registered(kind, &id, true).await {
                bail!("{e}\n--- log of {id} ---\n{}", topology.log_of(&id));
            }
        }
        // The router watches etcd on its own: wait until it hands out a conn node.
        let route = format!("{}/v1/route?uid=topology-probe", topology.router_url()?);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let long = match topology.http.get(&route).send().await {
                Ok(resp) => resp
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|b| b["mode"] == "long"),
                Err(_) => false,
            };
            if long {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the router never handed out a conn node\n{}",
                    topology.router.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        topology.make_api_key().await?;
        Ok(topology)
    }

    /// Create an API key through the router's admin API (as an operator
    /// would with `roomcast ctl api-key create`) and wait until room-biz
    /// takes it.
    async fn make_api_key(&mut self) -> anyhow::Result<()> {
        let made: serde_json::Value = self
            .http
            .post(format!("{}/v1/admin/api-keys", self.admin_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "name": "integration tests" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        self.api_key = made["key"]
            .as_str()
            .context("no key in the answer")?
            .to_owned();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.api_key).parse()?,
        );
        self.http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        let probe = format!("{}/v1/rooms/rProbe", self.backend_url);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .http
                .get(&probe)
                .send()
                .await
                .map(|r| r.status().as_u16());
            if status.as_ref().is_ok_and(|s| *s == 404) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "room-biz never accepted the API key ({status:?})\n{}",
                    self.biz.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the services' internal calls carry ([`INTERNAL_TOKEN`]).
    pub fn internal_auth(&self) -> anyhow::Result<common::grpc::InternalAuth> {
        Ok(common::grpc::InternalAuth::new(INTERNAL_TOKEN)?)
    }

    /// An HTTP client that sends the topology's API key (backend API calls).
    pub fn backend(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The last lines of the log of process `id`.
    pub fn log_of(&self, id: &str) -> String {
        self.push
            .iter()
            .chain(self.conn.iter())
            .chain([&self.biz, &self.router])
            .find(|p| p.id == id)
            .map(Proc::log_tail)
            .unwrap_or_default()
    }

    /// Wait until node `id` of `kind` is (or is no longer) in discovery.
    pub async fn wait_registered(
        &self,
        kind: ServiceKind,
        id: &str,
        present: bool,
    ) -> anyhow::Result<()> {
        let mut view = self.discovery.watch(kind);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if view.borrow_and_update().iter().any(|n| n.id == id) == present {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, view.changed())
                .await
                .is_err()
            {
                bail!(
                    "{id} ({}) did not {} discovery",
                    kind.as_str(),
                    if present { "appear in" } else { "leave" }
                );
            }
        }
    }

    /// The registered node `id` of `kind`.
    pub fn node(&self, kind: ServiceKind, id: &str) -> anyhow::Result<NodeInfo> {
        self.discovery
            .watch(kind)
            .borrow()
            .iter()
            .find(|n| n.id == id)
            .cloned()
            .with_context(|| format!("{id} is not registered"))
    }

    /// `ws://…/v1/ws` of conn node `i`.
    pub fn ws_url(&self, i: usize) -> anyhow::Result<String> {
        self.node(ServiceKind::Conn, &self.conn[i].id)?
            .endpoints
            .get(proto::transport::WS)
            .cloned()
            .context("no ws endpoint")
    }

    /// Base URL of room-biz's HTTP API.
    pub fn biz_url(&self) -> anyhow::Result<String> {
        self.node(ServiceKind::Biz, "biz-0")?
            .endpoints
            .get("http")
            .cloned()
            .context("no biz http endpoint")
    }

    /// Base URL of the router.
    pub fn router_url(&self) -> anyhow::Result<String> {
        self.node(ServiceKind::Router, "router-0")?
            .endpoints
            .get("http")
            .cloned()
            .context("no router endpoint")
    }

    /// Create a room through room-biz.
    pub async fn create_room(&self, title: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}/v1/rooms", self.backend_url))
            .json(&serde_json::json!({ "title": title }))
            .send()
            .await?
            .error_for_status()?;
        let body: serde_json::Value = resp.json().await?;
        body["room_id"]
            .as_str()
            .map(str::to_string)
            .context("no room id")
    }

    /// Members of a room according to room-biz.
    pub async fn members(&self, room: &str) -> anyhow::Result<u64> {
        let body: serde_json::Value = self
            .http
            .get(format!("{}/v1/rooms/{room}", self.backend_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        body["members"].as_u64().context("no members field")
    }

    /// Publish through the push API, retrying on another owner until it is
    /// accepted (what a business backend does while push nodes come and go).
    pub async fn publish(&self, room: &str, body: &str) -> anyhow::Result<u64> {
        let directory = PushDirectory::new(self.discovery.as_ref(), self.internal_auth()?);
        let deadline = tokio::time::Instant::now() + PATIENCE * 2;
        loop {
            let attempt = async {
                let mut owner = directory.owner(room)?;
                let request = PushRoomRequest {
                    room: room.to_string(),
                    kind: "test".into(),
                    body: body.as_bytes().to_vec().into(),
                    sender: "tester".into(),
                    priority: 0,
                    durable: true,
                };
                let reply =
                    tokio::time::timeout(Duration::from_secs(2), owner.client.push_room(request))
                        .await??;
                anyhow::Ok(reply.into_inner().seq)
            };
            match attempt.await {
                Ok(seq) => return Ok(seq),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "Publish failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.context("publish kept failing")),
            }
        }
    }

    /// The push node that owns `room` now (by rendezvous hash over the push
    /// nodes in discovery): its id and its index in [`Self::push`].
    pub fn push_owner(&self, room: &str) -> anyhow::Result<(String, usize)> {
        let owner = PushDirectory::new(self.discovery.as_ref(), self.internal_auth()?)
            .owner(room)?
            .node_id;
        let index = self
            .push
            .iter()
            .position(|p| p.id == owner)
            .with_context(|| format!("push owner {owner} is not one of ours"))?;
        Ok((owner, index))
    }

    /// A token for `uid`.
    pub fn token(&self, uid: &str) -> String {
        common::auth::mint_hs256(SECRET, uid, 3600).unwrap_or_default()
    }

    /// Node ids of live conn nodes, by index.
    pub fn conn_ids(&self) -> HashMap<String, usize> {
        self.conn
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect()
    }
}

/// Run a service binary with `args` and `env`; returns (exit code, stderr).
pub async fn run_to_exit(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<(i32, String)> {
    let path = binary(bin)?;
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .stdin(Stdio::null());
    cmd.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .context("did not exit")??;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}
