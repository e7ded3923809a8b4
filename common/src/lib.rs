//! Code every Roomcast service shares, and nothing else.
//!
//! # Layout
//! - [`config`]: layered configuration (defaults → TOML file → environment).
//! - [`telemetry`]: tracing subscriber setup.
//! - [`shutdown`]: SIGINT/SIGTERM → one `CancellationToken`.
//! - [`discovery`]: the node registry trait and its in-process engine.
//! - [`message_log`]: the per-room message log trait (atomic dense seqs) and its in-memory engine.
//! - [`auth`]: JWT verification (HS256, EdDSA) and dev-token minting.
//! - [`ops`]: `/metrics`, `/livez`, `/readyz` for every service.
//! - [`push_directory`]: which push node owns a room or user.
//! - [`process`]: flags, config loading, engine connections and exit codes for binaries.
//! - [`grpc`]: serving tonic on a bound listener; lazy client channels.
//! - [`redis_keys`]: every Redis key format (hash-tagged by room).
//! - `etcd_backoff`: the retry delay shared by the etcd engines.
//! - [`live_config`]: live documents (rollout policy, drain requests) with watches.
//! - [`hashing`]: stable hashes (rendezvous ownership, rollout buckets).
//! - [`time`]: wall-clock helpers.

pub mod auth;
pub mod config;
pub mod discovery;
mod etcd_backoff;
pub mod grpc;
pub mod hashing;
pub mod live_config;
pub mod message_log;
pub mod ops;
pub mod process;
pub mod push_directory;
pub mod redis_keys;
pub mod shutdown;
pub mod telemetry;
pub mod time;
