//! `roomcast-conn`: a conn node.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = conn_layer::process::Args::parse();
    common::process::run_main("roomcast-conn", args.common.log_format, |shutdown| {
        conn_layer::process::run(args, shutdown)
    })
}
