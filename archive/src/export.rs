//! Export archived rooms and their messages as Parquet files any OLAP engine
//! loads: `rooms.parquet` (one row per room, the summary as JSON text),
//! `messages.parquet` (one row per durable message), and the analytics
//! tables `sessions.parquet` (one row per member session: join and leave),
//! `counters_per_minute.parquet` (likes and reactions per minute) and
//! `room_stats.parquet` (duration, peak concurrency, unique listeners per
//! room). Written with Parquet's column writer directly: no Arrow.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::error::{ArchiveError, to_i64};
use crate::model::{ArchivedMessage, ArchivedRoom};
use crate::store::{ArchiveStore, HistoryQuery, MAX_PAGE};

/// The rooms file's name in the export folder.
pub const ROOMS_FILE: &str = "rooms.parquet";
/// The messages file's name in the export folder.
pub const MESSAGES_FILE: &str = "messages.parquet";
/// The session stays file's name in the export folder.
pub const SESSIONS_FILE: &str = "sessions.parquet";
/// The per-minute counts file's name in the export folder.
pub const MINUTES_FILE: &str = "counters_per_minute.parquet";
/// The room stats file's name in the export folder.
pub const STATS_FILE: &str = "room_stats.parquet";
/// Messages per row group: big enough for efficient scans, small enough to
/// keep the writer's memory bounded.
const ROW_GROUP_MESSAGES: usize = 50_000;

const ROOMS_SCHEMA: &str = "message rooms {
    REQUIRED BYTE_ARRAY id (UTF8);
    REQUIRED BYTE_ARRAY title (UTF8);
    OPTIONAL BYTE_ARRAY owner (UTF8);
    REQUIRED BYTE_ARRAY kind (UTF8);
    REQUIRED INT64 created_at_ms;
    OPTIONAL INT64 started_at_ms;
    OPTIONAL INT64 ended_at_ms;
    OPTIONAL INT64 archived_at_ms;
    REQUIRED BYTE_ARRAY summary (UTF8);
}";

const MESSAGES_SCHEMA: &str = "message messages {
    REQUIRED BYTE_ARRAY room (UTF8);
    REQUIRED INT64 seq;
    REQUIRED BYTE_ARRAY kind (UTF8);
    REQUIRED INT32 priority;
    REQUIRED BYTE_ARRAY sender (UTF8);
    REQUIRED BYTE_ARRAY payload;
    REQUIRED INT64 sent_at_ms;
    REQUIRED INT64 offset_ms;
}";

const SESSIONS_SCHEMA: &str = "message sessions {
    REQUIRED BYTE_ARRAY room (UTF8);
    REQUIRED BYTE_ARRAY uid (UTF8);
    REQUIRED BYTE_ARRAY session (UTF8);
    REQUIRED INT64 joined_at_ms;
    REQUIRED INT64 left_at_ms;
}";

const MINUTES_SCHEMA: &str = "message counters_per_minute {
    REQUIRED BYTE_ARRAY room (UTF8);
    REQUIRED INT64 minute_ms;
    REQUIRED INT64 minute;
    REQUIRED BYTE_ARRAY name (UTF8);
    REQUIRED INT64 value;
}";

const STATS_SCHEMA: &str = "message room_stats {
    REQUIRED BYTE_ARRAY room (UTF8);
    OPTIONAL INT64 duration_ms;
    OPTIONAL INT64 peak_concurrency;
    OPTIONAL INT64 unique_listeners;
    REQUIRED INT64 sessions;
    REQUIRED INT64 messages;
}";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the archive failed.
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    /// Writing a file failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Rooms (rows of `rooms.parquet`).
    pub rooms: u64,
    /// Messages (rows of `messages.parquet`).
    pub messages: u64,
    /// Session stays (rows of `sessions.parquet`).
    pub sessions: u64,
    /// Per-minute counts (rows of `counters_per_minute.parquet`).
    pub minutes: u64,
}

/// Export every completely archived room that ended at or after `since_ms`,
/// and its messages, into `dir` (created if missing).
pub async fn export_parquet(
    store: &dyn ArchiveStore,
    since_ms: u64,
    dir: &Path,
) -> Result<ExportCounts, ExportError> {
    let write_error = |path: &Path, e: &dyn std::fmt::Display| ExportError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
    let rooms = store.rooms_ended_since(since_ms).await?;
    let rooms_path = dir.join(ROOMS_FILE);
    write_rooms(&rooms_path, &rooms).map_err(|e| write_error(&rooms_path, &e))?;

    let messages_path = dir.join(MESSAGES_FILE);
    let mut writer =
        MessagesWriter::create(&messages_path).map_err(|e| write_error(&messages_path, &e))?;
    for room in &rooms {
        let mut after = 0;
        loop {
            let query = HistoryQuery {
                after_seq: Some(after),
                limit: MAX_PAGE,
                ..HistoryQuery::default()
            };
            let page = store.history(&room.id, query).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            writer
                .push(&room.id, page)
                .map_err(|e| write_error(&messages_path, &e))?;
            after = last;
        }
    }
    let messages = writer
        .finish()
        .map_err(|e| write_error(&messages_path, &e))?;

    // The analytics tables: one row group per room.
    let paths = [SESSIONS_FILE, MINUTES_FILE, STATS_FILE].map(|f| dir.join(f));
    let [sessions_path, minutes_path, stats_path] = &paths;
    let create = |path: &Path, schema: &str| {
        TableWriter::create(path, schema).map_err(|e| write_error(path, &e))
    };
    let mut sessions = create(sessions_path, SESSIONS_SCHEMA)?;
    let mut minutes = create(minutes_path, MINUTES_SCHEMA)?;
    let mut stats = create(stats_path, STATS_SCHEMA)?;
    for room in &rooms {
        let rows = store.sessions(&room.id).await?;
        sessions
            .group(vec![
                Column::Text(rows.iter().map(|_| text(&room.id)).collect()),
                Column::Text(rows.iter().map(|r| text(&r.uid)).collect()),
                Column::Text(rows.iter().map(|r| text(&r.session)).collect()),
                Column::Long(rows.iter().map(|r| long(r.joined_at_ms)).collect()),
                Column::Long(rows.iter().map(|r| long(r.left_at_ms)).collect()),
            ])
            .map_err(|e| write_error(sessions_path, &e))?;
        let rows = store.counter_minutes(&room.id).await?;
        minutes
            .group(vec![
                Column::Text(rows.iter().map(|_| text(&room.id)).collect()),
                Column::Long(rows.iter().map(|r| long(r.minute_ms)).collect()),
                Column::Long(rows.iter().map(|r| r.minute).collect()),
                Column::Text(rows.iter().map(|r| text(&r.name)).collect()),
                Column::Long(rows.iter().map(|r| long(r.value)).collect()),
            ])
            .map_err(|e| write_error(minutes_path, &e))?;
        let row = store.stats(&room.id).await?.unwrap_or_default();
        stats
            .group(vec![
                Column::Text(vec![text(&room.id)]),
                Column::OptLong(vec![row.duration_ms]),
                Column::OptLong(vec![row.peak_concurrency.map(long)]),
                Column::OptLong(vec![row.unique_listeners.map(long)]),
                Column::Long(vec![long(row.sessions)]),
                Column::Long(vec![long(row.messages)]),
            ])
            .map_err(|e| write_error(stats_path, &e))?;
    }
    let sessions = sessions
        .finish()
        .map_err(|e| write_error(sessions_path, &e))?;
    let minutes = minutes
        .finish()
        .map_err(|e| write_error(minutes_path, &e))?;
    stats.finish().map_err(|e| write_error(stats_path, &e))?;
    Ok(ExportCounts {
        rooms: rooms.len() as u64,
        messages,
        sessions,
        minutes,
    })
}

/// `v` as Parquet's INT64 (archived values fit: they came from BIGINT).
fn long(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One column of a row group.
enum Column {
    Text(Vec<ByteArray>),
    Long(Vec<i64>),
    OptLong(Vec<Option<i64>>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.len(),
            Self::Long(v) => v.len(),
            Self::OptLong(v) => v.len(),
        }
    }
}

/// A Parquet file written a row group at a time, columns in schema order.
struct TableWriter {
    writer: SerializedFileWriter<File>,
    rows: u64,
}

impl TableWriter {
    fn create(path: &Path, schema: &str) -> Result<Self, ParquetError> {
        let schema = Arc::new(parse_message_type(schema)?);
        let file = File::create(path)?;
        let props = Arc::new(WriterProperties::builder().build());
        Ok(Self {
            writer: SerializedFileWriter::new(file, schema, props)?,
            rows: 0,
        })
    }

    /// Write `columns` (one per schema field, in order) as a row group;
    /// nothing for no rows.
    fn group(&mut self, columns: Vec<Column>) -> Result<(), ParquetError> {
        let rows = columns.first().map_or(0, Column::len);
        if rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut columns = columns.into_iter();
        while let Some(mut column) = group.next_column()? {
            match columns.next() {
                Some(Column::Text(v)) => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&v, None, None)?;
                }
                Some(Column::Long(v)) => {
                    column.typed::<Int64Type>().write_batch(&v, None, None)?;
                }
                Some(Column::OptLong(v)) => {
                    let (present, levels) = optional(v.into_iter());
                    column
                        .typed::<Int64Type>()
                        .write_batch(&present, Some(&levels), None)?;
                }
                None => {
                    return Err(ParquetError::General(
                        "fewer columns than the schema has".into(),
                    ));
                }
            }
            column.close()?;
        }
        group.close()?;
        self.rows += rows as u64;
        Ok(())
    }

    /// Close the file; the rows written.
    fn finish(self) -> Result<u64, ParquetError> {
        self.writer.close()?;
        Ok(self.rows)
    }
}

fn text(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

/// Values and definition levels of an optional column.
fn optional<T: Clone>(values: impl Iterator<Item = Option<T>>) -> (Vec<T>, Vec<i16>) {
    let mut present = Vec::new();
    let mut levels = Vec::new();
    for v in values {
        levels.push(i16::from(v.is_some()));
        present.extend(v);
    }
    (present, levels)
}

fn opt_i64(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

fn write_rooms(path: &Path, rooms: &[ArchivedRoom]) -> Result<(), ParquetError> {
    let schema = Arc::new(parse_message_type(ROOMS_SCHEMA)?);
    let file = File::create(path)?;
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))?;
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        let bytes = |f: fn(&ArchivedRoom) -> String| -> Vec<ByteArray> {
            rooms.iter().map(|r| text(&f(r))).collect()
        };
        match index {
            0 => {
                let v = bytes(|r| r.id.clone());
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, None, None)?;
            }
            1 => {
                let v = bytes(|r| r.title.clone());
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, None, None)?;
            }
            2 => {
                let (v, levels) = optional(rooms.iter().map(|r| r.owner.as_deref().map(text)));
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, Some(&levels), None)?;
            }
            3 => {
                let v = bytes(|r| r.kind.clone());
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, None, None)?;
            }
            4 => {
                let v: Vec<i64> = rooms
                    .iter()
                    .map(|r| i64::try_from(r.created_at_ms).unwrap_or(i64::MAX))
                    .collect();
                column.typed::<Int64Type>().write_batch(&v, None, None)?;
            }
            5..=7 => {
                let (v, levels) = optional(rooms.iter().map(|r| match index {
                    5 => opt_i64(r.started_at_ms),
                    6 => opt_i64(r.ended_at_ms),
                    _ => opt_i64(r.archived_at_ms),
                }));
                column
                    .typed::<Int64Type>()
                    .write_batch(&v, Some(&levels), None)?;
            }
            _ => {
                let v = bytes(|r| r.summary.to_string());
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&v, None, None)?;
            }
        }
        column.close()?;
        index += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(())
}

/// `messages.parquet`, written one row group per [`ROW_GROUP_MESSAGES`].
struct MessagesWriter {
    writer: SerializedFileWriter<File>,
    pending: Vec<(String, ArchivedMessage)>,
    written: u64,
}

impl MessagesWriter {
    fn create(path: &Path) -> Result<Self, ParquetError> {
        let schema = Arc::new(parse_message_type(MESSAGES_SCHEMA)?);
        let file = File::create(path)?;
        let props = Arc::new(WriterProperties::builder().build());
        Ok(Self {
            writer: SerializedFileWriter::new(file, schema, props)?,
            pending: Vec::new(),
            written: 0,
        })
    }

    fn push(&mut self, room: &str, page: Vec<ArchivedMessage>) -> Result<(), ParquetError> {
        self.pending
            .extend(page.into_iter().map(|m| (room.to_owned(), m)));
        if self.pending.len() >= ROW_GROUP_MESSAGES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            let strings = |f: fn(&(String, ArchivedMessage)) -> &[u8]| -> Vec<ByteArray> {
                rows.iter()
                    .map(|r| ByteArray::from(f(r).to_vec()))
                    .collect()
            };
            let longs = |f: fn(&(String, ArchivedMessage)) -> i64| -> Vec<i64> {
                rows.iter().map(f).collect()
            };
            match index {
                0 => {
                    let v = strings(|(room, _)| room.as_bytes());
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&v, None, None)?;
                }
                1 => {
                    let v = longs(|(_, m)| to_i64(m.seq, "seq").unwrap_or(i64::MAX));
                    column.typed::<Int64Type>().write_batch(&v, None, None)?;
                }
                2 => {
                    let v = strings(|(_, m)| m.kind.as_bytes());
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&v, None, None)?;
                }
                3 => {
                    let v: Vec<i32> = rows.iter().map(|(_, m)| m.priority).collect();
                    column.typed::<Int32Type>().write_batch(&v, None, None)?;
                }
                4 => {
                    let v = strings(|(_, m)| m.sender.as_bytes());
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&v, None, None)?;
                }
                5 => {
                    let v = strings(|(_, m)| m.payload.as_slice());
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&v, None, None)?;
                }
                6 => {
                    let v = longs(|(_, m)| to_i64(m.sent_at_ms, "sent_at_ms").unwrap_or(i64::MAX));
                    column.typed::<Int64Type>().write_batch(&v, None, None)?;
                }
                _ => {
                    let v = longs(|(_, m)| m.offset_ms);
                    column.typed::<Int64Type>().write_batch(&v, None, None)?;
                }
            }
            column.close()?;
            index += 1;
        }
        group.close()?;
        self.written += rows.len() as u64;
        Ok(())
    }

    /// Flush and close the file; the messages written.
    fn finish(mut self) -> Result<u64, ParquetError> {
        self.flush()?;
        self.writer.close()?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;
    use crate::conformance;
    use crate::model::{ArchiveBatch, CounterMinute, MemberSession};
    use crate::sqlite::SqliteArchive;

    #[tokio::test]
    async fn exports_read_back_with_the_same_counts() -> Result<(), Box<dyn std::error::Error>> {
        let archive = SqliteArchive::in_memory().await?;
        // Two archived rooms after `since`, one before, one still archiving.
        for (id, ended, messages, archived) in [
            ("a", 2_000u64, 1_500, true),
            ("b", 3_000, 20, true),
            ("old", 500, 10, true),
            ("busy", 2_500, 10, false),
        ] {
            let mut room = conformance::room(id);
            room.started_at_ms = Some(ended.saturating_sub(1_000));
            room.ended_at_ms = Some(ended);
            if id == "b" {
                room.owner = None;
            }
            archive.put_room(&room).await?;
            let batch = ArchiveBatch {
                room: id.into(),
                messages: (1..=messages).map(conformance::message).collect(),
                counters: vec![("peak".into(), messages / 10)],
                // A stay per 100 messages, two per-minute counts per 10.
                sessions: (0..messages / 100)
                    .map(|i| MemberSession {
                        uid: format!("u{i}"),
                        session: "s".into(),
                        joined_at_ms: 1_000_000 + i,
                        left_at_ms: 1_100_000,
                    })
                    .collect(),
                minutes: (0..messages / 10)
                    .flat_map(|i| {
                        ["likes", "r:👏"].map(|name| CounterMinute {
                            minute_ms: 1_000_000 + i * 60_000,
                            minute: i as i64,
                            name: name.into(),
                            value: i + 1,
                        })
                    })
                    .collect(),
                ..ArchiveBatch::default()
            };
            archive.write_batch(&batch).await?;
            if archived {
                archive.mark_archived(id, ended + 1).await?;
            }
        }
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("export");
        let counts = export_parquet(&archive, 1_000, &out).await?;
        assert_eq!(
            counts,
            ExportCounts {
                rooms: 2,
                messages: 1_520,
                sessions: 15,
                minutes: 2 * 152,
            }
        );
        let rows_of =
            |file: &str| -> Result<Vec<parquet::record::Row>, Box<dyn std::error::Error>> {
                let reader = SerializedFileReader::new(File::open(out.join(file))?)?;
                let rows = reader.get_row_iter(None)?.collect::<Result<Vec<_>, _>>()?;
                assert_eq!(
                    reader.metadata().file_metadata().num_rows(),
                    rows.len() as i64
                );
                Ok(rows)
            };
        let column = |row: &parquet::record::Row, want: &str| {
            row.get_column_iter()
                .find(|(name, _)| name.as_str() == want)
                .map(|(_, field)| field.clone())
        };
        assert_eq!(rows_of(SESSIONS_FILE)?.len(), 15);
        let minutes = rows_of(MINUTES_FILE)?;
        assert_eq!(minutes.len(), 2 * 152);
        // Room a's likes: 1 + 2 + … + 150.
        let likes_of_a: i64 = minutes
            .iter()
            .filter(|r| {
                column(r, "room") == Some(Field::Str("a".into()))
                    && column(r, "name") == Some(Field::Str("likes".into()))
            })
            .filter_map(|r| match column(r, "value") {
                Some(Field::Long(v)) => Some(v),
                _ => None,
            })
            .sum();
        assert_eq!(likes_of_a, 150 * 151 / 2);
        let stats = rows_of(STATS_FILE)?;
        assert_eq!(stats.len(), 2);
        let first = &stats[0];
        assert_eq!(column(first, "room"), Some(Field::Str("a".into())));
        assert_eq!(column(first, "duration_ms"), Some(Field::Long(1_000)));
        assert_eq!(column(first, "peak_concurrency"), Some(Field::Long(150)));
        assert_eq!(column(first, "unique_listeners"), Some(Field::Null));
        assert_eq!(
            (column(first, "sessions"), column(first, "messages")),
            (Some(Field::Long(15)), Some(Field::Long(1_500)))
        );

        let rooms = SerializedFileReader::new(File::open(out.join(ROOMS_FILE))?)?;
        assert_eq!(rooms.metadata().file_metadata().num_rows(), 2);
        let mut owners = Vec::new();
        for row in rooms.get_row_iter(None)? {
            let row = row?;
            for (name, field) in row.get_column_iter() {
                if name == "owner" {
                    owners.push(field.clone());
                }
            }
        }
        assert_eq!(owners, [Field::Str("host".into()), Field::Null]);

        let messages = SerializedFileReader::new(File::open(out.join(MESSAGES_FILE))?)?;
        assert_eq!(messages.metadata().file_metadata().num_rows(), 1_520);
        let mut per_room = std::collections::BTreeMap::<String, u64>::new();
        for row in messages.get_row_iter(None)? {
            let row = row?;
            if let Some((_, Field::Str(room))) = row.get_column_iter().next() {
                *per_room.entry(room.clone()).or_default() += 1;
            }
        }
        assert_eq!(per_room, [("a".into(), 1_500), ("b".into(), 20)].into());
        Ok(())
    }

    #[tokio::test]
    async fn an_unwritable_folder_is_a_clear_error() -> Result<(), ArchiveError> {
        let archive = SqliteArchive::in_memory().await?;
        match export_parquet(&archive, 0, Path::new("/proc/roomcast-export")).await {
            Err(ExportError::Write { path, .. }) => assert!(path.starts_with("/proc")),
            other => panic!("expected a write error, got {other:?}"),
        }
        Ok(())
    }
}
