//! One long connection, over WebSocket or QUIC, as frames in and frames out.
//!
//! The connection task only sees [`Link`]: it sends `ClientFrame`s and reads [`Inbound`]s,
//! so a session behaves the same whatever carries it.

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use proto::client::v1::{ClientFrame, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

use crate::error::Error;
use crate::quic::{QuicRead, QuicStream};
use crate::tls::TlsTrust;
use crate::transport::Transport;
use crate::ws::{self, WsStream};

/// What the server sent.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A decoded frame.
    Frame(ServerFrame),
    /// The server closed the connection with a (WebSocket or QUIC application) close code.
    Closed { code: u16, reason: String },
    /// The connection broke without a close.
    Failed(String),
    /// Bytes that are not a frame: dropped, the connection goes on.
    Undecodable(String),
    /// Transport-level traffic (WebSocket ping/pong).
    Nothing,
}

/// A connected transport.
#[derive(Debug)]
pub(crate) enum Link {
    Ws(Box<WsStream>),
    Quic(Box<QuicStream>),
}

impl Link {
    /// Connect to one router endpoint.
    pub(crate) async fn open(
        transport: Transport,
        url: &str,
        pin: Option<&str>,
        trust: &TlsTrust,
    ) -> Result<Self, Error> {
        match transport {
            Transport::Ws => {
                let (ws, _) = ws::open(url, Some(proto::PROTOBUF_SUBPROTOCOL), trust).await?;
                Ok(Self::Ws(Box::new(ws)))
            }
            Transport::Quic => Ok(Self::Quic(Box::new(
                QuicStream::connect(url, pin, trust).await?,
            ))),
            Transport::Polling => Err(Error::Protocol("polling is not a long connection".into())),
        }
    }

    /// Which transport this is.
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Self::Ws(_) => Transport::Ws,
            Self::Quic(_) => Transport::Quic,
        }
    }

    /// Send one frame.
    pub(crate) async fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        let bytes = Bytes::from(frame.encode_to_vec());
        match self {
            Self::Ws(ws) => Ok(ws.send(Message::Binary(bytes)).await?),
            Self::Quic(quic) => quic.send(bytes).await,
        }
    }

    /// The next thing the server sent. Cancel safe.
    pub(crate) async fn recv(&mut self) -> Inbound {
        match self {
            Self::Ws(ws) => match ws.next().await {
                None => Inbound::Failed("connection closed".into()),
                Some(Err(e)) => Inbound::Failed(format!("connection failed: {e}")),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = ws::close_code(frame);
                    Inbound::Closed { code, reason }
                }
                Some(Ok(Message::Binary(bytes))) => decode(bytes),
                // A server may answer in JSON; accept it rather than drop the frame.
                Some(Ok(Message::Text(text))) => match proto::json::decode_server(text.as_str()) {
                    Ok(frame) => Inbound::Frame(frame),
                    Err(e) => Inbound::Undecodable(format!("undecodable JSON server frame: {e}")),
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    Inbound::Nothing
                }
            },
            Self::Quic(quic) => match quic.recv().await {
                Ok(QuicRead::Frame(bytes)) => decode(bytes),
                Ok(QuicRead::Closed { code, reason }) => Inbound::Closed { code, reason },
                Err(e) => Inbound::Failed(format!("connection failed: {e}")),
            },
        }
    }

    /// Close gracefully, waiting briefly for the server's side of the close.
    pub(crate) async fn close(&mut self) {
        match self {
            Self::Ws(socket) => ws::close(socket).await,
            Self::Quic(quic) => quic.close().await,
        }
    }
}

fn decode(bytes: Bytes) -> Inbound {
    match ServerFrame::decode(bytes) {
        Ok(frame) => Inbound::Frame(frame),
        Err(e) => Inbound::Undecodable(format!("undecodable server frame: {e}")),
    }
}
