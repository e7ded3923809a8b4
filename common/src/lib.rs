//! Plumbing every Roomcast service shares, and nothing else: no engine of a
//! domain lives here (the message log is the `message-log` crate).
//!
//! # Layout
//! - [`config`]: layered configuration (defaults → TOML file → environment).
//! - [`process`]: flags, config loading, engine connections, default node
//!   ids and exit codes for binaries.
//! - [`advertise`]: the address a node puts in discovery (IPv6 bracketed).
//! - [`telemetry`]: logs (text or JSON) and OTLP trace export.
//! - [`trace`]: trace context across gRPC calls and message envelopes.
//! - [`redact`]: secrets out of `--print-config` and logs.
//! - [`shutdown`]: SIGINT/SIGTERM → one `CancellationToken`.
//! - [`http`]: serving HTTP on a listener with request-head deadlines and a
//!   connection cap (every HTTP listener of every service).
//! - [`tls`]: certificate files served to TLS clients, reloaded on change.
//! - [`cors`]: the CORS allow-list layer of browser-facing HTTP routes.
//! - [`ops`]: `/metrics`, `/livez`, `/readyz` for every service.
//! - [`discovery`]: the node registry trait, its in-process and etcd engines.
//! - [`live_config`]: live documents (rollout policy, drain requests) with
//!   watches, in process or in etcd.
//! - `etcd_call`: how the etcd engines connect (TLS, credentials) and bound
//!   every call.
//! - [`backoff`]: the one retry delay (etcd engines, conn → push links).
//! - [`push_directory`]: which push node owns a room or user.
//! - [`auth`]: JWT verification (HS256, EdDSA) and dev-token minting.
//! - [`grpc`]: serving tonic on a bound listener; lazy client channels.
//! - [`redis_conn`]: the one Redis connection (standalone or Cluster) of
//!   every Redis engine.
//! - [`redis_keys`]: the per-room key shape (hash-tagged by room).
//! - [`hashing`]: stable hashes (rendezvous ownership, rollout buckets).
//! - [`time`]: wall-clock helpers.

pub mod advertise;
pub mod api_keys;
pub mod auth;
pub mod backoff;
pub mod config;
pub mod cors;
pub mod discovery;
mod etcd_call;
pub mod grpc;
pub mod hashing;
pub mod http;
pub mod live_config;
pub mod ops;
pub mod process;
pub mod push_directory;
pub mod redact;
pub mod redis_conn;
pub mod redis_keys;
pub mod shutdown;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod trace;
