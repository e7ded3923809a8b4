//! One webhook URL's deliverer on one node: claims events from the URL's
//! reader group, POSTs them in log order, retries a failing one with
//! exponential backoff (touching its claims so no other node takes them
//! meanwhile), and acknowledges each once the receiver answered 2xx.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderName;
use prometheus::IntCounterVec;
use room_store::{Ledger, LoggedEvent};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::client::{PostError, WebhookClient};
use super::{public_event, signature};
use crate::config::WebhookConfig;

/// Header naming the event (also its idempotency key).
const EVENT_ID: HeaderName = HeaderName::from_static("roomcast-event-id");
/// The idempotency key, under its common name.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

pub(super) struct Deliverer {
    url: String,
    /// The URL's reader group in the event log.
    group: String,
    consumer: String,
    ledger: Arc<dyn Ledger>,
    client: WebhookClient,
    secret: String,
    cfg: WebhookConfig,
    deliveries: IntCounterVec,
    logged: Arc<Notify>,
}

/// The reader group of `url`: named by a hash, so URLs with secrets in
/// their query do not show in Redis.
pub(super) fn group_of(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    format!("webhook:{}", hex::encode(&digest[..8]))
}

impl Deliverer {
    pub(super) fn new(
        url: &str,
        node_id: &str,
        ledger: Arc<dyn Ledger>,
        client: WebhookClient,
        cfg: &WebhookConfig,
        deliveries: IntCounterVec,
        logged: Arc<Notify>,
    ) -> Self {
        Self {
            url: url.to_owned(),
            group: group_of(url),
            consumer: node_id.to_owned(),
            ledger,
            client,
            // Validated non-empty when URLs are set.
            secret: cfg.secrets.first().cloned().unwrap_or_default(),
            cfg: cfg.clone(),
            deliveries,
            logged,
        }
    }

    pub(super) async fn run(&self) {
        let poll = Duration::from_millis(self.cfg.poll_ms);
        loop {
            // Registered before the claim, so an event logged in between wakes us.
            let logged = self.logged.notified();
            let batch = match self
                .ledger
                .events_claim(
                    &self.group,
                    &self.consumer,
                    self.cfg.batch,
                    self.cfg.stale_ms,
                )
                .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(url = %self.url, %error, "Cannot read the event log.");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = logged => {}
                    () = tokio::time::sleep(poll) => {}
                }
                continue;
            }
            // The batch is ours while we touch it more often than `stale_ms`:
            // slow receivers must not let another node take the rest.
            let mut touched = Instant::now();
            for (done, event) in batch.iter().enumerate() {
                if touched.elapsed() >= self.touch_every() {
                    self.touch(&batch[done..]).await;
                    touched = Instant::now();
                }
                self.deliver(event, &batch[done..]).await;
            }
        }
    }

    /// Deliver `event` until it is taken or given up; `held` are the claims
    /// still ours (this event first), kept fresh while retrying.
    async fn deliver(&self, event: &LoggedEvent, held: &[LoggedEvent]) {
        let body = public_event(&event.id, &event.event).to_string();
        let first = Instant::now();
        let give_up = Duration::from_secs(self.cfg.give_up_secs);
        let mut wait = Duration::from_millis(self.cfg.retry_initial_ms);
        let max_wait = Duration::from_millis(self.cfg.retry_max_ms);
        loop {
            match self.post(&event.id, &body).await {
                Ok(()) => {
                    self.deliveries.with_label_values(&["ok"]).inc();
                    break;
                }
                Err(error) => {
                    self.deliveries.with_label_values(&["failed"]).inc();
                    if first.elapsed() >= give_up {
                        self.deliveries.with_label_values(&["gave_up"]).inc();
                        tracing::error!(url = %self.url, id = %event.id, %error, "Giving up a webhook; it stays in the event log.");
                        break;
                    }
                    tracing::debug!(url = %self.url, id = %event.id, %error, ?wait, "Webhook failed; retrying.");
                }
            }
            self.wait_holding(wait, held).await;
            wait = (wait * 2).min(max_wait);
        }
        // Acknowledged after delivery: a crash before it means a redelivery
        // (same id), never a loss.
        if let Err(error) = self
            .ledger
            .events_ack(&self.group, std::slice::from_ref(&event.id))
            .await
        {
            tracing::warn!(id = %event.id, %error, "Cannot acknowledge a delivered webhook; it may be sent again.");
        }
    }

    /// How often held claims are touched: well within `stale_ms`.
    fn touch_every(&self) -> Duration {
        Duration::from_millis((self.cfg.stale_ms / 3).max(1))
    }

    /// Sleep `wait`, touching the `held` claims along the way.
    async fn wait_holding(&self, wait: Duration, held: &[LoggedEvent]) {
        let mut left = wait;
        while !left.is_zero() {
            let step = left.min(self.touch_every());
            tokio::time::sleep(step).await;
            left -= step;
            self.touch(held).await;
        }
    }

    /// Mark `held` claims as still being worked on.
    async fn touch(&self, held: &[LoggedEvent]) {
        let ids: Vec<String> = held.iter().map(|e| e.id.clone()).collect();
        if let Err(error) = self
            .ledger
            .events_touch(&self.group, &self.consumer, &ids)
            .await
        {
            tracing::debug!(%error, "Cannot refresh webhook claims.");
        }
    }

    async fn post(&self, id: &str, body: &str) -> Result<(), PostError> {
        let now_secs = common::time::now_ms() / 1000;
        let headers = [
            (EVENT_ID, id.to_owned()),
            (IDEMPOTENCY_KEY, id.to_owned()),
            (
                HeaderName::from_static(signature::HEADER),
                signature::sign(&self.secret, now_secs, body.as_bytes()),
            ),
        ];
        self.client
            .post_json(&self.url, &headers, body.to_owned())
            .await
    }
}
