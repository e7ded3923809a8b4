//! The etcd engine of [`LiveConfig`] for distributed mode.
//!
//! # Layout
//! - [`EtcdLiveConfig`]: the handle; `get`/`put`/`delete` are single bounded
//!   etcd calls, `watch` hands out a receiver fed by a background task.
//! - `follow_key`: the per-key task (get, then watch from that revision).
//! - calls go through `crate::etcd_call` (bounded calls, one error type) and
//!   retry with `crate::backoff`.
//!
//! # Keys
//! Document `key` is stored at `{prefix}config/{key}` as its UTF-8 text. etcd
//! `put` replaces a value atomically, so readers never see a partial document.
//!
//! # Watches and recovery
//! The first `watch(key)` starts one task for that key (later calls share
//! it). The task reads the key, publishes the value, and watches from the
//! read's revision, so no change between the read and the watch is missed.
//! When the stream breaks or etcd is down, receivers keep the last value; the
//! task retries with backoff (100 ms doubling to 2 s) and, once etcd answers,
//! reads the key again and watches from the new revision (a compacted revision
//! is handled the same way). Losing and regaining etcd is logged once each.
//!
//! A fresh receiver holds `None` until the task's first read lands (a few
//! milliseconds): callers that must not mistake "not read yet" for "absent"
//! call `get` once after `watch` and then follow the receiver.
//!
//! # Lifetime
//! Tasks stop when the [`EtcdLiveConfig`] is dropped (it holds the drop guard
//! of the token they select on); receivers then see the channel closed.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{LiveConfig, LiveConfigError};
use crate::backoff::Backoff;
use crate::etcd_call::{self, CallError, EtcdSecurity, bounded};

/// Bound on connecting and on each etcd request: a channel with no reachable
/// endpoint may otherwise wait forever.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Live configuration in etcd. See the module docs.
pub struct EtcdLiveConfig {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

struct Shared {
    client: Client,
    /// `{prefix}config/`.
    config_prefix: String,
    /// The configured endpoints, for messages.
    endpoints: String,
    call_timeout: Duration,
    /// Where key tasks run: `watch` is sync and may be called off the runtime.
    runtime: Handle,
    stop: CancellationToken,
    /// One sender per watched key. A std mutex: held only for a map lookup or
    /// insert, never across an await.
    watches: Mutex<HashMap<String, watch::Sender<Option<String>>>>,
    /// False once a key task lost etcd, until a watch is re-established.
    healthy: AtomicBool,
}

// === impl EtcdLiveConfig ===

impl EtcdLiveConfig {
    /// Connect to etcd and check it answers. Keys live under `{prefix}config/`.
    ///
    /// Fails fast with [`LiveConfigError::Unavailable`] naming the endpoints
    /// when etcd does not answer within [`DEFAULT_CALL_TIMEOUT`]. Must be called
    /// on a tokio runtime: watch tasks are spawned on it.
    pub async fn connect(
        endpoints: Vec<String>,
        prefix: &str,
    ) -> Result<EtcdLiveConfig, LiveConfigError> {
        Self::connect_with(endpoints, prefix, &EtcdSecurity::default()).await
    }

    /// [`Self::connect`] over TLS and/or with credentials.
    pub async fn connect_with(
        endpoints: Vec<String>,
        prefix: &str,
        security: &EtcdSecurity,
    ) -> Result<EtcdLiveConfig, LiveConfigError> {
        let joined = endpoints.join(",");
        if endpoints.is_empty() {
            return Err(LiveConfigError::Unavailable(
                "cannot reach etcd: no endpoints configured".into(),
            ));
        }
        let unreachable = |e: &dyn fmt::Display| {
            LiveConfigError::Unavailable(format!("cannot reach etcd at {joined}: {e}"))
        };
        let call_timeout = DEFAULT_CALL_TIMEOUT;
        let client = etcd_call::connect(&endpoints, security, call_timeout)
            .await
            .map_err(|e| unreachable(&e))?;
        let config_prefix = format!("{prefix}config/");
        // Connecting may be lazy; one cheap read proves etcd answers.
        let probe = GetOptions::new().with_prefix().with_count_only();
        bounded(
            call_timeout,
            client.clone().get(config_prefix.as_str(), Some(probe)),
        )
        .await
        .map_err(|e| unreachable(&e))?;

        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            client,
            config_prefix,
            endpoints: joined,
            call_timeout,
            runtime: Handle::current(),
            stop: stop.clone(),
            watches: Mutex::new(HashMap::new()),
            healthy: AtomicBool::new(true),
        });
        tracing::info!(endpoints = %shared.endpoints, prefix = %shared.config_prefix, "Live configuration connected to etcd.");
        Ok(Self {
            shared,
            _stop: stop.drop_guard(),
        })
    }

    /// False while a watch cannot be re-established; receivers then hold the
    /// last known values.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }
}

#[async_trait::async_trait]
impl LiveConfig for EtcdLiveConfig {
    async fn get(&self, key: &str) -> Result<Option<String>, LiveConfigError> {
        let (value, _) = self
            .shared
            .read(key)
            .await
            .map_err(|e| self.shared.unavailable(&e))?;
        Ok(value)
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), LiveConfigError> {
        let shared = &self.shared;
        let mut client = shared.client.clone();
        bounded(
            shared.call_timeout,
            client.put(shared.key(key), value, None),
        )
        .await
        .map_err(|e| shared.unavailable(&e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), LiveConfigError> {
        let shared = &self.shared;
        let mut client = shared.client.clone();
        bounded(shared.call_timeout, client.delete(shared.key(key), None))
            .await
            .map_err(|e| shared.unavailable(&e))?;
        Ok(())
    }

    fn watch(&self, key: &str) -> watch::Receiver<Option<String>> {
        let shared = &self.shared;
        let tx = {
            let mut watches = shared.watches.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(tx) = watches.get(key) {
                return tx.subscribe();
            }
            let tx = watch::channel(None).0;
            watches.insert(key.to_owned(), tx.clone());
            tx
        };
        let rx = tx.subscribe();
        shared.runtime.spawn(follow_key(
            shared.clone(),
            key.to_owned(),
            tx,
            shared.stop.clone(),
        ));
        rx
    }
}

// === impl Shared ===

impl Shared {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.config_prefix)
    }

    fn unavailable(&self, e: &CallError) -> LiveConfigError {
        LiveConfigError::Unavailable(format!("etcd at {}: {e}", self.endpoints))
    }

    /// The value of `key` and the revision of the read.
    async fn read(&self, key: &str) -> Result<(Option<String>, i64), CallError> {
        let mut client = self.client.clone();
        let response = bounded(self.call_timeout, client.get(self.key(key), None)).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let value = match response.kvs().first() {
            Some(kv) => Some(text(kv)?),
            None => None,
        };
        Ok((value, revision))
    }

    /// One session: read `key`, publish it, then follow changes until the
    /// stream breaks. `Ok(reason)` when it ended after working; `Err` when the
    /// read or the watch could not start.
    async fn key_session(
        &self,
        key: &str,
        tx: &watch::Sender<Option<String>>,
        backoff: &mut Backoff,
    ) -> Result<String, CallError> {
        let (value, revision) = self.read(key).await?;
        publish(tx, value);
        let mut client = self.client.clone();
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = bounded(
            self.call_timeout,
            client.watch(self.key(key), Some(options)),
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
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!(endpoints = %self.endpoints, key, "etcd watch re-established; live configuration resynced.");
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
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => match text(kv) {
                        Ok(value) => publish(tx, Some(value)),
                        Err(error) => {
                            tracing::warn!(key, %error, "Ignoring a live configuration value that is not UTF-8.");
                        }
                    },
                    EventType::Delete => publish(tx, None),
                }
            }
        }
    }

    fn lost(&self, key: &str, error: &CallError) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(endpoints = %self.endpoints, key, %error, "etcd unreachable; keeping the last live configuration and retrying.");
        } else {
            tracing::debug!(endpoints = %self.endpoints, key, %error, "etcd still unreachable.");
        }
    }
}

/// Set the receivers' value, waking them only when it changed.
fn publish(tx: &watch::Sender<Option<String>>, value: Option<String>) {
    tx.send_if_modified(|current| {
        if *current == value {
            return false;
        }
        *current = value;
        true
    });
}

fn text(kv: &KeyValue) -> Result<String, CallError> {
    String::from_utf8(kv.value().to_vec())
        .map_err(|e| CallError::Data(format!("stored value is not UTF-8: {}", e.utf8_error())))
}

// === background task ===

/// Feed `tx` with the value of `key`, resyncing after every break. Runs until
/// `stop`.
async fn follow_key(
    shared: Arc<Shared>,
    key: String,
    tx: watch::Sender<Option<String>>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::etcd();
    loop {
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            ended = shared.key_session(&key, &tx, &mut backoff) => ended,
        };
        match ended {
            Ok(reason) => tracing::debug!(key, %reason, "etcd watch ended; resyncing."),
            Err(error) => shared.lost(&key, &error),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::time::Instant;

    use test_servers::Etcd;

    use super::*;

    type TestResult = Result<(), Box<dyn Error>>;

    const PREFIX: &str = "/test/";

    async fn connect(etcd: &Etcd) -> Result<EtcdLiveConfig, LiveConfigError> {
        EtcdLiveConfig::connect(vec![etcd.endpoint()], PREFIX).await
    }

    /// Wait until `rx` holds `expected`; return how long it took.
    async fn wait_for(
        rx: &mut watch::Receiver<Option<String>>,
        expected: Option<&str>,
        limit: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let waited = tokio::time::timeout(limit, rx.wait_for(|v| v.as_deref() == expected))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => Ok(start.elapsed()),
            Ok(false) => Err("watch closed".into()),
            Err(_) => Err(format!(
                "value is {:?} after {limit:?}, expected {expected:?}",
                *rx.borrow()
            )),
        }
    }

    #[tokio::test]
    async fn put_get_delete_and_watch() -> TestResult {
        let etcd = Etcd::start()?;
        let live = connect(&etcd).await?;
        assert_eq!(live.get("rollout").await?, None);
        let mut rx = live.watch("rollout");
        // The key's task reads the (absent) value; nothing to wait for.
        live.put("rollout", r#"{"percent":5}"#).await?;
        assert_eq!(
            live.get("rollout").await?.as_deref(),
            Some(r#"{"percent":5}"#)
        );
        wait_for(&mut rx, Some(r#"{"percent":5}"#), Duration::from_secs(1)).await?;

        // A second watcher of the same key shares the task and sees the value.
        let mut second = live.watch("rollout");
        wait_for(
            &mut second,
            Some(r#"{"percent":5}"#),
            Duration::from_secs(1),
        )
        .await?;
        live.put("rollout", r#"{"percent":50}"#).await?;
        wait_for(&mut rx, Some(r#"{"percent":50}"#), Duration::from_secs(1)).await?;
        wait_for(
            &mut second,
            Some(r#"{"percent":50}"#),
            Duration::from_secs(1),
        )
        .await?;

        live.delete("rollout").await?;
        wait_for(&mut rx, None, Duration::from_secs(1)).await?;
        assert_eq!(live.get("rollout").await?, None);

        // Keys are separate documents under {prefix}config/.
        live.put("drain/conn-1", r#"{"requested_at_ms":1}"#).await?;
        assert_eq!(live.get("rollout").await?, None);
        let mut client = Client::connect([etcd.endpoint()], None).await?;
        let stored = client.get("/test/config/drain/conn-1", None).await?;
        assert_eq!(stored.kvs().len(), 1);
        assert!(live.healthy());
        Ok(())
    }

    #[tokio::test]
    async fn a_change_reaches_another_instance_within_a_second() -> TestResult {
        let etcd = Etcd::start()?;
        let writer = connect(&etcd).await?;
        let reader = connect(&etcd).await?;
        writer.put("rollout", "v1").await?;
        let mut rx = reader.watch("rollout");
        wait_for(&mut rx, Some("v1"), Duration::from_secs(1)).await?;
        let start = Instant::now();
        writer.put("rollout", "v2").await?;
        let took = wait_for(&mut rx, Some("v2"), Duration::from_secs(1)).await?;
        eprintln!(
            "change seen by another instance {took:?} after the put returned ({:?} after it started)",
            start.elapsed()
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watches_keep_the_last_value_through_an_etcd_outage() -> TestResult {
        let mut etcd = Etcd::start()?;
        let writer = connect(&etcd).await?;
        let reader = connect(&etcd).await?;
        writer.put("rollout", "before").await?;
        let mut rx = reader.watch("rollout");
        wait_for(&mut rx, Some("before"), Duration::from_secs(1)).await?;

        etcd.stop();
        let start = Instant::now();
        while reader.healthy() && start.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!reader.healthy(), "the outage is noticed");
        let error = writer
            .put("rollout", "lost")
            .await
            .expect_err("etcd is down");
        assert!(error.to_string().contains(&etcd.endpoint()), "{error}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rx.borrow().as_deref(), Some("before"), "last value kept");

        tokio::task::block_in_place(|| etcd.start_again())?;
        let restarted = Instant::now();
        // The writer's client reconnects on its own; retry until it does.
        loop {
            match writer.put("rollout", "after").await {
                Ok(()) => break,
                Err(_) if restarted.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let took = wait_for(&mut rx, Some("after"), Duration::from_secs(5)).await?;
        eprintln!(
            "after restart: change seen in {took:?} ({:?} since restart)",
            restarted.elapsed()
        );
        let start = Instant::now();
        while !reader.healthy() && start.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(reader.healthy());
        // A watch started after the outage works too.
        let mut fresh = reader.watch("drain/conn-1");
        writer.put("drain/conn-1", "now").await?;
        wait_for(&mut fresh, Some("now"), Duration::from_secs(1)).await?;
        Ok(())
    }

    #[tokio::test]
    async fn connect_to_a_stopped_etcd_fails_fast_naming_the_endpoint() -> TestResult {
        let mut etcd = Etcd::start()?;
        etcd.stop();
        let start = Instant::now();
        let error = match connect(&etcd).await {
            Ok(_) => return Err("connected to a stopped etcd".into()),
            Err(e) => e.to_string(),
        };
        assert!(start.elapsed() < Duration::from_secs(3), "{error}");
        assert!(
            error.contains(&format!("cannot reach etcd at {}", etcd.endpoint())),
            "{error}"
        );
        let none = EtcdLiveConfig::connect(Vec::new(), PREFIX).await;
        assert!(none.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn watchers_close_when_the_engine_is_dropped() -> TestResult {
        let etcd = Etcd::start()?;
        let live = connect(&etcd).await?;
        let mut rx = live.watch("rollout");
        drop(live);
        let closed = tokio::time::timeout(Duration::from_secs(1), async {
            while rx.changed().await.is_ok() {}
        })
        .await;
        assert!(closed.is_ok(), "the key task stops and drops its sender");
        Ok(())
    }
}
