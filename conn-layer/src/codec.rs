//! Frames ↔ WebSocket messages, in binary protobuf or the JSON subprotocol,
//! and frames encoded once for many connections.

use std::sync::OnceLock;

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use prost::Message as _;
use proto::client::v1::{ClientFrame, ServerFrame};

/// The encoding a connection negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Protobuf,
    Json,
}

/// What an inbound WebSocket message turned out to be.
#[derive(Debug)]
pub(crate) enum Inbound {
    Frame(ClientFrame),
    /// Not a frame of this protocol.
    Malformed(String),
    /// Larger than the configured maximum.
    TooLarge(usize),
    /// Transport-level message (ping/pong) handled by the WebSocket layer.
    Control,
    /// The peer closed.
    Close,
}

/// Decode a client message: binary messages are protobuf, text messages JSON,
/// whatever the negotiated subprotocol.
pub(crate) fn decode(message: Message, max_bytes: usize) -> Inbound {
    match message {
        Message::Binary(data) => {
            if data.len() > max_bytes {
                return Inbound::TooLarge(data.len());
            }
            match ClientFrame::decode(data) {
                Ok(frame) => Inbound::Frame(frame),
                Err(e) => Inbound::Malformed(format!("not a protobuf ClientFrame: {e}")),
            }
        }
        Message::Text(text) => {
            if text.len() > max_bytes {
                return Inbound::TooLarge(text.len());
            }
            match proto::json::decode_client(text.as_str()) {
                Ok(frame) => Inbound::Frame(frame),
                Err(e) => Inbound::Malformed(format!("not a JSON ClientFrame: {e}")),
            }
        }
        Message::Ping(_) | Message::Pong(_) => Inbound::Control,
        Message::Close(_) => Inbound::Close,
    }
}

/// A server frame encoded lazily, at most once per wire format, and shared by
/// every connection it goes to.
#[derive(Debug)]
pub(crate) struct SharedFrame {
    pub(crate) frame: ServerFrame,
    binary: OnceLock<Bytes>,
    json: OnceLock<Utf8Bytes>,
}

impl SharedFrame {
    pub(crate) fn new(frame: ServerFrame) -> Self {
        Self {
            frame,
            binary: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// The message for `wire`; encodes on first use only.
    pub(crate) fn message(&self, wire: Wire) -> Message {
        match wire {
            Wire::Protobuf => Message::Binary(
                self.binary
                    .get_or_init(|| Bytes::from(self.frame.encode_to_vec()))
                    .clone(),
            ),
            Wire::Json => Message::Text(self.json.get_or_init(|| json_text(&self.frame)).clone()),
        }
    }
}

/// Encode one frame for one connection.
pub(crate) fn encode(wire: Wire, frame: &ServerFrame) -> Message {
    match wire {
        Wire::Protobuf => Message::Binary(Bytes::from(frame.encode_to_vec())),
        Wire::Json => Message::Text(json_text(frame)),
    }
}

fn json_text(frame: &ServerFrame) -> Utf8Bytes {
    // Serialising generated structs of strings, numbers and base64 cannot fail;
    // the fallback keeps the connection alive if it ever did.
    Utf8Bytes::from(proto::json::encode_server(frame).unwrap_or_else(|e| {
        format!("{{\"frame\":{{\"error\":{{\"code\":13,\"message\":\"encoding failed: {e}\"}}}}}}")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::client::v1::{Ping, client_frame};

    #[test]
    fn decodes_both_wires_and_flags_bad_input() {
        let frame = ClientFrame {
            frame: Some(client_frame::Frame::Ping(Ping { client_time_ms: 5 })),
        };
        let bin = Message::Binary(Bytes::from(frame.encode_to_vec()));
        assert!(matches!(decode(bin, 1024), Inbound::Frame(f) if f == frame));
        let text = Message::Text(Utf8Bytes::from(
            r#"{"frame":{"ping":{"client_time_ms":5}}}"#,
        ));
        assert!(matches!(decode(text, 1024), Inbound::Frame(f) if f == frame));
        let garbage = Message::Binary(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert!(matches!(decode(garbage, 1024), Inbound::Malformed(_)));
        let big = Message::Binary(Bytes::from(vec![0u8; 2048]));
        assert!(matches!(decode(big, 1024), Inbound::TooLarge(2048)));
        let text = Message::Text(Utf8Bytes::from("{not json"));
        assert!(matches!(decode(text, 1024), Inbound::Malformed(_)));
    }
}
