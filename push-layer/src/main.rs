//! `roomcast-push`: a push node.

use clap::Parser as _;

// See the workspace Cargo.toml: allocation-heavy async code on several threads.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let args = push_layer::process::Args::parse();
    common::process::run_main("roomcast-push", &args.common.clone(), |shutdown| {
        push_layer::process::run(args, shutdown)
    })
}
