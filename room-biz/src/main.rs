//! `roomcast-biz`: room-biz.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = room_biz::process::Args::parse();
    common::process::run_main("roomcast-biz", args.common.log_format, |shutdown| {
        room_biz::process::run(args, shutdown)
    })
}
