//! Roomcast's contracts: the client wire protocol and the internal gRPC services.
//!
//! # Layout
//! - [`client::v1`]: frames between client SDKs and conn nodes (`ClientFrame`, `ServerFrame`).
//! - [`internal::v1`]: gRPC between conn nodes, push nodes and room-biz.
//! - [`json`]: the JSON subprotocol encoding of client frames (v1: bodies as base64).
//! - [`json_v2`]: the JSON subprotocol v2 (bodies as JSON, epochs as strings).
//! - [`paging`]: how many messages one pull, broadcast or `Delivery` carries
//!   (a byte budget as well as a count).
//! - [`transport`]: the wire names of the transports (`quic`, `ws`,
//!   `polling`) and of the QUIC certificate pin.
//! - this file: WebSocket subprotocols and the QUIC ALPN.

pub mod json;
pub mod json_v2;
pub mod paging;
pub mod transport;

/// Client wire protocol.
pub mod client {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::doc_lazy_continuation)]
        tonic::include_proto!("roomcast.client.v1");
    }
}

/// Internal services.
pub mod internal {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::doc_lazy_continuation)]
        tonic::include_proto!("roomcast.internal.v1");
    }
}

/// The compiled descriptor set of every package, for gRPC reflection and tests.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("roomcast_descriptor");

/// The WebSocket subprotocol for JSON frames, v1 (bodies as base64).
pub const JSON_SUBPROTOCOL: &str = "roomcast.v1.json";
/// The WebSocket subprotocol for JSON frames, v2 (bodies as JSON; see [`json_v2`]).
pub const JSON_V2_SUBPROTOCOL: &str = "roomcast.v2.json";
/// The WebSocket subprotocol for binary protobuf frames (also the default).
pub const PROTOBUF_SUBPROTOCOL: &str = "roomcast.v1.proto";
/// QUIC ALPN.
pub const QUIC_ALPN: &[u8] = b"roomcast/1";

/// `bytes` fields as base64 strings in JSON.
pub(crate) mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Bytes, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&STANDARD.encode(value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(de)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}
