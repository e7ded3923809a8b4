//! The PostgreSQL engine of distributed mode: a small connection pool
//! (deadpool) over tokio-postgres. Messages and gifts go in with one
//! `INSERT … SELECT FROM UNNEST(arrays) ON CONFLICT DO NOTHING` per batch:
//! one round trip for hundreds of rows, and exactly once by `(room, seq)`.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row};

use crate::error::{ArchiveError, to_i64, to_u64};
use crate::migrations::{self, CREATE_SCHEMA_MIGRATIONS, POSTGRES};
use crate::model::{ArchiveBatch, ArchivedMessage, ArchivedRoom, CounterMinute, MemberSession};
use crate::store::{ArchiveStore, HistoryQuery, RoomStats, TableCounts};

/// Connections kept at most: the archiver writes one batch at a time per
/// job, and history reads are short.
const POOL_SIZE: usize = 8;
/// How long a request waits for a connection, and to open one.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Serialises concurrent migrators (biz nodes starting together).
const MIGRATION_LOCK: i64 = 0x726f_6f6d_6361_7374; // "roomcast"

const MESSAGE_COLUMNS: &str = "seq, kind, priority, sender, payload, sent_at_ms, offset_ms";

/// The archive in PostgreSQL.
pub struct PostgresArchive {
    pool: Pool,
}

impl std::fmt::Debug for PostgresArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresArchive").finish_non_exhaustive()
    }
}

impl PostgresArchive {
    /// Connect to `url` (`postgres://user@host:port/db`) and bring the
    /// schema up to date. Fails at once when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, ArchiveError> {
        let config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| ArchiveError::InvalidLocation {
                    location: redact(url),
                    reason: e.to_string(),
                })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| ArchiveError::Unavailable(e.to_string()))?;
        let archive = Self { pool };
        archive.migrate().await?;
        Ok(archive)
    }

    /// Apply the pending migrations (see [`crate::migrations`]).
    async fn migrate(&self) -> Result<(), ArchiveError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(CREATE_SCHEMA_MIGRATIONS).await?;
        let applied: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        let known = migrations::latest(POSTGRES);
        let found = u32::try_from(applied).unwrap_or(0);
        if found > known {
            return Err(ArchiveError::SchemaTooNew { found, known });
        }
        for m in POSTGRES.iter().filter(|m| m.version > found) {
            let fail = |e: tokio_postgres::Error| ArchiveError::Migration {
                version: m.version,
                reason: e.to_string(),
            };
            tx.batch_execute(m.sql).await.map_err(fail)?;
            let version = i32::try_from(m.version).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                &[&version, &m.name, &now_ms()],
            )
            .await
            .map_err(fail)?;
            tracing::info!(
                version = m.version,
                name = m.name,
                "Archive migration applied."
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Versions recorded in `schema_migrations`, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<u32>, ArchiveError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0))
            .collect())
    }

    async fn messages(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        let client = self.pool.get().await?;
        let rows = client.query(sql, params).await?;
        rows.iter().map(message_of).collect()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `url` without its password, for errors and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

const ROOM_COLUMNS: &str = "id, title, owner, kind, created_at_ms, started_at_ms, ended_at_ms,
    summary::text, archived_at_ms, access::text";

fn room_of(row: &Row) -> Result<ArchivedRoom, ArchiveError> {
    let summary: String = row.try_get(7)?;
    Ok(ArchivedRoom {
        id: row.try_get(0)?,
        title: row.try_get(1)?,
        owner: row.try_get(2)?,
        kind: row.try_get(3)?,
        created_at_ms: to_u64(row.try_get(4)?, "created_at_ms")?,
        started_at_ms: opt_u64(row.try_get(5)?, "started_at_ms")?,
        ended_at_ms: opt_u64(row.try_get(6)?, "ended_at_ms")?,
        summary: serde_json::from_str(&summary)
            .map_err(|e| ArchiveError::Corrupt(format!("summary: {e}")))?,
        archived_at_ms: opt_u64(row.try_get(8)?, "archived_at_ms")?,
        access: crate::model::access_of(&row.try_get::<_, String>(9)?)?,
    })
}

fn message_of(row: &Row) -> Result<ArchivedMessage, ArchiveError> {
    Ok(ArchivedMessage {
        seq: to_u64(row.try_get(0)?, "seq")?,
        kind: row.try_get(1)?,
        priority: row.try_get(2)?,
        sender: row.try_get(3)?,
        payload: row.try_get(4)?,
        sent_at_ms: to_u64(row.try_get(5)?, "sent_at_ms")?,
        offset_ms: row.try_get(6)?,
    })
}

fn opt_i64(v: Option<u64>, what: &str) -> Result<Option<i64>, ArchiveError> {
    v.map(|v| to_i64(v, what)).transpose()
}

fn opt_u64(v: Option<i64>, what: &str) -> Result<Option<u64>, ArchiveError> {
    v.map(|v| to_u64(v, what)).transpose()
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String, ArchiveError> {
    serde_json::to_string(v).map_err(|e| ArchiveError::OutOfRange(e.to_string()))
}

#[async_trait::async_trait]
impl ArchiveStore for PostgresArchive {
    async fn put_room(&self, room: &ArchivedRoom) -> Result<(), ArchiveError> {
        let client = self.pool.get().await?;
        let summary = json_text(&room.summary)?;
        client
            .execute(
                "INSERT INTO rooms (id, title, owner, kind, created_at_ms, started_at_ms,
                     ended_at_ms, summary, access)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9::text::jsonb)
                 ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, owner = EXCLUDED.owner,
                     kind = EXCLUDED.kind, created_at_ms = EXCLUDED.created_at_ms,
                     started_at_ms = EXCLUDED.started_at_ms, ended_at_ms = EXCLUDED.ended_at_ms,
                     summary = EXCLUDED.summary, access = EXCLUDED.access",
                &[
                    &room.id,
                    &room.title,
                    &room.owner,
                    &room.kind,
                    &to_i64(room.created_at_ms, "created_at_ms")?,
                    &opt_i64(room.started_at_ms, "started_at_ms")?,
                    &opt_i64(room.ended_at_ms, "ended_at_ms")?,
                    &summary,
                    &json_text(&room.access)?,
                ],
            )
            .await?;
        Ok(())
    }

    async fn write_batch(&self, batch: &ArchiveBatch) -> Result<u64, ArchiveError> {
        let mut seqs = Vec::with_capacity(batch.messages.len());
        let mut sent = Vec::with_capacity(batch.messages.len());
        for m in &batch.messages {
            seqs.push(to_i64(m.seq, "seq")?);
            sent.push(to_i64(m.sent_at_ms, "sent_at_ms")?);
        }
        let kinds: Vec<&str> = batch.messages.iter().map(|m| m.kind.as_str()).collect();
        let priorities: Vec<i32> = batch.messages.iter().map(|m| m.priority).collect();
        let senders: Vec<&str> = batch.messages.iter().map(|m| m.sender.as_str()).collect();
        let payloads: Vec<&[u8]> = batch
            .messages
            .iter()
            .map(|m| m.payload.as_slice())
            .collect();
        let offsets: Vec<i64> = batch.messages.iter().map(|m| m.offset_ms).collect();

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = if batch.messages.is_empty() {
            0
        } else {
            tx.execute(
                "INSERT INTO messages (room, seq, kind, priority, sender, payload, sent_at_ms,
                     offset_ms)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::INT[], $5::TEXT[],
                     $6::BYTEA[], $7::BIGINT[], $8::BIGINT[])
                 ON CONFLICT (room, seq) DO NOTHING",
                &[
                    &batch.room,
                    &seqs,
                    &kinds,
                    &priorities,
                    &senders,
                    &payloads,
                    &sent,
                    &offsets,
                ],
            )
            .await?
        };
        if !batch.members.is_empty() {
            let uids: Vec<&str> = batch.members.iter().map(|m| m.uid.as_str()).collect();
            let roles: Vec<&str> = batch.members.iter().map(|m| m.role.as_str()).collect();
            let joined = batch
                .members
                .iter()
                .map(|m| to_i64(m.joined_at_ms, "joined_at_ms"))
                .collect::<Result<Vec<_>, _>>()?;
            let left = batch
                .members
                .iter()
                .map(|m| opt_i64(m.left_at_ms, "left_at_ms"))
                .collect::<Result<Vec<_>, _>>()?;
            tx.execute(
                "INSERT INTO participation (room, uid, role, joined_at_ms, left_at_ms)
                 SELECT $1, * FROM UNNEST($2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])
                 ON CONFLICT (room, uid) DO UPDATE SET role = EXCLUDED.role,
                     joined_at_ms = EXCLUDED.joined_at_ms, left_at_ms = EXCLUDED.left_at_ms",
                &[&batch.room, &uids, &roles, &joined, &left],
            )
            .await?;
        }
        for p in &batch.polls {
            tx.execute(
                "INSERT INTO polls (room, poll_id, question, options, tallies, opened_by,
                     opened_at_ms, closed_at_ms)
                 VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, $7, $8)
                 ON CONFLICT (room, poll_id) DO UPDATE SET question = EXCLUDED.question,
                     options = EXCLUDED.options, tallies = EXCLUDED.tallies,
                     opened_by = EXCLUDED.opened_by, opened_at_ms = EXCLUDED.opened_at_ms,
                     closed_at_ms = EXCLUDED.closed_at_ms",
                &[
                    &batch.room,
                    &p.poll_id,
                    &p.question,
                    &json_text(&p.options)?,
                    &json_text(&p.tallies)?,
                    &p.opened_by,
                    &to_i64(p.opened_at_ms, "opened_at_ms")?,
                    &opt_i64(p.closed_at_ms, "closed_at_ms")?,
                ],
            )
            .await?;
        }
        if !batch.gifts.is_empty() {
            let mut seqs = Vec::new();
            let mut counts = Vec::new();
            let mut values = Vec::new();
            let mut times = Vec::new();
            for g in &batch.gifts {
                seqs.push(to_i64(g.seq, "seq")?);
                counts.push(to_i64(g.count, "count")?);
                values.push(to_i64(g.value, "value")?);
                times.push(to_i64(g.sent_at_ms, "sent_at_ms")?);
            }
            let uids: Vec<&str> = batch.gifts.iter().map(|g| g.uid.as_str()).collect();
            let ids: Vec<&str> = batch.gifts.iter().map(|g| g.gift_id.as_str()).collect();
            tx.execute(
                "INSERT INTO gifts (room, seq, uid, gift_id, count, value, sent_at_ms)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                     $6::BIGINT[], $7::BIGINT[])
                 ON CONFLICT (room, seq) DO NOTHING",
                &[&batch.room, &seqs, &uids, &ids, &counts, &values, &times],
            )
            .await?;
        }
        for (name, value) in &batch.counters {
            tx.execute(
                "INSERT INTO counters (room, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT (room, name) DO UPDATE SET value = EXCLUDED.value",
                &[&batch.room, name, &to_i64(*value, "counter")?],
            )
            .await?;
        }
        if !batch.sessions.is_empty() {
            let uids: Vec<&str> = batch.sessions.iter().map(|s| s.uid.as_str()).collect();
            let ids: Vec<&str> = batch.sessions.iter().map(|s| s.session.as_str()).collect();
            let mut joined = Vec::with_capacity(batch.sessions.len());
            let mut left = Vec::with_capacity(batch.sessions.len());
            for s in &batch.sessions {
                joined.push(to_i64(s.joined_at_ms, "joined_at_ms")?);
                left.push(to_i64(s.left_at_ms, "left_at_ms")?);
            }
            tx.execute(
                "INSERT INTO sessions (room, uid, session, joined_at_ms, left_at_ms)
                 SELECT $1, * FROM UNNEST($2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])
                 ON CONFLICT (room, uid, session, joined_at_ms)
                 DO UPDATE SET left_at_ms = EXCLUDED.left_at_ms",
                &[&batch.room, &uids, &ids, &joined, &left],
            )
            .await?;
        }
        if !batch.minutes.is_empty() {
            let mut starts = Vec::with_capacity(batch.minutes.len());
            let mut values = Vec::with_capacity(batch.minutes.len());
            for m in &batch.minutes {
                starts.push(to_i64(m.minute_ms, "minute_ms")?);
                values.push(to_i64(m.value, "value")?);
            }
            let minutes: Vec<i64> = batch.minutes.iter().map(|m| m.minute).collect();
            let names: Vec<&str> = batch.minutes.iter().map(|m| m.name.as_str()).collect();
            tx.execute(
                "INSERT INTO counters_per_minute (room, minute_ms, minute, name, value)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[])
                 ON CONFLICT (room, minute_ms, name)
                 DO UPDATE SET minute = EXCLUDED.minute, value = EXCLUDED.value",
                &[&batch.room, &starts, &minutes, &names, &values],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn mark_archived(&self, room: &str, at_ms: u64) -> Result<bool, ArchiveError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE rooms SET archived_at_ms = COALESCE(archived_at_ms, $2) WHERE id = $1",
                &[&room, &to_i64(at_ms, "archived_at_ms")?],
            )
            .await?;
        Ok(n > 0)
    }

    async fn room(&self, room: &str) -> Result<Option<ArchivedRoom>, ArchiveError> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1");
        let row = client.query_opt(&sql, &[&room]).await?;
        row.as_ref().map(room_of).transpose()
    }

    async fn rooms_ended_since(&self, since_ms: u64) -> Result<Vec<ArchivedRoom>, ArchiveError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {ROOM_COLUMNS} FROM rooms
             WHERE archived_at_ms IS NOT NULL AND ended_at_ms >= $1 ORDER BY ended_at_ms, id"
        );
        let rows = client
            .query(&sql, &[&to_i64(since_ms, "since_ms")?])
            .await?;
        rows.iter().map(room_of).collect()
    }

    async fn last_seq(&self, room: &str) -> Result<u64, ArchiveError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = $1",
                &[&room],
            )
            .await?;
        to_u64(row.try_get(0)?, "seq")
    }

    async fn history(
        &self,
        room: &str,
        query: HistoryQuery,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        let limit = to_i64(query.page() as u64, "limit")?;
        let before = query
            .before_seq
            .map_or(Ok(i64::MAX), |s| to_i64(s, "before_seq"))?;
        match query.after_seq {
            Some(after) => {
                let after = to_i64(after, "after_seq")?;
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE room = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4"
                );
                self.messages(&sql, &[&room, &after, &before, &limit]).await
            }
            None => {
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
                );
                let mut page = self.messages(&sql, &[&room, &before, &limit]).await?;
                page.reverse();
                Ok(page)
            }
        }
    }

    async fn replay(
        &self,
        room: &str,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        let limit = to_i64(limit.clamp(1, crate::MAX_PAGE) as u64, "limit")?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE room = $1 AND offset_ms >= $2 ORDER BY offset_ms, seq LIMIT $3"
        );
        self.messages(&sql, &[&room, &from_ms, &limit]).await
    }

    async fn table_counts(&self, room: &str) -> Result<TableCounts, ArchiveError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM messages WHERE room = $1),
                        (SELECT count(*) FROM participation WHERE room = $1),
                        (SELECT count(*) FROM polls WHERE room = $1),
                        (SELECT count(*) FROM gifts WHERE room = $1),
                        (SELECT count(*) FROM counters WHERE room = $1),
                        (SELECT count(*) FROM sessions WHERE room = $1),
                        (SELECT count(*) FROM counters_per_minute WHERE room = $1)",
                &[&room],
            )
            .await?;
        Ok(TableCounts {
            messages: to_u64(row.try_get(0)?, "count")?,
            members: to_u64(row.try_get(1)?, "count")?,
            polls: to_u64(row.try_get(2)?, "count")?,
            gifts: to_u64(row.try_get(3)?, "count")?,
            counters: to_u64(row.try_get(4)?, "count")?,
            sessions: to_u64(row.try_get(5)?, "count")?,
            minutes: to_u64(row.try_get(6)?, "count")?,
        })
    }

    async fn sessions(&self, room: &str) -> Result<Vec<MemberSession>, ArchiveError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT uid, session, joined_at_ms, left_at_ms FROM sessions WHERE room = $1
                 ORDER BY joined_at_ms, uid, session",
                &[&room],
            )
            .await?;
        rows.iter()
            .map(|r| -> Result<MemberSession, ArchiveError> {
                Ok(MemberSession {
                    uid: r.try_get(0)?,
                    session: r.try_get(1)?,
                    joined_at_ms: to_u64(r.try_get(2)?, "joined_at_ms")?,
                    left_at_ms: to_u64(r.try_get(3)?, "left_at_ms")?,
                })
            })
            .collect()
    }

    async fn counter_minutes(&self, room: &str) -> Result<Vec<CounterMinute>, ArchiveError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT minute_ms, minute, name, value FROM counters_per_minute WHERE room = $1
                 ORDER BY minute_ms, name",
                &[&room],
            )
            .await?;
        rows.iter()
            .map(|r| -> Result<CounterMinute, ArchiveError> {
                Ok(CounterMinute {
                    minute_ms: to_u64(r.try_get(0)?, "minute_ms")?,
                    minute: r.try_get(1)?,
                    name: r.try_get(2)?,
                    value: to_u64(r.try_get(3)?, "value")?,
                })
            })
            .collect()
    }

    async fn stats(&self, room: &str) -> Result<Option<RoomStats>, ArchiveError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT duration_ms, peak_concurrency, unique_listeners, sessions, messages
                 FROM room_stats WHERE room = $1",
                &[&room],
            )
            .await?;
        row.map(|r| -> Result<RoomStats, ArchiveError> {
            Ok(RoomStats {
                duration_ms: r.try_get(0)?,
                peak_concurrency: opt_u64(r.try_get(1)?, "peak_concurrency")?,
                unique_listeners: opt_u64(r.try_get(2)?, "unique_listeners")?,
                sessions: to_u64(r.try_get(3)?, "sessions")?,
                messages: to_u64(r.try_get(4)?, "messages")?,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn passes_the_conformance_suite() -> TestResult {
        let pg = test_servers::Postgres::start()?;
        let archive = PostgresArchive::connect(&pg.url()).await?;
        conformance::run_all(&archive, "pg").await;
        Ok(())
    }

    #[tokio::test]
    async fn migrations_apply_once_and_survive_a_restart() -> TestResult {
        let mut pg = test_servers::Postgres::start()?;
        let url = pg.url();
        // Two nodes starting together: the advisory lock serialises them.
        let (a, b) = tokio::join!(
            PostgresArchive::connect(&url),
            PostgresArchive::connect(&url)
        );
        let (a, _b) = (a?, b?);
        assert_eq!(a.applied_migrations().await?, [1, 2, 3]);
        a.put_room(&conformance::room("r1")).await?;
        drop(a);
        pg.start_again()?;
        let again = PostgresArchive::connect(&url).await?;
        assert_eq!(again.applied_migrations().await?, [1, 2, 3]);
        assert!(again.room("r1").await?.is_some(), "data survives a restart");
        Ok(())
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_fast() {
        let url = "postgres://postgres@127.0.0.1:1/postgres";
        let started = std::time::Instant::now();
        match PostgresArchive::connect(url).await {
            Err(ArchiveError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(started.elapsed() < POOL_TIMEOUT * 2);
    }

    #[tokio::test]
    async fn a_malformed_url_is_refused() {
        match PostgresArchive::connect("postgres://u@h:notaport/db").await {
            Err(ArchiveError::InvalidLocation { .. }) => {}
            other => panic!("expected InvalidLocation, got {other:?}"),
        }
    }

    #[test]
    fn urls_lose_their_password_in_errors() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/roomcast"),
            "postgres://app:***@db:5432/roomcast"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
    }
}
