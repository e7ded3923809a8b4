//! Open an engine from a location: `postgres://…` (or `postgresql://…`) is
//! PostgreSQL; `sqlite::memory:` is a private in-memory SQLite; `sqlite:PATH`,
//! `sqlite://PATH` or a plain file path is an SQLite file.

use std::path::Path;
use std::sync::Arc;

use crate::error::ArchiveError;
use crate::postgres::PostgresArchive;
use crate::sqlite::SqliteArchive;
use crate::store::ArchiveStore;

/// In-memory SQLite.
pub const SQLITE_MEMORY: &str = "sqlite::memory:";

/// Which engine a location names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location<'a> {
    /// A PostgreSQL URL.
    Postgres(&'a str),
    /// An SQLite file.
    SqliteFile(&'a Path),
    /// In-memory SQLite.
    SqliteMemory,
}

/// Parse `location` (see the module docs).
pub fn parse(location: &str) -> Result<Location<'_>, ArchiveError> {
    let invalid = |reason: &str| ArchiveError::InvalidLocation {
        location: location.to_owned(),
        reason: reason.to_owned(),
    };
    let location = location.trim();
    if location.is_empty() {
        return Err(invalid("empty"));
    }
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Location::Postgres(location));
    }
    if location == SQLITE_MEMORY || location == ":memory:" {
        return Ok(Location::SqliteMemory);
    }
    let path = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location);
    if path.contains("://") {
        return Err(invalid(
            "unknown scheme: use postgres://…, sqlite:PATH or sqlite::memory:",
        ));
    }
    if path.is_empty() {
        return Err(invalid("no SQLite file path"));
    }
    Ok(Location::SqliteFile(Path::new(path)))
}

/// Open the engine `location` names, schema migrated.
pub async fn open(location: &str) -> Result<Arc<dyn ArchiveStore>, ArchiveError> {
    Ok(match parse(location)? {
        Location::Postgres(url) => Arc::new(PostgresArchive::connect(url).await?),
        Location::SqliteFile(path) => Arc::new(SqliteArchive::open(path).await?),
        Location::SqliteMemory => Arc::new(SqliteArchive::in_memory().await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_their_engine() -> Result<(), ArchiveError> {
        assert_eq!(
            parse("postgres://u@h/db")?,
            Location::Postgres("postgres://u@h/db")
        );
        assert!(matches!(parse("postgresql://h/db")?, Location::Postgres(_)));
        assert_eq!(parse("sqlite::memory:")?, Location::SqliteMemory);
        assert_eq!(
            parse("sqlite:/var/lib/rc/archive.db")?,
            Location::SqliteFile(Path::new("/var/lib/rc/archive.db"))
        );
        assert_eq!(
            parse("sqlite://data/a.db")?,
            Location::SqliteFile(Path::new("data/a.db"))
        );
        assert_eq!(
            parse("./archive.db")?,
            Location::SqliteFile(Path::new("./archive.db"))
        );
        Ok(())
    }

    #[test]
    fn bad_locations_are_refused_with_a_reason() {
        for bad in ["", "  ", "mysql://h/db", "sqlite:"] {
            match parse(bad) {
                Err(ArchiveError::InvalidLocation { reason, .. }) => assert!(!reason.is_empty()),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
