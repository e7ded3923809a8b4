//! The state every request handler shares, gRPC and HTTP alike.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use common::api_keys::Keyring;
use common::auth::{TokenRules, TokenVerifier};
use prometheus::Registry;
use proto::client::v1::Code;
use room_store::domain::rules::Refusal;
use room_store::{Metered, RoomStore};
use tokio::sync::watch;

use crate::actions::{ActionCall, ActionTable, Backends};
use crate::config::Config;
use crate::error::Error;
use crate::key_quota::KeyQuota;
use crate::longpoll::{LongPollCache, UidSlots};
use crate::metrics::Metrics;
use crate::pusher::RoomPusher;
use crate::schedules::Schedules;

/// Configuration, backends, the action table and metrics, behind one `Arc`.
pub(crate) struct Shared {
    /// The validated configuration.
    pub(crate) cfg: Config,
    /// Room store, push API and the room service.
    pub(crate) backends: Backends,
    /// Action handlers by name.
    pub(crate) actions: ActionTable,
    /// Prometheus series.
    pub(crate) metrics: Metrics,
    /// Client tokens of HTTP polling and actions; `None` when no key is
    /// configured (those endpoints then answer 503).
    pub(crate) verifier: Option<TokenVerifier>,
    /// Recent messages of long-polled rooms.
    pub(crate) longpoll: LongPollCache,
    /// The API keys of app backends, as live configuration has them
    /// (empty until the first read: every backend request is refused).
    pub(crate) api_keys: watch::Sender<Arc<Keyring>>,
    /// Backend writes per API key.
    pub(crate) key_quota: KeyQuota,
    /// Long polls waiting per uid (`max_long_polls_per_uid`).
    pub(crate) poll_slots: UidSlots,
    /// Scheduled rooms: the due-start index and its poller.
    pub(crate) schedules: Schedules,
}

impl Shared {
    /// Build the handlers for `cfg` and register metrics in `registry`.
    pub(crate) fn new(
        cfg: Config,
        store: Arc<dyn RoomStore>,
        pusher: Arc<dyn RoomPusher>,
        registry: &Registry,
    ) -> Result<Self, Error> {
        let verifier = if cfg.token_secret.is_empty() && cfg.token_eddsa_public_pem.is_none() {
            None
        } else {
            let verifier = TokenVerifier::new(
                Some(&cfg.token_secret),
                cfg.token_eddsa_public_pem.as_deref(),
            )
            .map_err(|e| Error::Config(format!("client token keys: {e}")))?
            .with_rules(TokenRules::new(
                cfg.token_audience.as_deref(),
                cfg.token_issuer.as_deref(),
                cfg.token_max_lifetime_secs,
            ));
            Some(verifier)
        };
        let metrics = Metrics::new(registry);
        // Every store operation is counted, so a workload's cost in round
        // trips is visible (and benchmarks can report store ops per second).
        let store: Arc<dyn RoomStore> = Arc::new(Metered::new(store, metrics.store_ops.clone()));
        let schedules = Schedules::new(cfg.schedules.clone(), store.ledger(), registry);
        let backends = Backends::new(&cfg, store, pusher, &metrics);
        backends.rooms.webhooks.register(registry);
        Ok(Self {
            schedules,
            actions: ActionTable::new(&cfg)?,
            longpoll: LongPollCache::new(&cfg, &backends, &metrics),
            poll_slots: UidSlots::new(cfg.max_long_polls_per_uid),
            verifier,
            api_keys: watch::Sender::new(Arc::default()),
            key_quota: KeyQuota::new(cfg.backend_write_rate_per_sec, cfg.backend_write_burst),
            metrics,
            backends,
            cfg,
        })
    }

    /// Run action `name` for `call` through the action table, recording the
    /// action metrics: the one path of socket `Publish` and HTTP actions.
    pub(crate) async fn perform(&self, name: &str, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let started = Instant::now();
        let label = self.actions.label(name);
        let result = self.actions.dispatch(&self.backends, name, call).await;
        let code = result.as_ref().map_or_else(|r| r.code, |_| Code::Ok);
        self.metrics
            .actions
            .with_label_values(&[label, code.as_str_name()])
            .inc();
        self.metrics
            .action_latency
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}
