//! [`StoreError`]: why a [`crate::RoomStore`] operation failed.

use proto::client::v1::Code;

use crate::domain::entry::Barred;
use crate::domain::rules::Refusal;

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
    /// An argument is malformed (an event id that is not `<ms>-<n>`).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl StoreError {
    /// The entry rule's answer when the store refused a join atomically.
    pub fn barred(&self) -> Option<Barred> {
        match self {
            Self::Kicked { .. } => Some(Barred::Kicked),
            Self::NotInvited { .. } => Some(Barred::NotInvited),
            _ => None,
        }
    }
}

/// A store failure as the client sees it.
impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        if let Some(barred) = error.barred() {
            return barred.into();
        }
        match error {
            StoreError::RoomNotFound(room) => {
                Self::new(Code::RoomNotFound, format!("room {room} not found"))
            }
            other => Self::new(Code::Unavailable, other.to_string()),
        }
    }
}
