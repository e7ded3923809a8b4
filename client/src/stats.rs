//! Client stats for the router: `POST {router_url}/v1/client-stats`.
//!
//! A small task of its own accumulates what the connection task tells it and posts a
//! report after every long connect, on a switch to polling, and every
//! [`ConnectOptions::stats_interval`](crate::ConnectOptions::stats_interval). The
//! connection task only ever `try_send`s to it, so a slow or dead router never holds up
//! a session; a report that fails keeps its counts for the next one.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::{self, MissedTickBehavior};
use tracing::{Instrument as _, debug};

use crate::http::HttpClient;
use crate::options::ConnectOptions;
use crate::transport::Transport;

/// Updates queued between reports. Far above what a connection task produces between
/// two posts; when full, an update is dropped (stats are best effort).
const STATS_QUEUE: usize = 64;

/// What the connection task reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatsUpdate {
    /// One endpoint failed to connect or to complete the hello.
    Failure(Transport),
    /// A long connection completed the hello after `connect_ms`.
    Connected {
        transport: Transport,
        connect_ms: u64,
    },
    /// The client switched to polling.
    Polling,
}

/// The connection task's end: never blocks.
#[derive(Debug, Clone)]
pub(crate) struct StatsHandle {
    tx: mpsc::Sender<StatsUpdate>,
}

impl StatsHandle {
    pub(crate) fn send(&self, update: StatsUpdate) {
        if self.tx.try_send(update).is_err() {
            debug!(?update, "Stats queue full or closed; update dropped.");
        }
    }
}

/// Start the reporter task; it ends after the last handle is dropped (with a final report
/// of failures not yet sent).
pub(crate) fn spawn(
    http: HttpClient,
    opts: Arc<ConnectOptions>,
    rtt: watch::Receiver<Option<Duration>>,
) -> StatsHandle {
    let (tx, rx) = mpsc::channel(STATS_QUEUE);
    let reporter = Reporter {
        http,
        url: format!("{}/v1/client-stats", opts.router_url.trim_end_matches('/')),
        opts,
        rtt,
        pending: Report::default(),
        transport: None,
    };
    tokio::spawn(
        reporter
            .run(rx)
            .instrument(tracing::debug_span!("roomcast_client_stats")),
    );
    StatsHandle { tx }
}

/// Counts since the last successful post.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Report {
    connect_ms: Option<u64>,
    quic_failures: u64,
    ws_failures: u64,
}

/// The request body.
#[derive(Debug, Serialize, PartialEq)]
struct Body<'a> {
    uid: &'a str,
    platform: &'a str,
    transport: &'static str,
    /// Only in the report right after a connect, so the router counts each connect once.
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_ms: Option<u64>,
    /// The last ping round trip; absent before the first pong and while polling.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<u64>,
    /// Failed attempts since the previous report (a delta, for counters).
    failures: Failures,
}

#[derive(Debug, Serialize, PartialEq)]
struct Failures {
    quic: u64,
    ws: u64,
}

struct Reporter {
    http: HttpClient,
    url: String,
    opts: Arc<ConnectOptions>,
    rtt: watch::Receiver<Option<Duration>>,
    pending: Report,
    transport: Option<Transport>,
}

impl Reporter {
    async fn run(mut self, mut rx: mpsc::Receiver<StatsUpdate>) {
        let interval = self.opts.stats_interval.max(Duration::from_millis(10));
        let mut ticker = time::interval_at(time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                update = rx.recv() => {
                    let Some(update) = update else { break };
                    if self.take(update) {
                        self.report().await;
                    }
                }
                _ = ticker.tick() => self.report().await,
            }
        }
        if self.pending.quic_failures + self.pending.ws_failures > 0 {
            self.report().await;
        }
    }

    /// Apply an update; true when it calls for a report now.
    fn take(&mut self, update: StatsUpdate) -> bool {
        match update {
            StatsUpdate::Failure(Transport::Quic) => self.pending.quic_failures += 1,
            StatsUpdate::Failure(Transport::Ws) => self.pending.ws_failures += 1,
            StatsUpdate::Failure(Transport::Polling) => {}
            StatsUpdate::Connected {
                transport,
                connect_ms,
            } => {
                self.transport = Some(transport);
                self.pending.connect_ms = Some(connect_ms);
                return true;
            }
            StatsUpdate::Polling => {
                self.transport = Some(Transport::Polling);
                return true;
            }
        }
        false
    }

    fn body(&self, transport: Transport) -> Body<'_> {
        let rtt_ms = if transport.is_long() {
            self.rtt
                .borrow()
                .map(|rtt| u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX))
        } else {
            None
        };
        Body {
            uid: &self.opts.uid,
            platform: &self.opts.platform,
            transport: transport.as_str(),
            connect_ms: self.pending.connect_ms,
            rtt_ms,
            failures: Failures {
                quic: self.pending.quic_failures,
                ws: self.pending.ws_failures,
            },
        }
    }

    async fn report(&mut self) {
        // Nothing to say before the first session (failures wait for it).
        let Some(transport) = self.transport else {
            return;
        };
        let sent = self.pending.clone();
        let Ok(url) = url::Url::parse(&self.url) else {
            debug!(url = %self.url, "Client stats not sent: bad router URL.");
            return;
        };
        let result = self
            .http
            .post_json(
                &url,
                Some(&self.opts.token),
                &self.body(transport),
                self.opts.request_timeout,
            )
            .await;
        match result {
            Ok(response) if response.status.is_success() => {
                // Updates that arrived during the post are queued, not in `pending` yet,
                // so subtracting what was sent is exact.
                self.pending.quic_failures -= sent.quic_failures;
                self.pending.ws_failures -= sent.ws_failures;
                if self.pending.connect_ms == sent.connect_ms {
                    self.pending.connect_ms = None;
                }
            }
            Ok(response) => debug!(status = %response.status, "Client stats refused."),
            Err(e) => debug!(error = %e, "Client stats not delivered."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter() -> Reporter {
        let (_tx, rtt) = watch::channel(Some(Duration::from_millis(12)));
        Reporter {
            http: HttpClient::new(&crate::tls::TlsTrust::webpki()),
            url: String::new(),
            opts: Arc::new(ConnectOptions::new("http://r", "t").uid("alice")),
            rtt,
            pending: Report::default(),
            transport: None,
        }
    }

    #[test]
    fn connects_and_switches_report_at_once_failures_accumulate() {
        let mut reporter = reporter();
        assert!(!reporter.take(StatsUpdate::Failure(Transport::Quic)));
        assert!(!reporter.take(StatsUpdate::Failure(Transport::Quic)));
        assert!(!reporter.take(StatsUpdate::Failure(Transport::Ws)));
        assert!(reporter.take(StatsUpdate::Connected {
            transport: Transport::Ws,
            connect_ms: 42
        }));
        let body = serde_json::to_value(reporter.body(Transport::Ws)).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "uid": "alice", "platform": std::env::consts::OS, "transport": "ws",
                "connect_ms": 42, "rtt_ms": 12, "failures": {"quic": 2, "ws": 1}
            })
        );
        assert!(reporter.take(StatsUpdate::Polling));
        let body = serde_json::to_value(reporter.body(Transport::Polling)).expect("json");
        assert_eq!(body["transport"], "polling");
        assert!(body.get("rtt_ms").is_none(), "no RTT while polling");
    }
}
