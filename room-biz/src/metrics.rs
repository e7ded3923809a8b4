//! Prometheus series of room-biz (`roomcast_biz_*`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Latency buckets of an action, in seconds: local validation is sub-millisecond,
/// a push round trip a few milliseconds, a timeout seconds.
const ACTION_LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How long a long-poll waited for news, in seconds: up to the 30 s maximum.
const POLL_WAIT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

/// The crate's metrics, registered once per [`crate::run`].
pub(crate) struct Metrics {
    /// Rooms created through the HTTP API.
    pub(crate) rooms_created: IntCounter,
    /// Join authorizations by `result`.
    pub(crate) joins: IntCounterVec,
    /// Actions by `action` and reply `code`.
    pub(crate) actions: IntCounterVec,
    /// Action handling time by `action`.
    pub(crate) action_latency: HistogramVec,
    /// Presence cleanups of conn nodes that left discovery, by `result`
    /// (`ok`, or `error` for an attempt that will be retried).
    pub(crate) healing_cleanups: IntCounterVec,
    /// HTTP long polls by `result` (`messages`, `empty`, `snapshot`, `refused`, `error`).
    pub(crate) longpolls: IntCounterVec,
    /// Rooms held by the poll cache.
    pub(crate) longpoll_cache_rooms: IntGauge,
    /// Time long-polls spent waiting for news.
    pub(crate) longpoll_wait: Histogram,
    /// Likes taken in (taps, not actions).
    pub(crate) likes_received: IntCounter,
    /// Reactions taken in.
    pub(crate) reactions_received: IntCounter,
    /// Store writes of aggregated counters (one per room and window at most).
    pub(crate) counter_flushes: IntCounter,
    /// Store operations by `op` (the [`crate::RoomStore`] method).
    pub(crate) store_ops: IntCounterVec,
    /// Room events pushed by `kind` and `result` (`ok`, `error`).
    pub(crate) events: IntCounterVec,
    /// Rooms ended by `reason` (`host`, `api`, `empty`).
    pub(crate) rooms_ended: IntCounterVec,
    /// Backend writes refused because their API key was over its rate.
    pub(crate) backend_throttled: IntCounter,
}

impl Metrics {
    /// Create the series and register them in `registry`.
    pub(crate) fn new(registry: &Registry) -> Self {
        // The definitions are static; failing to build them is a programming error.
        let rooms_created = IntCounter::new("roomcast_biz_rooms_created_total", "Rooms created.")
            .expect("static metric definition");
        let joins = IntCounterVec::new(
            Opts::new("roomcast_biz_joins_total", "Join authorizations by result."),
            &["result"],
        )
        .expect("static metric definition");
        let actions = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_actions_total",
                "Client actions by action and reply code.",
            ),
            &["action", "code"],
        )
        .expect("static metric definition");
        let action_latency = HistogramVec::new(
            HistogramOpts::new(
                "roomcast_biz_action_latency_seconds",
                "Time to handle an action.",
            )
            .buckets(ACTION_LATENCY_BUCKETS.to_vec()),
            &["action"],
        )
        .expect("static metric definition");
        let healing_cleanups = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_presence_cleanups_total",
                "Removals of the room sessions of conn nodes that left discovery, by result.",
            ),
            &["result"],
        )
        .expect("static metric definition");
        let longpolls = IntCounterVec::new(
            Opts::new("roomcast_biz_polls_total", "HTTP polls by result."),
            &["result"],
        )
        .expect("static metric definition");
        let longpoll_cache_rooms = IntGauge::new(
            "roomcast_biz_poll_cache_rooms",
            "Rooms held by the poll cache.",
        )
        .expect("static metric definition");
        let longpoll_wait = Histogram::with_opts(
            HistogramOpts::new(
                "roomcast_biz_poll_wait_seconds",
                "Time a long-poll waited for news.",
            )
            .buckets(POLL_WAIT_BUCKETS.to_vec()),
        )
        .expect("static metric definition");
        let likes_received = IntCounter::new(
            "roomcast_biz_likes_received_total",
            "Likes taken in by this node (taps, not actions).",
        )
        .expect("static metric definition");
        let reactions_received = IntCounter::new(
            "roomcast_biz_reactions_received_total",
            "Reactions taken in by this node.",
        )
        .expect("static metric definition");
        let counter_flushes = IntCounter::new(
            "roomcast_biz_counter_flushes_total",
            "Store writes of aggregated likes, reactions and comment counts.",
        )
        .expect("static metric definition");
        let store_ops = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_store_ops_total",
                "Room store operations by op.",
            ),
            &["op"],
        )
        .expect("static metric definition");
        let events = IntCounterVec::new(
            Opts::new(
                "roomcast_biz_room_events_total",
                "Room events pushed by kind and result.",
            ),
            &["kind", "result"],
        )
        .expect("static metric definition");
        let rooms_ended = IntCounterVec::new(
            Opts::new("roomcast_biz_rooms_ended_total", "Rooms ended by reason."),
            &["reason"],
        )
        .expect("static metric definition");
        common::ops::register(registry, &likes_received);
        common::ops::register(registry, &reactions_received);
        common::ops::register(registry, &counter_flushes);
        common::ops::register(registry, &store_ops);
        let backend_throttled = IntCounter::new(
            "roomcast_biz_backend_throttled_total",
            "Backend API writes refused because their API key was over its rate.",
        )
        .expect("static metric definition");
        common::ops::register(registry, &backend_throttled);
        common::ops::register(registry, &events);
        common::ops::register(registry, &rooms_ended);
        common::ops::register(registry, &rooms_created);
        common::ops::register(registry, &joins);
        common::ops::register(registry, &actions);
        common::ops::register(registry, &action_latency);
        common::ops::register(registry, &healing_cleanups);
        common::ops::register(registry, &longpolls);
        common::ops::register(registry, &longpoll_cache_rooms);
        common::ops::register(registry, &longpoll_wait);
        Self {
            rooms_created,
            joins,
            actions,
            action_latency,
            healing_cleanups,
            longpolls,
            longpoll_cache_rooms,
            longpoll_wait,
            likes_received,
            reactions_received,
            counter_flushes,
            store_ops,
            events,
            rooms_ended,
            backend_throttled,
        }
    }
}
