//! `roomcast archive export`: archived rooms and their messages as files an
//! OLAP engine loads, read straight from the archive database.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};

/// `roomcast archive …`.
#[derive(Debug, Clone, Args)]
pub struct ArchiveArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ArchiveCommand,
}

/// The archive commands.
#[derive(Debug, Clone, Subcommand)]
pub enum ArchiveCommand {
    /// Write `rooms.parquet`, `messages.parquet` and the analytics tables
    /// (`sessions.parquet`, `counters_per_minute.parquet`,
    /// `room_stats.parquet`) for the rooms archived and ended since a time.
    Export(ExportArgs),
}

/// File formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
}

/// `roomcast archive export --since … --format parquet --out DIR`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The archive: `postgres://user@host/db` or `sqlite:PATH` (room-biz's
    /// `archive_url`).
    #[arg(long, env = "ROOMCAST_ARCHIVE_URL", hide_env_values = true)]
    pub archive_url: String,
    /// Rooms that ended at or after this: Unix milliseconds, or an age such
    /// as `30m`, `24h`, `7d`.
    #[arg(long)]
    pub since: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// Folder for the files (created if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// Run an archive command.
pub async fn run(args: ArchiveArgs) -> anyhow::Result<()> {
    match args.command {
        ArchiveCommand::Export(export) => run_export(export, now_ms()).await,
    }
}

async fn run_export(args: ExportArgs, now_ms: u64) -> anyhow::Result<()> {
    let since_ms = parse_since(&args.since, now_ms)?;
    let Format::Parquet = args.format;
    let store = archive::open(&args.archive_url)
        .await
        .context("cannot open the archive")?;
    let counts = archive::export::export_parquet(&*store, since_ms, &args.out).await?;
    println!(
        "{}",
        serde_json::json!({
            "rooms": counts.rooms,
            "messages": counts.messages,
            "sessions": counts.sessions,
            "counters_per_minute": counts.minutes,
            "since_ms": since_ms,
            "files": [
                args.out.join(archive::export::ROOMS_FILE),
                args.out.join(archive::export::MESSAGES_FILE),
                args.out.join(archive::export::SESSIONS_FILE),
                args.out.join(archive::export::MINUTES_FILE),
                args.out.join(archive::export::STATS_FILE),
            ],
        })
    );
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `since` as Unix ms: a number of ms, or an age (`30m`, `24h`, `7d`) before `now_ms`.
fn parse_since(since: &str, now_ms: u64) -> anyhow::Result<u64> {
    let since = since.trim();
    if let Ok(ms) = since.parse::<u64>() {
        return Ok(ms);
    }
    let split = since
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(since.len());
    let (number, unit) = since.split_at(split);
    let Ok(n) = number.parse::<u64>() else {
        bail!("--since {since:?}: expected Unix milliseconds or an age like 30m, 24h, 7d");
    };
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--since {since:?}: the unit must be s, m, h or d"),
    };
    let age = Duration::from_secs(n.saturating_mul(unit_secs));
    Ok(now_ms.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_ms_or_an_age() -> anyhow::Result<()> {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("12345", now)?, 12_345);
        assert_eq!(parse_since("30m", now)?, now - 1_800_000);
        assert_eq!(parse_since("7d", now)?, now - 7 * 86_400_000);
        assert_eq!(parse_since("99d", now)?, 0, "saturates at the epoch");
        for bad in ["", "soon", "7w", "h"] {
            assert!(parse_since(bad, now).is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn exports_an_sqlite_archive_to_parquet() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("archive.db");
        let url = format!("sqlite:{}", db.display());
        let store = archive::open(&url).await?;
        let mut room = archive::conformance::room("r1");
        room.ended_at_ms = Some(5_000);
        store.put_room(&room).await?;
        let batch = archive::ArchiveBatch {
            room: "r1".into(),
            messages: (1..=42).map(archive::conformance::message).collect(),
            ..archive::ArchiveBatch::default()
        };
        store.write_batch(&batch).await?;
        store.mark_archived("r1", 6_000).await?;
        drop(store);
        let out = dir.path().join("out");
        let args = ExportArgs {
            archive_url: url,
            since: "1000".into(),
            format: Format::Parquet,
            out: out.clone(),
        };
        run_export(args, 10_000).await?;
        use parquet::file::reader::{FileReader as _, SerializedFileReader};
        let rows = |file: &str| -> anyhow::Result<i64> {
            let reader = SerializedFileReader::new(std::fs::File::open(out.join(file))?)?;
            Ok(reader.metadata().file_metadata().num_rows())
        };
        assert_eq!(rows(archive::export::ROOMS_FILE)?, 1);
        assert_eq!(rows(archive::export::MESSAGES_FILE)?, 42);
        assert_eq!(rows(archive::export::STATS_FILE)?, 1);
        Ok(())
    }
}
