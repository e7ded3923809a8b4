//! `roomcast-router`: the router.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = router::process::Args::parse();
    common::process::run_main("roomcast-router", args.common.log_format, |shutdown| {
        router::process::run(args, shutdown)
    })
}
