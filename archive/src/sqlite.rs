//! The embedded SQLite engine of standalone mode: one connection (SQLite
//! writes one at a time anyway) behind a mutex, every call on tokio's
//! blocking pool so the runtime's workers never wait on disk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::error::{ArchiveError, to_i64, to_u64};
use crate::migrations::{self, CREATE_SCHEMA_MIGRATIONS, SQLITE};
use crate::model::{ArchiveBatch, ArchivedMessage, ArchivedRoom, CounterMinute, MemberSession};
use crate::store::{ArchiveStore, HistoryQuery, RoomStats, TableCounts};

const MESSAGE_COLUMNS: &str = "seq, kind, priority, sender, payload, sent_at_ms, offset_ms";

/// The archive in an SQLite file (or in memory).
#[derive(Clone)]
pub struct SqliteArchive {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteArchive").finish_non_exhaustive()
    }
}

impl SqliteArchive {
    /// Open (creating) the file at `path` and bring the schema up to date.
    pub async fn open(path: &Path) -> Result<Self, ArchiveError> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| ArchiveError::InvalidLocation {
                    location: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            }
            let conn = Connection::open(&path)?;
            // WAL: readers (history, replay) do not wait for the archiver's writes.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok::<_, ArchiveError>(conn)
        })
        .await
        .map_err(|e| ArchiveError::Unavailable(e.to_string()))??;
        Self::with_connection(conn).await
    }

    /// A private in-memory archive (standalone without a data dir, tests);
    /// gone with the process.
    pub async fn in_memory() -> Result<Self, ArchiveError> {
        Self::with_connection(Connection::open_in_memory()?).await
    }

    async fn with_connection(conn: Connection) -> Result<Self, ArchiveError> {
        let archive = Self {
            conn: Arc::new(Mutex::new(conn)),
        };
        archive.call(migrate).await?;
        Ok(archive)
    }

    /// Versions recorded in `schema_migrations`, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<u32>, ArchiveError> {
        self.call(|conn| {
            let mut stmt =
                conn.prepare("SELECT version FROM schema_migrations ORDER BY version")?;
            let rows = stmt.query_map([], |r| r.get::<_, u32>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Run `f` on the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, ArchiveError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ArchiveError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-written
            // transaction behind (SQLite rolls it back), so a poisoned lock
            // is still a usable connection.
            let mut guard = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| ArchiveError::Unavailable(e.to_string()))?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), ArchiveError> {
    conn.execute_batch(CREATE_SCHEMA_MIGRATIONS)?;
    let found: u32 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = migrations::latest(SQLITE);
    if found > known {
        return Err(ArchiveError::SchemaTooNew { found, known });
    }
    for m in SQLITE.iter().filter(|m| m.version > found) {
        let fail = |e: rusqlite::Error| ArchiveError::Migration {
            version: m.version,
            reason: e.to_string(),
        };
        let tx = conn.transaction().map_err(fail)?;
        tx.execute_batch(m.sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, now_ms()],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "Archive migration applied."
        );
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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

const ROOM_COLUMNS: &str = "id, title, owner, kind, created_at_ms, started_at_ms, ended_at_ms,
    summary, archived_at_ms, access";

/// The raw columns of a room row.
type RawRoom = (
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<i64>,
    String,
);

fn raw_room(r: &Row<'_>) -> rusqlite::Result<RawRoom> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn room_of(raw: RawRoom) -> Result<ArchivedRoom, ArchiveError> {
    let (id, title, owner, kind, created, started, ended, summary, archived, access) = raw;
    Ok(ArchivedRoom {
        id,
        title,
        owner,
        kind,
        created_at_ms: to_u64(created, "created_at_ms")?,
        started_at_ms: opt_u64(started, "started_at_ms")?,
        ended_at_ms: opt_u64(ended, "ended_at_ms")?,
        summary: serde_json::from_str(&summary)
            .map_err(|e| ArchiveError::Corrupt(format!("summary: {e}")))?,
        archived_at_ms: opt_u64(archived, "archived_at_ms")?,
        access: crate::model::access_of(&access)?,
    })
}

/// The raw columns of a message row; converted outside rusqlite's closure
/// so a bad value is [`ArchiveError::Corrupt`], not a query error.
type RawMessage = (i64, String, i32, String, Vec<u8>, i64, i64);

fn raw_message(row: &Row<'_>) -> rusqlite::Result<RawMessage> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn message_of(raw: RawMessage) -> Result<ArchivedMessage, ArchiveError> {
    let (seq, kind, priority, sender, payload, sent_at_ms, offset_ms) = raw;
    Ok(ArchivedMessage {
        seq: to_u64(seq, "seq")?,
        kind,
        priority,
        sender,
        payload,
        sent_at_ms: to_u64(sent_at_ms, "sent_at_ms")?,
        offset_ms,
    })
}

fn query_messages(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<ArchivedMessage>, ArchiveError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raws = stmt
        .query_map(params, raw_message)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(message_of).collect()
}

fn write_batch(conn: &mut Connection, batch: &ArchiveBatch) -> Result<u64, ArchiveError> {
    let tx = conn.transaction()?;
    let mut inserted = 0u64;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages (room, seq, kind, priority, sender, payload, sent_at_ms,
                 offset_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (room, seq) DO NOTHING",
        )?;
        for m in &batch.messages {
            inserted += insert.execute(params![
                batch.room,
                to_i64(m.seq, "seq")?,
                m.kind,
                m.priority,
                m.sender,
                m.payload,
                to_i64(m.sent_at_ms, "sent_at_ms")?,
                m.offset_ms,
            ])? as u64;
        }
        let mut member = tx.prepare_cached(
            "INSERT INTO participation (room, uid, role, joined_at_ms, left_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (room, uid) DO UPDATE SET role = excluded.role,
                 joined_at_ms = excluded.joined_at_ms, left_at_ms = excluded.left_at_ms",
        )?;
        for m in &batch.members {
            member.execute(params![
                batch.room,
                m.uid,
                m.role,
                to_i64(m.joined_at_ms, "joined_at_ms")?,
                opt_i64(m.left_at_ms, "left_at_ms")?,
            ])?;
        }
        let mut poll = tx.prepare_cached(
            "INSERT INTO polls (room, poll_id, question, options, tallies, opened_by,
                 opened_at_ms, closed_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (room, poll_id) DO UPDATE SET question = excluded.question,
                 options = excluded.options, tallies = excluded.tallies,
                 opened_by = excluded.opened_by, opened_at_ms = excluded.opened_at_ms,
                 closed_at_ms = excluded.closed_at_ms",
        )?;
        for p in &batch.polls {
            poll.execute(params![
                batch.room,
                p.poll_id,
                p.question,
                json_text(&p.options)?,
                json_text(&p.tallies)?,
                p.opened_by,
                to_i64(p.opened_at_ms, "opened_at_ms")?,
                opt_i64(p.closed_at_ms, "closed_at_ms")?,
            ])?;
        }
        let mut gift = tx.prepare_cached(
            "INSERT INTO gifts (room, seq, uid, gift_id, count, value, sent_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (room, seq) DO NOTHING",
        )?;
        for g in &batch.gifts {
            gift.execute(params![
                batch.room,
                to_i64(g.seq, "seq")?,
                g.uid,
                g.gift_id,
                to_i64(g.count, "count")?,
                to_i64(g.value, "value")?,
                to_i64(g.sent_at_ms, "sent_at_ms")?,
            ])?;
        }
        let mut counter = tx.prepare_cached(
            "INSERT INTO counters (room, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (room, name) DO UPDATE SET value = excluded.value",
        )?;
        for (name, value) in &batch.counters {
            counter.execute(params![batch.room, name, to_i64(*value, "counter")?])?;
        }
        let mut session = tx.prepare_cached(
            "INSERT INTO sessions (room, uid, session, joined_at_ms, left_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (room, uid, session, joined_at_ms)
             DO UPDATE SET left_at_ms = excluded.left_at_ms",
        )?;
        for s in &batch.sessions {
            session.execute(params![
                batch.room,
                s.uid,
                s.session,
                to_i64(s.joined_at_ms, "joined_at_ms")?,
                to_i64(s.left_at_ms, "left_at_ms")?,
            ])?;
        }
        let mut minute = tx.prepare_cached(
            "INSERT INTO counters_per_minute (room, minute_ms, minute, name, value)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (room, minute_ms, name)
             DO UPDATE SET minute = excluded.minute, value = excluded.value",
        )?;
        for m in &batch.minutes {
            minute.execute(params![
                batch.room,
                to_i64(m.minute_ms, "minute_ms")?,
                m.minute,
                m.name,
                to_i64(m.value, "value")?,
            ])?;
        }
    }
    tx.commit()?;
    Ok(inserted)
}

#[async_trait::async_trait]
impl ArchiveStore for SqliteArchive {
    async fn put_room(&self, room: &ArchivedRoom) -> Result<(), ArchiveError> {
        let room = room.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO rooms (id, title, owner, kind, created_at_ms, started_at_ms,
                     ended_at_ms, summary, access) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, owner = excluded.owner,
                     kind = excluded.kind, created_at_ms = excluded.created_at_ms,
                     started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms,
                     summary = excluded.summary, access = excluded.access",
                params![
                    room.id,
                    room.title,
                    room.owner,
                    room.kind,
                    to_i64(room.created_at_ms, "created_at_ms")?,
                    opt_i64(room.started_at_ms, "started_at_ms")?,
                    opt_i64(room.ended_at_ms, "ended_at_ms")?,
                    json_text(&room.summary)?,
                    json_text(&room.access)?,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn write_batch(&self, batch: &ArchiveBatch) -> Result<u64, ArchiveError> {
        let batch = batch.clone();
        self.call(move |conn| write_batch(conn, &batch)).await
    }

    async fn mark_archived(&self, room: &str, at_ms: u64) -> Result<bool, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let n = conn.execute(
                "UPDATE rooms SET archived_at_ms = COALESCE(archived_at_ms, ?2) WHERE id = ?1",
                params![room, to_i64(at_ms, "archived_at_ms")?],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn room(&self, room: &str) -> Result<Option<ArchivedRoom>, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?1");
            let raw = conn.query_row(&sql, params![room], raw_room).optional()?;
            raw.map(room_of).transpose()
        })
        .await
    }

    async fn rooms_ended_since(&self, since_ms: u64) -> Result<Vec<ArchivedRoom>, ArchiveError> {
        self.call(move |conn| {
            let sql = format!(
                "SELECT {ROOM_COLUMNS} FROM rooms
                 WHERE archived_at_ms IS NOT NULL AND ended_at_ms >= ?1 ORDER BY ended_at_ms, id"
            );
            let mut stmt = conn.prepare(&sql)?;
            let raws = stmt
                .query_map(params![to_i64(since_ms, "since_ms")?], raw_room)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(room_of).collect()
        })
        .await
    }

    async fn last_seq(&self, room: &str) -> Result<u64, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let seq: i64 = conn.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = ?1",
                params![room],
                |r| r.get(0),
            )?;
            to_u64(seq, "seq")
        })
        .await
    }

    async fn history(
        &self,
        room: &str,
        query: HistoryQuery,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let limit = to_i64(query.page() as u64, "limit")?;
            let before = query
                .before_seq
                .map_or(Ok(i64::MAX), |s| to_i64(s, "before_seq"))?;
            match query.after_seq {
                Some(after) => {
                    let sql = format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages
                         WHERE room = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq LIMIT ?4"
                    );
                    let after = to_i64(after, "after_seq")?;
                    query_messages(conn, &sql, params![room, after, before, limit])
                }
                None => {
                    let sql = format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages
                         WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                    );
                    let mut page = query_messages(conn, &sql, params![room, before, limit])?;
                    page.reverse();
                    Ok(page)
                }
            }
        })
        .await
    }

    async fn replay(
        &self,
        room: &str,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<ArchivedMessage>, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let limit = to_i64(limit.clamp(1, crate::MAX_PAGE) as u64, "limit")?;
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room = ?1 AND offset_ms >= ?2 ORDER BY offset_ms, seq LIMIT ?3"
            );
            query_messages(conn, &sql, params![room, from_ms, limit])
        })
        .await
    }

    async fn table_counts(&self, room: &str) -> Result<TableCounts, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let counts: [i64; 7] = conn.query_row(
                "SELECT (SELECT count(*) FROM messages WHERE room = ?1),
                        (SELECT count(*) FROM participation WHERE room = ?1),
                        (SELECT count(*) FROM polls WHERE room = ?1),
                        (SELECT count(*) FROM gifts WHERE room = ?1),
                        (SELECT count(*) FROM counters WHERE room = ?1),
                        (SELECT count(*) FROM sessions WHERE room = ?1),
                        (SELECT count(*) FROM counters_per_minute WHERE room = ?1)",
                params![room],
                |r| {
                    Ok([
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ])
                },
            )?;
            let [messages, members, polls, gifts, counters, sessions, minutes] =
                counts.map(|n| to_u64(n, "count"));
            Ok(TableCounts {
                messages: messages?,
                members: members?,
                polls: polls?,
                gifts: gifts?,
                counters: counters?,
                sessions: sessions?,
                minutes: minutes?,
            })
        })
        .await
    }

    async fn sessions(&self, room: &str) -> Result<Vec<MemberSession>, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT uid, session, joined_at_ms, left_at_ms FROM sessions WHERE room = ?1
                 ORDER BY joined_at_ms, uid, session",
            )?;
            let raws = stmt
                .query_map(params![room], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter()
                .map(
                    |(uid, session, joined, left)| -> Result<MemberSession, ArchiveError> {
                        Ok(MemberSession {
                            uid,
                            session,
                            joined_at_ms: to_u64(joined, "joined_at_ms")?,
                            left_at_ms: to_u64(left, "left_at_ms")?,
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn counter_minutes(&self, room: &str) -> Result<Vec<CounterMinute>, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT minute_ms, minute, name, value FROM counters_per_minute WHERE room = ?1
                 ORDER BY minute_ms, name",
            )?;
            let raws = stmt
                .query_map(params![room], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter()
                .map(
                    |(minute_ms, minute, name, value)| -> Result<CounterMinute, ArchiveError> {
                        Ok(CounterMinute {
                            minute_ms: to_u64(minute_ms, "minute_ms")?,
                            minute,
                            name,
                            value: to_u64(value, "value")?,
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn stats(&self, room: &str) -> Result<Option<RoomStats>, ArchiveError> {
        let room = room.to_owned();
        self.call(move |conn| {
            let raw: Option<(Option<i64>, Option<i64>, Option<i64>, i64, i64)> = conn
                .query_row(
                    "SELECT duration_ms, peak_concurrency, unique_listeners, sessions, messages
                     FROM room_stats WHERE room = ?1",
                    params![room],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            raw.map(
                |(duration, peak, unique, sessions, messages)| -> Result<RoomStats, ArchiveError> {
                    Ok(RoomStats {
                        duration_ms: duration,
                        peak_concurrency: opt_u64(peak, "peak_concurrency")?,
                        unique_listeners: opt_u64(unique, "unique_listeners")?,
                        sessions: to_u64(sessions, "sessions")?,
                        messages: to_u64(messages, "messages")?,
                    })
                },
            )
            .transpose()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test]
    async fn passes_the_conformance_suite_in_a_file() -> Result<(), ArchiveError> {
        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Unavailable(e.to_string()))?;
        let archive = SqliteArchive::open(&dir.path().join("nested/archive.db")).await?;
        conformance::run_all(&archive, "file").await;
        Ok(())
    }

    #[tokio::test]
    async fn passes_the_conformance_suite_in_memory() -> Result<(), ArchiveError> {
        conformance::run_all(&SqliteArchive::in_memory().await?, "mem").await;
        Ok(())
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_applies_no_migration_twice() -> Result<(), ArchiveError> {
        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Unavailable(e.to_string()))?;
        let path = dir.path().join("archive.db");
        let archive = SqliteArchive::open(&path).await?;
        archive.put_room(&conformance::room("r1")).await?;
        drop(archive);
        let archive = SqliteArchive::open(&path).await?;
        assert_eq!(archive.applied_migrations().await?, [1, 2, 3]);
        assert!(archive.room("r1").await?.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() -> Result<(), ArchiveError> {
        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Unavailable(e.to_string()))?;
        let path = dir.path().join("archive.db");
        let archive = SqliteArchive::open(&path).await?;
        archive
            .call(|conn| {
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (99, 'from the future', 0)",
                    [],
                )?;
                Ok(())
            })
            .await?;
        drop(archive);
        match SqliteArchive::open(&path).await {
            Err(ArchiveError::SchemaTooNew {
                found: 99,
                known: 3,
            }) => Ok(()),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unwritable_path_is_a_clear_error() {
        match SqliteArchive::open(Path::new("/proc/roomcast/archive.db")).await {
            Err(ArchiveError::InvalidLocation { location, .. }) => {
                assert!(location.contains("/proc/roomcast"));
            }
            other => panic!("expected InvalidLocation, got {other:?}"),
        }
    }
}
