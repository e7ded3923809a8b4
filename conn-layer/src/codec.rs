//! Frames ↔ WebSocket messages, in binary protobuf or the JSON subprotocol,
//! and frames encoded once for many connections.

use std::sync::OnceLock;

use bytes::Bytes;
use prost::Message as _;
use proto::client::v1::{ClientFrame, ServerFrame};
pub(crate) use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;

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
    /// Larger than the configured maximum (its size, or the size its header claimed).
    TooLarge(u64),
    /// Transport-level message (ping/pong) handled by the WebSocket layer.
    Control,
    /// The peer closed.
    Close,
}

/// The frame kinds of `ClientFrame`'s oneof, as the JSON mapping names them.
const CLIENT_FRAME_KINDS: [&str; 5] = ["hello", "join", "leave", "publish", "ping"];

/// Decode a client message: binary messages are protobuf, text messages JSON,
/// whatever the negotiated subprotocol.
///
/// Both encodings agree: a frame of a kind this server does not know (an
/// unknown oneof field in protobuf, an unknown key under `"frame"` in JSON)
/// and a frame of no kind (an empty message, `{}`) decode to a frame without
/// a kind, which the session answers with `UNKNOWN_FRAME`; bytes that are not
/// a frame at all are `Malformed`.
pub(crate) fn decode(message: Message, max_bytes: usize) -> Inbound {
    match message {
        Message::Binary(data) => {
            if data.len() > max_bytes {
                return Inbound::TooLarge(data.len() as u64);
            }
            match ClientFrame::decode(data) {
                Ok(frame) => Inbound::Frame(frame),
                Err(e) => Inbound::Malformed(format!("not a protobuf ClientFrame: {e}")),
            }
        }
        Message::Text(text) => {
            if text.len() > max_bytes {
                return Inbound::TooLarge(text.len() as u64);
            }
            match proto::json::decode_client(text.as_str()) {
                Ok(frame) => Inbound::Frame(frame),
                Err(_) if is_unknown_json_kind(text.as_str()) => {
                    Inbound::Frame(ClientFrame { frame: None })
                }
                Err(e) => Inbound::Malformed(format!("not a JSON ClientFrame: {e}")),
            }
        }
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Control,
        Message::Close(_) => Inbound::Close,
    }
}

/// `{"frame":{"<kind>":…}}` with one key that names no frame kind we know:
/// a frame from a newer protocol, like an unknown oneof field in protobuf.
fn is_unknown_json_kind(text: &str) -> bool {
    let Ok(serde_json::Value::Object(top)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    match top.get("frame") {
        Some(serde_json::Value::Object(kind)) if kind.len() == 1 => kind
            .keys()
            .all(|k| !CLIENT_FRAME_KINDS.contains(&k.as_str())),
        _ => false,
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

    #[test]
    fn unknown_and_empty_frames_agree_across_encodings() {
        let unknown = |m| matches!(decode(m, 1024), Inbound::Frame(ClientFrame { frame: None }));
        // Protobuf: field 99 (a newer kind), and an empty message.
        assert!(unknown(Message::Binary(Bytes::from_static(&[
            0x9a, 0x06, 0x00
        ]))));
        assert!(unknown(Message::Binary(Bytes::new())));
        // JSON: a kind we do not know, and no kind at all.
        assert!(unknown(Message::Text(Utf8Bytes::from(
            r#"{"frame":{"teleport":{"to":"mars"}}}"#
        ))));
        assert!(unknown(Message::Text(Utf8Bytes::from("{}"))));
        // A known kind with a bad body is malformed, not unknown.
        let bad_join = Message::Text(Utf8Bytes::from(r#"{"frame":{"join":{"ref":"x"}}}"#));
        assert!(matches!(decode(bad_join, 1024), Inbound::Malformed(_)));
    }

    #[test]
    fn the_known_kinds_are_the_oneof_variants() {
        use proto::client::v1::{Hello, Join, Leave, Publish};
        let kinds = [
            client_frame::Frame::Hello(Hello::default()),
            client_frame::Frame::Join(Join::default()),
            client_frame::Frame::Leave(Leave::default()),
            client_frame::Frame::Publish(Publish::default()),
            client_frame::Frame::Ping(Ping::default()),
        ];
        for (kind, name) in kinds.into_iter().zip(CLIENT_FRAME_KINDS) {
            let text =
                proto::json::encode_client(&ClientFrame { frame: Some(kind) }).unwrap_or_default();
            assert!(
                text.starts_with(&format!("{{\"frame\":{{\"{name}\"")),
                "{text}"
            );
            assert!(!is_unknown_json_kind(&text));
        }
    }

    proptest::proptest! {
        /// Whatever a peer sends, decoding never panics, and a message over the
        /// limit is `TooLarge` with its own size, whichever encoding.
        #[test]
        fn any_input_is_classified(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                                   text in ".{0,200}", max in 0usize..256) {
            let bin = decode(Message::Binary(Bytes::from(data.clone())), max);
            if data.len() > max {
                proptest::prop_assert!(matches!(bin, Inbound::TooLarge(n) if n == data.len() as u64));
            }
            let txt = decode(Message::Text(Utf8Bytes::from(text.clone())), max);
            if text.len() > max {
                proptest::prop_assert!(matches!(txt, Inbound::TooLarge(n) if n == text.len() as u64));
            } else {
                proptest::prop_assert!(matches!(txt, Inbound::Frame(_) | Inbound::Malformed(_)));
            }
        }

        /// A frame a client encodes, in either encoding, decodes to the same
        /// frame: the two wires carry exactly the same protocol.
        #[test]
        fn frames_round_trip_through_both_encodings(
            r#ref in proptest::num::u32::ANY,
            room in "[a-zA-Z0-9_-]{0,24}",
            action in "\\PC{0,16}",
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            epoch in 0u64..(1 << 53),
            last_seq in proptest::num::u64::ANY,
            resume in proptest::bool::ANY,
        ) {
            use proto::client::v1::{Join, Publish, Resume};
            let frames = [
                client_frame::Frame::Publish(Publish {
                    r#ref,
                    room: room.clone(),
                    action,
                    payload: Bytes::from(payload),
                }),
                client_frame::Frame::Join(Join {
                    r#ref,
                    room,
                    resume: resume.then_some(Resume { epoch, last_seq }),
                }),
            ];
            for kind in frames {
                let frame = ClientFrame { frame: Some(kind) };
                let bin = Message::Binary(Bytes::from(frame.encode_to_vec()));
                proptest::prop_assert!(matches!(decode(bin, 1 << 20), Inbound::Frame(f) if f == frame));
                let json = proto::json::encode_client(&frame).map_err(|e| {
                    proptest::test_runner::TestCaseError::fail(e.to_string())
                })?;
                let text = Message::Text(Utf8Bytes::from(json));
                proptest::prop_assert!(matches!(decode(text, 1 << 20), Inbound::Frame(f) if f == frame));
            }
        }
    }
}
