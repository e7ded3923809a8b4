//! The etcd engine of [`Discovery`] for distributed mode.
//!
//! # Keys
//! `{prefix}nodes/{kind}/{node_id}` → JSON [`NodeInfo`], attached to one lease
//! (TTL `lease_ttl_secs`) owned by this process. `register` upserts the value on
//! that lease, so load updates every few seconds create no new lease.
//! `deregister` deletes the key at once. A process that dies without
//! deregistering disappears when its lease expires, about one TTL later.
//!
//! # Recovery (STYLE.md anti-pattern #8)
//! - The lease task keeps the lease alive (one keep-alive every TTL/3). When the
//!   keep-alive stream drops it opens a new one; when the lease is gone (revoked,
//!   or expired while etcd was down) it grants a new lease and re-writes every
//!   node this process registered. Writes that failed while etcd was down
//!   (updates, deletes) are replayed the same way. Retries back off up to 2 s.
//! - The watch task keeps one etcd watch on `{prefix}nodes/` and feeds one view
//!   per kind. When the stream breaks or etcd is down, the views keep their last
//!   content; on reconnect the task re-reads the prefix, publishes the fresh
//!   content, and watches from that revision.
//! - Each state change (etcd lost, etcd back, lease replaced) is logged once.
//!
//! # Lifetime
//! Background tasks stop when the [`EtcdDiscovery`] is dropped: it holds the
//! drop guard of the token they select on. Dropping does not revoke the lease,
//! so a dropped registrant looks like a crashed one; call `deregister` first to
//! leave cleanly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, PutOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Discovery, DiscoveryError, NodeInfo, NodeSet, ServiceKind};
use crate::backoff::Backoff;
pub use crate::etcd_call::EtcdSecurity;
use crate::etcd_call::{self, CallError, bounded};

/// Where etcd is and how registrations live there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EtcdConfig {
    /// `host:port` or `http://host:port` of the etcd members.
    pub endpoints: Vec<String>,
    /// Prefix of every key, so installations can share an etcd.
    pub prefix: String,
    /// Lease TTL: a node that stops without deregistering disappears after about
    /// this long. etcd raises values below its minimum (about 2 s).
    pub lease_ttl_secs: i64,
    /// Bound on connecting and on each etcd request.
    pub connect_timeout_ms: u64,
    /// TLS and credentials.
    pub security: EtcdSecurity,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["127.0.0.1:2379".into()],
            prefix: "/roomcast/".into(),
            lease_ttl_secs: 10,
            connect_timeout_ms: 2000,
            security: EtcdSecurity::default(),
        }
    }
}

/// Discovery through etcd leases and watches. See the module docs.
pub struct EtcdDiscovery {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

struct Shared {
    client: Client,
    /// `{prefix}nodes/`.
    nodes_prefix: String,
    /// The configured endpoints, for messages.
    endpoints: String,
    /// The TTL asked for when granting a lease.
    ttl: i64,
    call_timeout: Duration,
    lease_id: AtomicI64,
    /// The TTL etcd granted; sets the keep-alive period.
    granted_ttl: AtomicI64,
    /// What this process registered. A tokio mutex: it is held across the etcd
    /// write so that a replay never overwrites a newer value.
    registry: Mutex<Registry>,
    /// A write found the lease gone; the lease task replaces it now.
    lease_lost: Notify,
    lease_ok: AtomicBool,
    watch_ok: AtomicBool,
    views: BTreeMap<ServiceKind, watch::Sender<NodeSet>>,
}

#[derive(Default)]
struct Registry {
    nodes: BTreeMap<(ServiceKind, String), NodeInfo>,
    /// Deregistered nodes whose delete failed; deleted on the next replay.
    deleted: BTreeSet<(ServiceKind, String)>,
    /// etcd may differ from `nodes`/`deleted`: a write failed or the lease changed.
    dirty: bool,
}

/// The watched nodes by kind, then by id.
type NodeState = BTreeMap<ServiceKind, BTreeMap<String, NodeInfo>>;

// === impl EtcdDiscovery ===

impl EtcdDiscovery {
    /// Connect, grant this process's lease, read the current nodes, and start the
    /// lease and watch tasks (on the current tokio runtime).
    ///
    /// Fails fast with [`DiscoveryError::Unavailable`] naming the endpoints when
    /// etcd does not answer within `connect_timeout_ms`.
    pub async fn connect(cfg: EtcdConfig) -> Result<Self, DiscoveryError> {
        let endpoints = cfg.endpoints.join(",");
        let unreachable = |e: &dyn fmt::Display| {
            DiscoveryError::Unavailable(format!("cannot reach etcd at {endpoints}: {e}"))
        };
        if cfg.endpoints.is_empty() {
            return Err(DiscoveryError::Unavailable(
                "cannot reach etcd: no endpoints configured".into(),
            ));
        }
        let call_timeout = Duration::from_millis(cfg.connect_timeout_ms.max(1));
        let client = etcd_call::connect(&cfg.endpoints, &cfg.security, call_timeout)
            .await
            .map_err(|e| unreachable(&e))?;
        let ttl = cfg.lease_ttl_secs.max(1);
        let lease = bounded(call_timeout, client.clone().lease_grant(ttl, None))
            .await
            .map_err(|e| unreachable(&e))?;

        let views = ServiceKind::ALL
            .into_iter()
            .map(|k| (k, watch::channel(NodeSet::default()).0))
            .collect();
        let shared = Arc::new(Shared {
            client,
            nodes_prefix: format!("{}nodes/", cfg.prefix),
            endpoints: endpoints.clone(),
            ttl,
            call_timeout,
            lease_id: AtomicI64::new(lease.id()),
            granted_ttl: AtomicI64::new(lease.ttl()),
            registry: Mutex::new(Registry::default()),
            lease_lost: Notify::new(),
            lease_ok: AtomicBool::new(true),
            watch_ok: AtomicBool::new(true),
            views,
        });
        let mut state = NodeState::new();
        let revision = shared.load(&mut state).await.map_err(|e| unreachable(&e))?;

        let stop = CancellationToken::new();
        tokio::spawn(keep_lease(shared.clone(), stop.clone()));
        tokio::spawn(follow_nodes(shared.clone(), stop.clone(), state, revision));
        tracing::info!(
            endpoints = %shared.endpoints,
            lease = lease.id(),
            ttl_secs = lease.ttl(),
            "Connected to etcd.",
        );
        Ok(Self {
            shared,
            _stop: stop.drop_guard(),
        })
    }

    /// False while etcd is unreachable (the lease cannot be kept alive or the
    /// watch cannot be re-established); views then show the last known nodes.
    pub fn healthy(&self) -> bool {
        self.shared.lease_ok.load(Ordering::Acquire) && self.shared.watch_ok.load(Ordering::Acquire)
    }
}

#[async_trait::async_trait]
impl Discovery for EtcdDiscovery {
    /// Upsert the node on this process's lease. If etcd is unreachable the call
    /// fails, but the node is remembered and written as soon as etcd is back.
    async fn register(&self, kind: ServiceKind, node: NodeInfo) -> Result<(), DiscoveryError> {
        let shared = &self.shared;
        let key = shared.key(kind, &node.id);
        let value = encode(&node)?;
        let mut registry = shared.registry.lock().await;
        let name = (kind, node.id.clone());
        registry.deleted.remove(&name);
        registry.nodes.insert(name, node);
        let lease = shared.lease_id.load(Ordering::Acquire);
        match shared.put(key, value, lease).await {
            Ok(()) => Ok(()),
            Err(e) if e.lease_gone() => {
                // The lease task grants a new lease and writes every node, this one included.
                registry.dirty = true;
                drop(registry);
                shared.lease_lost.notify_one();
                tracing::debug!(lease, "Lease gone during register; it is being replaced.");
                Ok(())
            }
            Err(e) => {
                registry.dirty = true;
                Err(shared.unavailable(&e))
            }
        }
    }

    /// Delete the node's key now. If etcd is unreachable the call fails, and the
    /// delete is retried as soon as etcd is back.
    async fn deregister(&self, kind: ServiceKind, node_id: &str) -> Result<(), DiscoveryError> {
        let shared = &self.shared;
        let mut registry = shared.registry.lock().await;
        let name = (kind, node_id.to_string());
        registry.nodes.remove(&name);
        match shared.delete(shared.key(kind, node_id)).await {
            Ok(()) => {
                registry.deleted.remove(&name);
                Ok(())
            }
            Err(e) => {
                registry.deleted.insert(name);
                registry.dirty = true;
                Err(shared.unavailable(&e))
            }
        }
    }

    fn watch(&self, kind: ServiceKind) -> watch::Receiver<NodeSet> {
        match self.shared.views.get(&kind) {
            Some(view) => view.subscribe(),
            // Every kind has a view; this arm only satisfies the type checker.
            None => watch::channel(NodeSet::default()).1,
        }
    }

    fn healthy(&self) -> bool {
        EtcdDiscovery::healthy(self)
    }
}

// === impl Shared ===

impl Shared {
    fn key(&self, kind: ServiceKind, node_id: &str) -> String {
        format!("{}{}/{}", self.nodes_prefix, kind.as_str(), node_id)
    }

    fn unavailable(&self, e: &CallError) -> DiscoveryError {
        DiscoveryError::Unavailable(format!("etcd at {}: {e}", self.endpoints))
    }

    async fn put(&self, key: String, value: Vec<u8>, lease: i64) -> Result<(), CallError> {
        let options = PutOptions::new().with_lease(lease);
        let mut client = self.client.clone();
        bounded(self.call_timeout, client.put(key, value, Some(options))).await?;
        Ok(())
    }

    async fn delete(&self, key: String) -> Result<(), CallError> {
        let mut client = self.client.clone();
        bounded(self.call_timeout, client.delete(key, None)).await?;
        Ok(())
    }

    /// Replace `state` with every node under the prefix, publish the views, and
    /// return the revision to watch from.
    async fn load(&self, state: &mut NodeState) -> Result<i64, CallError> {
        let mut client = self.client.clone();
        let options = GetOptions::new().with_prefix();
        let response = bounded(
            self.call_timeout,
            client.get(self.nodes_prefix.as_str(), Some(options)),
        )
        .await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let mut fresh = NodeState::new();
        for kv in response.kvs() {
            if let Some((kind, id, node)) = self.decode(kv) {
                fresh.entry(kind).or_default().insert(id, node);
            }
        }
        *state = fresh;
        for kind in ServiceKind::ALL {
            self.publish(kind, state);
        }
        Ok(revision)
    }

    /// `(kind, id, node)` from a node key and its JSON value; `None` (logged) for
    /// a foreign key or a value that does not parse.
    fn decode(&self, kv: &KeyValue) -> Option<(ServiceKind, String, NodeInfo)> {
        let (kind, id) = self.parse_key(kv.key())?;
        match serde_json::from_slice::<NodeInfo>(kv.value()) {
            Ok(mut node) => {
                // The key is what deregister deletes, so it names the node.
                node.id.clone_from(&id);
                Some((kind, id, node))
            }
            Err(error) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(kv.key()),
                    %error,
                    "Ignoring a node registration that is not valid JSON.",
                );
                None
            }
        }
    }

    fn parse_key(&self, key: &[u8]) -> Option<(ServiceKind, String)> {
        let rest = std::str::from_utf8(key)
            .ok()?
            .strip_prefix(&self.nodes_prefix)?;
        let (kind, id) = rest.split_once('/')?;
        let kind = ServiceKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        Some((kind, id.to_string()))
    }

    /// Publish `kind`'s nodes if they changed.
    fn publish(&self, kind: ServiceKind, state: &NodeState) {
        let Some(view) = self.views.get(&kind) else {
            return;
        };
        let nodes: Vec<NodeInfo> = state
            .get(&kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        view.send_if_modified(|current| {
            if **current == nodes {
                return false;
            }
            *current = Arc::new(nodes);
            true
        });
    }

    /// Write every registered node on the current lease and apply failed
    /// deletes, if anything may differ from etcd.
    async fn replay(&self) -> Result<(), CallError> {
        let mut registry = self.registry.lock().await;
        if !registry.dirty {
            return Ok(());
        }
        let lease = self.lease_id.load(Ordering::Acquire);
        for ((kind, id), node) in &registry.nodes {
            let value =
                encode(node).map_err(|e| CallError::Data(format!("cannot encode node: {e}")))?;
            self.put(self.key(*kind, id), value, lease).await?;
        }
        let deleted: Vec<(ServiceKind, String)> = registry.deleted.iter().cloned().collect();
        for name in &deleted {
            self.delete(self.key(name.0, &name.1)).await?;
            registry.deleted.remove(name);
        }
        registry.dirty = false;
        tracing::info!(
            lease,
            nodes = registry.nodes.len(),
            deleted = deleted.len(),
            "Registrations re-written to etcd.",
        );
        Ok(())
    }

    /// One keep-alive session on the current lease (granting a new one if it is
    /// gone). `Ok(reason)` when the session ended after working; `Err` when it
    /// could not start or a replay failed.
    async fn lease_session(&self, backoff: &mut Backoff) -> Result<String, CallError> {
        let mut client = self.client.clone();
        let old = self.lease_id.load(Ordering::Acquire);
        let (mut keeper, mut answers) = match bounded(
            self.call_timeout,
            client.lease_keep_alive(old),
        )
        .await
        {
            Ok(pair) => pair,
            Err(e) if e.lease_gone() => {
                let granted =
                    bounded(self.call_timeout, client.lease_grant(self.ttl, None)).await?;
                self.lease_id.store(granted.id(), Ordering::Release);
                self.granted_ttl.store(granted.ttl(), Ordering::Release);
                self.registry.lock().await.dirty = true;
                tracing::warn!(
                    old,
                    new = granted.id(),
                    "etcd lease expired or was revoked; registering every node again on a new lease.",
                );
                bounded(self.call_timeout, client.lease_keep_alive(granted.id())).await?
            }
            Err(e) => return Err(e),
        };
        self.replay().await?;
        if !self.lease_ok.swap(true, Ordering::AcqRel) {
            tracing::info!(endpoints = %self.endpoints, lease = keeper.id(), "etcd lease kept alive again.");
        }
        backoff.reset();

        let ttl_ms = u64::try_from(self.granted_ttl.load(Ordering::Acquire))
            .unwrap_or(1)
            .max(1)
            * 1000;
        let period = Duration::from_millis((ttl_ms / 3).max(200));
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.lease_lost.notified() => return Ok("a write found the lease gone".into()),
                // Between keep-alives the stream only speaks to say it broke.
                answer = answers.message() => match answer {
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok("keep-alive stream ended".into()),
                    Err(e) => return Ok(format!("keep-alive stream broke: {e}")),
                },
            }
            if let Err(e) = keeper.keep_alive().await {
                return Ok(format!("keep-alive stream closed: {e}"));
            }
            match tokio::time::timeout(period, answers.message()).await {
                Err(_) => return Ok(format!("no keep-alive answer within {period:?}")),
                Ok(Err(e)) => return Ok(format!("keep-alive stream broke: {e}")),
                Ok(Ok(None)) => return Ok("keep-alive stream ended".into()),
                Ok(Ok(Some(answer))) if answer.ttl() <= 0 => return Ok("lease expired".into()),
                Ok(Ok(Some(_))) => {}
            }
            self.replay().await?;
        }
    }

    /// One watch from `revision + 1`, applying events to `state`, until the
    /// stream breaks. `Err` when the watch could not be created.
    async fn watch_session(
        &self,
        state: &mut NodeState,
        revision: i64,
        backoff: &mut Backoff,
    ) -> Result<String, CallError> {
        let mut client = self.client.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = bounded(
            self.call_timeout,
            client.watch(self.nodes_prefix.as_str(), Some(options)),
        )
        .await?;
        loop {
            // No timeout: an idle watch is normal; HTTP/2 pings catch a dead peer.
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Ok("watch stream ended".into()),
                Err(e) => return Ok(format!("watch stream broke: {e}")),
            };
            if response.created() {
                if !self.watch_ok.swap(true, Ordering::AcqRel) {
                    tracing::info!(endpoints = %self.endpoints, "etcd watch re-established; node views resynced.");
                }
                backoff.reset();
            }
            if response.canceled() {
                return Ok(format!(
                    "watch cancelled by etcd (compacted at {}): {}",
                    response.compact_revision(),
                    response.cancel_reason()
                ));
            }
            let mut touched = BTreeSet::new();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => {
                        if let Some((kind, id, node)) = self.decode(kv) {
                            state.entry(kind).or_default().insert(id, node);
                            touched.insert(kind);
                        }
                    }
                    EventType::Delete => {
                        if let Some((kind, id)) = self.parse_key(kv.key()) {
                            state.entry(kind).or_default().remove(&id);
                            touched.insert(kind);
                        }
                    }
                }
            }
            for kind in touched {
                self.publish(kind, state);
            }
        }
    }

    fn lost(&self, flag: &AtomicBool, what: &str, error: &CallError) {
        if flag.swap(false, Ordering::AcqRel) {
            tracing::warn!(endpoints = %self.endpoints, %error, "etcd unreachable ({what}); keeping the last node views and retrying.");
        } else {
            tracing::debug!(endpoints = %self.endpoints, %error, "etcd still unreachable ({what}).");
        }
    }
}

// === background tasks ===

/// Keep this process's lease alive, replacing it (and re-writing every node)
/// when it is gone. Runs until `stop`.
async fn keep_lease(shared: Arc<Shared>, stop: CancellationToken) {
    let mut backoff = Backoff::etcd();
    loop {
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            ended = shared.lease_session(&mut backoff) => ended,
        };
        match ended {
            // Open a new keeper at once; a failure to do so marks etcd lost.
            Ok(reason) => tracing::debug!(%reason, "etcd keep-alive session ended."),
            Err(error) => shared.lost(&shared.lease_ok, "lease", &error),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Feed the views from one etcd watch, resyncing with a fresh read after every
/// break. Runs until `stop`.
async fn follow_nodes(
    shared: Arc<Shared>,
    stop: CancellationToken,
    mut state: NodeState,
    mut revision: i64,
) {
    let mut backoff = Backoff::etcd();
    let mut resync = false;
    loop {
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            ended = async {
                if resync {
                    revision = shared.load(&mut state).await?;
                    resync = false;
                }
                shared.watch_session(&mut state, revision, &mut backoff).await
            } => ended,
        };
        resync = true;
        match ended {
            Ok(reason) => tracing::debug!(%reason, "etcd watch ended; resyncing."),
            Err(error) => shared.lost(&shared.watch_ok, "watch", &error),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

// === helpers ===

fn encode(node: &NodeInfo) -> Result<Vec<u8>, DiscoveryError> {
    serde_json::to_vec(node)
        .map_err(|e| DiscoveryError::Unavailable(format!("cannot encode node {}: {e}", node.id)))
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::time::Instant;

    use test_servers::Etcd;

    use super::*;

    type TestResult = Result<(), Box<dyn Error>>;

    fn config(etcd: &Etcd, ttl: i64) -> EtcdConfig {
        EtcdConfig {
            endpoints: vec![etcd.endpoint()],
            prefix: "/test/".into(),
            lease_ttl_secs: ttl,
            connect_timeout_ms: 1000,
            ..EtcdConfig::default()
        }
    }

    fn node(id: &str, connections: u64) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            grpc_addr: Some("127.0.0.1:7000".into()),
            connections,
            ..NodeInfo::default()
        }
    }

    /// `(id, connections)` of every node in the view.
    fn listed(view: &watch::Receiver<NodeSet>) -> Vec<(String, u64)> {
        view.borrow()
            .iter()
            .map(|n| (n.id.clone(), n.connections))
            .collect()
    }

    /// Wait until the view holds exactly `expected`; return how long it took.
    async fn wait_for(
        view: &mut watch::Receiver<NodeSet>,
        expected: &[(&str, u64)],
        limit: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let matches = |set: &NodeSet| {
            set.len() == expected.len()
                && set
                    .iter()
                    .zip(expected)
                    .all(|(n, (id, c))| n.id == *id && n.connections == *c)
        };
        let waited = tokio::time::timeout(limit, view.wait_for(matches))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => Ok(start.elapsed()),
            Ok(false) => Err("view closed".into()),
            Err(_) => Err(format!(
                "view is {:?} after {limit:?}, expected {expected:?}",
                listed(view)
            )),
        }
    }

    async fn wait_healthy(discovery: &EtcdDiscovery, healthy: bool, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if discovery.healthy() == healthy {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The lease of `key` as etcd stores it (0: no such key).
    async fn lease_of(etcd: &Etcd, key: &str) -> Result<i64, Box<dyn Error>> {
        let mut client = Client::connect([etcd.endpoint()], None).await?;
        let response = client.get(key, None).await?;
        Ok(response.kvs().first().map_or(0, |kv| kv.lease()))
    }

    #[tokio::test]
    async fn another_process_sees_register_update_and_deregister() -> TestResult {
        let etcd = Etcd::start()?;
        let registrant = EtcdDiscovery::connect(config(&etcd, 3)).await?;
        let watcher = EtcdDiscovery::connect(config(&etcd, 3)).await?;
        let mut view = watcher.watch(ServiceKind::Conn);

        registrant
            .register(ServiceKind::Conn, node("c1", 0))
            .await?;
        wait_for(&mut view, &[("c1", 0)], Duration::from_secs(2)).await?;
        let lease = lease_of(&etcd, "/test/nodes/conn/c1").await?;
        assert_eq!(lease, registrant.shared.lease_id.load(Ordering::Acquire));

        registrant
            .register(ServiceKind::Conn, node("c1", 42))
            .await?;
        registrant
            .register(ServiceKind::Conn, node("c0", 1))
            .await?;
        wait_for(&mut view, &[("c0", 1), ("c1", 42)], Duration::from_secs(2)).await?;
        assert_eq!(
            lease_of(&etcd, "/test/nodes/conn/c1").await?,
            lease,
            "one lease"
        );
        assert!(watcher.watch(ServiceKind::Push).borrow().is_empty());

        registrant.deregister(ServiceKind::Conn, "c1").await?;
        let took = wait_for(&mut view, &[("c0", 1)], Duration::from_millis(500)).await?;
        eprintln!("deregister seen by the watcher after {took:?}");
        assert!(registrant.healthy() && watcher.healthy());
        Ok(())
    }

    #[tokio::test]
    async fn a_registrant_that_dies_disappears_within_the_ttl() -> TestResult {
        let etcd = Etcd::start()?;
        let registrant = EtcdDiscovery::connect(config(&etcd, 2)).await?;
        let watcher = EtcdDiscovery::connect(config(&etcd, 2)).await?;
        let mut view = watcher.watch(ServiceKind::Biz);
        registrant.register(ServiceKind::Biz, node("b1", 0)).await?;
        wait_for(&mut view, &[("b1", 0)], Duration::from_secs(2)).await?;

        // Like a crash: its tasks stop, nothing is deregistered or revoked.
        drop(registrant);
        let took = wait_for(&mut view, &[], Duration::from_secs(2 + 2)).await?;
        eprintln!("dead registrant gone from the view after {took:?} (TTL 2 s)");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn registrations_and_views_survive_an_etcd_outage() -> TestResult {
        let ttl = 2;
        let mut etcd = Etcd::start()?;
        let registrant = EtcdDiscovery::connect(config(&etcd, ttl)).await?;
        let watcher = EtcdDiscovery::connect(config(&etcd, ttl)).await?;
        let mut view = watcher.watch(ServiceKind::Conn);
        registrant
            .register(ServiceKind::Conn, node("c1", 1))
            .await?;
        registrant
            .register(ServiceKind::Conn, node("c2", 1))
            .await?;
        wait_for(&mut view, &[("c1", 1), ("c2", 1)], Duration::from_secs(2)).await?;
        let lease_before = registrant.shared.lease_id.load(Ordering::Acquire);

        etcd.stop();
        let stopped = Instant::now();
        assert!(wait_healthy(&registrant, false, Duration::from_secs(3)).await);
        assert!(wait_healthy(&watcher, false, Duration::from_secs(3)).await);
        eprintln!("unhealthy after {:?}", stopped.elapsed());
        // Changes made during the outage fail now and are applied once etcd is back.
        assert!(
            registrant
                .register(ServiceKind::Conn, node("c1", 7))
                .await
                .is_err()
        );
        assert!(
            registrant
                .deregister(ServiceKind::Conn, "c2")
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_secs(2 * ttl as u64).saturating_sub(stopped.elapsed()))
            .await;
        assert_eq!(
            listed(&view),
            [("c1".into(), 1), ("c2".into(), 1)],
            "last view kept"
        );
        assert!(!registrant.healthy() && !watcher.healthy());

        tokio::task::block_in_place(|| etcd.start_again())?;
        let restarted = Instant::now();
        let took = wait_for(&mut view, &[("c1", 7)], Duration::from_secs(8)).await?;
        assert!(wait_healthy(&registrant, true, Duration::from_secs(5)).await);
        assert!(wait_healthy(&watcher, true, Duration::from_secs(5)).await);
        let lease_after = registrant.shared.lease_id.load(Ordering::Acquire);
        assert_eq!(lease_of(&etcd, "/test/nodes/conn/c1").await?, lease_after);
        eprintln!(
            "after restart: view current in {took:?}, both healthy in {:?}, lease {}",
            restarted.elapsed(),
            if lease_after == lease_before {
                "kept"
            } else {
                "replaced"
            },
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_revoked_lease_is_replaced_and_nodes_come_back() -> TestResult {
        let etcd = Etcd::start()?;
        let registrant = EtcdDiscovery::connect(config(&etcd, 3)).await?;
        let watcher = EtcdDiscovery::connect(config(&etcd, 3)).await?;
        let mut view = watcher.watch(ServiceKind::Push);
        registrant
            .register(ServiceKind::Push, node("p1", 3))
            .await?;
        wait_for(&mut view, &[("p1", 3)], Duration::from_secs(2)).await?;
        let revoked = registrant.shared.lease_id.load(Ordering::Acquire);

        let mut admin = Client::connect([etcd.endpoint()], None).await?;
        admin.lease_revoke(revoked).await?;
        wait_for(&mut view, &[], Duration::from_secs(1)).await?;
        let took = wait_for(&mut view, &[("p1", 3)], Duration::from_secs(3)).await?;
        eprintln!("re-registered on a new lease {took:?} after the revoke was seen");
        let lease = registrant.shared.lease_id.load(Ordering::Acquire);
        assert_ne!(lease, revoked);
        assert_eq!(lease_of(&etcd, "/test/nodes/push/p1").await?, lease);
        // Updates go on the new lease.
        registrant
            .register(ServiceKind::Push, node("p1", 4))
            .await?;
        wait_for(&mut view, &[("p1", 4)], Duration::from_secs(2)).await?;
        Ok(())
    }

    #[tokio::test]
    async fn connect_to_a_closed_port_fails_fast_naming_the_endpoint() -> TestResult {
        let mut etcd = Etcd::start()?;
        etcd.stop();
        let start = Instant::now();
        let error = match EtcdDiscovery::connect(config(&etcd, 2)).await {
            Ok(_) => return Err("connected to a stopped etcd".into()),
            Err(e) => e.to_string(),
        };
        eprintln!("connect failed after {:?}: {error}", start.elapsed());
        assert!(start.elapsed() < Duration::from_secs(2), "{error}");
        assert!(
            error.contains(&format!("cannot reach etcd at {}", etcd.endpoint())),
            "{error}"
        );
        Ok(())
    }
}
