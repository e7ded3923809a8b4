//! The names of the ways a client reaches Roomcast, as they travel: the keys
//! of a conn node's endpoints in discovery, `transport` in the router's route
//! and in client stats, metric labels. One place, so a server, the router and
//! the SDK cannot spell them differently.

use std::fmt;

/// QUIC (ALPN [`crate::QUIC_ALPN`]); also the URL scheme `quic://host:port`.
pub const QUIC: &str = "quic";
/// WebSocket; also the URL scheme `ws://host:port/v1/ws`.
pub const WS: &str = "ws";
/// The HTTP path of the WebSocket upgrade on a conn node.
pub const WS_PATH: &str = "/v1/ws";
/// HTTP long polling (client stats only: the router hands out a polling URL).
pub const POLLING: &str = "polling";
/// The endpoint key (in discovery) and route field holding the hex SHA-256 of
/// a conn node's QUIC certificate, which SDKs pin.
pub const QUIC_CERT_SHA256: &str = "quic_cert_sha256";

/// A way a client reaches Roomcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// QUIC: length-delimited protobuf frames on one bidirectional stream.
    Quic,
    /// WebSocket: one frame per message.
    Ws,
    /// HTTP long polling.
    Polling,
}

impl Transport {
    /// Every transport.
    pub const ALL: [Self; 3] = [Self::Quic, Self::Ws, Self::Polling];
    /// The long connections a conn node may advertise, in the order clients
    /// should try them.
    pub const LONG: [Self; 2] = [Self::Quic, Self::Ws];

    /// The wire name ([`QUIC`], [`WS`], [`POLLING`]).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Quic => QUIC,
            Self::Ws => WS,
            Self::Polling => POLLING,
        }
    }

    /// The transport a wire name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether this is a long connection (QUIC or WebSocket).
    pub const fn is_long(self) -> bool {
        !matches!(self, Self::Polling)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_the_wire_strings() {
        for t in Transport::ALL {
            assert_eq!(Transport::parse(t.as_str()), Some(t));
        }
        assert_eq!(
            Transport::ALL.map(Transport::as_str),
            ["quic", "ws", "polling"]
        );
        assert_eq!(QUIC_CERT_SHA256, "quic_cert_sha256");
        assert_eq!(Transport::parse("tcp"), None);
        assert!(Transport::LONG.iter().all(|t| t.is_long()));
        assert!(!Transport::Polling.is_long());
    }
}
