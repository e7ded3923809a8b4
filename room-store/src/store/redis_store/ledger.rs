//! The Redis [`Ledger`]. `P` is the store's key prefix:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P{sched}:due` | sorted set | due jobs (`start:<room>`, `remind:<room>`) scored by due time (Unix ms); a claim re-scores a job to the end of its lease |
//! | `P{user:<uid>}:inbox` | list | the uid's inbox, newest first, trimmed to its size; TTL refreshed on each push |
//! | `P{once:<key>}` | string | an idempotency key: `p` while pending, `d:<reply>` once done; TTL the key's window |
//! | `P{events}` | stream | the event log, field `e` = the event's JSON, trimmed to about its length; a consumer group per webhook URL |
//!
//! Each operation touches one key, so each is atomic on a Cluster too.

use std::sync::LazyLock;
use std::time::Duration;

use common::redis_conn::RedisConn as Conn;
use redis::Script;

use super::store_error;
use crate::error::StoreError;
use crate::store::ledger::{Ledger, LoggedEvent, Once};

/// Inboxes written at once by [`Ledger::inbox_push`].
const INBOX_CONCURRENCY: usize = 16;

/// Claim due jobs by moving them to the end of their lease. ARGV: now,
/// lease end, limit. Returns the claimed jobs.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, job in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], job) end
return due
",
    )
});

/// Take an idempotency key or tell where it stands. ARGV: ttl (ms).
/// Returns {1, ''} taken, {2, ''} pending, {3, reply} done.
static ONCE_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], 'p', 'NX', 'PX', ARGV[1]) then return {1, ''} end
local v = redis.call('GET', KEYS[1])
if v == 'p' then return {2, ''} end
return {3, string.sub(v, 3)}
",
    )
});

/// Drop an idempotency key that is still pending.
static ONCE_ABORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == 'p' then redis.call('DEL', KEYS[1]) end
return 1
",
    )
});

/// Claim events for a consumer of a group (created at the stream's end on
/// first use): stale pending ones first (`XAUTOCLAIM`), then new ones
/// (`XREADGROUP >`). ARGV: group, consumer, limit, stale ms. Returns id,
/// event, id, event, …
static EVENTS_CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key, group, consumer, limit = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.pcall('XGROUP', 'CREATE', key, group, '$', 'MKSTREAM')
local out = {}
local claimed = redis.call('XAUTOCLAIM', key, group, consumer, ARGV[4], '0-0', 'COUNT', limit)
for _, e in ipairs(claimed[2]) do
  if e and e[2] then
    table.insert(out, e[1])
    table.insert(out, e[2][2])
  end
end
local room = limit - #out / 2
if room > 0 then
  local fresh = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', room,
    'STREAMS', key, '>')
  if fresh then
    for _, e in ipairs(fresh[1][2]) do
      table.insert(out, e[1])
      table.insert(out, e[2][2])
    end
  end
end
return out
",
    )
});

/// `<ms>-<n>` (or `<ms>`): a stream id a caller may pass on.
fn check_id(id: &str) -> Result<(), StoreError> {
    let (ms, n) = id.split_once('-').unwrap_or((id, "0"));
    if ms.parse::<u64>().is_ok() && n.parse::<u64>().is_ok() {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!("not an event id: {id:?}")))
    }
}

fn logged(flat: Vec<String>) -> Vec<LoggedEvent> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(id), Some(event)) = (items.next(), items.next()) {
        out.push(LoggedEvent { id, event });
    }
    out
}

/// The ledger's keys in Redis.
pub(super) struct RedisLedger {
    conn: Conn,
    prefix: String,
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisLedger {
    pub(super) fn new(conn: Conn, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
        }
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    fn due_key(&self) -> String {
        format!("{}{{sched}}:due", self.prefix)
    }

    fn inbox_key(&self, uid: &str) -> String {
        format!("{}{{user:{uid}}}:inbox", self.prefix)
    }

    fn once_key(&self, key: &str) -> String {
        format!("{}{{once:{key}}}", self.prefix)
    }

    /// Push `item` to one inbox, trim it to `last + 1` items, refresh its TTL.
    async fn inbox_one(
        &self,
        uid: &str,
        item: &str,
        last: i64,
        ttl_ms: u64,
    ) -> redis::RedisResult<()> {
        let key = self.inbox_key(uid);
        redis::pipe()
            .cmd("LPUSH")
            .arg(&key)
            .arg(item)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(0)
            .arg(last)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
    }

    fn events_key(&self) -> String {
        format!("{}{{events}}", self.prefix)
    }
}

#[async_trait::async_trait]
impl Ledger for RedisLedger {
    async fn schedule_due(&self, job: &str, at_ms: u64) -> Result<(), StoreError> {
        redis::cmd("ZADD")
            .arg(self.due_key())
            .arg(at_ms)
            .arg(job)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("schedule_due", e))
    }

    async fn claim_due(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        CLAIM
            .key(self.due_key())
            .arg(now_ms)
            .arg(now_ms.saturating_add(lease_ms))
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("claim_due", e))
    }

    async fn finish_due(&self, job: &str) -> Result<(), StoreError> {
        redis::cmd("ZREM")
            .arg(self.due_key())
            .arg(job)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("finish_due", e))
    }

    async fn due_at(&self, job: &str) -> Result<Option<u64>, StoreError> {
        let score: Option<String> = redis::cmd("ZSCORE")
            .arg(self.due_key())
            .arg(job)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("due_at", e))?;
        score
            .map(|s| {
                super::parse_number(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("due time of {job}: {s}")))
            })
            .transpose()
    }

    async fn inbox_push(
        &self,
        uids: &[String],
        item: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let last = i64::try_from(max).unwrap_or(i64::MAX).saturating_sub(1);
        let ttl_ms = millis(ttl);
        for chunk in uids.chunks(INBOX_CONCURRENCY) {
            let mut writes = Vec::with_capacity(chunk.len());
            for uid in chunk {
                writes.push(self.inbox_one(uid, item, last, ttl_ms));
            }
            for written in futures::future::join_all(writes).await {
                written.map_err(|e| store_error("inbox_push", e))?;
            }
        }
        Ok(())
    }

    async fn inbox_read(&self, uid: &str) -> Result<Vec<String>, StoreError> {
        redis::cmd("LRANGE")
            .arg(self.inbox_key(uid))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("inbox_read", e))
    }

    async fn once_begin(&self, key: &str, ttl: Duration) -> Result<Once, StoreError> {
        let (status, reply): (i64, String) = ONCE_BEGIN
            .key(self.once_key(key))
            .arg(millis(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("once_begin", e))?;
        match status {
            1 => Ok(Once::First),
            2 => Ok(Once::Pending),
            _ => Ok(Once::Done(reply)),
        }
    }

    async fn once_finish(&self, key: &str, reply: &str, ttl: Duration) -> Result<(), StoreError> {
        redis::cmd("SET")
            .arg(self.once_key(key))
            .arg(format!("d:{reply}"))
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("once_finish", e))
    }

    async fn once_abort(&self, key: &str) -> Result<(), StoreError> {
        ONCE_ABORT
            .key(self.once_key(key))
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("once_abort", e))
    }

    async fn events_append(&self, event: &str, max_len: usize) -> Result<String, StoreError> {
        redis::cmd("XADD")
            .arg(self.events_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len.max(1))
            .arg("*")
            .arg("e")
            .arg(event)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("events_append", e))
    }

    async fn events_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let start = match after {
            Some(id) => {
                check_id(id)?;
                format!("({id}")
            }
            None => "-".to_owned(),
        };
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.events_key())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| store_error("events_after", e))?;
        Ok(entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let event = fields.into_iter().nth(1)?;
                Some(LoggedEvent { id, event })
            })
            .collect())
    }

    async fn events_join(&self, group: &str) -> Result<(), StoreError> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.events_key())
            .arg(group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map_err(|e| store_error("events_join", e)),
        }
    }

    async fn events_claim(
        &self,
        group: &str,
        consumer: &str,
        limit: usize,
        stale_ms: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let flat: Vec<String> = EVENTS_CLAIM
            .key(self.events_key())
            .arg(group)
            .arg(consumer)
            .arg(limit.max(1))
            .arg(stale_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| store_error("events_claim", e))?;
        Ok(logged(flat))
    }

    async fn events_touch(
        &self,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        ids.iter().try_for_each(|id| check_id(id))?;
        redis::cmd("XCLAIM")
            .arg(self.events_key())
            .arg(group)
            .arg(consumer)
            .arg(0)
            .arg(ids)
            .arg("JUSTID")
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("events_touch", e))
    }

    async fn events_ack(&self, group: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        ids.iter().try_for_each(|id| check_id(id))?;
        redis::cmd("XACK")
            .arg(self.events_key())
            .arg(group)
            .arg(ids)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| store_error("events_ack", e))
    }
}
