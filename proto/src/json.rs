//! The JSON subprotocol: the same frames as protobuf, as serde JSON.
//!
//! Oneof variants are externally tagged in snake case
//! (`{"frame":{"join":{"ref":1,"room":"r1"}}}`), enums are their numbers, and
//! `bytes` fields are base64 strings.

use crate::client::v1::{ClientFrame, ServerFrame};

/// Parse one client frame from JSON text.
pub fn decode_client(text: &str) -> Result<ClientFrame, serde_json::Error> {
    serde_json::from_str(text)
}

/// Render one server frame as JSON text.
pub fn encode_server(frame: &ServerFrame) -> Result<String, serde_json::Error> {
    serde_json::to_string(frame)
}

/// Render one client frame as JSON text (SDKs and tests).
pub fn encode_client(frame: &ClientFrame) -> Result<String, serde_json::Error> {
    serde_json::to_string(frame)
}

/// Parse one server frame from JSON text (SDKs and tests).
pub fn decode_server(text: &str) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::v1::{Join, Publish, client_frame::Frame};

    #[test]
    fn join_round_trips_through_json() {
        let text = r#"{"frame":{"join":{"ref":7,"room":"r1"}}}"#;
        let frame = decode_client(text).expect("valid join");
        match frame.frame {
            Some(Frame::Join(Join {
                r#ref,
                room,
                resume,
            })) => {
                assert_eq!(r#ref, 7);
                assert_eq!(room, "r1");
                assert!(resume.is_none());
            }
            other => panic!("expected join, got {other:?}"),
        }
    }

    #[test]
    fn bytes_fields_are_base64() {
        let frame = ClientFrame {
            frame: Some(Frame::Publish(Publish {
                r#ref: 1,
                room: "r".into(),
                action: "comment".into(),
                payload: bytes::Bytes::from_static(b"{\"text\":\"hi\"}"),
            })),
        };
        let text = encode_client(&frame).expect("encodes");
        assert!(text.contains("eyJ0ZXh0IjoiaGkifQ=="), "{text}");
        assert_eq!(decode_client(&text).expect("decodes"), frame);
    }
}
