//! The WebSocket transport: open a socket (offering a subprotocol, no Nagle delay), read
//! a close frame as a code and a reason, and close gracefully. Frames travel as one
//! binary (protobuf) or text (JSON) message each.

use std::time::Duration;

use futures::StreamExt as _;
use tokio::net::TcpStream;
use tokio::time;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::Error;
use crate::tls::TlsTrust;

/// How long a graceful close waits for the server's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A client WebSocket, plain or TLS.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open a WebSocket (`ws://`, or `wss://` verified against `trust`), offering
/// `subprotocol`; returns the one the server selected.
pub(crate) async fn open(
    url: &str,
    subprotocol: Option<&str>,
    trust: &TlsTrust,
) -> Result<(WsStream, Option<String>), Error> {
    let mut request = url.into_client_request()?;
    if let Some(protocol) = subprotocol {
        let value = HeaderValue::from_str(protocol)
            .map_err(|e| Error::Protocol(format!("bad subprotocol {protocol:?}: {e}")))?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
    }
    // Frames are small and latency matters: no Nagle delay.
    let connector = tokio_tungstenite::Connector::Rustls(trust.config());
    let (ws, response) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
            .await?;
    let selected = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, selected))
}

/// The code and reason of a close frame (1005, "no status", when it carried none).
pub(crate) fn close_code(frame: Option<CloseFrame>) -> (u16, String) {
    match frame {
        Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
        None => (u16::from(CloseCode::Status), String::new()),
    }
}

/// Close gracefully: send a close frame, then read until the server's close, for at
/// most [`CLOSE_GRACE`].
pub(crate) async fn close(ws: &mut WsStream) {
    let close = async {
        // The inherent close (with a close frame), not `SinkExt::close`.
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    };
    let _ = time::timeout(CLOSE_GRACE, close).await;
}
