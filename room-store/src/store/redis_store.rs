//! The Redis room store of distributed mode: one server (through a
//! `ConnectionManager` that reconnects) or a Redis Cluster, through
//! `common::redis_conn`.
//!
//! # Key layout
//! Every key of a room carries the hash tag `{room:<id>}`, so a room lives in
//! one Cluster slot and each operation is one Lua script over that room's keys
//! (atomic, no cross-slot access; scripts are in `scripts.rs`). `P` is the key
//! prefix (default `roomcast:`); `R` is `P{room:<id>}`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `R:meta` | hash | `title`, `owner` (absent if none), `created_at_ms`, `state` (`scheduled`/`live`/`ended`), `scheduled_at_ms`, `started_at_ms`, `ended_at_ms`, `private` (`0`/`1`), `auto_end_empty_secs`, `slow_mode_secs`, `empty_since_ms` (the optional ones absent when unset) |
//! | `R:members` | sorted set | distinct member uids, scored by first join of their stay (Unix ms) |
//! | `R:sessions` | hash | session field → conn node id holding it |
//! | `R:refs` | hash | uid → number of its sessions (drops the uid from `members` at 0) |
//! | `R:roles` | hash | uid → `moderator` / `speaker` (the host is `meta.owner`) |
//! | `R:hands` | sorted set | uids with a raised hand, scored by raise time |
//! | `R:invites` | hash | uid → who invited them to speak |
//! | `R:muted` | hash | uid → `self` / `moderator` |
//! | `R:kicked` | set | kicked uids |
//! | `R:allowed` | set | the invite list |
//! | `R:interest` | set | uids interested in the scheduled room |
//! | `R:polls` | hash | `<poll>` → definition JSON, `<poll>:n` options, `<poll>:until` timer end, `<poll>:closed` close time |
//! | `R:votes` | hash | `<poll>:<uid>` → option (one vote each, `HSETNX`) |
//! | `R:tally` | hash | `<poll>:<option>` → votes |
//! | `R:counters` | hash | `likes`, `comments`, `gifts`, `gift_value`, `r:<emoji>`, `peak`, `polls_open`, `version` |
//! | `R:seen` | set | every uid that ever joined (unique listeners) |
//! | `R:slow` | hash | uid → last comment time under slow mode |
//! | `P{host:<uid>}:blocked` | set | uids the host blocked (no TTL: it outlives rooms) |
//! | `P{user:<uid>}:revoked` | string | tokens of uid issued before this Unix second are revoked (TTL: the longest token lifetime) |
//! | `Pnode:<node id>:sessions` | set | `<room>\t<session field>` of every session the node holds |
//!
//! A session field is `<uid byte length>:<uid><session id>`: unambiguous
//! whatever the ids contain, so two uids can never share a session entry.
//!
//! Every room key has a [`ROOM_TTL`] refreshed on each write to the room (a
//! room still scheduled keeps its keys until [`ROOM_TTL`] after its scheduled
//! start, so rooms scheduled days ahead do not expire before they start); the
//! node index too, refreshed on each join through the node. The node index is
//! not room-tagged (it spans rooms), so it is written beside the room scripts,
//! not inside them; a stale entry in it is harmless because
//! [`RoomStore::remove_node`] only removes a session whose recorded node is
//! still the dead one. Block lists span rooms too, so the block check is a
//! separate read before a join.
//!
//! Room metadata is also kept in a bounded in-process [`MetaCache`]: when Redis
//! lost a room's keys (restarted empty, failover to a lagging replica) but the
//! cache has it, the metadata is written back and the room carries on.

mod ledger;
mod scripts;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::redis_conn::{self, RedisConn as Conn, RedisConnectError, RedisTimings, RedisTls};
use futures::StreamExt as _;
use redis::{ErrorKind, RedisError, Value};
use serde::Deserialize;

use self::ledger::RedisLedger;
use self::scripts::{
    APPLY, COUNT, CREATE, END, JOIN, LEAVE, LISTS, MEMBERS_PAGE, READ, RESTORE, REVOKE_TOKENS, SLOW,
};
use super::engine::{
    AudienceSet, CounterBatch, MemberEntry, MemberFilter, MinuteCount, NewRoom, Room,
    RoomAnalytics, RoomLists, RoomState, RoomStore, SessionLeft, SessionStay, counter,
};
use super::ledger::Ledger;
use super::meta_cache::{self, MetaCache};
use crate::domain::poll::{PollDef, PollView};
use crate::domain::room::{Mute, Role, StageRole, UserStage};
use crate::domain::state::{Counters, RoomRead, Viewer};
use crate::domain::transition::{Applied, Transition};
use crate::error::StoreError;
use crate::ids;

/// Key prefix when none is configured.
pub const DEFAULT_KEY_PREFIX: &str = "roomcast:";
/// Lifetime of a room's keys after its last write: a room nobody joins, leaves
/// or ends for this long is gone (the archiver deletes ended rooms sooner).
pub const ROOM_TTL: Duration = Duration::from_secs(72 * 3600);

/// How the store's connection waits and reconnects. 2 s to connect (start-up
/// fails after it). 3 s per command: scripts touch one room, so anything
/// slower is a stuck server; fail and let the caller retry. Requests wait for
/// a reconnect, so few and short attempts (2, at most 500 ms apart): during an
/// outage a request fails within about a second (the caller retries or
/// answers UNAVAILABLE), and the next request starts a new reconnect. Cluster
/// requests retry 3 times 50 to 500 ms apart: the client's defaults (1.28 s
/// and up) would hold a request for many seconds in an outage.
const TIMINGS: RedisTimings = RedisTimings {
    connect_timeout: Duration::from_secs(2),
    response_timeout: Duration::from_secs(3),
    reconnect_retries: 2,
    reconnect_delay: (Duration::from_millis(100), Duration::from_millis(500)),
    cluster_retries: 3,
    cluster_retry_wait: Some((Duration::from_millis(50), Duration::from_millis(500))),
};
/// Node index entries read per `SSCAN` in [`RoomStore::remove_node`].
const NODE_SCAN_BATCH: usize = 500;
/// Rooms cleaned at once by [`RoomStore::remove_node`].
const NODE_CLEANUP_CONCURRENCY: usize = 16;
/// Fresh ids tried before `create_room` gives up (a collision is ~1 in 10^17).
const CREATE_ATTEMPTS: usize = 8;

/// Rooms and members in Redis (standalone or Cluster), with room metadata
/// cached in process to survive a Redis that lost its data.
pub struct RedisRoomStore {
    conn: Conn,
    prefix: String,
    cache: MetaCache,
    ledger: Arc<RedisLedger>,
}

/// Names of a room's keys, in the order every script expects.
const ROOM_KEY_NAMES: [&str; 20] = [
    "meta", "members", "sessions", "refs", "roles", "hands", "invites", "muted", "kicked",
    "allowed", "interest", "polls", "votes", "tally", "counters", "seen", "slow", "opened",
    "stays", "minutes",
];

/// The keys of one room.
struct RoomKeys {
    all: Vec<String>,
}

impl RoomKeys {
    fn meta(&self) -> &str {
        &self.all[0]
    }

    fn members(&self) -> &str {
        &self.all[1]
    }

    fn interest(&self) -> &str {
        &self.all[10]
    }

    fn allowed(&self) -> &str {
        &self.all[9]
    }

    /// Session field → join time of the sessions in (analytics).
    fn opened(&self) -> &str {
        &self.all[17]
    }

    /// Sessions that left: `field \t joined \t left` (analytics).
    fn stays(&self) -> &str {
        &self.all[18]
    }

    /// `minute|counter` → added in that minute (analytics).
    fn minutes(&self) -> &str {
        &self.all[19]
    }

    /// Every key, in script order.
    fn all(&self) -> &[String] {
        &self.all
    }
}

impl RedisRoomStore {
    /// Connect to Redis: one URL is a standalone server, several are seed nodes
    /// of a Cluster. Keys start with `key_prefix` (e.g. [`DEFAULT_KEY_PREFIX`]).
    ///
    /// Fails at once with [`StoreError::Unavailable`] if Redis cannot be
    /// reached, so a misconfigured node does not start; later outages are
    /// retried per request.
    pub async fn connect(urls: &[String], key_prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with(urls, key_prefix, &RedisTls::default()).await
    }

    /// [`Self::connect`] with the TLS files of `rediss://` URLs.
    pub async fn connect_with(
        urls: &[String],
        key_prefix: &str,
        tls: &RedisTls,
    ) -> Result<Self, StoreError> {
        // A brace in the prefix would become the hash tag and put every room
        // in one Cluster slot.
        if key_prefix.contains(['{', '}']) {
            return Err(StoreError::InvalidConfig(format!(
                "key prefix {key_prefix:?} must not contain braces"
            )));
        }
        let conn = redis_conn::connect_with(urls, tls, &TIMINGS)
            .await
            .map_err(|e| match e {
                RedisConnectError::Unreachable { .. } => StoreError::Unavailable(e.to_string()),
                RedisConnectError::NoUrl
                | RedisConnectError::InvalidUrl { .. }
                | RedisConnectError::Tls(_) => StoreError::InvalidConfig(e.to_string()),
            })?;
        Ok(Self {
            ledger: Arc::new(RedisLedger::new(conn.clone(), key_prefix)),
            conn,
            prefix: key_prefix.to_owned(),
            cache: MetaCache::new(meta_cache::DEFAULT_CAPACITY, ROOM_TTL),
        })
    }

    fn room_keys(&self, room: &str) -> RoomKeys {
        let base = format!("{}{{room:{room}}}", self.prefix);
        RoomKeys {
            all: ROOM_KEY_NAMES
                .iter()
                .map(|name| format!("{base}:{name}"))
                .collect(),
        }
    }

    fn node_key(&self, node_id: &str) -> String {
        format!("{}node:{node_id}:sessions", self.prefix)
    }

    fn revoked_key(&self, uid: &str) -> String {
        format!("{}{{user:{uid}}}:revoked", self.prefix)
    }

    fn block_key(&self, host: &str) -> String {
        format!("{}{{host:{host}}}:blocked", self.prefix)
    }

    /// A connection handle; cheap (both kinds are shared multiplexers).
    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The room as stored in Redis, without the cache.
    async fn fetch(&self, id: &str) -> Result<Option<Room>, StoreError> {
        let meta: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.room_keys(id).meta())
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("get_room", e))?;
        room_from_meta(id, meta)
    }

    /// If Redis lost room `id` but the cache has it, write it back; the room as
    /// stored afterwards, or `None` if neither has it.
    async fn restore(&self, id: &str) -> Result<Option<Room>, StoreError> {
        let Some(cached) = self.cache.get(id) else {
            return Ok(None);
        };
        let meta: HashMap<String, String> = RESTORE
            .key(self.room_keys(id).all())
            .arg(ROOM_TTL.as_secs())
            .arg(meta_fields(&cached))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("restore room", e))?;
        let restored = room_from_meta(id, meta)?;
        if let Some(room) = &restored {
            tracing::warn!(room = %id, state = room.state.as_str(), "Room re-hydrated after store loss.");
            self.cache.put(room);
        }
        Ok(restored)
    }

    async fn end_once(&self, id: &str) -> Result<Option<Room>, StoreError> {
        let meta: HashMap<String, String> = END
            .key(self.room_keys(id).all())
            .arg(ROOM_TTL.as_secs())
            .arg(common::time::now_ms())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("end_room", e))?;
        room_from_meta(id, meta)
    }

    /// Run the join script; `None` if the room's meta does not exist.
    async fn join_once(
        &self,
        room: &str,
        uid: &str,
        field: &str,
        node_id: &str,
    ) -> Result<Option<u32>, StoreError> {
        let count: i64 = JOIN
            .key(self.room_keys(room).all())
            .arg(uid)
            .arg(field)
            .arg(node_id)
            .arg(common::time::now_ms())
            .arg(ROOM_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("member_joined", e))?;
        match count {
            -1 => Ok(None),
            -2 => Err(StoreError::Kicked {
                room: room.into(),
                uid: uid.into(),
            }),
            -3 => Err(StoreError::NotInvited {
                room: room.into(),
                uid: uid.into(),
            }),
            count => Ok(Some(saturating_u32(count))),
        }
    }

    /// Run the leave script for `sessions` (session field, uid) of `room`;
    /// returns (member count, sessions dropped, node of the last dropped,
    /// uids whose last session was dropped).
    async fn leave(
        &self,
        room: &str,
        only_node: &str,
        sessions: &[(String, String)],
    ) -> Result<(u32, u64, String, u64), StoreError> {
        let keys = self.room_keys(room);
        let mut invocation = LEAVE.key(keys.all());
        invocation
            .arg(only_node)
            .arg(ROOM_TTL.as_secs())
            .arg(common::time::now_ms());
        for (field, uid) in sessions {
            invocation.arg(field).arg(uid);
        }
        let (count, removed, node, gone): (i64, u64, String, u64) = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("member_left", e))?;
        Ok((saturating_u32(count), removed, node, gone))
    }

    async fn apply_once(&self, room: &str, t: &Transition) -> Result<Option<Applied>, StoreError> {
        let reply: String = APPLY
            .key(self.room_keys(room).all())
            .arg(t.to_json())
            .arg(ROOM_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("apply", e))?;
        let reply: ApplyReply = parse_json("apply", &reply)?;
        match reply.status {
            -1 => Ok(None),
            0 => Ok(Some(Applied::Refused {
                guard: reply.guard.unwrap_or(0),
            })),
            _ => Ok(Some(Applied::Done {
                changed: reply.changed == Some(1),
                version: reply.version.unwrap_or(0),
                before: reply.before.as_deref().map(parse_user).transpose()?,
                after: reply.after.as_deref().map(parse_user).transpose()?,
            })),
        }
    }
}
/// A Redis failure as a [`StoreError`]: unreadable replies are corrupt data,
/// everything else (I/O, timeouts, server errors) is retryable unavailability.
fn store_error(operation: &str, error: RedisError) -> StoreError {
    match error.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::Corrupt(format!("{operation}: unexpected reply: {error}"))
        }
        _ => StoreError::Unavailable(format!("{operation}: {error}")),
    }
}

fn saturating_u32(count: i64) -> u32 {
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

fn parse_json<'a, T: Deserialize<'a>>(operation: &str, text: &'a str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{operation}: unexpected reply: {e}")))
}

/// The meta hash of `room` as field/value pairs.
fn meta_fields(room: &Room) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("title", room.title.clone()),
        ("created_at_ms", room.created_at_ms.to_string()),
        ("state", room.state.as_str().to_owned()),
        ("private", if room.private { "1" } else { "0" }.to_owned()),
        ("auto_end_empty_secs", room.auto_end_empty_secs.to_string()),
        ("slow_mode_secs", room.slow_mode_secs.to_string()),
    ];
    let optional = [
        ("owner", room.owner.clone()),
        (
            "scheduled_at_ms",
            room.scheduled_at_ms.map(|v| v.to_string()),
        ),
        ("started_at_ms", room.started_at_ms.map(|v| v.to_string())),
        ("ended_at_ms", room.ended_at_ms.map(|v| v.to_string())),
        ("empty_since_ms", room.empty_since_ms.map(|v| v.to_string())),
    ];
    fields.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v))),
    );
    fields
}

/// Room `id` from its meta hash; `None` for an empty hash (no such room).
/// Fields added after the first release default when absent, so rooms
/// written by older nodes still read.
fn room_from_meta(id: &str, mut meta: HashMap<String, String>) -> Result<Option<Room>, StoreError> {
    if meta.is_empty() {
        return Ok(None);
    }
    let corrupt = |what: &str| StoreError::Corrupt(format!("room {id}: {what}"));
    let title = meta.remove("title").ok_or_else(|| corrupt("no title"))?;
    let created_at_ms = meta
        .get("created_at_ms")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt("created_at_ms missing or not a number"))?;
    let state = meta
        .get("state")
        .and_then(|v| RoomState::from_name(v))
        .ok_or_else(|| corrupt("state missing or unknown"))?;
    let optional =
        |meta: &HashMap<String, String>, name: &str| -> Result<Option<u64>, StoreError> {
            meta.get(name)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| corrupt(&format!("{name} is not a number")))
                })
                .transpose()
        };
    let number = |meta: &HashMap<String, String>, name: &str| -> Result<u32, StoreError> {
        meta.get(name).map_or(Ok(0), |v| {
            v.parse::<u32>()
                .map_err(|_| corrupt(&format!("{name} is not a number")))
        })
    };
    Ok(Some(Room {
        id: id.to_owned(),
        title,
        owner: meta.remove("owner"),
        created_at_ms,
        state,
        scheduled_at_ms: optional(&meta, "scheduled_at_ms")?,
        started_at_ms: optional(&meta, "started_at_ms")?,
        ended_at_ms: optional(&meta, "ended_at_ms")?,
        private: meta.get("private").is_some_and(|v| v == "1"),
        auto_end_empty_secs: number(&meta, "auto_end_empty_secs")?,
        slow_mode_secs: number(&meta, "slow_mode_secs")?,
        empty_since_ms: optional(&meta, "empty_since_ms")?,
    }))
}

/// A score or count as Redis prints it ("1795446710231", maybe "1.7e+12").
fn parse_number(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// A user tuple of the scripts: role, hand time, inviter, mute, kicked, member.
fn parse_user(fields: &[String]) -> Result<UserStage, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("unexpected user state {fields:?}"));
    let [role, hand, by, muted, kicked, member] = fields else {
        return Err(corrupt());
    };
    let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
    Ok(UserStage {
        role: Role::from_name(role).ok_or_else(corrupt)?,
        hand_raised_at_ms: if hand.is_empty() {
            None
        } else {
            Some(parse_number(hand).ok_or_else(corrupt)?)
        },
        invited_by: non_empty(by),
        muted: if muted.is_empty() {
            None
        } else {
            Some(Mute::from_name(muted).ok_or_else(corrupt)?)
        },
        kicked: kicked == "1",
        member: member == "1",
    })
}

#[derive(Deserialize)]
struct ApplyReply {
    status: i64,
    guard: Option<usize>,
    changed: Option<i64>,
    version: Option<u64>,
    before: Option<Vec<String>>,
    after: Option<Vec<String>>,
}

/// An empty Lua table encodes as `{}`: accept it where a list is expected.
fn list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrEmpty {
        List(Vec<String>),
        Empty {},
    }
    Ok(match ListOrEmpty::deserialize(d)? {
        ListOrEmpty::List(list) => list,
        ListOrEmpty::Empty {} => Vec::new(),
    })
}

#[derive(Deserialize)]
struct ListsReply {
    #[serde(deserialize_with = "list")]
    kicked: Vec<String>,
    #[serde(deserialize_with = "list")]
    invited: Vec<String>,
    #[serde(deserialize_with = "list")]
    moderators: Vec<String>,
}

#[derive(Deserialize)]
struct ReadReply {
    meta: HashMap<String, String>,
    members: u64,
    present: u64,
    roles: HashMap<String, String>,
    hands: HashMap<String, String>,
    hands_count: u64,
    invites: BTreeMap<String, String>,
    muted: HashMap<String, String>,
    kicked: u64,
    interest: u64,
    seen: u64,
    polls: HashMap<String, String>,
    tally: HashMap<String, String>,
    counters: HashMap<String, String>,
    viewer: Option<ViewerReply>,
}

#[derive(Deserialize)]
struct ViewerReply {
    #[serde(deserialize_with = "list")]
    user: Vec<String>,
    allowed: i64,
    interested: i64,
    votes: HashMap<String, String>,
}

/// Counters from the counters hash.
fn counters_from(raw: &HashMap<String, String>) -> Counters {
    let get = |name: &str| raw.get(name).and_then(|v| parse_number(v)).unwrap_or(0);
    Counters {
        likes: get(counter::LIKES),
        comments: get(counter::COMMENTS),
        gifts: get(counter::GIFTS),
        gift_value: get(counter::GIFT_VALUE),
        reactions: raw
            .iter()
            .filter_map(|(k, v)| {
                let emoji = k.strip_prefix(counter::REACTION_PREFIX)?;
                Some((emoji.to_owned(), parse_number(v)?))
            })
            .collect(),
        peak: get("peak"),
    }
}

impl ReadReply {
    fn into_read(self, id: &str, viewer: Option<&str>) -> Result<Option<RoomRead>, StoreError> {
        let Some(room) = room_from_meta(id, self.meta)? else {
            return Ok(None);
        };
        let corrupt = |what: String| StoreError::Corrupt(format!("room {id}: {what}"));
        let roles = self
            .roles
            .iter()
            .map(|(uid, role)| {
                StageRole::from_name(role)
                    .map(|r| (uid.clone(), r))
                    .ok_or_else(|| corrupt(format!("role {role:?} of {uid}")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let mut hands: Vec<(String, u64)> = self
            .hands
            .iter()
            .map(|(uid, at)| (uid.clone(), parse_number(at).unwrap_or(0)))
            .collect();
        hands.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let muted = self
            .muted
            .iter()
            .map(|(uid, m)| {
                Mute::from_name(m)
                    .map(|m| (uid.clone(), m))
                    .ok_or_else(|| corrupt(format!("mute {m:?} of {uid}")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let mut polls = Vec::new();
        for (field, def) in &self.polls {
            if field.contains(':') {
                continue;
            }
            let def: PollDef =
                serde_json::from_str(def).map_err(|e| corrupt(format!("poll {field}: {e}")))?;
            let tallies = (0..def.options.len())
                .map(|i| {
                    self.tally
                        .get(&format!("{field}:{i}"))
                        .and_then(|v| parse_number(v))
                        .unwrap_or(0)
                })
                .collect();
            let closed = self
                .polls
                .get(&format!("{field}:closed"))
                .and_then(|v| parse_number(v));
            polls.push(PollView::new(def, tallies, closed));
        }
        polls.sort_by(|a, b| (a.def.opened_at_ms, &a.def.id).cmp(&(b.def.opened_at_ms, &b.def.id)));
        let version = self
            .counters
            .get("version")
            .and_then(|v| parse_number(v))
            .unwrap_or(0);
        let viewer = match (viewer, self.viewer) {
            (Some(uid), Some(v)) => Some(Viewer {
                uid: uid.to_owned(),
                stage: parse_user(&v.user)?,
                may_enter: !room.private || room.owner.as_deref() == Some(uid) || v.allowed == 1,
                interested: v.interested == 1,
                votes: v
                    .votes
                    .iter()
                    .filter_map(|(poll, option)| Some((poll.clone(), option.parse().ok()?)))
                    .collect(),
            }),
            _ => None,
        };
        Ok(Some(RoomRead {
            members: saturating_u32(i64::try_from(self.members).unwrap_or(i64::MAX)),
            stage_present: saturating_u32(i64::try_from(self.present).unwrap_or(i64::MAX)),
            unique_listeners: self.seen,
            roles,
            hands,
            hands_count: self.hands_count,
            invites: self.invites,
            muted,
            kicked_count: self.kicked,
            interest_count: self.interest,
            polls,
            counters: counters_from(&self.counters),
            version,
            viewer,
            room,
        }))
    }
}

/// The session field of `session_id` of `uid`: `<uid byte length>:<uid><session_id>`.
fn session_field(uid: &str, session_id: &str) -> String {
    format!("{}:{uid}{session_id}", uid.len())
}

/// The uid in a session field, if the field is well formed.
fn uid_of_field(field: &str) -> Option<&str> {
    let (len, rest) = field.split_once(':')?;
    rest.get(..len.parse::<usize>().ok()?)
}

/// A session field split into (uid, session id), if well formed.
fn split_field(field: &str) -> Option<(String, String)> {
    let uid = uid_of_field(field)?;
    let (_, rest) = field.split_once(':')?;
    Some((uid.to_owned(), rest.get(uid.len()..)?.to_owned()))
}

/// A stored stay, `field \t joined \t left`; `None` if malformed.
fn stay_of(entry: &str) -> Option<SessionStay> {
    // Fields may hold tabs (uids are the app's); the times never do.
    let mut parts = entry.rsplitn(3, '\t');
    let left = parts.next()?.parse().ok()?;
    let joined = parts.next()?.parse().ok()?;
    let (uid, session) = split_field(parts.next()?)?;
    Some(SessionStay {
        uid,
        session,
        joined_at_ms: joined,
        left_at_ms: Some(left),
    })
}

/// A stored per-minute count, `minute|counter` → count; `None` if malformed.
fn minute_of(field: &str, count: &str) -> Option<MinuteCount> {
    let (minute, name) = field.split_once('|')?;
    Some(MinuteCount {
        minute_ms: minute.parse().ok()?,
        name: name.to_owned(),
        count: count.parse().ok()?,
    })
}

/// The node index entry of a session of `room`. Room ids never hold a tab
/// (they are minted by `create_room`), so the first tab splits it.
fn node_entry(room: &str, field: &str) -> String {
    format!("{room}\t{field}")
}
#[async_trait::async_trait]
impl RoomStore for RedisRoomStore {
    async fn create_room(&self, new: NewRoom) -> Result<Room, StoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            let room = new
                .clone()
                .into_room(ids::new_room_id(), common::time::now_ms());
            let fields = meta_fields(&room);
            let created: i64 = CREATE
                .key(self.room_keys(&room.id).all())
                .arg(ROOM_TTL.as_secs())
                .arg(fields.len())
                .arg(fields)
                .arg(&new.invited)
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| store_error("create_room", e))?;
            if created == 1 {
                self.cache.put(&room);
                return Ok(room);
            }
        }
        Err(StoreError::Unavailable(format!(
            "create_room: no free room id after {CREATE_ATTEMPTS} attempts"
        )))
    }

    async fn get_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        match self.fetch(id).await? {
            Some(room) => {
                self.cache.put(&room);
                Ok(Some(room))
            }
            None => self.restore(id).await,
        }
    }

    async fn delete_room(&self, id: &str) -> Result<bool, StoreError> {
        // Forget the cached copy first: a read racing the delete must not
        // write the room back.
        self.cache.remove(id);
        // One DEL over keys of one hash tag: a single Cluster slot, atomic.
        let deleted: u64 = redis::cmd("DEL")
            .arg(self.room_keys(id).all())
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("delete_room", e))?;
        self.cache.remove(id);
        Ok(deleted > 0)
    }

    async fn end_room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        let mut ended = self.end_once(id).await?;
        if ended.is_none() && self.restore(id).await?.is_some() {
            ended = self.end_once(id).await?;
        }
        if let Some(room) = &ended {
            self.cache.put(room);
        }
        Ok(ended)
    }

    async fn member_joined(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
        node_id: &str,
    ) -> Result<u32, StoreError> {
        let field = session_field(uid, session_id);
        let entry = node_entry(room, &field);
        let node_key = self.node_key(node_id);
        // Indexed before the session is recorded: a session may then exist in
        // the index only (harmless), never unindexed (it would outlive its node).
        if !node_id.is_empty() {
            redis::pipe()
                .cmd("SADD")
                .arg(&node_key)
                .arg(&entry)
                .ignore()
                .cmd("EXPIRE")
                .arg(&node_key)
                .arg(ROOM_TTL.as_secs())
                .ignore()
                .query_async::<()>(&mut self.conn())
                .await
                .map_err(|e| store_error("member_joined", e))?;
        }
        let mut joined = self.join_once(room, uid, &field, node_id).await;
        if matches!(joined, Ok(None)) && self.restore(room).await?.is_some() {
            joined = self.join_once(room, uid, &field, node_id).await;
        }
        let refusal = match joined {
            Ok(Some(count)) => return Ok(count),
            Ok(None) => StoreError::RoomNotFound(room.to_owned()),
            Err(error) => error,
        };
        if !node_id.is_empty() {
            // Best effort: a leftover entry is skipped by remove_node anyway.
            let undone = redis::cmd("SREM")
                .arg(&node_key)
                .arg(&entry)
                .query_async::<()>(&mut self.conn())
                .await;
            if let Err(error) = undone {
                tracing::debug!(%error, room, "Cannot drop the node index entry of a refused join.");
            }
        }
        Err(refusal)
    }

    async fn member_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<u32, StoreError> {
        Ok(self
            .member_session_left(room, uid, session_id)
            .await?
            .members)
    }

    async fn member_session_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<SessionLeft, StoreError> {
        let field = session_field(uid, session_id);
        let sessions = [(field, uid.to_owned())];
        let (count, removed, node, gone) = self.leave(room, "", &sessions).await?;
        if removed > 0 && !node.is_empty() {
            let [(field, _)] = &sessions;
            let dropped = redis::cmd("SREM")
                .arg(self.node_key(&node))
                .arg(node_entry(room, field))
                .query_async::<()>(&mut self.conn())
                .await;
            // The session is gone already; a leftover index entry is skipped
            // by remove_node and expires with the index.
            if let Err(error) = dropped {
                tracing::debug!(%error, room, node, "Cannot drop a node index entry.");
            }
        }
        Ok(SessionLeft {
            members: count,
            member_gone: gone > 0,
        })
    }

    async fn member_count(&self, room: &str) -> Result<u32, StoreError> {
        let count: i64 = redis::cmd("ZCARD")
            .arg(self.room_keys(room).members())
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("member_count", e))?;
        Ok(saturating_u32(count))
    }

    async fn remove_node(&self, node_id: &str) -> Result<Vec<(String, u32)>, StoreError> {
        if node_id.is_empty() {
            return Ok(Vec::new());
        }
        let node_key = self.node_key(node_id);
        let mut counts = BTreeMap::new();
        let mut cursor = 0_u64;
        // Batches keep memory flat for a node that held a million sessions;
        // SSCAN may repeat an entry, which the leave script makes harmless.
        loop {
            let (next, entries): (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(&node_key)
                .arg(cursor)
                .arg("COUNT")
                .arg(NODE_SCAN_BATCH)
                .query_async(&mut self.conn())
                .await
                .map_err(|e| store_error("remove_node", e))?;
            let mut by_room: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            for entry in entries {
                let parsed = entry.split_once('\t').and_then(|(room, field)| {
                    let uid = uid_of_field(field)?.to_owned();
                    Some((room.to_owned(), (field.to_owned(), uid)))
                });
                match parsed {
                    Some((room, session)) => by_room.entry(room).or_default().push(session),
                    None => tracing::warn!(
                        node = node_id,
                        entry,
                        "Skipping a malformed node index entry."
                    ),
                }
            }
            // Room by room: each room is one slot, so one script each.
            let mut cleaned = futures::stream::iter(by_room)
                .map(|(room, sessions)| async move {
                    let (count, removed, _, _) = self.leave(&room, node_id, &sessions).await?;
                    Ok::<_, StoreError>((room, count, removed))
                })
                .buffer_unordered(NODE_CLEANUP_CONCURRENCY);
            while let Some(result) = cleaned.next().await {
                let (room, count, removed) = result?;
                if removed > 0 {
                    counts.insert(room, count);
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        // The node is gone for good (node ids are per process), so is its index.
        redis::cmd("DEL")
            .arg(&node_key)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("remove_node", e))?;
        Ok(counts.into_iter().collect())
    }

    async fn apply(&self, room: &str, t: &Transition) -> Result<Applied, StoreError> {
        let mut applied = self.apply_once(room, t).await?;
        if applied.is_none() && self.restore(room).await?.is_some() {
            applied = self.apply_once(room, t).await?;
        }
        applied.ok_or_else(|| StoreError::RoomNotFound(room.to_owned()))
    }

    async fn read(
        &self,
        room: &str,
        viewer: Option<&str>,
        hands_max: usize,
    ) -> Result<Option<RoomRead>, StoreError> {
        let keys = self.room_keys(room);
        for attempt in 0..2 {
            let reply: String = READ
                .key(keys.all())
                .arg(viewer.unwrap_or(""))
                .arg(hands_max)
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| store_error("read", e))?;
            if !reply.is_empty() {
                let parsed: ReadReply = parse_json("read", &reply)?;
                return parsed.into_read(room, viewer);
            }
            if attempt > 0 || self.restore(room).await?.is_none() {
                break;
            }
        }
        Ok(None)
    }

    async fn add_counters(
        &self,
        room: &str,
        deltas: &[(String, u64)],
        batch: Option<CounterBatch<'_>>,
    ) -> Result<Option<Counters>, StoreError> {
        let keys = self.room_keys(room);
        for attempt in 0..2 {
            let mut invocation = COUNT.key(keys.all());
            invocation.arg(ROOM_TTL.as_secs());
            match batch {
                Some(batch) => invocation.arg(batch.writer).arg(batch.seq),
                None => invocation.arg("").arg(0),
            };
            for (name, delta) in deltas {
                invocation.arg(name).arg(*delta);
            }
            let reply: String = invocation
                .invoke_async(&mut self.conn())
                .await
                .map_err(|e| store_error("add_counters", e))?;
            if !reply.is_empty() {
                let raw: HashMap<String, String> = parse_json("add_counters", &reply)?;
                return Ok(Some(counters_from(&raw)));
            }
            if attempt > 0 || self.restore(room).await?.is_none() {
                break;
            }
        }
        Ok(None)
    }

    async fn analytics(&self, room: &str) -> Result<RoomAnalytics, StoreError> {
        let keys = self.room_keys(room);
        let (opened, stays, minutes): (
            HashMap<String, String>,
            Vec<String>,
            HashMap<String, String>,
        ) = redis::pipe()
            .cmd("HGETALL")
            .arg(keys.opened())
            .cmd("LRANGE")
            .arg(keys.stays())
            .arg(0)
            .arg(-1)
            .cmd("HGETALL")
            .arg(keys.minutes())
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("analytics", e))?;
        let mut malformed = 0usize;
        let mut out = RoomAnalytics::default();
        for entry in &stays {
            match stay_of(entry) {
                Some(stay) => out.stays.push(stay),
                None => malformed += 1,
            }
        }
        let mut open = Vec::with_capacity(opened.len());
        for (field, joined) in &opened {
            match (split_field(field), joined.parse()) {
                (Some((uid, session)), Ok(joined_at_ms)) => open.push(SessionStay {
                    uid,
                    session,
                    joined_at_ms,
                    left_at_ms: None,
                }),
                _ => malformed += 1,
            }
        }
        open.sort_by(|a, b| (a.joined_at_ms, &a.uid).cmp(&(b.joined_at_ms, &b.uid)));
        out.stays.extend(open);
        for (field, count) in &minutes {
            match minute_of(field, count) {
                Some(m) => out.minutes.push(m),
                None => malformed += 1,
            }
        }
        out.minutes
            .sort_by(|a, b| (a.minute_ms, &a.name).cmp(&(b.minute_ms, &b.name)));
        if malformed > 0 {
            tracing::warn!(
                room,
                malformed,
                "Skipped analytics entries this build cannot read."
            );
        }
        Ok(out)
    }

    async fn slow_comment(
        &self,
        room: &str,
        uid: &str,
        secs: u32,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let reply: Value = SLOW
            .key(self.room_keys(room).all())
            .arg(uid)
            .arg(secs)
            .arg(now_ms)
            .arg(ROOM_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("slow_comment", e))?;
        match reply {
            Value::Int(_) => Err(StoreError::RoomNotFound(room.to_owned())),
            Value::BulkString(bytes) if bytes.is_empty() => Ok(None),
            Value::BulkString(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(parse_number)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt("slow_comment: unexpected reply".into())),
            other => Err(StoreError::Corrupt(format!(
                "slow_comment: unexpected reply {other:?}"
            ))),
        }
    }

    async fn members_page(
        &self,
        room: &str,
        filter: MemberFilter,
        after: Option<&MemberEntry>,
        limit: usize,
    ) -> Result<Vec<MemberEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let flat: Vec<String> = MEMBERS_PAGE
            .key(self.room_keys(room).all())
            .arg(match filter {
                MemberFilter::All => "all",
                MemberFilter::Listeners => "listeners",
            })
            .arg(after.map_or_else(String::new, |a| a.joined_at_ms.to_string()))
            .arg(after.map_or("", |a| a.uid.as_str()))
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("members_page", e))?;
        Ok(flat
            .chunks_exact(2)
            .map(|pair| MemberEntry {
                uid: pair[0].clone(),
                joined_at_ms: parse_number(&pair[1]).unwrap_or(0),
            })
            .collect())
    }

    async fn audience_page(
        &self,
        room: &str,
        set: AudienceSet,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let keys = self.room_keys(room);
        let key = match set {
            AudienceSet::Interested => keys.interest(),
            AudienceSet::Invited => keys.allowed(),
        };
        redis::cmd("SSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("audience_page", e))
    }

    async fn room_lists(&self, room: &str) -> Result<RoomLists, StoreError> {
        let reply: String = LISTS
            .key(self.room_keys(room).all())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("room_lists", e))?;
        let lists: ListsReply = parse_json("room_lists", &reply)?;
        Ok(RoomLists {
            kicked: lists.kicked,
            invited: lists.invited,
            moderators: lists.moderators,
        })
    }

    async fn set_blocked(&self, host: &str, uid: &str, blocked: bool) -> Result<(), StoreError> {
        redis::cmd(if blocked { "SADD" } else { "SREM" })
            .arg(self.block_key(host))
            .arg(uid)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("set_blocked", e))
    }

    async fn is_blocked(&self, host: &str, uid: &str) -> Result<bool, StoreError> {
        redis::cmd("SISMEMBER")
            .arg(self.block_key(host))
            .arg(uid)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("is_blocked", e))
    }

    async fn blocked_by(&self, host: &str) -> Result<Vec<String>, StoreError> {
        redis::cmd("SMEMBERS")
            .arg(self.block_key(host))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("blocked_by", e))
    }

    async fn revoke_tokens(
        &self,
        uid: &str,
        before_secs: u64,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        REVOKE_TOKENS
            .key(self.revoked_key(uid))
            .arg(before_secs)
            .arg(ttl_secs.max(1))
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("revoke_tokens", e))
    }

    async fn tokens_revoked_before(&self, uid: &str) -> Result<Option<u64>, StoreError> {
        let value: Option<String> = redis::cmd("GET")
            .arg(self.revoked_key(uid))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("tokens_revoked_before", e))?;
        value
            .map(|v| {
                v.parse().map_err(|_| {
                    StoreError::Corrupt(format!("tokens_revoked_before: not a number: {v:?}"))
                })
            })
            .transpose()
    }

    fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }
}

#[cfg(test)]
mod tests;
