//! Redis message log engine: standalone Redis or Redis Cluster.
//!
//! # Keys (see [`crate::keys`])
//! Per room, all carrying the hash tag `{room:<id>}` so they share one Cluster
//! slot and one Lua script may touch them together:
//! - `{prefix}{room:<id>}:epoch`: the stream's incarnation, a decimal u64.
//! - `{prefix}{room:<id>}:seq`: the last issued seq (INCRBY).
//! - `{prefix}{room:<id>}:log`: a Redis Stream, one entry per message, with the
//!   explicit ID `<seq>-<append unix ms>` and one field `m` holding the
//!   protobuf-encoded [`RoomMessage`] (its `seq` field filled).
//!
//! Every append refreshes all three keys' TTL (`key_ttl_secs`, 72 h by default).
//!
//! ## Why a Stream and not a sorted set
//! Stream IDs are ordered pairs `<ms>-<seq>` of u64, and we may choose them: with
//! `<seq>-<append ms>` the first half is the seq (so `XRANGE key <after+1> +`
//! is the resume read, O(log n) to find), and the second half is the append time,
//! so age trimming needs no extra storage. Streams keep entries in compact
//! listpacks (a zset of 1000 payloads pays for a skiplist and a dict), trim
//! exactly by `MAXLEN` / `MINID`, and need no uniqueness trick for members.
//! The archiver can read the same key with `XRANGE`.
//!
//! # Scripts
//! Every operation but `delete` is one Lua script (EVALSHA, re-loaded on
//! `NOSCRIPT`, e.g. after a Redis restart), so epoch, seq and entries are always
//! seen and changed together:
//! - *ensure* (all scripts): if `epoch` or `seq` is missing (a new room, a room
//!   deleted, or a Redis that lost or evicted the data), drop the log, set `epoch`
//!   to the caller's fresh random [`new_epoch`] and `seq` to 0. A lost stream
//!   therefore always comes back under a new epoch, which tells resuming clients
//!   to re-sync instead of silently skipping.
//! - *append*: ensure; `INCRBY seq n`; `XADD` each message with its seq (the seq
//!   field is appended to the encoded bytes in Lua: protobuf's last-wins rule
//!   makes it authoritative); `XTRIM MAXLEN max_len`; drop the prefix older than
//!   `max_age`; `EXPIRE` the three keys; return `{epoch, first_seq}`. Append times
//!   come from Redis' `TIME`, clamped to never go below the newest entry's, so
//!   the expired entries are always a prefix of the stream.
//! - *read*: ensure; drop expired entries; return epoch, head, the oldest kept
//!   seq and one page from `after_seq + 1`: at most `max_messages` entries
//!   whose stored sizes add up to at most `max_bytes` (at least one entry).
//!   A stored entry is exactly the message's protobuf encoding with its seq,
//!   so the budget means the same as in the memory engine.
//! - *head*: ensure; return epoch and seq.
//!
//! # Concurrency
//! One [`RedisConn`] (see [`common::redis_conn`]): a multiplexed connection
//! that reconnects by itself, standalone or Cluster. Clones share the
//! connection, and concurrent requests from many rooms are pipelined on it: no
//! pool, no lock, no per-room connection. Redis runs each script atomically, which
//! is what makes seqs dense; rooms on different Cluster nodes run in parallel.
//!
//! An append that fails with [`LogError::Unavailable`] may or may not have been
//! applied (e.g. a response timeout); seqs stay dense either way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::redis_conn::{self, RedisConn, RedisTimings};
use prost::Message as _;
use proto::client::v1::RoomMessage;
use redis::{Cmd, ErrorKind, RedisError, Script, ServerErrorKind, Value};

use crate::keys::{MessageLogKeys, message_log_keys};
use crate::{
    Appended, HistoryLimits, LogError, LogRead, MessageLog, ReadLimit, StreamHead, new_epoch,
};

/// How the log's connection waits and reconnects: 2 s to connect or answer;
/// after a failure, up to 4 reconnect attempts 50 ms to 1 s apart.
const TIMINGS: RedisTimings = RedisTimings {
    connect_timeout: Duration::from_secs(2),
    response_timeout: Duration::from_secs(2),
    reconnect_retries: 4,
    reconnect_delay: (Duration::from_millis(50), Duration::from_secs(1)),
    cluster_retries: 3,
    cluster_retry_wait: None,
};
/// Ages are passed to Lua as numbers: keep them exact in a double.
const MAX_AGE_MS_LIMIT: u128 = 1 << 53;

/// Where the Redis message log lives and how much it keeps.
#[derive(Clone, Debug)]
pub struct RedisLogConfig {
    /// One URL = standalone Redis; several = Redis Cluster seed nodes.
    pub urls: Vec<String>,
    /// Prepended to every key, e.g. `"rc:"`. Must not contain `{` or `}`.
    pub key_prefix: String,
    /// History bounds per room.
    pub history: HistoryLimits,
    /// TTL of every room key, refreshed on append (at least 1).
    pub key_ttl_secs: u64,
    /// TLS files of `rediss://` URLs.
    pub tls: common::redis_conn::RedisTls,
}

impl Default for RedisLogConfig {
    fn default() -> Self {
        Self {
            urls: vec!["redis://127.0.0.1:6379".into()],
            key_prefix: "rc:".into(),
            history: HistoryLimits::default(),
            key_ttl_secs: 72 * 3600,
            tls: common::redis_conn::RedisTls::default(),
        }
    }
}

/// Lua shared by every script. KEYS = epoch, seq, log.
const PRELUDE: &str = r#"
local function ensure(new_epoch, ttl)
  local epoch = redis.call('GET', KEYS[1])
  local seq = redis.call('GET', KEYS[2])
  if epoch and seq then
    return epoch, tonumber(seq)
  end
  -- A new room, or Redis lost (part of) it: start a new incarnation.
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[1], new_epoch, 'EX', ttl)
  redis.call('SET', KEYS[2], '0', 'EX', ttl)
  return new_epoch, 0
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Entry IDs are '<seq>-<append ms>'.
local function split_id(id)
  local seq, at = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(seq), tonumber(at)
end

-- Drop entries appended before cutoff (ms). Append times never decrease along
-- the stream, so the expired ones are a prefix. Returns the oldest kept seq, or 0.
local function trim_age(cutoff)
  local batch = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
  if #batch == 0 then return 0 end
  local seq, at = split_id(batch[1][1])
  if at >= cutoff then return seq end
  while true do
    batch = redis.call('XRANGE', KEYS[3], '(' .. batch[#batch][1], '+', 'COUNT', 128)
    for _, e in ipairs(batch) do
      seq, at = split_id(e[1])
      if at >= cutoff then
        redis.call('XTRIM', KEYS[3], 'MINID', e[1])
        return seq
      end
    end
    if #batch < 128 then
      redis.call('XTRIM', KEYS[3], 'MAXLEN', 0)
      return 0
    end
  end
end
"#;

/// ARGV = new_epoch, ttl_secs, max_len, max_age_ms, message bytes (seq unset)...
/// Returns {epoch, first_seq}.
const APPEND: &str = r#"
-- Protobuf field 1 (seq), varint.
local function seq_field(seq)
  local b = {8}
  while seq >= 128 do
    b[#b + 1] = seq % 128 + 128
    seq = math.floor(seq / 128)
  end
  b[#b + 1] = seq
  return string.char(unpack(b))
end

local epoch = ensure(ARGV[1], ARGV[2])
local n = #ARGV - 4
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n + 1
local now = now_ms()
if n > 0 then
  local newest = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)[1]
  if newest then
    local _, at = split_id(newest[1])
    if at > now then now = at end
  end
  for i = 1, n do
    local seq = first + i - 1
    redis.call('XADD', KEYS[3], string.format('%.0f-%.0f', seq, now),
      'm', ARGV[4 + i] .. seq_field(seq))
  end
end
redis.call('XTRIM', KEYS[3], 'MAXLEN', ARGV[3])
trim_age(now - tonumber(ARGV[4]))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return {epoch, first}
"#;

/// ARGV = new_epoch, ttl_secs, max_age_ms, start id, count, max bytes.
/// Returns {epoch, head_seq, oldest kept seq or 0, message bytes...}: at most
/// `count` entries from `start`, whose sizes add up to at most `max bytes`
/// (the first entry is returned whatever its size). Entries are fetched in
/// small chunks so a page of large messages is never copied whole twice.
const READ: &str = r#"
local epoch, head = ensure(ARGV[1], ARGV[2])
local oldest = trim_age(now_ms() - tonumber(ARGV[3]))
local out = {epoch, head, oldest}
local left = tonumber(ARGV[5])
local budget = tonumber(ARGV[6])
if oldest == 0 or left <= 0 then
  return out
end
local start = ARGV[4]
local bytes = 0
local n = 0
while left > 0 do
  local chunk = math.min(left, 32)
  local entries = redis.call('XRANGE', KEYS[3], start, '+', 'COUNT', chunk)
  for i = 1, #entries do
    local m = entries[i][2][2] or ''
    if n > 0 and bytes + #m > budget then
      return out
    end
    bytes = bytes + #m
    n = n + 1
    out[3 + n] = m
    left = left - 1
  end
  if #entries < chunk then
    return out
  end
  start = '(' .. entries[#entries][1]
end
return out
"#;

/// ARGV = new_epoch, ttl_secs. Returns {epoch, head_seq}.
const HEAD: &str = r#"
local epoch, seq = ensure(ARGV[1], ARGV[2])
return {epoch, seq}
"#;

struct Scripts {
    append: Script,
    read: Script,
    head: Script,
}

/// The Redis engine of [`MessageLog`]. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisLog {
    conn: RedisConn,
    scripts: Arc<Scripts>,
    prefix: Arc<str>,
    history: HistoryLimits,
    /// `key_ttl_secs` as a decimal string, ready for ARGV.
    ttl: Arc<str>,
    /// `history.max_len` as a decimal string.
    max_len: Arc<str>,
    /// `history.max_age` in ms as a decimal string.
    max_age_ms: Arc<str>,
}

impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog")
            .field("mode", &self.conn.mode())
            .field("prefix", &self.prefix)
            .field("history", &self.history)
            .field("ttl_secs", &self.ttl)
            .finish()
    }
}

/// Connect to Redis (one URL) or a Redis Cluster (several seed URLs).
///
/// Fails fast with [`LogError::Unavailable`] (`cannot reach Redis at <url>: …`)
/// when the first connection cannot be made; after that, the connection
/// reconnects by itself and each failed call returns `Unavailable`.
pub async fn connect(cfg: RedisLogConfig) -> Result<RedisLog, LogError> {
    let scripts = Scripts {
        append: Script::new(&format!("{PRELUDE}{APPEND}")),
        read: Script::new(&format!("{PRELUDE}{READ}")),
        head: Script::new(&format!("{PRELUDE}{HEAD}")),
    };
    let mut conn = redis_conn::connect_with(&cfg.urls, &cfg.tls, &TIMINGS)
        .await
        .map_err(|e| LogError::Unavailable(e.to_string()))?;
    // Load the scripts now: checks they compile and saves a NOSCRIPT round trip.
    // (SCRIPT LOAD goes to every primary in Cluster mode.)
    for script in [&scripts.append, &scripts.read, &scripts.head] {
        script.load_async(&mut conn).await.map_err(classify)?;
    }
    let max_age_ms = cfg.history.max_age.as_millis().min(MAX_AGE_MS_LIMIT);
    Ok(RedisLog {
        conn,
        scripts: Arc::new(scripts),
        prefix: cfg.key_prefix.into(),
        history: cfg.history,
        ttl: cfg.key_ttl_secs.max(1).to_string().into(),
        max_len: cfg.history.max_len.to_string().into(),
        max_age_ms: max_age_ms.to_string().into(),
    })
}

/// Connection, timeout and server-side failures are `Unavailable` (retryable);
/// data that is not what this engine wrote is `Corrupt`.
fn classify(e: RedisError) -> LogError {
    let corrupt = matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        || e.code() == Some("WRONGTYPE");
    if corrupt {
        LogError::Corrupt(e.to_string())
    } else {
        LogError::Unavailable(e.to_string())
    }
}

fn corrupt(what: &str) -> LogError {
    LogError::Corrupt(format!("unexpected reply from Redis: {what}"))
}

/// A non-negative integer reply (integer, or a decimal string).
fn reply_u64(v: &Value, what: &str) -> Result<u64, LogError> {
    match v {
        Value::Int(i) => u64::try_from(*i).map_err(|_| corrupt(what)),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt(what)),
        Value::SimpleString(s) => s.parse().map_err(|_| corrupt(what)),
        _ => Err(corrupt(what)),
    }
}

fn reply_array(v: Value, min_len: usize) -> Result<Vec<Value>, LogError> {
    match v {
        Value::Array(items) if items.len() >= min_len => Ok(items),
        _ => Err(corrupt(
            "script reply is not an array of the expected length",
        )),
    }
}

fn epoch_of(v: &Value) -> Result<u64, LogError> {
    match reply_u64(v, "epoch")? {
        0 => Err(corrupt("epoch 0")),
        e => Ok(e),
    }
}

impl RedisLog {
    fn keys(&self, room: &str) -> MessageLogKeys {
        message_log_keys(&self.prefix, room)
    }

    /// `EVALSHA script 3 epoch seq log` with room for `extra_args` args of
    /// `extra_bytes` bytes, to be added by the caller.
    fn evalsha(
        script: &Script,
        keys: &MessageLogKeys,
        extra_args: usize,
        extra_bytes: usize,
    ) -> Cmd {
        let key_bytes = keys.epoch.len() + keys.seq.len() + keys.log.len();
        let mut cmd = Cmd::with_capacity(6 + extra_args, 64 + key_bytes + extra_bytes);
        cmd.arg("EVALSHA")
            .arg(script.get_hash())
            .arg(3)
            .arg(&keys.epoch)
            .arg(&keys.seq)
            .arg(&keys.log);
        cmd
    }

    /// Run an EVALSHA command, loading `script` and retrying once on NOSCRIPT
    /// (a restarted or failed-over Redis has lost its script cache).
    async fn run(&self, script: &Script, cmd: &Cmd) -> Result<Value, LogError> {
        let mut conn = self.conn.clone();
        match cmd.query_async::<Value>(&mut conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                script.load_async(&mut conn).await.map_err(classify)?;
                cmd.query_async::<Value>(&mut conn).await.map_err(classify)
            }
            other => other.map_err(classify),
        }
    }
}

#[async_trait::async_trait]
impl MessageLog for RedisLog {
    async fn append(&self, room: &str, messages: &[RoomMessage]) -> Result<Appended, LogError> {
        let keys = self.keys(room);
        let payload: usize = messages.iter().map(|m| m.encoded_len()).sum();
        let mut cmd = Self::evalsha(&self.scripts.append, &keys, 4 + messages.len(), payload);
        cmd.arg(new_epoch())
            .arg(&*self.ttl)
            .arg(&*self.max_len)
            .arg(&*self.max_age_ms);
        // One scratch buffer for every message; the script appends the seq field.
        let mut scratch =
            Vec::with_capacity(messages.iter().map(|m| m.encoded_len()).max().unwrap_or(0));
        for m in messages {
            scratch.clear();
            let encoded = if m.seq == 0 {
                m.encode(&mut scratch)
            } else {
                let mut m = m.clone();
                m.seq = 0;
                m.encode(&mut scratch)
            };
            encoded.map_err(|e| LogError::Corrupt(format!("encoding a message: {e}")))?;
            cmd.arg(&scratch[..]);
        }
        let reply = reply_array(self.run(&self.scripts.append, &cmd).await?, 2)?;
        Ok(Appended {
            epoch: epoch_of(&reply[0])?,
            first_seq: reply_u64(&reply[1], "first seq")?,
        })
    }

    async fn read_after(
        &self,
        room: &str,
        after_seq: u64,
        limit: ReadLimit,
    ) -> Result<LogRead, LogError> {
        let keys = self.keys(room);
        let from = after_seq.saturating_add(1);
        // Lua numbers are doubles: keep both exact.
        let count = limit.max_messages.min(MAX_AGE_MS_LIMIT as usize);
        let max_bytes = limit.max_bytes.min(MAX_AGE_MS_LIMIT as usize);
        let mut cmd = Self::evalsha(&self.scripts.read, &keys, 6, 64);
        cmd.arg(new_epoch())
            .arg(&*self.ttl)
            .arg(&*self.max_age_ms)
            .arg(from)
            .arg(count)
            .arg(max_bytes);
        let reply = reply_array(self.run(&self.scripts.read, &cmd).await?, 3)?;
        let epoch = epoch_of(&reply[0])?;
        let head_seq = reply_u64(&reply[1], "head seq")?;
        let oldest = match reply_u64(&reply[2], "oldest seq")? {
            0 => head_seq.saturating_add(1),
            s => s,
        };
        let truncated = from < oldest && after_seq < head_seq;
        let first = from.max(oldest);
        let mut messages = Vec::with_capacity(reply.len() - 3);
        for (i, v) in reply.into_iter().skip(3).enumerate() {
            let Value::BulkString(b) = v else {
                return Err(corrupt("log entry is not a string"));
            };
            let m = RoomMessage::decode(Bytes::from(b))
                .map_err(|e| LogError::Corrupt(format!("room {room}: log entry: {e}")))?;
            if m.seq != first + i as u64 || m.seq > head_seq {
                return Err(LogError::Corrupt(format!(
                    "room {room}: log entry has seq {} where {} was expected (head {head_seq})",
                    m.seq,
                    first + i as u64
                )));
            }
            messages.push(m);
        }
        let more = LogRead::stops_before_head(&messages, head_seq);
        Ok(LogRead {
            epoch,
            head_seq,
            messages,
            truncated,
            more,
        })
    }

    async fn head(&self, room: &str) -> Result<StreamHead, LogError> {
        let keys = self.keys(room);
        let mut cmd = Self::evalsha(&self.scripts.head, &keys, 2, 32);
        cmd.arg(new_epoch()).arg(&*self.ttl);
        let reply = reply_array(self.run(&self.scripts.head, &cmd).await?, 2)?;
        Ok(StreamHead {
            epoch: epoch_of(&reply[0])?,
            last_seq: reply_u64(&reply[1], "head seq")?,
        })
    }

    async fn delete(&self, room: &str) -> Result<(), LogError> {
        let keys = self.keys(room);
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(&keys.epoch)
            .arg(&keys.seq)
            .arg(&keys.log)
            .query_async::<()>(&mut conn)
            .await
            .map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use redis::Client;
    use test_servers::{RedisCluster, RedisServer};

    use super::*;
    use crate::conformance;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    /// An `XRANGE` entry: id and field/value pairs.
    type StreamEntry = (String, Vec<(String, Vec<u8>)>);

    fn msg(text: &str) -> RoomMessage {
        RoomMessage {
            kind: "comment".into(),
            body: Bytes::copy_from_slice(text.as_bytes()),
            sender: "u1".into(),
            ts_ms: 1_700_000_000_000,
            ..Default::default()
        }
    }

    fn config(urls: Vec<String>, max_len: usize, max_age: Duration) -> RedisLogConfig {
        RedisLogConfig {
            urls,
            key_prefix: "rc-test:".into(),
            history: HistoryLimits { max_len, max_age },
            key_ttl_secs: 3600,
            tls: common::redis_conn::RedisTls::default(),
        }
    }

    async fn raw(url: &str) -> Result<redis::aio::MultiplexedConnection, RedisError> {
        Client::open(url)?.get_multiplexed_async_connection().await
    }

    #[tokio::test]
    async fn conformance_on_standalone_redis() -> TestResult {
        let redis = RedisServer::start()?;
        let log = connect(config(vec![redis.url()], 5, Duration::from_secs(60))).await?;
        conformance::dense_seqs_and_bounded_history(&log, "room-a").await;
        let log: Arc<dyn MessageLog> =
            Arc::new(connect(config(vec![redis.url()], 1000, Duration::from_secs(60))).await?);
        conformance::concurrent_appends_are_dense(log, "room-b").await;
        let log = connect(config(vec![redis.url()], 1000, Duration::from_secs(60))).await?;
        conformance::reads_are_paged_by_count_and_bytes(&log, "room-c").await;
        Ok(())
    }

    #[tokio::test]
    async fn conformance_on_redis_cluster() -> TestResult {
        let cluster = RedisCluster::start(3)?;
        let log = connect(config(cluster.urls(), 5, Duration::from_secs(60))).await?;
        assert!(format!("{log:?}").contains("cluster"));
        // Several rooms, so more than one node is exercised.
        for room in ["room-a", "room-b", "room-c", "room-d"] {
            conformance::dense_seqs_and_bounded_history(&log, room).await;
        }
        let log: Arc<dyn MessageLog> =
            Arc::new(connect(config(cluster.urls(), 1000, Duration::from_secs(60))).await?);
        let (a, b) = tokio::join!(
            conformance::concurrent_appends_are_dense(log.clone(), "room-x"),
            conformance::concurrent_appends_are_dense(log.clone(), "room-y"),
        );
        let ((), ()) = (a, b);
        let log = connect(config(cluster.urls(), 1000, Duration::from_secs(60))).await?;
        conformance::reads_are_paged_by_count_and_bytes(&log, "room-z").await;
        Ok(())
    }

    #[tokio::test]
    async fn redis_restarted_empty_gives_a_new_epoch() -> TestResult {
        let mut redis = RedisServer::start()?;
        let log = connect(config(vec![redis.url()], 100, Duration::from_secs(60))).await?;
        let before = log.append("r", &[msg("a"), msg("b"), msg("c")]).await?;
        assert_eq!(before.first_seq, 1);

        redis.restart_empty()?;

        let mut after = None;
        for _ in 0..50 {
            match log.append("r", &[msg("d")]).await {
                Ok(a) => {
                    after = Some(a);
                    break;
                }
                Err(LogError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let after = after.ok_or("append never worked again after the restart")?;
        assert_ne!(
            after.epoch, before.epoch,
            "a Redis that lost its data gives a new epoch"
        );
        assert_eq!(after.first_seq, 1, "seqs restart at 1");

        // A client resuming from its old position learns of the new epoch.
        let read = log.read_after("r", 3, ReadLimit::messages(10)).await?;
        assert_eq!(read.epoch, after.epoch);
        assert_eq!(read.head_seq, 1);
        assert!(read.messages.is_empty());
        let read = log.read_after("r", 0, ReadLimit::messages(10)).await?;
        assert_eq!(read.messages.len(), 1);
        assert_eq!(read.messages[0].body.as_ref(), b"d");
        Ok(())
    }

    #[tokio::test]
    async fn old_messages_expire_by_age() -> TestResult {
        let redis = RedisServer::start()?;
        let log = connect(config(vec![redis.url()], 100, Duration::from_millis(200))).await?;
        log.append("r", &[msg("a"), msg("b")]).await?;
        let read = log.read_after("r", 0, ReadLimit::messages(10)).await?;
        assert_eq!(read.messages.len(), 2);
        assert!(!read.truncated);

        tokio::time::sleep(Duration::from_millis(300)).await;
        log.append("r", &[msg("c")]).await?;
        let read = log.read_after("r", 0, ReadLimit::messages(10)).await?;
        assert!(read.truncated, "seqs 1 and 2 aged out");
        assert_eq!(read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [3]);
        assert!(
            !log.read_after("r", 2, ReadLimit::messages(10))
                .await?
                .truncated
        );

        tokio::time::sleep(Duration::from_millis(300)).await;
        let read = log.read_after("r", 0, ReadLimit::messages(10)).await?;
        assert!(read.messages.is_empty());
        assert!(read.truncated);
        assert_eq!(read.head_seq, 3);
        let read = log.read_after("r", 3, ReadLimit::messages(10)).await?;
        assert!(!read.truncated, "a reader at the head has lost nothing");

        let mut conn = raw(&redis.url()).await?;
        let len: u64 = redis::cmd("XLEN")
            .arg(message_log_keys("rc-test:", "r").log)
            .query_async(&mut conn)
            .await?;
        assert_eq!(len, 0, "expired entries are removed, not just hidden");
        Ok(())
    }

    #[tokio::test]
    async fn keys_carry_a_ttl() -> TestResult {
        let redis = RedisServer::start()?;
        let log = connect(config(vec![redis.url()], 100, Duration::from_secs(60))).await?;
        let mut conn = raw(&redis.url()).await?;
        let keys = message_log_keys("rc-test:", "r");

        log.head("r").await?;
        for key in [&keys.epoch, &keys.seq] {
            let ttl: i64 = redis::cmd("TTL").arg(key).query_async(&mut conn).await?;
            assert!(ttl > 0 && ttl <= 3600, "{key} has TTL {ttl}");
        }
        log.append("r", &[msg("a")]).await?;
        for key in [&keys.epoch, &keys.seq, &keys.log] {
            let ttl: i64 = redis::cmd("TTL").arg(key).query_async(&mut conn).await?;
            assert!(ttl > 0 && ttl <= 3600, "{key} has TTL {ttl}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn connect_to_a_closed_port_fails_fast() -> TestResult {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        let err = connect(config(vec![url.clone()], 5, Duration::from_secs(60)))
            .await
            .expect_err("nothing listens there");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        let LogError::Unavailable(text) = &err else {
            panic!("expected Unavailable, got {err:?}");
        };
        assert!(
            text.contains(&format!("cannot reach Redis at {url}")),
            "{text}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn stored_entries_are_room_messages_with_seq() -> TestResult {
        let redis = RedisServer::start()?;
        let log = connect(config(vec![redis.url()], 100, Duration::from_secs(60))).await?;
        let mut conn = raw(&redis.url()).await?;

        // The caller's seq is ignored; multi-byte varints (past 2^7, 2^14, 2^40) come
        // out right: jump the counter of a fresh room before appending.
        for (room, jump) in [
            ("r0", 0_u64),
            ("r1", 300),
            ("r2", 20_000),
            ("r3", (1 << 40) - 1),
        ] {
            let keys = message_log_keys("rc-test:", room);
            log.head(room).await?;
            redis::cmd("SET")
                .arg(&keys.seq)
                .arg(jump)
                .query_async::<()>(&mut conn)
                .await?;
            let mut stale = msg("a");
            stale.seq = 99;
            let a = log.append(room, &[stale, msg("b")]).await?;
            assert_eq!(a.first_seq, jump + 1);

            let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
                .arg(&keys.log)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await?;
            let seqs: Vec<u64> = entries
                .iter()
                .map(|(id, fields)| {
                    let m = RoomMessage::decode(&fields[0].1[..]).expect("decodes");
                    assert!(id.starts_with(&format!("{}-", m.seq)), "{id} vs {}", m.seq);
                    assert_eq!(m.sender, "u1");
                    m.seq
                })
                .collect();
            assert_eq!(seqs, [jump + 1, jump + 2]);

            let read = log.read_after(room, jump, ReadLimit::messages(10)).await?;
            assert!(!read.truncated);
            assert_eq!(read.head_seq, jump + 2);
            assert_eq!(
                read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
                [jump + 1, jump + 2]
            );
            assert_eq!(read.messages[0].body.as_ref(), b"a");
            let read = log.read_after(room, 0, ReadLimit::messages(1)).await?;
            assert_eq!(read.truncated, jump > 0, "seqs 1..={jump} never existed");
            assert_eq!(read.messages.len(), 1);
            let read = log
                .read_after(room, u64::MAX, ReadLimit::messages(10))
                .await?;
            assert!(read.messages.is_empty() && !read.truncated);
        }
        Ok(())
    }

    #[tokio::test]
    async fn losing_the_seq_key_gives_a_new_epoch() -> TestResult {
        let redis = RedisServer::start()?;
        let log = connect(config(vec![redis.url()], 100, Duration::from_secs(60))).await?;
        let mut conn = raw(&redis.url()).await?;
        let keys = message_log_keys("rc-test:", "r");
        let a = log.append("r", &[msg("a"), msg("b")]).await?;
        // As if maxmemory eviction took only the counter.
        redis::cmd("DEL")
            .arg(&keys.seq)
            .query_async::<()>(&mut conn)
            .await?;
        let head = log.head("r").await?;
        assert_ne!(head.epoch, a.epoch);
        assert_eq!(head.last_seq, 0);
        let read = log.read_after("r", 0, ReadLimit::messages(10)).await?;
        assert!(
            read.messages.is_empty(),
            "the old incarnation's entries are gone"
        );
        Ok(())
    }

    #[tokio::test]
    async fn corrupt_data_is_reported_as_corrupt() -> TestResult {
        let redis = RedisServer::start()?;
        let log = connect(config(vec![redis.url()], 100, Duration::from_secs(60))).await?;
        let mut conn = raw(&redis.url()).await?;
        let keys = message_log_keys("rc-test:", "r");
        log.append("r", &[msg("a")]).await?;
        redis::cmd("XADD")
            .arg(&keys.log)
            .arg("2-0")
            .arg("m")
            .arg(&b"\xff\xff\xff"[..])
            .query_async::<()>(&mut conn)
            .await?;
        redis::cmd("SET")
            .arg(&keys.seq)
            .arg(2)
            .query_async::<()>(&mut conn)
            .await?;
        let err = log
            .read_after("r", 0, ReadLimit::messages(10))
            .await
            .expect_err("garbage entry");
        assert!(matches!(err, LogError::Corrupt(_)), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn no_url_is_unavailable() {
        let mut cfg = RedisLogConfig::default();
        cfg.urls.clear();
        let err = connect(cfg).await.expect_err("no URL");
        assert!(matches!(err, LogError::Unavailable(_)), "{err:?}");
    }
}
