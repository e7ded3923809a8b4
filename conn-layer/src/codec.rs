//! Frames ↔ WebSocket messages, in binary protobuf or the JSON subprotocol,
//! and frames encoded once for many connections, down to the complete
//! WebSocket frame (header + payload) a plain socket is sent.

use std::sync::OnceLock;

use bytes::{BufMut as _, Bytes, BytesMut};
use prost::Message as _;
use proto::client::v1::{ClientFrame, ServerFrame};
pub(crate) use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The encoding a connection negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Protobuf,
    /// `roomcast.v1.json`: bodies as base64.
    Json,
    /// `roomcast.v2.json`: bodies as JSON, epochs as strings.
    JsonV2,
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
/// whatever the negotiated subprotocol (JSON v2 on a `roomcast.v2.json`
/// connection, v1 otherwise).
///
/// Both encodings agree: a frame of a kind this server does not know (an
/// unknown oneof field in protobuf, an unknown key under `"frame"` in JSON)
/// and a frame of no kind (an empty message, `{}`) decode to a frame without
/// a kind, which the session answers with `UNKNOWN_FRAME`; bytes that are not
/// a frame at all are `Malformed`.
pub(crate) fn decode(message: Message, max_bytes: usize, wire: Wire) -> Inbound {
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
            let decoded = match wire {
                Wire::JsonV2 => proto::json_v2::decode_client(text.as_str()),
                Wire::Protobuf | Wire::Json => proto::json::decode_client(text.as_str()),
            };
            match decoded {
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
/// every connection it goes to: as a WebSocket message (for transports that
/// frame it themselves) and as the complete WebSocket frame.
#[derive(Debug)]
pub(crate) struct SharedFrame {
    pub(crate) frame: ServerFrame,
    /// The complete binary WebSocket frame; its payload is the message.
    binary: OnceLock<Bytes>,
    json: OnceLock<Utf8Bytes>,
    json_v2: OnceLock<Utf8Bytes>,
    json_frame: OnceLock<Bytes>,
    json_v2_frame: OnceLock<Bytes>,
}

impl SharedFrame {
    pub(crate) fn new(frame: ServerFrame) -> Self {
        Self {
            frame,
            binary: OnceLock::new(),
            json: OnceLock::new(),
            json_v2: OnceLock::new(),
            json_frame: OnceLock::new(),
            json_v2_frame: OnceLock::new(),
        }
    }

    /// The message for `wire`; encodes on first use only.
    pub(crate) fn message(&self, wire: Wire) -> Message {
        match wire {
            Wire::Protobuf => {
                let frame = self.binary_frame();
                Message::Binary(frame.slice(header_len(frame)..))
            }
            Wire::Json | Wire::JsonV2 => Message::Text(self.text(wire).clone()),
        }
    }

    /// The complete server WebSocket frame for `wire` (header + payload,
    /// unmasked), built on first use only and shared by every socket.
    pub(crate) fn ws_frame(&self, wire: Wire) -> Bytes {
        match wire {
            Wire::Protobuf => self.binary_frame().clone(),
            Wire::Json | Wire::JsonV2 => {
                let cell = if wire == Wire::Json {
                    &self.json_frame
                } else {
                    &self.json_v2_frame
                };
                cell.get_or_init(|| ws_frame(OPCODE_TEXT, self.text(wire).as_bytes()))
                    .clone()
            }
        }
    }

    fn binary_frame(&self) -> &Bytes {
        self.binary.get_or_init(|| {
            let len = self.frame.encoded_len();
            let mut buf = BytesMut::with_capacity(MAX_SERVER_HEADER + len);
            put_header(&mut buf, OPCODE_BINARY, len);
            // A `BytesMut` grows as needed: encoding into it cannot run out
            // of room, the only way `encode` fails.
            let _ = self.frame.encode(&mut buf);
            buf.freeze()
        })
    }

    fn text(&self, wire: Wire) -> &Utf8Bytes {
        let cell = if wire == Wire::JsonV2 {
            &self.json_v2
        } else {
            &self.json
        };
        cell.get_or_init(|| json_text(wire, &self.frame))
    }
}

/// Opcode of a text frame (RFC 6455 §5.2).
pub(crate) const OPCODE_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub(crate) const OPCODE_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub(crate) const OPCODE_CLOSE: u8 = 0x8;
/// Longest server frame header: 2 bytes and an 8-byte length (no mask).
const MAX_SERVER_HEADER: usize = 10;

/// Bytes of the header of a complete server frame (as [`put_header`] wrote
/// it): its length field says which of the three sizes it has.
fn header_len(frame: &[u8]) -> usize {
    match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    }
}

/// The header of a final, unmasked server frame of `opcode` carrying `len`
/// payload bytes (RFC 6455 §5.2: 7-bit length, or 126 + 16-bit, or 127 +
/// 64-bit, the shortest that fits).
pub(crate) fn put_header(buf: &mut BytesMut, opcode: u8, len: usize) {
    buf.put_u8(0x80 | opcode);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        buf.put_u8(126);
        buf.put_u16(short);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
}

/// A complete, final, unmasked server frame of `opcode` carrying `payload`.
pub(crate) fn ws_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(MAX_SERVER_HEADER + payload.len());
    put_header(&mut buf, opcode, payload.len());
    buf.put_slice(payload);
    buf.freeze()
}

/// The complete server frame of a data message (binary or text); `None` for
/// control messages, which the WebSocket layer writes.
pub(crate) fn data_frame(message: &Message) -> Option<Bytes> {
    match message {
        Message::Binary(data) => Some(ws_frame(OPCODE_BINARY, data)),
        Message::Text(text) => Some(ws_frame(OPCODE_TEXT, text.as_bytes())),
        _ => None,
    }
}

/// Encode one frame for one connection.
pub(crate) fn encode(wire: Wire, frame: &ServerFrame) -> Message {
    match wire {
        Wire::Protobuf => Message::Binary(Bytes::from(frame.encode_to_vec())),
        Wire::Json | Wire::JsonV2 => Message::Text(json_text(wire, frame)),
    }
}

fn json_text(wire: Wire, frame: &ServerFrame) -> Utf8Bytes {
    let encoded = match wire {
        Wire::JsonV2 => proto::json_v2::encode_server(frame),
        Wire::Protobuf | Wire::Json => proto::json::encode_server(frame),
    };
    // Serialising generated structs of strings, numbers, base64 and validated
    // JSON cannot fail; the fallback keeps the connection alive if it ever did.
    Utf8Bytes::from(encoded.unwrap_or_else(|e| {
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
        assert!(matches!(decode(bin, 1024, Wire::Json), Inbound::Frame(f) if f == frame));
        let text = Message::Text(Utf8Bytes::from(
            r#"{"frame":{"ping":{"client_time_ms":5}}}"#,
        ));
        assert!(matches!(decode(text, 1024, Wire::Json), Inbound::Frame(f) if f == frame));
        let garbage = Message::Binary(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert!(matches!(
            decode(garbage, 1024, Wire::Json),
            Inbound::Malformed(_)
        ));
        let big = Message::Binary(Bytes::from(vec![0u8; 2048]));
        assert!(matches!(
            decode(big, 1024, Wire::Json),
            Inbound::TooLarge(2048)
        ));
        let text = Message::Text(Utf8Bytes::from("{not json"));
        assert!(matches!(
            decode(text, 1024, Wire::Json),
            Inbound::Malformed(_)
        ));
    }

    #[test]
    fn unknown_and_empty_frames_agree_across_encodings() {
        let unknown = |m| {
            matches!(
                decode(m, 1024, Wire::Json),
                Inbound::Frame(ClientFrame { frame: None })
            )
        };
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
        assert!(matches!(
            decode(bad_join, 1024, Wire::Json),
            Inbound::Malformed(_)
        ));
    }

    #[test]
    fn a_v2_connection_reads_v2_text_and_gets_v2_frames() {
        use proto::client::v1::{Publish, Reply, ServerFrame, server_frame};
        let text = r#"{"frame":{"publish":{"ref":3,"room":"r","action":"comment","payload":{"text":"hi"}}}}"#;
        let want = ClientFrame {
            frame: Some(client_frame::Frame::Publish(Publish {
                r#ref: 3,
                room: "r".into(),
                action: "comment".into(),
                payload: Bytes::from_static(br#"{"text":"hi"}"#),
            })),
        };
        let inbound = decode(Message::Text(Utf8Bytes::from(text)), 1024, Wire::JsonV2);
        assert!(matches!(inbound, Inbound::Frame(f) if f == want));
        // The same text is not a v1 frame (v1 payloads are base64 strings).
        let inbound = decode(Message::Text(Utf8Bytes::from(text)), 1024, Wire::Json);
        assert!(matches!(inbound, Inbound::Malformed(_)));
        // Unknown and empty kinds are unknown on v2 as well.
        for unknown in [r#"{"frame":{"teleport":{}}}"#, "{}"] {
            let inbound = decode(Message::Text(Utf8Bytes::from(unknown)), 1024, Wire::JsonV2);
            assert!(
                matches!(inbound, Inbound::Frame(ClientFrame { frame: None })),
                "{unknown}"
            );
        }
        let reply = SharedFrame::new(ServerFrame {
            frame: Some(server_frame::Frame::Reply(Reply {
                r#ref: 3,
                code: 0,
                message: String::new(),
                body: Bytes::from_static(br#"{"seq":44}"#),
            })),
        });
        let Message::Text(v2) = reply.message(Wire::JsonV2) else {
            panic!("JSON wires send text");
        };
        assert_eq!(
            v2.as_str(),
            r#"{"frame":{"reply":{"ref":3,"code":0,"message":"","body":{"seq":44}}}}"#
        );
        let Message::Text(v1) = reply.message(Wire::Json) else {
            panic!("JSON wires send text");
        };
        assert!(v1.as_str().contains(r#""body":"eyJzZXEiOjQ0fQ==""#), "{v1}");
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

    /// Bytes from the server for tungstenite's client side to read; what the
    /// client writes (nothing, here) is dropped.
    struct FromServer(std::io::Cursor<Vec<u8>>);

    impl std::io::Read for FromServer {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl std::io::Write for FromServer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What tungstenite's own client decodes from `bytes`, message by message.
    fn decode_as_client(bytes: Vec<u8>, count: usize) -> Vec<Message> {
        use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
        let config = WebSocketConfig::default()
            .max_frame_size(Some(1 << 24))
            .max_message_size(Some(1 << 24));
        let mut socket = WebSocket::from_raw_socket(
            FromServer(std::io::Cursor::new(bytes)),
            Role::Client,
            Some(config),
        );
        (0..count)
            .map(|_| match socket.read() {
                Ok(message) => message,
                Err(e) => panic!("tungstenite refused a pre-built frame: {e}"),
            })
            .collect()
    }

    #[test]
    fn a_shared_frame_s_message_is_the_payload_of_its_ws_frame() {
        use proto::client::v1::{Delivery, ServerFrame, server_frame};
        for size in [0usize, 50, 125, 126, 1000, 65_535, 65_536, 70_000] {
            let frame = SharedFrame::new(ServerFrame {
                frame: Some(server_frame::Frame::Delivery(Delivery {
                    room: "r".repeat(size),
                    epoch: 1,
                    first_seq: 1,
                    last_seq: 2,
                    messages: Vec::new(),
                })),
            });
            for wire in [Wire::Protobuf, Wire::Json, Wire::JsonV2] {
                let decoded = decode_as_client(frame.ws_frame(wire).to_vec(), 1);
                assert_eq!(decoded, vec![frame.message(wire)], "{size} bytes, {wire:?}");
            }
            let Message::Binary(payload) = frame.message(Wire::Protobuf) else {
                panic!("protobuf is binary");
            };
            assert_eq!(payload, Bytes::from(frame.frame.encode_to_vec()));
        }
    }

    /// Payload lengths on both sides of the header's size steps (125/126,
    /// 65,535/65,536) and elsewhere.
    fn payload_len() -> impl proptest::strategy::Strategy<Value = usize> {
        use proptest::prelude::*;
        prop_oneof![
            0usize..300,
            65_400usize..65_700,
            prop::sample::select(vec![125usize, 126, 127, 65_535, 65_536, 65_537, 200_000]),
            0usize..140_000,
        ]
    }

    proptest::proptest! {
        /// Whatever a peer sends, decoding never panics, and a message over the
        /// limit is `TooLarge` with its own size, whichever encoding.
        #[test]
        fn any_input_is_classified(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                                   text in ".{0,200}", max in 0usize..256) {
            let bin = decode(Message::Binary(Bytes::from(data.clone())), max, Wire::Protobuf);
            if data.len() > max {
                proptest::prop_assert!(matches!(bin, Inbound::TooLarge(n) if n == data.len() as u64));
            }
            for wire in [Wire::Json, Wire::JsonV2] {
                let txt = decode(Message::Text(Utf8Bytes::from(text.clone())), max, wire);
                if text.len() > max {
                    proptest::prop_assert!(matches!(txt, Inbound::TooLarge(n) if n == text.len() as u64));
                } else {
                    proptest::prop_assert!(matches!(txt, Inbound::Frame(_) | Inbound::Malformed(_)));
                }
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
                proptest::prop_assert!(matches!(decode(bin, 1 << 20, Wire::Json), Inbound::Frame(f) if f == frame));
                let json = proto::json::encode_client(&frame).map_err(|e| {
                    proptest::test_runner::TestCaseError::fail(e.to_string())
                })?;
                let text = Message::Text(Utf8Bytes::from(json));
                proptest::prop_assert!(matches!(decode(text, 1 << 20, Wire::Json), Inbound::Frame(f) if f == frame));
                let json = proto::json_v2::encode_client(&frame).map_err(|e| {
                    proptest::test_runner::TestCaseError::fail(e.to_string())
                })?;
                let text = Message::Text(Utf8Bytes::from(json));
                proptest::prop_assert!(matches!(decode(text, 1 << 20, Wire::JsonV2), Inbound::Frame(f) if f == frame));
            }
        }

        /// A run of pre-built server frames of any payload sizes (binary and
        /// text) decodes, with tungstenite's own client, to the same
        /// messages in the same order.
        #[test]
        fn pre_built_frames_decode_to_the_same_messages(
            frames in proptest::collection::vec((payload_len(), proptest::bool::ANY, proptest::num::u8::ANY), 1..6),
        ) {
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            for (len, text, seed) in frames {
                let message = if text {
                    let chars: String = (0..len).map(|i| char::from(b'a' + ((i + usize::from(seed)) % 26) as u8)).collect();
                    Message::Text(Utf8Bytes::from(chars))
                } else {
                    Message::Binary(Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect::<Vec<u8>>()))
                };
                let Some(frame) = data_frame(&message) else {
                    return Err(proptest::test_runner::TestCaseError::fail("a data message has a frame"));
                };
                let header = match len {
                    0..=125 => 2,
                    126..=65_535 => 4,
                    _ => 10,
                };
                proptest::prop_assert_eq!(frame.len(), header + len);
                proptest::prop_assert_eq!(header_len(&frame), header);
                bytes.extend_from_slice(&frame);
                expected.push(message);
            }
            let count = expected.len();
            proptest::prop_assert_eq!(decode_as_client(bytes, count), expected);
        }
    }
}
