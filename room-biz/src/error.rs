//! Every error type of the crate (the room store's is [`room_store::StoreError`]).

use common::discovery::DiscoveryError;
use common::push_directory::PushDirectoryError;
use room_store::StoreError;
use room_store::domain::entry::Barred;

/// Why [`crate::run`] could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A listener's local address could not be read.
    #[error("cannot read the local address of the {listener} listener: {source}")]
    LocalAddr {
        /// `http` or `grpc`.
        listener: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Registering in discovery failed.
    #[error("cannot register in discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// Why a message could not be handed to the push layer.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No push node owns the room.
    #[error(transparent)]
    NoOwner(#[from] PushDirectoryError),
    /// The owning push node answered with an error (or timed out).
    #[error("push node {node} failed: {}", status.message())]
    Rpc {
        /// The owner that failed.
        node: String,
        /// Its answer.
        status: tonic::Status,
    },
}

impl PushError {
    /// Whether the push layer certainly did not act on the request: no node
    /// to send it to, no connection could be made (never sent), or the push
    /// node refused it before appending (overloaded, invalid). Anything else
    /// (a connection lost mid-call, a timeout, the log unavailable) may have
    /// been applied.
    pub(crate) fn not_applied(&self) -> bool {
        match self {
            Self::NoOwner(_) => true,
            Self::Rpc { status, .. } => {
                common::grpc::never_sent(status)
                    || matches!(
                        status.code(),
                        tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument
                    )
            }
        }
    }
}

/// Why a member may not join a room.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// The room does not exist.
    #[error("room {0} not found")]
    NotFound(String),
    /// The room has ended.
    #[error("room {0} has ended")]
    Ended(String),
    /// The user may not enter (kicked, blocked by the host, not invited).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl JoinError {
    /// The entry rule's refusal of a join to `room`.
    pub(crate) fn barred(room: &str, barred: Barred) -> Self {
        match barred {
            Barred::Ended => Self::Ended(room.to_owned()),
            Barred::Blocked | Barred::Kicked | Barred::NotInvited => {
                Self::Forbidden(barred.to_string())
            }
        }
    }
}

impl From<StoreError> for JoinError {
    fn from(error: StoreError) -> Self {
        if let Some(barred) = error.barred() {
            return Self::Forbidden(barred.to_string());
        }
        match error {
            StoreError::RoomNotFound(room) => Self::NotFound(room),
            other => Self::Store(other),
        }
    }
}
