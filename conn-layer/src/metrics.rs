//! Conn layer Prometheus series.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Conn node metrics.
#[derive(Clone)]
pub(crate) struct Metrics {
    pub(crate) connections: IntGauge,
    pub(crate) connections_total: IntCounter,
    pub(crate) rooms: IntGauge,
    pub(crate) joins: IntCounterVec,
    pub(crate) frames_in: IntCounterVec,
    pub(crate) frames_out: IntCounter,
    pub(crate) frames_direct: IntCounter,
    pub(crate) flushes: IntCounter,
    pub(crate) deliveries: IntCounter,
    pub(crate) sampled_out: IntCounter,
    pub(crate) drops: IntCounter,
    pub(crate) lagged: IntCounter,
    pub(crate) slow_disconnects: IntCounter,
    pub(crate) quic_retries: IntCounter,
    pub(crate) bad_frames: IntCounterVec,
    pub(crate) queue_depth: Histogram,
    pub(crate) publish_to_deliver: Histogram,
    /// Notify/pull intake of the room feeds.
    pub(crate) intake: crate::intake::IntakeMetrics,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("static metric")
}

impl Metrics {
    pub(crate) fn new(registry: &Registry) -> Self {
        let m = Self {
            connections: IntGauge::new("roomcast_conn_connections", "Open client connections")
                .expect("static metric"),
            connections_total: counter(
                "roomcast_conn_connections_total",
                "Client connections accepted",
            ),
            rooms: IntGauge::new("roomcast_conn_rooms", "Rooms with members on this node")
                .expect("static metric"),
            joins: IntCounterVec::new(
                Opts::new("roomcast_conn_joins_total", "Room joins by result"),
                &["result"],
            )
            .expect("static metric"),
            frames_in: IntCounterVec::new(
                Opts::new(
                    "roomcast_conn_frames_in_total",
                    "Client frames received by type",
                ),
                &["type"],
            )
            .expect("static metric"),
            frames_out: counter(
                "roomcast_conn_frames_out_total",
                "Frames written to clients",
            ),
            frames_direct: counter(
                "roomcast_conn_frames_direct_total",
                "Frames the fan-out wrote straight to a client's socket (no queue, no session wakeup)",
            ),
            flushes: counter(
                "roomcast_conn_socket_flushes_total",
                "Socket flushes (writes of the frames queued since the last one)",
            ),
            deliveries: counter(
                "roomcast_conn_deliveries_total",
                "Room messages covered by the frames written to clients (carried or sampled out)",
            ),
            sampled_out: counter(
                "roomcast_conn_sampled_out_total",
                "Low-priority messages a sampled room's frames cover without carrying (once per room on this node)",
            ),
            drops: counter(
                "roomcast_conn_drops_total",
                "Frames not queued because a client's queue was full",
            ),
            lagged: counter(
                "roomcast_conn_lagged_total",
                "Times a client fell behind and was resumed from history",
            ),
            slow_disconnects: counter(
                "roomcast_conn_slow_disconnects_total",
                "Clients disconnected because they stayed behind",
            ),
            quic_retries: counter(
                "roomcast_conn_quic_retries_total",
                "QUIC handshakes answered with a stateless Retry (address validation under load)",
            ),
            bad_frames: IntCounterVec::new(
                Opts::new(
                    "roomcast_conn_bad_frames_total",
                    "Rejected client frames by reason",
                ),
                &["reason"],
            )
            .expect("static metric"),
            queue_depth: Histogram::with_opts(
                HistogramOpts::new(
                    "roomcast_conn_queue_depth",
                    "Outbound queue depth seen at each write",
                )
                .buckets(vec![
                    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
                ]),
            )
            .expect("static metric"),
            publish_to_deliver: Histogram::with_opts(
                HistogramOpts::new(
                    "roomcast_conn_publish_to_deliver_seconds",
                    "From publish at the push layer to hand-off to the connections of this node",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).expect("static buckets")),
            )
            .expect("static metric"),
            intake: crate::intake::IntakeMetrics::new(registry),
        };
        for c in [
            &m.connections_total,
            &m.frames_out,
            &m.frames_direct,
            &m.flushes,
            &m.deliveries,
            &m.sampled_out,
            &m.drops,
            &m.lagged,
            &m.slow_disconnects,
            &m.quic_retries,
        ] {
            common::ops::register(registry, c);
        }
        common::ops::register(registry, &m.connections);
        common::ops::register(registry, &m.rooms);
        common::ops::register(registry, &m.joins);
        common::ops::register(registry, &m.frames_in);
        common::ops::register(registry, &m.bad_frames);
        common::ops::register(registry, &m.queue_depth);
        common::ops::register(registry, &m.publish_to_deliver);
        m
    }
}
