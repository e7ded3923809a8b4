//! `roomcast`: run the whole system locally, create rooms, listen and talk.

use std::process::ExitCode;

use clap::Parser as _;
use roomcast::commands::{self, Cli};

// See the workspace Cargo.toml: allocation-heavy async code on several threads.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
