//! The `roomcast` CLI crate: standalone wiring and the command implementations.
//!
//! # Layout
//! - [`standalone`]: every service in one process (`roomcast standalone`); the load
//!   generator (`roomcast-bench`, its own crate in `bench/`) starts it in-process too.
//! - [`commands`]: the command line (clap) and one module per command.
//! - [`demo`]: the live-room demo page standalone serves at `/demo/`.
//! - `local_push`: standalone's room-biz publishing through its push node in process.

pub mod commands;
pub mod demo;
mod local_push;
pub mod standalone;
