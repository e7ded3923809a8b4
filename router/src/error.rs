//! Every error type of the crate.

use common::discovery::DiscoveryError;

/// Why [`crate::run`] could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The listener's local address could not be read.
    #[error("cannot read the listener's local address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// Registering in discovery failed.
    #[error("cannot register in discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The HTTP server (public or admin) failed.
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// Why a rollout policy is refused. Each variant names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON, or not the policy's shape (serde names the field).
    #[error("policy is not valid JSON of the expected shape: {0}")]
    Json(String),
    /// `percent` out of 0–100 or with more than one decimal.
    #[error("percent must be a number from 0 to 100 with at most one decimal, got {0}")]
    Percent(f64),
    /// An app version range does not parse.
    #[error("{field}: {value:?} is not a semver version range: {reason}")]
    VersionRange {
        /// `allow.app_versions[3]`.
        field: String,
        /// The range as sent.
        value: String,
        /// The parser's message.
        reason: String,
    },
    /// A list is too long.
    #[error("{field} has {len} entries; at most {max} are allowed")]
    TooMany {
        /// `deny.uids`.
        field: String,
        /// Entries sent.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// An entry is empty or too long.
    #[error("{field} must be non-empty and at most {max} bytes")]
    Entry {
        /// `allow.device_ids[0]`.
        field: String,
        /// The bound.
        max: usize,
    },
    /// The whole policy is too large to store.
    #[error("policy is {bytes} bytes as JSON; at most {max} are allowed")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
}

/// Why no route can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RouteError {
    /// Neither uid nor device_id was sent.
    #[error("uid or device_id is required")]
    MissingIdentity,
    /// A parameter is malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The query parameter.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No node can serve the client in the mode it was given.
    #[error("no connection or polling node is available")]
    NoNodes,
}

impl RouteError {
    /// The query parameter at fault, for the `field` member of a 400.
    pub(crate) fn field(&self) -> Option<&'static str> {
        match self {
            Self::MissingIdentity => Some("uid"),
            Self::Invalid { field, .. } => Some(field),
            Self::NoNodes => None,
        }
    }
}
