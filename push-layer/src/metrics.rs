//! Push layer Prometheus series.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Push node metrics.
#[derive(Clone)]
pub(crate) struct Metrics {
    pub(crate) published: IntCounterVec,
    /// PushRoom calls served, by how they came (`stream`: a Publish stream).
    pub(crate) room_calls: IntCounterVec,
    pub(crate) notifies: IntCounter,
    /// Notify frames that carried their messages (no pull needed).
    pub(crate) notifies_inline: IntCounter,
    /// Frames written on conn node streams (a batch of entries counts once).
    pub(crate) conn_frames: IntCounter,
    /// Entries sent inside those frames (notifies, broadcasts, acks, …).
    pub(crate) conn_frame_entries: IntCounter,
    pub(crate) broadcast_batches: IntCounter,
    pub(crate) pulls: IntCounterVec,
    pub(crate) rooms: IntGauge,
    pub(crate) conn_nodes: IntGauge,
    pub(crate) conn_overflows: IntCounter,
    pub(crate) mode_switches: IntCounterVec,
    pub(crate) append_seconds: Histogram,
    pub(crate) user_pushes: IntCounter,
    /// Users this node knows to be online (it owns their user shard).
    pub(crate) online_users: IntGauge,
}

impl Metrics {
    pub(crate) fn new(registry: &Registry) -> Self {
        let m = Self {
            published: IntCounterVec::new(
                Opts::new(
                    "roomcast_push_published_total",
                    "Messages published to rooms",
                ),
                &["durable"],
            )
            .expect("static metric"),
            room_calls: IntCounterVec::new(
                Opts::new(
                    "roomcast_push_room_calls_total",
                    "PushRoom calls served, by how they came (stream: on a Publish stream; unary)",
                ),
                &["via"],
            )
            .expect("static metric"),
            notifies: IntCounter::new(
                "roomcast_push_notifies_total",
                "Notify frames sent to conn nodes",
            )
            .expect("static metric"),
            notifies_inline: IntCounter::new(
                "roomcast_push_notifies_inline_total",
                "Notify frames that carried the appended messages inline",
            )
            .expect("static metric"),
            conn_frames: IntCounter::new(
                "roomcast_push_conn_frames_total",
                "Frames written on conn node streams (one batch of entries counts once)",
            )
            .expect("static metric"),
            conn_frame_entries: IntCounter::new(
                "roomcast_push_conn_frame_entries_total",
                "Entries (notify, broadcast, ack, ephemeral, user delivery) sent to conn nodes",
            )
            .expect("static metric"),
            broadcast_batches: IntCounter::new(
                "roomcast_push_broadcast_batches_total",
                "Broadcast batches sent to conn nodes",
            )
            .expect("static metric"),
            pulls: IntCounterVec::new(
                Opts::new("roomcast_push_pulls_total", "Pulls served, by source"),
                &["source"],
            )
            .expect("static metric"),
            rooms: IntGauge::new("roomcast_push_rooms", "Rooms held in memory")
                .expect("static metric"),
            conn_nodes: IntGauge::new("roomcast_push_conn_nodes", "Attached conn nodes")
                .expect("static metric"),
            conn_overflows: IntCounter::new(
                "roomcast_push_conn_overflows_total",
                "Conn node streams reset because their queue was full",
            )
            .expect("static metric"),
            mode_switches: IntCounterVec::new(
                Opts::new(
                    "roomcast_push_mode_switches_total",
                    "Room fan-out mode switches",
                ),
                &["to"],
            )
            .expect("static metric"),
            append_seconds: Histogram::with_opts(
                HistogramOpts::new("roomcast_push_append_seconds", "Message log append latency")
                    .buckets(
                        prometheus::exponential_buckets(0.0001, 2.0, 14).expect("static buckets"),
                    ),
            )
            .expect("static metric"),
            user_pushes: IntCounter::new("roomcast_push_user_pushes_total", "User-targeted pushes")
                .expect("static metric"),
            online_users: IntGauge::new(
                "roomcast_push_online_users",
                "Online users in this node's user shard",
            )
            .expect("static metric"),
        };
        common::ops::register(registry, &m.published);
        common::ops::register(registry, &m.room_calls);
        common::ops::register(registry, &m.notifies);
        common::ops::register(registry, &m.notifies_inline);
        common::ops::register(registry, &m.conn_frames);
        common::ops::register(registry, &m.conn_frame_entries);
        common::ops::register(registry, &m.broadcast_batches);
        common::ops::register(registry, &m.pulls);
        common::ops::register(registry, &m.rooms);
        common::ops::register(registry, &m.conn_nodes);
        common::ops::register(registry, &m.conn_overflows);
        common::ops::register(registry, &m.mode_switches);
        common::ops::register(registry, &m.append_seconds);
        common::ops::register(registry, &m.user_pushes);
        common::ops::register(registry, &m.online_users);
        m
    }
}
