//! Tracing setup shared by every binary.

use tracing_subscriber::EnvFilter;

/// Install a fmt subscriber on stderr filtered by `RUST_LOG` (default
/// `default_filter`); stdout stays free for command output. Colours only when
/// stderr is a terminal: log files and collectors get plain text.
///
/// Safe to call more than once (tests): later calls are ignored.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_terminal())
        .try_init();
}

/// Whether stderr is a terminal (and so may show ANSI colours).
pub fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}
