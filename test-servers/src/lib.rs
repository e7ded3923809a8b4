//! Real servers for tests: `redis-server` (standalone or a 3-node Cluster),
//! `etcd` and PostgreSQL, each on free loopback ports in its own temp dir, killed on drop, and
//! restartable so tests can break them on purpose.
//!
//! A missing binary is an error that names it and how to install it: a test
//! that needs a server fails loudly, it never passes by skipping.
//!
//! # Layout
//! - [`redis`]: standalone [`RedisServer`] and [`RedisCluster`].
//! - [`etcd`]: one [`Etcd`] member.
//! - [`postgres`]: one [`Postgres`] server (initdb + pg_ctl).
//! - `process`: spawning, free ports, readiness polling.
//! - [`tls`]: a throwaway CA and the certificates it signs.

pub mod etcd;
pub mod postgres;
mod process;
pub mod redis;
pub mod tls;

pub use etcd::Etcd;
pub use postgres::Postgres;
pub use process::free_port;
pub use redis::{RedisCluster, RedisServer};
pub use tls::{IssuedCert, TestCa};

/// Why a test server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    /// The program is not installed.
    #[error("{binary} not found on PATH: run ./scripts/install-deps.sh (Debian package {package})")]
    MissingBinary {
        /// The program.
        binary: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The program started but never became ready.
    #[error("{binary} did not become ready on port {port}: {detail}")]
    NotReady {
        /// The program.
        binary: &'static str,
        /// Its port.
        port: u16,
        /// Log tail or reason.
        detail: String,
    },
    /// Spawning or a file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
