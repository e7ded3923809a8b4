//! Events to the app backend: room created/started/ended (with the
//! summary), member joined/left (when configured), gift, kick/block, poll
//! closed. Each goes into the event log, which the app can read back
//! (`GET /v1/events?after=`), and from there to every configured webhook URL.
//!
//! The live path only queues an event (`try_send` on a bounded queue; a
//! full queue drops the event and counts it): it never waits for the log or
//! a receiver. One task per node moves queued events into the log (the
//! store's [`Ledger`]: a Redis Stream in distributed mode, memory in
//! standalone). Deliverers read the log through a reader group per URL, so
//! each event goes to each URL from one node; an event is acknowledged only
//! after its receiver answered 2xx, retried with exponential backoff until
//! then, and picked up by another node if its node dies: delivery is
//! at-least-once, and the event id (its log id) is the idempotency key a
//! receiver deduplicates on. Deliveries are signed (`signature`).
//!
//! - `signature`: `Roomcast-Signature` (HMAC-SHA256, rotating secrets).
//! - `delivery`: one URL's deliverer.
//! - `client`: the HTTP client of deliveries (`http://` and `https://`,
//!   webpki roots plus `webhooks.ca_file`).

pub(crate) mod client;
mod delivery;
pub(crate) mod signature;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use room_store::Ledger;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::config::WebhookConfig;

/// Event types, as the app sees them in `type`.
pub(crate) mod kinds {
    /// A room was created (live or scheduled).
    pub(crate) const ROOM_CREATED: &str = "room.created";
    /// A room started (by hand or by its schedule).
    pub(crate) const ROOM_STARTED: &str = "room.started";
    /// A room ended; carries the final summary.
    pub(crate) const ROOM_ENDED: &str = "room.ended";
    /// Someone joined (only with `webhooks.member_events`).
    pub(crate) const MEMBER_JOINED: &str = "member.joined";
    /// Someone left (only with `webhooks.member_events`).
    pub(crate) const MEMBER_LEFT: &str = "member.left";
    /// Someone was kicked (`blocked`: also blocked by the host).
    pub(crate) const MEMBER_KICKED: &str = "member.kicked";
    /// A gift was sent.
    pub(crate) const GIFT: &str = "gift";
    /// A poll closed, with its result.
    pub(crate) const POLL_CLOSED: &str = "poll.closed";
}

/// Wait before retrying a failed append to the event log.
const APPEND_RETRY: Duration = Duration::from_millis(200);

/// Counters of the event log and deliveries.
#[derive(Clone)]
struct WebhookMetrics {
    /// Events by `result`: `logged`, `dropped` (queue full).
    events: IntCounterVec,
    /// Delivery attempts by `result`: `ok`, `failed`, `gave_up`.
    deliveries: IntCounterVec,
}

impl WebhookMetrics {
    fn new() -> Self {
        // The definitions are static; failing to build them is a programming error.
        let events = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_webhook_events_total",
                "Events for the app backend by result (logged, dropped).",
            ),
            &["result"],
        )
        .expect("static metric definition");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_webhook_deliveries_total",
                "Webhook delivery attempts by result (ok, failed, gave_up).",
            ),
            &["result"],
        )
        .expect("static metric definition");
        Self { events, deliveries }
    }
}

/// The node's event queue, event log writer and deliverers.
pub(crate) struct Webhooks {
    cfg: WebhookConfig,
    tx: mpsc::Sender<Value>,
    /// Taken by [`Self::run`].
    rx: Mutex<Option<mpsc::Receiver<Value>>>,
    /// Wakes idle deliverers when an event was logged.
    logged: Arc<Notify>,
    metrics: WebhookMetrics,
}

impl Webhooks {
    /// The queue for `cfg` (nothing is queued unless `cfg.enabled`).
    pub(crate) fn new(cfg: &WebhookConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        Self {
            cfg: cfg.clone(),
            tx,
            rx: Mutex::new(Some(rx)),
            logged: Arc::new(Notify::new()),
            metrics: WebhookMetrics::new(),
        }
    }

    /// Register the metrics in `registry`.
    pub(crate) fn register(&self, registry: &Registry) {
        common::ops::register(registry, &self.metrics.events);
        common::ops::register(registry, &self.metrics.deliveries);
    }

    /// Queue event `kind` about `room` with `data`; never waits.
    pub(crate) fn emit(&self, kind: &'static str, room: &str, data: Value) {
        if !self.cfg.enabled {
            return;
        }
        let event = json!({
            "type": kind,
            "room": room,
            "at_ms": common::time::now_ms(),
            "data": data,
        });
        if self.tx.try_send(event).is_err() {
            self.metrics.events.with_label_values(&["dropped"]).inc();
            tracing::warn!(kind, room, "Event queue full; dropping a webhook event.");
        }
    }

    /// Queue a join or leave, if member events are on.
    pub(crate) fn emit_member(&self, kind: &'static str, room: &str, data: Value) {
        if self.cfg.member_events {
            self.emit(kind, room, data);
        }
    }

    /// Log queued events and deliver logged ones as `node_id`, forever.
    pub(crate) async fn run(&self, ledger: Arc<dyn Ledger>, node_id: &str) {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (true, Some(rx)) = (self.cfg.enabled, rx) else {
            return std::future::pending().await;
        };
        // Every URL's reader group exists before the first event is logged,
        // so none is missed.
        for url in &self.cfg.urls {
            let group = delivery::group_of(url);
            while let Err(error) = ledger.events_join(&group).await {
                tracing::warn!(%error, "Cannot join the event log; retrying.");
                tokio::time::sleep(APPEND_RETRY).await;
            }
        }
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let ca_file = self.cfg.ca_file.as_deref().map(std::path::Path::new);
        let client = match client::WebhookClient::new(ca_file, timeout) {
            Ok(client) => Some(client),
            Err(error) => {
                // Checked at start: only a CA file changed since gets here.
                // Events are still logged, for `GET /v1/events` and a restart.
                tracing::error!(%error, "Cannot build the webhook client; no deliveries.");
                None
            }
        };
        let deliverers = client
            .iter()
            .flat_map(|client| self.cfg.urls.iter().map(move |url| (url, client.clone())));
        let deliverers = deliverers.map(|(url, client)| {
            let deliverer = delivery::Deliverer::new(
                url,
                node_id,
                ledger.clone(),
                client,
                &self.cfg,
                self.metrics.deliveries.clone(),
                self.logged.clone(),
            );
            async move { deliverer.run().await }
        });
        tokio::join!(
            self.record(rx, &*ledger),
            futures::future::join_all(deliverers)
        );
    }

    /// Move queued events into the event log, in order; a failed append is
    /// retried (meanwhile the queue absorbs, then drops, new events).
    async fn record(&self, mut rx: mpsc::Receiver<Value>, ledger: &dyn Ledger) {
        while let Some(event) = rx.recv().await {
            let text = event.to_string();
            loop {
                match ledger.events_append(&text, self.cfg.log_max_len).await {
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "Cannot append to the event log; retrying.");
                        tokio::time::sleep(APPEND_RETRY).await;
                    }
                }
            }
            self.metrics.events.with_label_values(&["logged"]).inc();
            self.logged.notify_waiters();
        }
    }
}

/// An event of the log as the app sees it: the stored event with its `id`.
pub(crate) fn public_event(id: &str, stored: &str) -> Value {
    let mut event = serde_json::from_str::<Value>(stored)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"type": "unreadable"}));
    event["id"] = Value::String(id.to_owned());
    event
}

#[cfg(test)]
mod tests;
