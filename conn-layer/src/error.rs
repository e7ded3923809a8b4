//! Conn layer errors.

/// Why the conn node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener's address could not be read.
    #[error("cannot use the WebSocket listener: {0}")]
    Bind(std::io::Error),
    /// The HTTP server failed.
    #[error("WebSocket server failed: {0}")]
    Serve(std::io::Error),
    /// Token configuration is unusable.
    #[error(transparent)]
    Auth(#[from] common::auth::AuthError),
    /// The certificate or key (WebSocket or QUIC) is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The QUIC socket cannot be used.
    #[error("cannot use the QUIC socket: {0}")]
    Quic(std::io::Error),
    /// Live configuration (the drain request) cannot be read or cleared.
    #[error(transparent)]
    LiveConfig(#[from] common::live_config::LiveConfigError),
    /// Registration failed.
    #[error(transparent)]
    Discovery(#[from] common::discovery::DiscoveryError),
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}
