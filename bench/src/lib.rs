//! `roomcast-bench`, the load generator: it drives a running Roomcast through
//! the real client protocol (WebSocket or QUIC with protobuf frames, or HTTP
//! long polling: `--transport ws|quic|polling`) and reports one JSON line per
//! scenario.
//!
//! # How a run goes
//! 1. `target`: the system under test: started in this process (default),
//!    started as a separate `roomcast standalone` process (`--spawn-server`,
//!    honest per-process CPU and RSS), or a running system (`--ws-url`,
//!    `--biz-url`, optionally `--server-pid` to measure it).
//! 2. `fleet`: the connections live in worker processes (this binary
//!    re-executed with the hidden `worker` subcommand), each bound to loopback
//!    source addresses 127.0.0.1–127.0.0.N, so a run is not capped by one
//!    process's open-files limit. Workers take commands on stdin and report on
//!    stdout, one JSON line each (`wire`).
//! 3. `publish`: the coordinator publishes durable messages through the push
//!    API (room-biz HTTP), each body stamped with its send time in µs.
//! 4. `client`: every client checks per-room seq continuity (gaps,
//!    duplicates, out-of-order) and records publish → receive latency, over
//!    a long connection (`conn`: WebSocket or QUIC) or by polling
//!    (`polling`: each reply is checked as one delivery).
//! 5. `report`: one JSON line on stdout, appended to
//!    `bench-results/<date>-<scenario>.jsonl` with the commit id.
//!
//! The scenarios themselves are in `scenario`; their flags in `args`.
//!
//! # Layout
//! - `args`: the command line (clap): target, fleet and scenario flags.
//! - `scenario`: each scenario's run, from target start to report.
//! - `target`: the system under test (in-process `Standalone`, a spawned
//!   `roomcast standalone`, or a running system).
//! - `fleet`: the coordinator's side of the worker processes.
//! - `worker`: a worker process: its clients, churners, likers and pollers.
//! - `wire`: the coordinator ↔ worker JSON lines and the tallies they carry.
//! - `client`: hello + join over a `conn` and the per-delivery checks.
//! - `conn`: one long connection (WebSocket or QUIC) and the shared QUIC dialer.
//! - `ws`: the WebSocket dial from a chosen loopback source address.
//! - `polling`: one HTTP long poller.
//! - `publish`: the coordinator's stamped publishes through the push API.
//! - `report`: the JSON result line and the `bench-results/` file.
//! - `proc`: CPU and RSS of processes, the open-files limit, dates.
//!
//! Imports go downwards only: `scenario` → `fleet`/`worker` → `client` →
//! `conn` → `ws`; `args`, `wire` and `proc` sit below everything.

mod args;
mod client;
mod conn;
mod fleet;
mod polling;
pub mod proc;
mod publish;
mod report;
mod scenario;
mod target;
mod wire;
mod worker;
mod ws;

pub use args::{BenchArgs, Command, Transport};

/// Run `roomcast-bench` with parsed arguments. Workers run on a
/// single-threaded runtime (one process = one core at most, no locks); the
/// coordinator (and an in-process server) on the multi-threaded one.
pub fn main(args: BenchArgs) -> anyhow::Result<()> {
    if matches!(args.command, Some(Command::Worker)) {
        return worker::main();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(scenario::run(args))
}
