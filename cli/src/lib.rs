//! The `roomcast` CLI crate: standalone wiring and the command implementations.
//!
//! # Layout
//! - [`standalone`]: every service in one process (`roomcast standalone`).
//! - [`commands`]: the command line (clap) and one module per command.

pub mod bench;
pub mod commands;
pub mod standalone;
