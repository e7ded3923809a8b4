//! Room-biz settings: defaults, and a check run once at start.

use room_store::domain::catalog::{self, GiftCatalog, GiftSpec, ReactionSet};
use room_store::ids;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Environment prefix for overrides (`ROOMCAST_BIZ_COMMENT_MAX_CHARS=…`).
pub const ENV_PREFIX: &str = "ROOMCAST_BIZ";
/// Host put in discovery when a listener is bound to an unspecified address.
pub const DEFAULT_ADVERTISE_HOST: &str = "127.0.0.1";
/// Longest comment, in characters (not bytes).
pub const DEFAULT_COMMENT_MAX_CHARS: usize = 500;
/// Largest `attrs` object of a comment, in bytes of JSON; it is fanned out to everyone.
pub const DEFAULT_COMMENT_ATTRS_MAX_BYTES: usize = 1024;
/// Sustained comments per second one user may post in one room.
pub const DEFAULT_COMMENT_RATE_PER_SEC: u32 = 5;
/// Comments one user may post in a burst before the rate applies.
pub const DEFAULT_COMMENT_BURST: u32 = 10;
/// Longest room title, in characters.
pub const DEFAULT_TITLE_MAX_CHARS: usize = 200;
/// Largest body of an app-backend message (`POST /v1/rooms/{id}/messages`), in bytes.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 64 * 1024;
/// Actions handled at once per conn-node stream; further requests wait to be read.
pub const DEFAULT_ACTION_CONCURRENCY: usize = 256;
/// How long a push to the push layer may take before the action fails.
pub const DEFAULT_PUSH_TIMEOUT_MS: u64 = 3_000;
/// How long in-flight requests may run after shutdown before they are dropped.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// How often idle per-user rate-limiter entries are dropped.
pub const DEFAULT_HOUSEKEEPING_MS: u64 = 60_000;
/// How long a conn node must stay gone from discovery before its sessions are
/// removed from room presence. Its lease has already expired (~10 s of
/// silence) when it disappears; the grace only absorbs a view that flickers
/// (a watch resync, a quick re-registration), and keeps cleanup within a second.
pub const DEFAULT_PRESENCE_GRACE_MS: u64 = 500;

/// How long a live room may stay empty before it ends by itself, for rooms
/// created without `auto_end_empty_secs`; 0 never.
pub const DEFAULT_AUTO_END_EMPTY_SECS: u32 = 300;
/// Aggregation window of likes, reactions and comment counts: each room's
/// delta is written to the store once per window per biz node, and its totals
/// pushed (ephemeral) at most once per window.
pub const DEFAULT_COUNTER_WINDOW_MS: u64 = 250;
/// Distinct reaction emoji one room may have; more are refused, since each
/// becomes a counter and a key in every totals push.
pub const DEFAULT_REACTION_KINDS_MAX: usize = 32;
/// Sustained `like`/`react` actions per second per user and room (each like
/// action carries up to 100 taps).
pub const DEFAULT_LIKE_RATE_PER_SEC: u32 = 10;
/// Burst of `like`/`react` actions per user and room.
pub const DEFAULT_LIKE_BURST: u32 = 20;
/// Sustained other actions (stage, moderation, polls, gifts) per second per
/// user and room: protects the store from a scripted client.
pub const DEFAULT_ACTION_RATE_PER_SEC: u32 = 10;
/// Burst of other actions per user and room.
pub const DEFAULT_ACTION_BURST: u32 = 30;
/// Polls open at once per room.
pub const DEFAULT_POLLS_OPEN_MAX: u32 = 5;
/// Live poll tallies are pushed at most this often per poll and biz node
/// (250 ms: at most 4 a second).
pub const DEFAULT_POLL_TALLY_MS: u64 = 250;
/// Hands listed in a snapshot (oldest first); `hands_count` has them all.
pub const DEFAULT_SNAPSHOT_HANDS_MAX: usize = 500;
/// Polls listed in a snapshot (newest).
pub const DEFAULT_SNAPSHOT_POLLS_MAX: usize = 20;
/// How long a biz node trusts its cached view of a room (state, kicked,
/// blocked and invited uids) for likes, reactions and comments. A kick or an
/// end made through another node is seen this late by those actions.
pub const DEFAULT_ROOM_VIEW_MS: u64 = 1000;
/// Members from which join and leave events are aggregated into one
/// `presence` count per window instead of one event per person.
pub const DEFAULT_PRESENCE_AGGREGATE_MEMBERS: u32 = 100;
/// Whether joins and leaves are pushed at all (`member_joined`/`member_left`
/// in small rooms, `presence` in large ones). Clients that read frames
/// strictly in order must skip `Ephemeral` frames they do not know.
pub const DEFAULT_PRESENCE_EVENTS: bool = true;
/// The window of aggregated presence events.
pub const DEFAULT_PRESENCE_WINDOW_MS: u64 = 1000;
/// Queued join/leave notices waiting to be pushed; beyond it they are dropped
/// (they are ephemeral and carry the member total).
pub const DEFAULT_PRESENCE_QUEUE: usize = 4096;

/// Durable messages per archive transaction: large enough that a 10,000
/// message room is 20 round trips, small enough that a crash redoes little.
pub const DEFAULT_ARCHIVE_BATCH: usize = 500;
/// An archive job whose worker has not reported progress for this long is
/// taken over by another biz node (its worker died). Each batch reports, so
/// this only has to exceed the time of one batch.
pub const DEFAULT_ARCHIVE_CLAIM_IDLE_MS: u64 = 30_000;
/// How often an idle archive worker looks for jobs: the delay between a
/// room's end and the start of its archiving, at most.
pub const DEFAULT_ARCHIVE_POLL_MS: u64 = 1_000;
/// A live room is checkpointed into the archive every this many durable
/// messages (its live log keeps 1,000 by default: this must stay well below
/// `history.max_len` of the push layer). 0: never by count.
pub const DEFAULT_ARCHIVE_LIVE_EVERY: u64 = 200;
/// A live room whose durable messages have waited this long is checkpointed
/// (quiet rooms; must stay well below the live log's `history.max_age`,
/// 1 h by default). 0: never by time.
pub const DEFAULT_ARCHIVE_LIVE_INTERVAL_MS: u64 = 600_000;
/// Replay pages of archived rooms kept in memory (hot replays of one
/// recording by many viewers are served without the archive).
pub const DEFAULT_REPLAY_CACHE_PAGES: usize = 256;

/// Members at or above which a polled room is "large": its long-poll cache is
/// refreshed about once a second instead of every 100 ms, and its replies may
/// sample low-priority messages (as the socket path does for large rooms).
pub const DEFAULT_POLL_LARGE_ROOM_MEMBERS: u32 = 1000;
/// How often the long-poll cache reads a small room's stream. Long-polls wake at
/// this pace at the latest, so it bounds the extra latency of polling.
pub const DEFAULT_POLL_REFRESH_MS: u64 = 100;
/// How often the long-poll cache reads a large room's stream: one read per second
/// per room and biz node, however many clients poll it.
pub const DEFAULT_POLL_LARGE_REFRESH_MS: u64 = 1000;
/// Recent messages the long-poll cache keeps per room; older `after`s read the push
/// layer directly. Matches the push layer's largest pull and default history.
pub const DEFAULT_POLL_CACHE_WINDOW: usize = 1000;
/// Rooms the long-poll cache holds at once (~1,000 messages each); polls of further
/// rooms read the push layer directly until a cached room goes idle.
pub const DEFAULT_POLL_CACHE_ROOMS_MAX: usize = 1000;
/// A cached room nobody polled for this long is dropped.
pub const DEFAULT_POLL_CACHE_IDLE_MS: u64 = 60_000;

/// Backend API writes (POST) per API key and second, on each node.
pub const DEFAULT_BACKEND_WRITE_RATE_PER_SEC: u32 = 200;

/// Burst of backend API writes per API key.
pub const DEFAULT_BACKEND_WRITE_BURST: u32 = 400;

/// Long polls one uid may have waiting at once on one biz node; more are
/// answered 429.
pub const DEFAULT_MAX_LONG_POLLS_PER_UID: usize = 4;

/// Open HTTP connections: long-polling clients hold one each while waiting.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 16_384;

/// Room-biz configuration. Every field has a default, so a partial file works.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Unique node id in discovery (default `biz-` + random).
    pub node_id: String,
    /// Shared secret every internal gRPC call carries and every internal
    /// server requires (`x-roomcast-internal-token`). Required by the
    /// binary; empty (in-process tests) disables the check.
    pub internal_token: String,
    /// Host advertised in discovery in place of `0.0.0.0` / `::`.
    pub advertise_host: String,
    /// See [`DEFAULT_COMMENT_MAX_CHARS`].
    pub comment_max_chars: usize,
    /// See [`DEFAULT_COMMENT_ATTRS_MAX_BYTES`].
    pub comment_attrs_max_bytes: usize,
    /// See [`DEFAULT_COMMENT_RATE_PER_SEC`].
    pub comment_rate_per_sec: u32,
    /// See [`DEFAULT_COMMENT_BURST`].
    pub comment_burst: u32,
    /// See [`DEFAULT_TITLE_MAX_CHARS`].
    pub title_max_chars: usize,
    /// See [`DEFAULT_MESSAGE_MAX_BYTES`].
    pub message_max_bytes: usize,
    /// See [`DEFAULT_ACTION_CONCURRENCY`].
    pub action_concurrency: usize,
    /// See [`DEFAULT_PUSH_TIMEOUT_MS`].
    pub push_timeout_ms: u64,
    /// See [`DEFAULT_SHUTDOWN_GRACE_MS`].
    pub shutdown_grace_ms: u64,
    /// See [`DEFAULT_HOUSEKEEPING_MS`].
    pub housekeeping_ms: u64,
    /// See [`DEFAULT_PRESENCE_GRACE_MS`]; 0 cleans up at once.
    pub presence_grace_ms: u64,
    /// HS256 secret of client tokens, for HTTP polling and HTTP actions.
    /// Empty (and no EdDSA key): those endpoints answer 503.
    pub token_secret: String,
    /// EdDSA public key (PEM) of client tokens, if the app signs with EdDSA.
    pub token_eddsa_public_pem: Option<String>,
    /// Required `aud` of client tokens; unset: tokens naming an audience are refused.
    pub token_audience: Option<String>,
    /// Required `iss` of client tokens; unset: not checked.
    pub token_issuer: Option<String>,
    /// Longest client token lifetime, seconds (0: no limit); also how long a
    /// revocation is kept.
    pub token_max_lifetime_secs: u64,
    /// See [`DEFAULT_MAX_LONG_POLLS_PER_UID`]; 0: no limit.
    pub max_long_polls_per_uid: usize,
    /// The gifts clients may send, with their server-side values (a
    /// client's `gift` names an id and a count only). A list, so a
    /// configured catalog replaces the default one entirely.
    pub gifts: Vec<GiftSpec>,
    /// The reaction kinds clients may send with `react`.
    pub reactions: Vec<String>,
    // Long polling. The `poll_*` names are the file and environment keys
    // operators already set, so they stay; voting is `polls_*` and
    // `poll_tally_ms` below.
    /// See [`DEFAULT_POLL_LARGE_ROOM_MEMBERS`].
    pub poll_large_room_members: u32,
    /// See [`DEFAULT_POLL_REFRESH_MS`].
    pub poll_refresh_ms: u64,
    /// See [`DEFAULT_POLL_LARGE_REFRESH_MS`].
    pub poll_large_refresh_ms: u64,
    /// See [`DEFAULT_POLL_CACHE_WINDOW`].
    pub poll_cache_window: usize,
    /// See [`DEFAULT_POLL_CACHE_ROOMS_MAX`].
    pub poll_cache_rooms_max: usize,
    /// See [`DEFAULT_POLL_CACHE_IDLE_MS`].
    pub poll_cache_idle_ms: u64,
    /// See [`DEFAULT_AUTO_END_EMPTY_SECS`].
    pub auto_end_empty_secs: u32,
    /// See [`DEFAULT_COUNTER_WINDOW_MS`].
    pub counter_window_ms: u64,
    /// See [`DEFAULT_REACTION_KINDS_MAX`].
    pub reaction_kinds_max: usize,
    /// See [`DEFAULT_LIKE_RATE_PER_SEC`].
    pub like_rate_per_sec: u32,
    /// See [`DEFAULT_LIKE_BURST`].
    pub like_burst: u32,
    /// See [`DEFAULT_ACTION_RATE_PER_SEC`].
    pub action_rate_per_sec: u32,
    /// See [`DEFAULT_ACTION_BURST`].
    pub action_burst: u32,
    /// See [`DEFAULT_POLLS_OPEN_MAX`].
    pub polls_open_max: u32,
    /// See [`DEFAULT_POLL_TALLY_MS`].
    pub poll_tally_ms: u64,
    /// See [`DEFAULT_SNAPSHOT_HANDS_MAX`].
    pub snapshot_hands_max: usize,
    /// See [`DEFAULT_SNAPSHOT_POLLS_MAX`].
    pub snapshot_polls_max: usize,
    /// See [`DEFAULT_ROOM_VIEW_MS`].
    pub room_view_ms: u64,
    /// See [`DEFAULT_PRESENCE_EVENTS`].
    pub presence_events: bool,
    /// See [`DEFAULT_PRESENCE_AGGREGATE_MEMBERS`].
    pub presence_aggregate_members: u32,
    /// See [`DEFAULT_PRESENCE_WINDOW_MS`].
    pub presence_window_ms: u64,
    /// See [`DEFAULT_PRESENCE_QUEUE`].
    pub presence_queue: usize,
    /// See [`DEFAULT_BACKEND_WRITE_RATE_PER_SEC`].
    pub backend_write_rate_per_sec: u32,
    /// See [`DEFAULT_BACKEND_WRITE_BURST`].
    pub backend_write_burst: u32,
    /// Origins allowed to call the backend API from a browser (default none:
    /// a request with any other `Origin` header is refused, so web pages
    /// cannot drive the backend API).
    pub backend_allowed_origins: Vec<String>,
    /// Request-head deadline and connection cap of the HTTP listener (see
    /// `common::http`). A waiting long poll holds a connection, so the cap
    /// is [`DEFAULT_HTTP_MAX_CONNECTIONS`].
    pub http: common::http::HttpLimits,
    /// Origins whose pages may call the HTTP routes from a browser (long
    /// polling, actions, state): `scheme://host[:port]`, or `*` for any.
    /// Empty (the default): none.
    pub cors_origins: Vec<String>,
    /// Certificate files of the client HTTP listener: set, it speaks
    /// `https://` (reloaded when the files change).
    pub tls: common::tls::TlsFiles,
    /// Serve the backend HTTP listener with the same certificate too.
    pub backend_tls: bool,
    /// Polling base URL advertised to clients instead of the listener's own
    /// (`https://lb.example/biz-1` behind a TLS-terminating load balancer).
    pub public_http_url: Option<String>,
    /// Scheduled rooms that start themselves, reminders and user inboxes.
    pub schedules: ScheduleConfig,
    /// See [`DEFAULT_IDEMPOTENCY_WINDOW_SECS`].
    pub idempotency_window_secs: u64,
    /// Events to the app backend: the event log and webhook deliveries.
    pub webhooks: WebhookConfig,
    /// Where ended rooms are archived: `postgres://user@host/db`,
    /// `sqlite:PATH` or `sqlite::memory:`. Empty (the default for
    /// `roomcast-biz`): no archive; ended rooms stay in Redis until their
    /// keys expire, and their history is readable until then.
    pub archive_url: String,
    /// See [`DEFAULT_ARCHIVE_BATCH`].
    pub archive_batch: usize,
    /// See [`DEFAULT_ARCHIVE_CLAIM_IDLE_MS`].
    pub archive_claim_idle_ms: u64,
    /// See [`DEFAULT_ARCHIVE_POLL_MS`].
    pub archive_poll_ms: u64,
    /// See [`DEFAULT_ARCHIVE_LIVE_EVERY`].
    pub archive_live_every: u64,
    /// See [`DEFAULT_ARCHIVE_LIVE_INTERVAL_MS`].
    pub archive_live_interval_ms: u64,
    /// See [`DEFAULT_REPLAY_CACHE_PAGES`].
    pub replay_cache_pages: usize,
}

/// Secrets (the token secret) are redacted, like in `--print-config`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        common::redact::fmt_config(self, "Config", f)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: format!("biz-{}", ids::random_base62(8)),
            internal_token: String::new(),
            advertise_host: DEFAULT_ADVERTISE_HOST.into(),
            comment_max_chars: DEFAULT_COMMENT_MAX_CHARS,
            comment_attrs_max_bytes: DEFAULT_COMMENT_ATTRS_MAX_BYTES,
            comment_rate_per_sec: DEFAULT_COMMENT_RATE_PER_SEC,
            comment_burst: DEFAULT_COMMENT_BURST,
            title_max_chars: DEFAULT_TITLE_MAX_CHARS,
            message_max_bytes: DEFAULT_MESSAGE_MAX_BYTES,
            action_concurrency: DEFAULT_ACTION_CONCURRENCY,
            push_timeout_ms: DEFAULT_PUSH_TIMEOUT_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            housekeeping_ms: DEFAULT_HOUSEKEEPING_MS,
            presence_grace_ms: DEFAULT_PRESENCE_GRACE_MS,
            token_secret: String::new(),
            token_eddsa_public_pem: None,
            token_audience: None,
            token_issuer: None,
            token_max_lifetime_secs: common::auth::DEFAULT_TOKEN_MAX_LIFETIME_SECS,
            max_long_polls_per_uid: DEFAULT_MAX_LONG_POLLS_PER_UID,
            gifts: catalog::default_gifts(),
            reactions: catalog::default_reactions(),
            poll_large_room_members: DEFAULT_POLL_LARGE_ROOM_MEMBERS,
            poll_refresh_ms: DEFAULT_POLL_REFRESH_MS,
            poll_large_refresh_ms: DEFAULT_POLL_LARGE_REFRESH_MS,
            poll_cache_window: DEFAULT_POLL_CACHE_WINDOW,
            poll_cache_rooms_max: DEFAULT_POLL_CACHE_ROOMS_MAX,
            poll_cache_idle_ms: DEFAULT_POLL_CACHE_IDLE_MS,
            auto_end_empty_secs: DEFAULT_AUTO_END_EMPTY_SECS,
            counter_window_ms: DEFAULT_COUNTER_WINDOW_MS,
            reaction_kinds_max: DEFAULT_REACTION_KINDS_MAX,
            like_rate_per_sec: DEFAULT_LIKE_RATE_PER_SEC,
            like_burst: DEFAULT_LIKE_BURST,
            action_rate_per_sec: DEFAULT_ACTION_RATE_PER_SEC,
            action_burst: DEFAULT_ACTION_BURST,
            polls_open_max: DEFAULT_POLLS_OPEN_MAX,
            poll_tally_ms: DEFAULT_POLL_TALLY_MS,
            snapshot_hands_max: DEFAULT_SNAPSHOT_HANDS_MAX,
            snapshot_polls_max: DEFAULT_SNAPSHOT_POLLS_MAX,
            room_view_ms: DEFAULT_ROOM_VIEW_MS,
            presence_events: DEFAULT_PRESENCE_EVENTS,
            presence_aggregate_members: DEFAULT_PRESENCE_AGGREGATE_MEMBERS,
            presence_window_ms: DEFAULT_PRESENCE_WINDOW_MS,
            presence_queue: DEFAULT_PRESENCE_QUEUE,
            backend_write_rate_per_sec: DEFAULT_BACKEND_WRITE_RATE_PER_SEC,
            backend_write_burst: DEFAULT_BACKEND_WRITE_BURST,
            backend_allowed_origins: Vec::new(),
            http: common::http::HttpLimits {
                max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
                ..common::http::HttpLimits::default()
            },
            cors_origins: Vec::new(),
            tls: common::tls::TlsFiles::default(),
            backend_tls: false,
            public_http_url: None,
            schedules: ScheduleConfig::default(),
            idempotency_window_secs: DEFAULT_IDEMPOTENCY_WINDOW_SECS,
            webhooks: WebhookConfig::default(),
            archive_url: String::new(),
            archive_batch: DEFAULT_ARCHIVE_BATCH,
            archive_claim_idle_ms: DEFAULT_ARCHIVE_CLAIM_IDLE_MS,
            archive_poll_ms: DEFAULT_ARCHIVE_POLL_MS,
            archive_live_every: DEFAULT_ARCHIVE_LIVE_EVERY,
            archive_live_interval_ms: DEFAULT_ARCHIVE_LIVE_INTERVAL_MS,
            replay_cache_pages: DEFAULT_REPLAY_CACHE_PAGES,
        }
    }
}

impl Config {
    /// Reject values the service cannot run with (checked once by [`crate::run`]).
    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("comment_max_chars", self.comment_max_chars as u64),
            ("comment_rate_per_sec", u64::from(self.comment_rate_per_sec)),
            ("comment_burst", u64::from(self.comment_burst)),
            ("title_max_chars", self.title_max_chars as u64),
            ("message_max_bytes", self.message_max_bytes as u64),
            ("action_concurrency", self.action_concurrency as u64),
            ("push_timeout_ms", self.push_timeout_ms),
            ("housekeeping_ms", self.housekeeping_ms),
            ("poll_refresh_ms", self.poll_refresh_ms),
            ("poll_large_refresh_ms", self.poll_large_refresh_ms),
            ("poll_cache_window", self.poll_cache_window as u64),
            ("poll_cache_rooms_max", self.poll_cache_rooms_max as u64),
            ("poll_cache_idle_ms", self.poll_cache_idle_ms),
            ("counter_window_ms", self.counter_window_ms),
            ("reaction_kinds_max", self.reaction_kinds_max as u64),
            ("like_rate_per_sec", u64::from(self.like_rate_per_sec)),
            ("like_burst", u64::from(self.like_burst)),
            ("action_rate_per_sec", u64::from(self.action_rate_per_sec)),
            ("action_burst", u64::from(self.action_burst)),
            ("polls_open_max", u64::from(self.polls_open_max)),
            ("poll_tally_ms", self.poll_tally_ms),
            ("room_view_ms", self.room_view_ms),
            ("presence_window_ms", self.presence_window_ms),
            ("presence_queue", self.presence_queue as u64),
            (
                "backend_write_rate_per_sec",
                u64::from(self.backend_write_rate_per_sec),
            ),
            ("backend_write_burst", u64::from(self.backend_write_burst)),
            ("archive_batch", self.archive_batch as u64),
            ("archive_claim_idle_ms", self.archive_claim_idle_ms),
            ("archive_poll_ms", self.archive_poll_ms),
            ("replay_cache_pages", self.replay_cache_pages as u64),
            (
                "http.header_read_timeout_ms",
                self.http.header_read_timeout_ms,
            ),
            ("http.max_connections", self.http.max_connections as u64),
            ("schedules.poll_ms", self.schedules.poll_ms),
            ("schedules.claim_lease_ms", self.schedules.claim_lease_ms),
            ("schedules.inbox_max", self.schedules.inbox_max as u64),
            ("schedules.inbox_ttl_secs", self.schedules.inbox_ttl_secs),
            ("idempotency_window_secs", self.idempotency_window_secs),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(Error::Config(format!("{name} must be greater than 0")));
        }
        if self.node_id.trim().is_empty() {
            return Err(Error::Config("node_id must not be empty".into()));
        }
        if self.advertise_host.trim().is_empty() {
            return Err(Error::Config("advertise_host must not be empty".into()));
        }
        if !self.archive_url.is_empty() {
            archive::open::parse(&self.archive_url)
                .map_err(|e| Error::Config(format!("archive_url: {e}")))?;
        }
        common::cors::validate(&self.cors_origins)
            .map_err(|e| Error::Config(format!("cors_origins: {e}")))?;
        GiftCatalog::new(&self.gifts).map_err(|e| Error::Config(format!("gifts: {e}")))?;
        ReactionSet::new(&self.reactions).map_err(|e| Error::Config(format!("reactions: {e}")))?;
        if let Some(problem) = self.tls.problem() {
            return Err(Error::Config(problem.into()));
        }
        if self.backend_tls && !self.tls.enabled() {
            return Err(Error::Config(
                "backend_tls needs tls.cert and tls.key".into(),
            ));
        }
        if let Some(url) = &self.public_http_url {
            common::advertise::check_public_url("public_http_url", url, &["http", "https"])
                .map_err(Error::Config)?;
        }
        self.webhooks.validate()?;
        Ok(())
    }
}

/// How often each biz node looks for scheduled rooms due to start.
pub const DEFAULT_SCHEDULE_POLL_MS: u64 = 1000;
/// How long a node that claimed a due start has to do it before another
/// node may (a node that died mid-start loses nothing but this delay).
pub const DEFAULT_SCHEDULE_CLAIM_LEASE_MS: u64 = 30_000;
/// How long before a scheduled start interested and invited users get a
/// `room_reminder`; 0: no reminders.
pub const DEFAULT_REMINDER_LEAD_MS: u64 = 5 * 60 * 1000;
/// Items kept per user inbox (newest first).
pub const DEFAULT_INBOX_MAX: usize = 50;
/// A user inbox expires this long after its last item (72 h).
pub const DEFAULT_INBOX_TTL_SECS: u64 = 72 * 3600;
/// How long an `Idempotency-Key` (push API) or a gift's `gift_id` is
/// remembered: a retry within it gets the first reply and counts nothing.
pub const DEFAULT_IDEMPOTENCY_WINDOW_SECS: u64 = 24 * 3600;

/// Scheduled rooms: the due-start poll, reminders, user inboxes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// See [`DEFAULT_SCHEDULE_POLL_MS`].
    pub poll_ms: u64,
    /// See [`DEFAULT_SCHEDULE_CLAIM_LEASE_MS`].
    pub claim_lease_ms: u64,
    /// See [`DEFAULT_REMINDER_LEAD_MS`].
    pub reminder_lead_ms: u64,
    /// See [`DEFAULT_INBOX_MAX`].
    pub inbox_max: usize,
    /// See [`DEFAULT_INBOX_TTL_SECS`].
    pub inbox_ttl_secs: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            poll_ms: DEFAULT_SCHEDULE_POLL_MS,
            claim_lease_ms: DEFAULT_SCHEDULE_CLAIM_LEASE_MS,
            reminder_lead_ms: DEFAULT_REMINDER_LEAD_MS,
            inbox_max: DEFAULT_INBOX_MAX,
            inbox_ttl_secs: DEFAULT_INBOX_TTL_SECS,
        }
    }
}

/// Events room-biz queues for the event log before dropping new ones (the
/// live path never waits for the log).
pub const DEFAULT_WEBHOOK_QUEUE: usize = 10_000;
/// Events kept in the event log (about; older ones are trimmed).
pub const DEFAULT_WEBHOOK_LOG_MAX_LEN: usize = 1_000_000;
/// Events a deliverer claims at once.
pub const DEFAULT_WEBHOOK_BATCH: usize = 100;
/// How often an idle deliverer looks for new events.
pub const DEFAULT_WEBHOOK_POLL_MS: u64 = 200;
/// How long one webhook POST may take.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// First wait before retrying a failed delivery; doubles per attempt.
pub const DEFAULT_WEBHOOK_RETRY_INITIAL_MS: u64 = 500;
/// Longest wait between delivery attempts.
pub const DEFAULT_WEBHOOK_RETRY_MAX_MS: u64 = 60_000;
/// An event still undelivered after this long is given up (it stays in the
/// event log for `GET /v1/events`).
pub const DEFAULT_WEBHOOK_GIVE_UP_SECS: u64 = 24 * 3600;
/// Events claimed by a biz node that has not touched them for this long
/// (it died) are delivered by another node.
pub const DEFAULT_WEBHOOK_STALE_MS: u64 = 60_000;
/// Shortest webhook secret accepted, in bytes.
pub const WEBHOOK_SECRET_MIN_BYTES: usize = 16;

/// Events to the app backend (docs/room-api.md, "Webhooks and the event log").
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Record events in the event log (`GET /v1/events`) and deliver them to
    /// `urls`. Off by default.
    pub enabled: bool,
    /// Where events are POSTed (`https://…` or `http://…`); each URL gets
    /// every event.
    pub urls: Vec<String>,
    /// PEM CA certificate(s) an `https://` receiver's certificate may chain
    /// to, besides the webpki (Mozilla) roots: a receiver with a private CA.
    pub ca_file: Option<String>,
    /// Signing secrets, newest first: deliveries are signed with the first;
    /// receivers verify against any they still accept (rotation).
    pub secrets: Vec<String>,
    /// Also send `member.joined` / `member.left` (busy rooms make many).
    pub member_events: bool,
    /// See [`DEFAULT_WEBHOOK_QUEUE`].
    pub queue: usize,
    /// See [`DEFAULT_WEBHOOK_LOG_MAX_LEN`].
    pub log_max_len: usize,
    /// See [`DEFAULT_WEBHOOK_BATCH`].
    pub batch: usize,
    /// See [`DEFAULT_WEBHOOK_POLL_MS`].
    pub poll_ms: u64,
    /// See [`DEFAULT_WEBHOOK_TIMEOUT_MS`].
    pub timeout_ms: u64,
    /// See [`DEFAULT_WEBHOOK_RETRY_INITIAL_MS`].
    pub retry_initial_ms: u64,
    /// See [`DEFAULT_WEBHOOK_RETRY_MAX_MS`].
    pub retry_max_ms: u64,
    /// See [`DEFAULT_WEBHOOK_GIVE_UP_SECS`].
    pub give_up_secs: u64,
    /// See [`DEFAULT_WEBHOOK_STALE_MS`].
    pub stale_ms: u64,
}

/// The secrets are redacted, like in `--print-config`.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        common::redact::fmt_config(self, "WebhookConfig", f)
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            urls: Vec::new(),
            ca_file: None,
            secrets: Vec::new(),
            member_events: false,
            queue: DEFAULT_WEBHOOK_QUEUE,
            log_max_len: DEFAULT_WEBHOOK_LOG_MAX_LEN,
            batch: DEFAULT_WEBHOOK_BATCH,
            poll_ms: DEFAULT_WEBHOOK_POLL_MS,
            timeout_ms: DEFAULT_WEBHOOK_TIMEOUT_MS,
            retry_initial_ms: DEFAULT_WEBHOOK_RETRY_INITIAL_MS,
            retry_max_ms: DEFAULT_WEBHOOK_RETRY_MAX_MS,
            give_up_secs: DEFAULT_WEBHOOK_GIVE_UP_SECS,
            stale_ms: DEFAULT_WEBHOOK_STALE_MS,
        }
    }
}

impl WebhookConfig {
    /// Reject settings deliveries cannot run with.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Config(format!("webhooks.{what}")));
        let positive = [
            ("queue", self.queue as u64),
            ("log_max_len", self.log_max_len as u64),
            ("batch", self.batch as u64),
            ("poll_ms", self.poll_ms),
            ("timeout_ms", self.timeout_ms),
            ("retry_initial_ms", self.retry_initial_ms),
            ("retry_max_ms", self.retry_max_ms),
            ("give_up_secs", self.give_up_secs),
            ("stale_ms", self.stale_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return bad(format!("{name} must be greater than 0"));
        }
        for url in &self.urls {
            let host = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if host.is_none_or(str::is_empty) || url.parse::<http::Uri>().is_err() {
                return bad(format!("urls: {url:?} is not an https:// or http:// URL"));
            }
        }
        if let Some(ca_file) = &self.ca_file {
            crate::webhooks::client::check_ca_file(std::path::Path::new(ca_file))
                .map_err(|e| Error::Config(e.to_string()))?;
        }
        if self.stale_ms <= self.timeout_ms {
            // A delivery in flight would look abandoned to other nodes.
            return bad("stale_ms must be greater than timeout_ms".into());
        }
        if !self.urls.is_empty() && self.secrets.is_empty() {
            return bad("secrets must not be empty when urls are set".into());
        }
        if self
            .secrets
            .iter()
            .any(|s| s.len() < WEBHOOK_SECRET_MIN_BYTES)
        {
            return bad(format!(
                "secrets must each be at least {WEBHOOK_SECRET_MIN_BYTES} bytes"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_limits_are_not() {
        let cfg = Config::default();
        cfg.validate().expect("defaults are valid");
        assert!(cfg.node_id.starts_with("biz-"));
        assert_ne!(
            cfg.node_id,
            Config::default().node_id,
            "node ids are random"
        );

        let zero = Config {
            comment_burst: 0,
            ..Config::default()
        };
        let err = zero.validate().expect_err("zero burst");
        assert!(err.to_string().contains("comment_burst"), "{err}");

        let twice = Config {
            gifts: vec![
                GiftSpec {
                    id: "rose".into(),
                    name: "Rose".into(),
                    value: 1,
                },
                GiftSpec {
                    id: "rose".into(),
                    name: "Red rose".into(),
                    value: 2,
                },
            ],
            ..Config::default()
        };
        let err = twice.validate().expect_err("a gift id twice");
        assert!(err.to_string().contains("gifts"), "{err}");
        let junk = Config {
            reactions: vec!["a b".into()],
            ..Config::default()
        };
        assert!(junk.validate().is_err());

        let hooks = |webhooks: WebhookConfig| {
            Config {
                webhooks,
                ..Config::default()
            }
            .validate()
            .map_err(|e| e.to_string())
        };
        let secret = "whsec-0123456789abcdef".to_owned();
        assert!(
            hooks(WebhookConfig {
                enabled: true,
                urls: vec!["http://app:8080/hooks".into()],
                secrets: vec![secret.clone()],
                ..WebhookConfig::default()
            })
            .is_ok()
        );
        assert!(
            hooks(WebhookConfig {
                enabled: true,
                urls: vec!["https://app.example/hooks".into()],
                secrets: vec![secret.clone()],
                ..WebhookConfig::default()
            })
            .is_ok()
        );
        for (bad, named) in [
            (
                WebhookConfig {
                    urls: vec!["ftp://app/hooks".into()],
                    secrets: vec![secret.clone()],
                    ..WebhookConfig::default()
                },
                "is not an https:// or http:// URL",
            ),
            (
                WebhookConfig {
                    urls: vec!["https://".into()],
                    secrets: vec![secret.clone()],
                    ..WebhookConfig::default()
                },
                "is not an https:// or http:// URL",
            ),
            (
                WebhookConfig {
                    urls: vec!["https://app.example/hooks".into()],
                    secrets: vec![secret.clone()],
                    ca_file: Some("/nonexistent/webhook-ca.pem".into()),
                    ..WebhookConfig::default()
                },
                "webhooks.ca_file /nonexistent/webhook-ca.pem",
            ),
            (
                WebhookConfig {
                    urls: vec!["http://app/hooks".into()],
                    ..WebhookConfig::default()
                },
                "secrets must not be empty",
            ),
            (
                WebhookConfig {
                    secrets: vec!["short".into()],
                    ..WebhookConfig::default()
                },
                "at least 16 bytes",
            ),
            (
                WebhookConfig {
                    stale_ms: 1_000,
                    timeout_ms: 5_000,
                    ..WebhookConfig::default()
                },
                "stale_ms",
            ),
            (
                WebhookConfig {
                    queue: 0,
                    ..WebhookConfig::default()
                },
                "webhooks.queue",
            ),
        ] {
            let error = hooks(bad).expect_err(named);
            assert!(error.contains(named), "{error}");
        }
        let zero_poll = Config {
            schedules: ScheduleConfig {
                poll_ms: 0,
                ..ScheduleConfig::default()
            },
            ..Config::default()
        };
        let error = zero_poll.validate().expect_err("zero poll");
        assert!(error.to_string().contains("schedules.poll_ms"), "{error}");
    }
}
