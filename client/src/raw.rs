//! Bare connections speaking frames, for tests and tools: [`RawConnection`] (WebSocket)
//! and [`RawQuicConnection`] (QUIC). A leaf: built on the two transports (`ws`,
//! [`crate::quic`]); nothing else in the SDK uses it.
//!
//! No handshake logic, no reconnects, no dedup: send whatever bytes you like (garbage,
//! unknown frames, oversized frames) and look at exactly what the server answers.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use prost::Message as _;
use proto::client::v1::{ClientFrame, Hello, ServerFrame, Welcome, client_frame, server_frame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::close::ABNORMAL_CLOSE;
use crate::error::{Error, code_from_wire, is_auth_code};
use crate::quic::{QuicRead, QuicStream};
use crate::tls::TlsTrust;
use crate::ws::{self, WsStream};

/// What [`RawConnection::next_frame`] or [`RawQuicConnection::next_frame`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum RawEvent {
    /// A binary message, decoded as a protobuf `ServerFrame`.
    Frame(ServerFrame),
    /// The server closed (or the socket ended: code 1006).
    Close {
        /// WebSocket close code; over QUIC, the application close code (the same numbers).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// A text message, as is (JSON subprotocol frames: decode with
    /// [`proto::json::decode_server`]).
    Text(String),
}

/// One WebSocket connection to a conn node, driven by hand.
#[derive(Debug)]
pub struct RawConnection {
    ws: WsStream,
    subprotocol: Option<String>,
}

impl RawConnection {
    /// Open a WebSocket to `url`, offering `subprotocol` when given (`wss://` trusts
    /// the webpki roots).
    pub async fn connect(url: &str, subprotocol: Option<&str>) -> Result<Self, Error> {
        Self::connect_with(url, subprotocol, &TlsTrust::webpki()).await
    }

    /// [`RawConnection::connect`], trusting `trust` on `wss://`.
    pub async fn connect_with(
        url: &str,
        subprotocol: Option<&str>,
        trust: &TlsTrust,
    ) -> Result<Self, Error> {
        let (ws, subprotocol) = ws::open(url, subprotocol, trust).await?;
        Ok(Self { ws, subprotocol })
    }

    /// The subprotocol the server selected.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Send one frame as a binary protobuf message.
    pub async fn send_frame(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        self.send_bytes(frame.encode_to_vec()).await
    }

    /// Send one frame as a JSON text message (the `roomcast.v1.json` subprotocol).
    pub async fn send_json_frame(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        let text = proto::json::encode_client(frame).map_err(|e| Error::Protocol(e.to_string()))?;
        self.send_text(text).await
    }

    /// Send arbitrary bytes as one binary message.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), Error> {
        Ok(self.ws.send(Message::Binary(bytes.into())).await?)
    }

    /// Send arbitrary text as one text message.
    pub async fn send_text(&mut self, text: String) -> Result<(), Error> {
        Ok(self.ws.send(Message::Text(text.into())).await?)
    }

    /// The next frame, close or text message within `timeout` (WebSocket pings and
    /// pongs are skipped). A binary message that is not a `ServerFrame` is an
    /// [`Error::Protocol`]; silence is [`Error::Timeout`].
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<RawEvent, Error> {
        tokio::time::timeout(timeout, self.next_event())
            .await
            .map_err(|_| Error::Timeout)?
    }

    async fn next_event(&mut self) -> Result<RawEvent, Error> {
        loop {
            let Some(message) = self.ws.next().await else {
                return Ok(closed_abnormally());
            };
            match message {
                Ok(Message::Binary(bytes)) => {
                    return ServerFrame::decode(bytes)
                        .map(RawEvent::Frame)
                        .map_err(|e| Error::Protocol(format!("undecodable server frame: {e}")));
                }
                Ok(Message::Text(text)) => return Ok(RawEvent::Text(text.as_str().to_owned())),
                Ok(Message::Close(frame)) => return Ok(close_event(frame)),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(closed_abnormally());
                }
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => return Ok(closed_abnormally()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send a hello with `token` and wait for the welcome. An error frame is returned as
    /// [`Error::Auth`] or [`Error::Refused`].
    pub async fn hello(&mut self, token: &str, timeout: Duration) -> Result<Welcome, Error> {
        let hello = Hello {
            token: token.to_owned(),
            ..Default::default()
        };
        self.send_frame(&ClientFrame {
            frame: Some(client_frame::Frame::Hello(hello)),
        })
        .await?;
        loop {
            if let Some(result) = welcome_or_error(self.next_frame(timeout).await?) {
                return result;
            }
        }
    }

    /// Close with a normal close frame and wait (briefly) for the server's close.
    pub async fn close(mut self) -> Result<(), Error> {
        match self.ws.close(None).await {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {}
            Err(e) => return Err(e.into()),
        }
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        Ok(())
    }

    /// The underlying stream, for anything this type does not cover.
    pub fn get_mut(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}

/// One QUIC connection to a conn node, driven by hand: the frames of
/// [`RawConnection`], each as a 4-byte big-endian length + protobuf bytes on one
/// bidirectional stream.
#[derive(Debug)]
pub struct RawQuicConnection {
    stream: QuicStream,
}

impl RawQuicConnection {
    /// Connect to `url` (`quic://host:port`) and open the stream. The server certificate
    /// must match `cert_sha256` (hex SHA-256 of its DER) or chain to the webpki roots.
    pub async fn connect(url: &str, cert_sha256: Option<&str>) -> Result<Self, Error> {
        Self::connect_with(url, cert_sha256, &TlsTrust::webpki()).await
    }

    /// [`RawQuicConnection::connect`], falling back to the roots of `trust`.
    pub async fn connect_with(
        url: &str,
        cert_sha256: Option<&str>,
        trust: &TlsTrust,
    ) -> Result<Self, Error> {
        Ok(Self {
            stream: QuicStream::connect(url, cert_sha256, trust).await?,
        })
    }

    /// Send one frame.
    pub async fn send_frame(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        self.send_bytes(frame.encode_to_vec()).await
    }

    /// Send arbitrary bytes as one length-prefixed frame.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), Error> {
        self.stream.send(bytes.into()).await
    }

    /// Write bytes on the stream as they are, without a length prefix (to test the
    /// server's framing, e.g. a length prefix over its limit).
    pub async fn send_unframed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.send_unframed(bytes).await
    }

    /// The next frame or close within `timeout`. The close code and reason are the
    /// server's QUIC application close (1006 when the connection ended otherwise). A
    /// frame that is not a `ServerFrame` is an [`Error::Protocol`]; silence is
    /// [`Error::Timeout`].
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<RawEvent, Error> {
        let read = tokio::time::timeout(timeout, self.stream.recv())
            .await
            .map_err(|_| Error::Timeout)??;
        match read {
            QuicRead::Frame(bytes) => ServerFrame::decode(bytes)
                .map(RawEvent::Frame)
                .map_err(|e| Error::Protocol(format!("undecodable server frame: {e}"))),
            QuicRead::Closed { code, reason } => Ok(RawEvent::Close { code, reason }),
        }
    }

    /// Send a hello with `token` and wait for the welcome, as [`RawConnection::hello`].
    pub async fn hello(&mut self, token: &str, timeout: Duration) -> Result<Welcome, Error> {
        let hello = Hello {
            token: token.to_owned(),
            ..Default::default()
        };
        self.send_frame(&ClientFrame {
            frame: Some(client_frame::Frame::Hello(hello)),
        })
        .await?;
        loop {
            if let Some(result) = welcome_or_error(self.next_frame(timeout).await?) {
                return result;
            }
        }
    }

    /// Finish the stream, close the connection with code 1000 and wait briefly.
    pub async fn close(mut self) -> Result<(), Error> {
        self.stream.close().await;
        Ok(())
    }

    /// The underlying QUIC connection (stats, close reason, extra streams).
    pub fn connection(&self) -> &quinn::Connection {
        self.stream.connection()
    }
}

/// During a hello: the welcome, the refusal, or `None` to keep reading.
fn welcome_or_error(event: RawEvent) -> Option<Result<Welcome, Error>> {
    match event {
        RawEvent::Frame(ServerFrame {
            frame: Some(server_frame::Frame::Welcome(w)),
        }) => Some(Ok(w)),
        RawEvent::Frame(ServerFrame {
            frame: Some(server_frame::Frame::Error(e)),
        }) => {
            let code = code_from_wire(e.code);
            Some(Err(if is_auth_code(code) {
                Error::Auth {
                    code,
                    message: e.message,
                }
            } else {
                Error::Refused {
                    code,
                    message: e.message,
                }
            }))
        }
        RawEvent::Close { code, reason } => Some(Err(Error::Protocol(format!(
            "closed before welcome ({code} {reason})"
        )))),
        _ => None,
    }
}

fn close_event(frame: Option<CloseFrame>) -> RawEvent {
    let (code, reason) = ws::close_code(frame);
    RawEvent::Close { code, reason }
}

fn closed_abnormally() -> RawEvent {
    RawEvent::Close {
        code: ABNORMAL_CLOSE,
        reason: "connection dropped".into(),
    }
}
