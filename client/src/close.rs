//! Close codes shared by both long transports: WebSocket close codes, which QUIC
//! connections reuse as their application close codes (the same numbers).

/// A normal close by the client (WebSocket 1000; QUIC application close 1000).
pub const NORMAL_CLOSE: u16 = 1000;

/// Close code reported when the socket ended without a close frame (WebSocket 1006;
/// over QUIC, a connection that ended without an application close).
pub const ABNORMAL_CLOSE: u16 = 1006;
