//! The archive queue of distributed mode: a Redis Stream with one consumer
//! group. `XADD` on a room's end, `XREADGROUP >` for new jobs, `XAUTOCLAIM`
//! to take over jobs a dead consumer left idle, `XCLAIM … JUSTID` as the
//! worker's heartbeat, `XACK` + `XDEL` once the archive commit is done.
//!
//! Nothing here blocks on the server (no `BLOCK`): the connection is
//! multiplexed and a blocking read would hold every other command behind it;
//! workers poll instead.

use std::time::Duration;

use common::redis_conn::{self, RedisConn, RedisTimings};
use redis::Value;

use super::{ArchiveJob, ArchiveQueue, QueueError};

/// The stream's key after the prefix (not room-tagged: it spans rooms).
const STREAM: &str = "archive:jobs";
/// The consumer group every biz node reads in.
const GROUP: &str = "archivers";
/// The job entry's field holding the room id.
const ROOM_FIELD: &str = "room";

/// Short waits: a stuck command fails and the worker tries again next poll.
const TIMINGS: RedisTimings = RedisTimings {
    connect_timeout: Duration::from_secs(2),
    response_timeout: Duration::from_secs(3),
    reconnect_retries: 2,
    reconnect_delay: (Duration::from_millis(100), Duration::from_millis(500)),
    cluster_retries: 3,
    cluster_retry_wait: Some((Duration::from_millis(50), Duration::from_millis(500))),
};

/// Archive jobs in a Redis Stream.
pub struct RedisQueue {
    conn: RedisConn,
    key: String,
}

fn unavailable(e: redis::RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// Why a read of the group failed: Redis refused it (the group may be
/// missing), or its reply was not understood.
enum ReadError {
    Redis(redis::RedisError),
    Queue(QueueError),
}

impl From<redis::RedisError> for ReadError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

impl From<QueueError> for ReadError {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

impl From<ReadError> for QueueError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Redis(e) => unavailable(e),
            ReadError::Queue(e) => e,
        }
    }
}

impl RedisQueue {
    /// Connect (one URL: standalone; several: Cluster seeds) and create the
    /// stream and its group if missing.
    pub async fn connect(urls: &[String], key_prefix: &str) -> Result<Self, QueueError> {
        Self::connect_with(urls, key_prefix, &redis_conn::RedisTls::default()).await
    }

    /// [`Self::connect`] with TLS settings for `rediss://` URLs.
    pub async fn connect_with(
        urls: &[String],
        key_prefix: &str,
        tls: &redis_conn::RedisTls,
    ) -> Result<Self, QueueError> {
        let conn = redis_conn::connect_with(urls, tls, &TIMINGS)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let queue = Self {
            conn,
            key: format!("{key_prefix}{STREAM}"),
        };
        queue.create_group().await?;
        Ok(queue)
    }

    /// Create the stream and its group unless the group exists.
    async fn create_group(&self) -> Result<(), QueueError> {
        let created: Result<Value, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another node created it first.
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn next_in_group(
        &self,
        consumer: &str,
        claim_idle: Duration,
    ) -> Result<Option<ArchiveJob>, ReadError> {
        let idle_ms = u64::try_from(claim_idle.as_millis()).unwrap_or(u64::MAX);
        // [next cursor, [entries], (deleted ids, Redis 7)]
        let claimed: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        if let Value::Array(parts) = &claimed
            && let Some(entries) = parts.get(1)
            && let Some(job) = jobs_of(entries)?.into_iter().next()
        {
            tracing::info!(room = %job.room, consumer, "Took over an idle archive job.");
            return Ok(Some(job));
        }
        // [[stream, [entries]]], or nil when nothing is new.
        let read: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut self.conn.clone())
            .await?;
        let streams = match read {
            Value::Array(streams) => streams,
            Value::Nil => return Ok(None),
            other => return Err(QueueError::Malformed(format!("XREADGROUP {other:?}")).into()),
        };
        for stream in &streams {
            if let Value::Array(parts) = stream
                && let Some(entries) = parts.get(1)
                && let Some(job) = jobs_of(entries)?.into_iter().next()
            {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Jobs in a list of stream entries `[[id, [field, value, …]], …]`; entries
/// deleted meanwhile (nil fields) are skipped.
fn jobs_of(entries: &Value) -> Result<Vec<ArchiveJob>, QueueError> {
    let Value::Array(entries) = entries else {
        return Ok(Vec::new());
    };
    let mut jobs = Vec::new();
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(QueueError::Malformed(format!("stream entry {entry:?}")));
        };
        let (Some(id), Some(fields)) = (parts.first(), parts.get(1)) else {
            return Err(QueueError::Malformed(format!("stream entry {parts:?}")));
        };
        let id = text(id)?;
        let Value::Array(fields) = fields else {
            continue;
        };
        let room = fields
            .chunks(2)
            .find(|pair| pair.first().and_then(|f| text(f).ok()).as_deref() == Some(ROOM_FIELD))
            .and_then(|pair| pair.get(1))
            .map(text)
            .transpose()?;
        if let Some(room) = room {
            jobs.push(ArchiveJob { id, room });
        }
    }
    Ok(jobs)
}

fn text(v: &Value) -> Result<String, QueueError> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        other => Err(QueueError::Malformed(format!(
            "expected text, got {other:?}"
        ))),
    }
}

#[async_trait::async_trait]
impl ArchiveQueue for RedisQueue {
    async fn enqueue(&self, room: &str) -> Result<(), QueueError> {
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("*")
            .arg(ROOM_FIELD)
            .arg(room)
            .query_async::<Value>(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn next(
        &self,
        consumer: &str,
        claim_idle: Duration,
    ) -> Result<Option<ArchiveJob>, QueueError> {
        match self.next_in_group(consumer, claim_idle).await {
            // The group is gone (a Redis that lost its data, or the stream
            // deleted by hand): create it again; jobs queued since are read.
            Err(ReadError::Redis(e)) if e.code() == Some("NOGROUP") => {
                tracing::warn!("The archive queue's consumer group is missing; creating it again.");
                self.create_group().await?;
                Ok(self.next_in_group(consumer, claim_idle).await?)
            }
            other => Ok(other?),
        }
    }

    async fn touch(&self, consumer: &str, job: &ArchiveJob) -> Result<(), QueueError> {
        redis::cmd("XCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(&job.id)
            .arg("JUSTID")
            .query_async::<Value>(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ack(&self, job: &ArchiveJob) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&job.id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.key)
            .arg(&job.id)
            .ignore();
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn backlog(&self) -> Result<u64, QueueError> {
        // Acknowledged entries are deleted, so the stream's length is the backlog.
        redis::cmd("XLEN")
            .arg(&self.key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive_jobs::conformance;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn redis_queue_hands_jobs_out_until_acked() -> TestResult {
        let redis = test_servers::RedisServer::start()?;
        let queue = RedisQueue::connect(&[redis.url()], "t:").await?;
        assert_eq!(queue.key(), "t:archive:jobs");
        // A second node connecting finds the group there.
        RedisQueue::connect(&[redis.url()], "t:").await?;
        conformance::jobs_are_handed_out_until_acked(&queue).await;
        Ok(())
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable() {
        match RedisQueue::connect(&["redis://127.0.0.1:1".into()], "t:").await {
            Err(QueueError::Unavailable(_)) => {}
            Err(other) => panic!("expected Unavailable, got {other:?}"),
            Ok(_) => panic!("connected to a closed port"),
        }
    }
}
