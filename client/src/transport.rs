//! The ways a client reaches Roomcast.

use std::fmt;

use proto::transport;

/// How the client is currently talking to Roomcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// QUIC (ALPN `roomcast/1`): length-delimited protobuf frames on one bidirectional
    /// stream.
    Quic,
    /// WebSocket: one binary protobuf frame per message.
    Ws,
    /// HTTP long polling (the fallback when no long connection holds).
    Polling,
}

impl Transport {
    /// The name used by the router (`quic`, `ws`) and in client stats (also `polling`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quic => transport::QUIC,
            Self::Ws => transport::WS,
            Self::Polling => transport::POLLING,
        }
    }

    /// The long-connection transport a router endpoint names, if this SDK speaks it.
    pub fn from_endpoint(name: &str) -> Option<Self> {
        match name {
            transport::QUIC => Some(Self::Quic),
            transport::WS => Some(Self::Ws),
            _ => None,
        }
    }

    /// Whether this is a long connection (QUIC or WebSocket).
    pub fn is_long(self) -> bool {
        !matches!(self, Self::Polling)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
