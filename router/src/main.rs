//! `roomcast-router`: the router.

use clap::Parser as _;

// See the workspace Cargo.toml: allocation-heavy async code on several threads.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let args = router::process::Args::parse();
    common::process::run_main("roomcast-router", &args.common.clone(), |shutdown| {
        router::process::run(args, shutdown)
    })
}
