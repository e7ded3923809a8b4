use super::*;
use crate::client::v1::{
    Delivery, Ephemeral, Join, Joined, Publish, Reply, Resume, RoomMessage, RoomSnapshot,
};
use proptest::prelude::*;

fn publish(payload: &[u8]) -> ClientFrame {
    ClientFrame {
        frame: Some(C::Publish(Publish {
            r#ref: 2,
            room: "rAbc".into(),
            action: "comment".into(),
            payload: Bytes::copy_from_slice(payload),
        })),
    }
}

#[test]
fn json_payloads_are_embedded_and_other_bytes_are_base64() {
    let text = encode_client(&publish(br#"{"text":"hi"}"#)).expect("encodes");
    assert_eq!(
        text,
        r#"{"frame":{"publish":{"ref":2,"room":"rAbc","action":"comment","payload":{"text":"hi"}}}}"#
    );
    let text = encode_client(&publish(&[0, 1, 2])).expect("encodes");
    assert!(text.contains(r#""payload_b64":"AAEC""#), "{text}");
    assert!(!text.contains(r#""payload":"#), "{text}");
    // Whitespace around JSON would be lost in embedding: such bytes go as base64.
    let text = encode_client(&publish(b" {} ")).expect("encodes");
    assert!(text.contains("payload_b64"), "{text}");
    // Empty bytes are neither field.
    let text = encode_client(&publish(b"")).expect("encodes");
    assert!(!text.contains("payload"), "{text}");
    for payload in [
        &br#"{"text":"hi"}"#[..],
        &[0, 1, 2],
        b" {} ",
        b"",
        b"null",
        b"7",
    ] {
        let frame = publish(payload);
        let text = encode_client(&frame).expect("encodes");
        assert_eq!(decode_client(&text).expect("decodes"), frame, "{text}");
    }
}

#[test]
fn epochs_are_strings_and_seqs_numbers() {
    let frame = ServerFrame {
        frame: Some(S::Delivery(Delivery {
            room: "r".into(),
            epoch: u64::MAX,
            first_seq: 5,
            last_seq: 5,
            messages: vec![RoomMessage {
                seq: 5,
                kind: "comment".into(),
                body: Bytes::from_static(br#"{"uid":"bob","text":"hi"}"#),
                sender: "bob".into(),
                ts_ms: 1_795_446_710_231,
                priority: 2,
            }],
        })),
    };
    let text = encode_server(&frame).expect("encodes");
    assert_eq!(
        text,
        r#"{"frame":{"delivery":{"room":"r","epoch":"18446744073709551615","first_seq":5,"last_seq":5,"messages":[{"seq":5,"kind":"comment","body":{"uid":"bob","text":"hi"},"sender":"bob","ts_ms":1795446710231,"priority":2}]}}}"#
    );
    assert_eq!(decode_server(&text).expect("decodes"), frame);
}

#[test]
fn sixty_four_bit_fields_take_numbers_or_strings() {
    let want = ClientFrame {
        frame: Some(C::Join(Join {
            r#ref: 1,
            room: "r".into(),
            resume: Some(Resume {
                epoch: 77,
                last_seq: 41,
            }),
        })),
    };
    for text in [
        r#"{"frame":{"join":{"ref":1,"room":"r","resume":{"epoch":"77","last_seq":41}}}}"#,
        r#"{"frame":{"join":{"ref":1,"room":"r","resume":{"epoch":77,"last_seq":"41"}}}}"#,
    ] {
        assert_eq!(decode_client(text).expect(text), want);
    }
}

#[test]
fn malformed_input_is_an_error() {
    for text in [
        // Both forms of one field.
        r#"{"frame":{"publish":{"ref":1,"room":"r","action":"a","payload":{},"payload_b64":"AA=="}}}"#,
        // Not base64.
        r#"{"frame":{"publish":{"ref":1,"room":"r","action":"a","payload_b64":"***"}}}"#,
        // Epochs that are not unsigned 64-bit integers.
        r#"{"frame":{"join":{"ref":1,"room":"r","resume":{"epoch":"x","last_seq":1}}}}"#,
        r#"{"frame":{"join":{"ref":1,"room":"r","resume":{"epoch":"-1","last_seq":1}}}}"#,
        r#"{"frame":{"join":{"ref":1,"room":"r","resume":{"epoch":"18446744073709551616","last_seq":1}}}}"#,
        r#"{"frame":{"join":{"ref":1,"room":"r","resume":{"epoch":1.5,"last_seq":1}}}}"#,
        r#"{"frame":{"join":{"ref":"x"}}}"#,
        "{not json",
        "",
    ] {
        assert!(decode_client(text).is_err(), "{text}");
    }
    let both = r#"{"frame":{"reply":{"ref":1,"code":0,"message":"","body":1,"body_b64":"AA=="}}}"#;
    assert!(decode_server(both).is_err());
}

#[test]
fn a_null_body_is_not_an_empty_one() {
    let frame = ServerFrame {
        frame: Some(S::Reply(Reply {
            r#ref: 3,
            code: 0,
            message: String::new(),
            body: Bytes::from_static(b"null"),
        })),
    };
    let text = encode_server(&frame).expect("encodes");
    assert!(text.contains(r#""body":null"#), "{text}");
    assert_eq!(decode_server(&text).expect("decodes"), frame);
}

/// Any JSON value, as compact text.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Body bytes: JSON text (compact or pretty), or arbitrary bytes.
fn body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        json_value().prop_map(|v| Bytes::from(v.to_string())),
        json_value()
            .prop_map(|v| Bytes::from(serde_json::to_string_pretty(&v).unwrap_or_default())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
    ]
}

fn message() -> impl Strategy<Value = RoomMessage> {
    (
        any::<u64>(),
        "\\PC{0,12}",
        body(),
        "\\PC{0,12}",
        any::<u64>(),
        0i32..3,
    )
        .prop_map(|(seq, kind, body, sender, ts_ms, priority)| RoomMessage {
            seq,
            kind,
            body,
            sender,
            ts_ms,
            priority,
        })
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let delivery = (
        "\\PC{0,12}",
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(message(), 0..4),
    )
        .prop_map(|(room, epoch, first_seq, last_seq, messages)| {
            S::Delivery(Delivery {
                room,
                epoch,
                first_seq,
                last_seq,
                messages,
            })
        });
    let joined = (
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        prop::option::of((body(), any::<u32>())),
    )
        .prop_map(|(r#ref, epoch, start_seq, recovered, snapshot)| {
            S::Joined(Joined {
                r#ref,
                room: "r".into(),
                epoch,
                start_seq,
                recovered,
                snapshot: snapshot.map(|(state, members)| RoomSnapshot {
                    room: "r".into(),
                    title: "t".into(),
                    role: "listener".into(),
                    members,
                    state,
                }),
            })
        });
    let reply =
        (any::<u32>(), 0i32..17, "\\PC{0,12}", body()).prop_map(|(r#ref, code, message, body)| {
            S::Reply(Reply {
                r#ref,
                code,
                message,
                body,
            })
        });
    let ephemeral = ("\\PC{0,12}", body(), any::<u64>()).prop_map(|(kind, body, ts_ms)| {
        S::Ephemeral(Ephemeral {
            room: String::new(),
            kind,
            body,
            ts_ms,
        })
    });
    prop_oneof![delivery, joined, reply, ephemeral]
        .prop_map(|kind| ServerFrame { frame: Some(kind) })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    let publish = (any::<u32>(), "\\PC{0,12}", "\\PC{0,12}", body()).prop_map(
        |(r#ref, room, action, payload)| {
            C::Publish(Publish {
                r#ref,
                room,
                action,
                payload,
            })
        },
    );
    let join = (
        any::<u32>(),
        "\\PC{0,12}",
        prop::option::of((any::<u64>(), any::<u64>())),
    )
        .prop_map(|(r#ref, room, resume)| {
            C::Join(Join {
                r#ref,
                room,
                resume: resume.map(|(epoch, last_seq)| Resume { epoch, last_seq }),
            })
        });
    prop_oneof![publish, join].prop_map(|kind| ClientFrame { frame: Some(kind) })
}

proptest! {
    /// Every frame survives encode → decode exactly, whatever its bodies hold.
    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let text = encode_server(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode_server(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?, frame);
    }

    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let text = encode_client(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode_client(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?, frame);
    }

    /// A body that is JSON arrives as that JSON, not as a string to decode.
    #[test]
    fn json_bodies_are_json(value in json_value()) {
        let body = value.to_string();
        let text = encode_client(&publish(body.as_bytes())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Compared with the body parsed alone: floats parse the same either way.
        let alone: serde_json::Value = serde_json::from_str(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed["frame"]["publish"]["payload"], &alone);
        prop_assert!(!text.contains("payload_b64"));
    }

    /// Whatever text arrives, decoding answers a frame or an error: never a panic.
    #[test]
    fn any_text_decodes_or_fails(text in "\\PC{0,200}") {
        let _ = decode_client(&text);
        let _ = decode_server(&text);
    }

    /// Valid frames with one value mangled fail cleanly too.
    #[test]
    fn mangled_frames_decode_or_fail(frame in client_frame(), cut in 0usize..400, junk in "[\\[\\]{}\",:0-9a-z]{0,3}") {
        let text = encode_client(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cut = text.char_indices().map(|(i, _)| i).find(|&i| i >= cut.min(text.len())).unwrap_or(text.len());
        let mangled = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
        let _ = decode_client(&mangled);
    }
}
