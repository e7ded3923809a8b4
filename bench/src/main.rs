//! `roomcast-bench`: drive Roomcast through the real client protocol and
//! report latency, correctness, throughput, CPU and memory as one JSON line
//! per scenario (see `docs/benchmarks.md`).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = roomcast_bench::BenchArgs::parse();
    match roomcast_bench::main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("roomcast-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
