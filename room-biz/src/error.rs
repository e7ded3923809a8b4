//! Every error type of the crate.

use common::discovery::DiscoveryError;
use common::push_directory::PushDirectoryError;

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

/// Why a [`crate::RoomStore`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The room does not exist.
    #[error("room {0} not found")]
    RoomNotFound(String),
    /// The backend (Redis) cannot be reached or failed; the operation may be retried.
    #[error("room store unavailable: {0}")]
    Unavailable(String),
    /// The backend holds data this code cannot read (a field missing or
    /// malformed); retrying will not help.
    #[error("room store holds invalid data: {0}")]
    Corrupt(String),
    /// The uid was kicked from the room (a join refused atomically).
    #[error("{uid} was removed from room {room}")]
    Kicked {
        /// The room.
        room: String,
        /// Who.
        uid: String,
    },
    /// The room is private and the uid is not invited (a join refused atomically).
    #[error("room {room} is private and {uid} is not invited")]
    NotInvited {
        /// The room.
        room: String,
        /// Who.
        uid: String,
    },
    /// The store was set up wrongly (no URL, a bad URL, a bad key prefix).
    #[error("invalid room store configuration: {0}")]
    InvalidConfig(String),
}

/// Why a message could not be handed to the push layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
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

impl From<StoreError> for JoinError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::RoomNotFound(room) => Self::NotFound(room),
            StoreError::Kicked { .. } => Self::Forbidden("you were removed from this room".into()),
            StoreError::NotInvited { .. } => {
                Self::Forbidden("this room is private: you are not invited".into())
            }
            other => Self::Store(other),
        }
    }
}
