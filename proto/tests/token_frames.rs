//! The token frames in the JSON subprotocol follow the snake_case naming of
//! every other frame.

use proto::client::v1::{
    ClientFrame, Refresh, Refreshed, ServerFrame, TokenExpiring, client_frame, server_frame,
};

#[test]
fn refresh_and_its_answers_have_snake_case_json_names() {
    let text = r#"{"frame":{"refresh":{"ref":3,"token":"eyJ.x.y"}}}"#;
    let frame = proto::json::decode_client(text).expect("a refresh");
    assert_eq!(
        frame,
        ClientFrame {
            frame: Some(client_frame::Frame::Refresh(Refresh {
                r#ref: 3,
                token: "eyJ.x.y".into(),
            })),
        }
    );

    let refreshed = ServerFrame {
        frame: Some(server_frame::Frame::Refreshed(Refreshed {
            r#ref: 3,
            expires_at_ms: 1_795_446_710_000,
        })),
    };
    let json = proto::json::encode_server(&refreshed).expect("encodes");
    assert_eq!(
        json,
        r#"{"frame":{"refreshed":{"ref":3,"expires_at_ms":1795446710000}}}"#
    );
    let warning = ServerFrame {
        frame: Some(server_frame::Frame::TokenExpiring(TokenExpiring {
            expires_at_ms: 1_795_446_710_000,
        })),
    };
    let json = proto::json::encode_server(&warning).expect("encodes");
    assert_eq!(
        json,
        r#"{"frame":{"token_expiring":{"expires_at_ms":1795446710000}}}"#
    );
    assert_eq!(proto::json::decode_server(&json).expect("decodes"), warning);
}
