//! Versioned schema migrations: numbered SQL files per engine
//! (`migrations/<engine>/NNNN_name.sql`), applied in order, each in its own
//! transaction together with its row in `schema_migrations`, so a crash
//! between two leaves a schema at a known version. A database already at a
//! newer version than the build knows is refused rather than touched.

/// One migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Its number; applied in increasing order, each once.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// The bookkeeping table, the same on every engine.
pub const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";

/// PostgreSQL's migrations.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "archive_tables",
        sql: include_str!("../migrations/postgres/0001_archive_tables.sql"),
    },
    Migration {
        version: 2,
        name: "room_access",
        sql: include_str!("../migrations/postgres/0002_room_access.sql"),
    },
    Migration {
        version: 3,
        name: "analytics",
        sql: include_str!("../migrations/postgres/0003_analytics.sql"),
    },
];

/// SQLite's migrations (the same schema in SQLite's types).
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "archive_tables",
        sql: include_str!("../migrations/sqlite/0001_archive_tables.sql"),
    },
    Migration {
        version: 2,
        name: "room_access",
        sql: include_str!("../migrations/sqlite/0002_room_access.sql"),
    },
    Migration {
        version: 3,
        name: "analytics",
        sql: include_str!("../migrations/sqlite/0003_analytics.sql"),
    },
];

/// The highest version in `migrations`.
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one_without_gaps() {
        for set in [POSTGRES, SQLITE] {
            let versions: Vec<u32> = set.iter().map(|m| m.version).collect();
            assert_eq!(versions, (1..=set.len() as u32).collect::<Vec<_>>());
        }
        assert_eq!(latest(POSTGRES), latest(SQLITE), "engines share one schema");
    }
}
