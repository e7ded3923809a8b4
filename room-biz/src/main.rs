//! `roomcast-biz`: room-biz.

use clap::Parser as _;

// See the workspace Cargo.toml: allocation-heavy async code on several threads.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let args = room_biz::process::Args::parse();
    common::process::run_main("roomcast-biz", &args.common.clone(), |shutdown| {
        room_biz::process::run(args, shutdown)
    })
}
