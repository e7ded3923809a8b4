//! The SDK's error type.

use std::time::Duration;

use proto::client::v1::Code;

/// Everything a [`Client`](crate::Client) call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the hello (bad, expired or forbidden token). Never retried.
    #[error("authentication refused ({}): {message}", code.as_str_name())]
    Auth {
        /// `UNAUTHENTICATED`, `TOKEN_EXPIRED` or `FORBIDDEN`.
        code: Code,
        /// The server's explanation.
        message: String,
    },
    /// The server answered a request with an error code.
    #[error("refused ({}): {message}", code.as_str_name())]
    Refused {
        /// Why.
        code: Code,
        /// The server's explanation.
        message: String,
    },
    /// The connection dropped before the answer arrived. The request may or may not have
    /// taken effect; the app may retry. Joined rooms are re-joined automatically.
    #[error("disconnected before the answer arrived")]
    Disconnected,
    /// The client was closed (by [`Client::close`](crate::Client::close) or a fatal error).
    #[error("client closed")]
    Closed,
    /// No answer within [`ConnectOptions::request_timeout`](crate::ConnectOptions).
    #[error("timed out")]
    Timeout,
    /// The router could not be reached or answered something unusable.
    #[error("router: {0}")]
    Route(String),
    /// The router assigned short (polling) mode, or offered no transport this SDK speaks,
    /// and gave no polling URL to fall back to (or every long attempt failed and there is
    /// nothing to poll). With a polling URL the client polls instead.
    #[error("long connection unavailable (router mode {mode:?})")]
    LongUnavailable {
        /// The router's mode (`short`, or `long` without a usable endpoint).
        mode: String,
        /// The router's retry hint.
        retry_after: Option<Duration>,
    },
    /// A WebSocket-level failure (connect, handshake, I/O).
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// The TLS trust settings are unusable (an unreadable or empty CA file).
    #[error("tls: {0}")]
    Tls(String),
    /// A QUIC-level failure (bad endpoint or pin, TLS, connect, stream I/O).
    #[error("quic: {0}")]
    Quic(String),
    /// The peer broke the protocol (undecodable frame, unexpected frame, early close).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The encoded frame exceeds the server's `max_frame_bytes`.
    #[error("frame of {size} bytes exceeds the server limit of {max} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit from the welcome frame.
        max: usize,
    },
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(error))
    }
}

/// Convert a wire code, mapping numbers this SDK does not know to `INTERNAL`.
pub(crate) fn code_from_wire(code: i32) -> Code {
    Code::try_from(code).unwrap_or(Code::Internal)
}

/// Codes in a handshake error that mean "do not retry with this token".
pub(crate) fn is_auth_code(code: Code) -> bool {
    matches!(
        code,
        Code::Unauthenticated | Code::TokenExpired | Code::TokenRevoked | Code::Forbidden
    )
}
