//! `POST /v1/client-stats`: what SDKs report about their connections.
//! Validation is pure; the handler in `http` records into [`Metrics`].
//!
//! Body: `{"uid"?, "platform"?, "transport": "quic"|"ws"|"polling",
//! "connect_ms"?, "rtt_ms"?, "failures"?: {"quic": n, "ws": n}}`. Unknown
//! fields are ignored (newer SDKs may send more); unknown transports, in
//! `transport` or as a `failures` key, are refused so label values stay a
//! fixed set. Out-of-range numbers are clamped rather than refused: an SDK
//! that keeps unsent counts would otherwise retry a refused report forever.
//! `uid` and `platform` are never labels (unbounded) and are not checked.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::transport::Transport;
use serde::Deserialize;

use crate::error::RouteError;
use crate::metrics::Metrics;

/// Largest body accepted, in bytes.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024;
/// Largest connect time or RTT recorded (larger is clamped): beyond every
/// bucket anyway, and a client clock bug must not skew the sums.
const MAX_MS: u64 = 10 * 60 * 1000;
/// Most failures one report may add (more is clamped): one client must not
/// skew the counter.
const MAX_FAILURES: u64 = 1000;

/// `value` as a transport (a label value), or an error naming `field`.
fn parse_transport(field: &'static str, value: &str) -> Result<Transport, RouteError> {
    Transport::parse(value).ok_or_else(|| RouteError::Invalid {
        field,
        message: format!(
            "unknown transport {value:?}; expected {}",
            Transport::ALL.map(Transport::as_str).join(", ")
        ),
    })
}

/// The body as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ClientStats {
    /// Not a label (unbounded); accepted for logs.
    #[serde(default)]
    pub(crate) uid: Option<String>,
    #[serde(default)]
    pub(crate) platform: Option<String>,
    #[serde(default)]
    pub(crate) transport: String,
    #[serde(default)]
    pub(crate) connect_ms: Option<u64>,
    #[serde(default)]
    pub(crate) rtt_ms: Option<u64>,
    #[serde(default)]
    pub(crate) failures: BTreeMap<String, u64>,
}

/// A validated report.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Report {
    pub(crate) transport: Transport,
    pub(crate) connect: Option<Duration>,
    pub(crate) rtt: Option<Duration>,
    pub(crate) failures: Vec<(Transport, u64)>,
}

impl ClientStats {
    /// Check the body; errors name the field.
    pub(crate) fn validate(&self) -> Result<Report, RouteError> {
        let transport = parse_transport("transport", &self.transport)?;
        let duration = |ms: Option<u64>| ms.map(|ms| Duration::from_millis(ms.min(MAX_MS)));
        let mut failures = Vec::with_capacity(self.failures.len());
        for (name, count) in &self.failures {
            let t = parse_transport("failures", name)?;
            failures.push((t, (*count).min(MAX_FAILURES)));
        }
        Ok(Report {
            transport,
            connect: duration(self.connect_ms),
            rtt: duration(self.rtt_ms),
            failures,
        })
    }
}

impl Report {
    /// Add the report to the client series.
    pub(crate) fn record(&self, metrics: &Metrics) {
        let label = [self.transport.as_str()];
        if let Some(connect) = self.connect {
            metrics
                .client_connect
                .with_label_values(&label)
                .observe(connect.as_secs_f64());
        }
        if let Some(rtt) = self.rtt {
            metrics
                .client_rtt
                .with_label_values(&label)
                .observe(rtt.as_secs_f64());
        }
        for (transport, count) in &self.failures {
            metrics
                .client_failures
                .with_label_values(&[transport.as_str()])
                .inc_by(*count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(json: serde_json::Value) -> ClientStats {
        serde_json::from_value(json).expect("shape")
    }

    #[test]
    fn a_full_report_is_accepted() {
        let report = stats(serde_json::json!({
            "uid": "bob", "platform": "android", "transport": "quic",
            "connect_ms": 120, "rtt_ms": 35, "failures": {"ws": 2, "quic": 0},
            "sdk": "future field",
        }))
        .validate()
        .expect("valid");
        assert_eq!(report.transport, Transport::Quic);
        assert_eq!(report.connect, Some(Duration::from_millis(120)));
        assert_eq!(report.rtt, Some(Duration::from_millis(35)));
        assert_eq!(report.failures, [(Transport::Quic, 0), (Transport::Ws, 2)]);
        let minimal = stats(serde_json::json!({"transport": "polling"})).validate();
        assert!(minimal.is_ok());
    }

    #[test]
    fn unknown_labels_are_refused_naming_the_field_and_absurd_values_clamped() {
        let field = |json| stats(json).validate().err().and_then(|e| e.field());
        assert_eq!(field(serde_json::json!({})), Some("transport"));
        assert_eq!(
            field(serde_json::json!({"transport": "tcp"})),
            Some("transport")
        );
        assert_eq!(
            field(serde_json::json!({"transport": "ws", "failures": {"carrier-pigeon": 1}})),
            Some("failures")
        );
        let clamped = stats(serde_json::json!({
            "transport": "ws", "platform": "toaster",
            "connect_ms": 86_400_000u64, "rtt_ms": u64::MAX, "failures": {"ws": 1_000_000},
        }))
        .validate()
        .expect("clamped, not refused");
        assert_eq!(clamped.connect, Some(Duration::from_millis(MAX_MS)));
        assert_eq!(clamped.rtt, Some(Duration::from_millis(MAX_MS)));
        assert_eq!(clamped.failures, [(Transport::Ws, MAX_FAILURES)]);
    }
}
