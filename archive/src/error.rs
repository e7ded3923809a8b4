//! Why an archive operation failed.

/// Why an archive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive URL or path cannot be used.
    #[error("invalid archive location {location:?}: {reason}")]
    InvalidLocation {
        /// What was given.
        location: String,
        /// Why it is refused.
        reason: String,
    },
    /// The database cannot be reached or refused the operation; retryable.
    #[error("archive unavailable: {0}")]
    Unavailable(String),
    /// A schema migration failed.
    #[error("archive migration {version} failed: {reason}")]
    Migration {
        /// The migration's number.
        version: u32,
        /// What the database said.
        reason: String,
    },
    /// The database holds a newer schema than this build knows.
    #[error("archive schema is at version {found}, newer than this build's {known}")]
    SchemaTooNew {
        /// Highest version applied in the database.
        found: u32,
        /// Highest version this build has.
        known: u32,
    },
    /// A value does not fit the database's column (e.g. a u64 above i64::MAX).
    #[error("archive value out of range: {0}")]
    OutOfRange(String),
    /// Stored data could not be read back.
    #[error("archive data is corrupt: {0}")]
    Corrupt(String),
}

impl From<tokio_postgres::Error> for ArchiveError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for ArchiveError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<rusqlite::Error> for ArchiveError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// `v` as a database BIGINT.
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, ArchiveError> {
    i64::try_from(v).map_err(|_| ArchiveError::OutOfRange(format!("{what} {v}")))
}

/// A stored BIGINT as u64 (negative values are corrupt).
pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, ArchiveError> {
    u64::try_from(v).map_err(|_| ArchiveError::Corrupt(format!("{what} {v}")))
}
