//! Export archived rooms and their messages as Parquet files any OLAP engine
//! loads: `rooms.parquet` (one row per room, the summary as JSON text) and
//! `messages.parquet` (one row per durable message). Written with Parquet's
//! column writer directly: no Arrow.

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
    Ok(ExportCounts {
        rooms: rooms.len() as u64,
        messages,
    })
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
    use crate::model::ArchiveBatch;
    use crate::sqlite::SqliteArchive;

    #[tokio::test]
    async fn exports_read_back_with_the_same_counts() -> Result<(), Box<dyn std::error::Error>> {
        let archive = SqliteArchive::in_memory().await?;
        // Two archived rooms after `since`, one before, one still archiving.
        for (id, ended, messages, archived) in [
            ("a", 2_000, 1_500, true),
            ("b", 3_000, 20, true),
            ("old", 500, 10, true),
            ("busy", 2_500, 10, false),
        ] {
            let mut room = conformance::room(id);
            room.ended_at_ms = Some(ended);
            if id == "b" {
                room.owner = None;
            }
            archive.put_room(&room).await?;
            let batch = ArchiveBatch {
                room: id.into(),
                messages: (1..=messages).map(conformance::message).collect(),
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
                messages: 1_520
            }
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
