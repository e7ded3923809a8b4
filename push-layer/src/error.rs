//! Push layer errors.

use common::discovery::DiscoveryError;
use message_log::LogError;

/// Why the push node stopped or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gRPC listener's address could not be read.
    #[error("cannot use the gRPC listener: {0}")]
    Bind(std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Registration failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The message log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A room's queue is full; the caller should retry later.
    #[error("room {0} is overloaded")]
    Overloaded(String),
    /// The node is shutting down.
    #[error("push node is shutting down")]
    ShuttingDown,
    /// The request is invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The owning push node could not be reached.
    #[error("forwarding to the owner failed: {0}")]
    Forward(String),
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match &e {
            Error::Invalid(_) => Self::invalid_argument(e.to_string()),
            Error::Overloaded(_) => Self::resource_exhausted(e.to_string()),
            Error::ShuttingDown | Error::Log(LogError::Unavailable(_)) | Error::Forward(_) => {
                Self::unavailable(e.to_string())
            }
            _ => Self::internal(e.to_string()),
        }
    }
}
