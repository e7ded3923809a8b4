//! Prometheus series of the router (`roomcast_router_*`).
//!
//! Every label has a fixed set of values (modes, reasons, transports): client
//! input never becomes a label value.

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The `mode` label of a route that could not be given (503).
pub(crate) const MODE_NONE: &str = "none";

/// Connect time buckets, seconds: a LAN handshake to a slow mobile network.
const CONNECT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Round-trip time buckets, seconds.
const RTT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The router's metrics. Clones share the series.
#[derive(Clone)]
pub(crate) struct Metrics {
    /// Routes handed out, by `mode` (`long`, `short`, `none`).
    pub(crate) routes: IntCounterVec,
    /// Policy decisions, by `reason` (`deny`, `allow`, `percent`, `outside`, `disabled`).
    pub(crate) decisions: IntCounterVec,
    /// The percentage of the policy in force.
    pub(crate) rollout_percent: Gauge,
    /// 1 when the policy in force is enabled.
    pub(crate) rollout_enabled: IntGauge,
    /// Stored policies refused as invalid (the previous one stayed).
    pub(crate) rollout_rejected: IntCounter,
    /// Client-reported connect time, by `transport`.
    pub(crate) client_connect: HistogramVec,
    /// Client-reported round-trip time, by `transport`.
    pub(crate) client_rtt: HistogramVec,
    /// Client-reported failed connects, by `transport`.
    pub(crate) client_failures: IntCounterVec,
}

impl Metrics {
    /// Create the series and register them in `registry`.
    pub(crate) fn new(registry: &Registry) -> Self {
        // The definitions are static; failing to build one is a programming error.
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("static metric definition")
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                &["transport"],
            )
            .expect("static metric definition")
        };
        let metrics = Self {
            routes: counter(
                "roomcast_router_routes_total",
                "Routes handed out, by mode.",
                "mode",
            ),
            decisions: counter(
                "roomcast_router_rollout_decisions_total",
                "Rollout policy decisions, by the rule that decided.",
                "reason",
            ),
            rollout_percent: Gauge::new(
                "roomcast_router_rollout_percent",
                "Percentage of the rollout policy in force.",
            )
            .expect("static metric definition"),
            rollout_enabled: IntGauge::new(
                "roomcast_router_rollout_enabled",
                "1 when the rollout policy in force is enabled.",
            )
            .expect("static metric definition"),
            rollout_rejected: IntCounter::new(
                "roomcast_router_rollout_rejected_total",
                "Stored rollout policies refused as invalid; the previous one stayed in force.",
            )
            .expect("static metric definition"),
            client_connect: histogram(
                "roomcast_router_client_connect_seconds",
                "Connect time reported by clients, by transport.",
                CONNECT_BUCKETS,
            ),
            client_rtt: histogram(
                "roomcast_router_client_rtt_seconds",
                "Round-trip time reported by clients, by transport.",
                RTT_BUCKETS,
            ),
            client_failures: counter(
                "roomcast_router_client_connect_failures_total",
                "Failed connects reported by clients, by transport.",
                "transport",
            ),
        };
        let m = &metrics;
        common::ops::register(registry, &m.routes);
        common::ops::register(registry, &m.decisions);
        common::ops::register(registry, &m.rollout_percent);
        common::ops::register(registry, &m.rollout_enabled);
        common::ops::register(registry, &m.rollout_rejected);
        common::ops::register(registry, &m.client_connect);
        common::ops::register(registry, &m.client_rtt);
        common::ops::register(registry, &m.client_failures);
        metrics
    }
}
