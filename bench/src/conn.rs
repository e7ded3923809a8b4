//! One long connection of a bench client, over WebSocket or QUIC. Both carry
//! the same protobuf `ClientFrame` / `ServerFrame`s: one binary message each
//! on a WebSocket, one length-delimited frame each (4-byte big-endian length)
//! on the single bidirectional stream of a QUIC connection (ALPN `roomcast/1`,
//! TLS 1.3, the server certificate checked against a pin).
//!
//! QUIC clients of one worker share one [`QuicDialer`]: one quinn endpoint,
//! one UDP socket bound to a loopback address, thousands of connections.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt as _};
use prost::Message as _;
use proto::client::v1::{ClientFrame, ServerFrame, client_frame};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::ws::{self, Ws};

/// Largest server frame read from a QUIC stream (the server's own cap).
const MAX_QUIC_FRAME: usize = 64 * 1024 * 1024;
/// QUIC application close code of a normal client close (the WebSocket code).
const NORMAL_CLOSE: u32 = 1000;
/// Per-connection QUIC receive windows: bench frames are small and a worker
/// holds thousands of connections.
const QUIC_STREAM_WINDOW: u32 = 256 * 1024;
const QUIC_CONN_WINDOW: u32 = 512 * 1024;
/// Socket buffers asked for the worker's one UDP socket.
const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Where a long connection goes.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A WebSocket URL (`ws://host:port/path`) and its resolved address.
    Ws {
        /// The URL (the handshake needs it).
        url: String,
        /// The resolved address.
        addr: SocketAddr,
    },
    /// A QUIC endpoint (`quic://host:port`).
    Quic {
        /// The resolved address.
        addr: SocketAddr,
        /// Server name for TLS (the URL's host).
        host: String,
        /// Hex SHA-256 of the server's DER certificate, when pinned.
        pin: Option<String>,
    },
}

impl Endpoint {
    /// Resolve a `ws://` or `quic://` URL (`pin` applies to QUIC only).
    pub async fn resolve(url: &str, pin: Option<&str>) -> anyhow::Result<Self> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("{url}: not a URL (ws://… or quic://…)"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let addr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("cannot resolve {authority}"))?
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("{authority} has no IPv4 address"))?;
        match scheme {
            proto::transport::WS => Ok(Self::Ws {
                url: url.to_owned(),
                addr,
            }),
            proto::transport::QUIC => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority, |(host, _)| host)
                    .to_owned();
                Ok(Self::Quic {
                    addr,
                    host,
                    pin: pin.map(str::to_owned),
                })
            }
            _ => bail!("{url}: only ws:// and quic:// URLs are supported"),
        }
    }
}

/// One quinn endpoint (one UDP socket) for every QUIC client of a process,
/// with a client configuration per certificate pin.
pub struct QuicDialer {
    endpoint: quinn::Endpoint,
    configs: Mutex<HashMap<Option<String>, quinn::ClientConfig>>,
}

impl QuicDialer {
    /// Bind the UDP socket to `source` (any port), with receive and send
    /// buffers of [`UDP_BUFFER_BYTES`] (as far as `net.core.rmem_max` /
    /// `wmem_max` allow): a deliveries burst to thousands of connections
    /// arrives on this one socket. Must run inside a Tokio runtime.
    pub fn bind(source: Ipv4Addr) -> anyhow::Result<Self> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(source.into(), 0))
            .with_context(|| format!("cannot open a UDP socket on {source}"))?;
        let state = quinn::udp::UdpSocketState::new((&socket).into())
            .context("cannot set up the UDP socket")?;
        // Best effort: the kernel caps these at its maxima.
        let _ = state.set_recv_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
        let _ = state.set_send_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .with_context(|| format!("cannot open a QUIC endpoint on {source}"))?;
        Ok(Self {
            endpoint,
            configs: Mutex::new(HashMap::new()),
        })
    }

    fn config(&self, pin: Option<&str>) -> anyhow::Result<quinn::ClientConfig> {
        let key = pin.map(str::to_owned);
        let mut configs = self
            .configs
            .lock()
            .map_err(|_| anyhow::anyhow!("QUIC config cache poisoned"))?;
        if let Some(config) = configs.get(&key) {
            return Ok(config.clone());
        }
        let config = quic_client_config(pin)?;
        configs.insert(key, config.clone());
        Ok(config)
    }

    /// Connect and open the stream (the server sees it with the first frame).
    async fn connect(
        &self,
        addr: SocketAddr,
        host: &str,
        pin: Option<&str>,
    ) -> anyhow::Result<QuicConn> {
        let config = self.config(pin)?;
        let connection = self
            .endpoint
            .connect_with(config, addr, host)
            .with_context(|| format!("QUIC connect to {addr}"))?
            .await
            .with_context(|| format!("QUIC handshake with {addr}"))?;
        let (send, recv) = connection
            .open_bi()
            .await
            .context("cannot open the QUIC stream")?;
        let codec = || {
            LengthDelimitedCodec::builder()
                .max_frame_length(MAX_QUIC_FRAME)
                .new_codec()
        };
        Ok(QuicConn {
            connection,
            send: FramedWrite::new(send, codec()),
            recv: FramedRead::new(recv, codec()),
        })
    }
}

/// quinn client settings: TLS 1.3 (ring), the SDK's pinning verifier, ALPN
/// `roomcast/1`, no idle timeout of our own (the clients ping), small windows.
fn quic_client_config(pin: Option<&str>) -> anyhow::Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(
        roomcast_client::quic::PinnedCertVerifier::new(pin)
            .context("bad --quic-cert-sha256 pin")?,
    );
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 setup")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![proto::QUIC_ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).context("QUIC TLS setup")?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(None)
        .max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(QUIC_STREAM_WINDOW.into())
        .receive_window(QUIC_CONN_WINDOW.into());
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A QUIC connection and its one bidirectional stream.
pub struct QuicConn {
    connection: quinn::Connection,
    send: FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
    recv: FramedRead<quinn::RecvStream, LengthDelimitedCodec>,
}

/// A client's long connection.
pub enum Conn {
    /// WebSocket, binary protobuf messages.
    Ws(Box<Ws>),
    /// QUIC, length-delimited protobuf frames.
    Quic(Box<QuicConn>),
}

/// What [`Conn::recv`] read.
pub enum Incoming {
    /// A server frame.
    Frame(ServerFrame),
    /// Something that is not a frame (WebSocket control or text, undecodable bytes).
    Skip,
    /// The connection is over (why).
    Closed(String),
}

/// Open a long connection from `source` (WebSocket: the TCP socket is bound
/// to it; QUIC: the dialer's socket already is).
pub async fn connect(
    endpoint: &Endpoint,
    source: Ipv4Addr,
    quic: Option<&QuicDialer>,
) -> anyhow::Result<Conn> {
    match endpoint {
        Endpoint::Ws { url, addr } => {
            Ok(Conn::Ws(Box::new(ws::connect(url, *addr, source).await?)))
        }
        Endpoint::Quic { addr, host, pin } => {
            let dialer = quic.context("no QUIC endpoint in this process")?;
            Ok(Conn::Quic(Box::new(
                dialer.connect(*addr, host, pin.as_deref()).await?,
            )))
        }
    }
}

fn encode(frame: client_frame::Frame) -> Bytes {
    ClientFrame { frame: Some(frame) }.encode_to_vec().into()
}

impl Conn {
    /// Send one frame and flush.
    pub async fn send(&mut self, frame: client_frame::Frame) -> anyhow::Result<()> {
        match self {
            Self::Ws(ws) => ws.send(Message::Binary(encode(frame))).await?,
            Self::Quic(q) => q.send.send(encode(frame)).await?,
        }
        Ok(())
    }

    /// Queue one frame without flushing (the next [`send`](Self::send) flushes both).
    pub async fn feed(&mut self, frame: client_frame::Frame) -> anyhow::Result<()> {
        match self {
            Self::Ws(ws) => ws.feed(Message::Binary(encode(frame))).await?,
            Self::Quic(q) => q.send.feed(encode(frame)).await?,
        }
        Ok(())
    }

    /// The next thing the server sent. Cancel safe.
    pub async fn recv(&mut self) -> Incoming {
        match self {
            Self::Ws(ws) => match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    ServerFrame::decode(bytes).map_or(Incoming::Skip, Incoming::Frame)
                }
                Some(Ok(Message::Close(frame))) => Incoming::Closed(frame.map_or_else(
                    || "closed by the server".to_owned(),
                    |f| format!("closed by the server: {} {}", f.code, f.reason),
                )),
                Some(Ok(_)) => Incoming::Skip,
                Some(Err(error)) => Incoming::Closed(error.to_string()),
                None => Incoming::Closed("closed by the server".to_owned()),
            },
            Self::Quic(q) => match q.recv.next().await {
                Some(Ok(bytes)) => {
                    ServerFrame::decode(bytes.freeze()).map_or(Incoming::Skip, Incoming::Frame)
                }
                Some(Err(error)) => Incoming::Closed(match q.connection.close_reason() {
                    Some(reason) => format!("closed by the server: {reason}"),
                    None => format!("QUIC stream: {error}"),
                }),
                None => Incoming::Closed(match q.connection.close_reason() {
                    Some(reason) => format!("closed by the server: {reason}"),
                    None => "closed by the server (stream finished)".to_owned(),
                }),
            },
        }
    }

    /// Close politely (WebSocket close frame; QUIC stream finish + close 1000).
    pub async fn close(self) {
        match self {
            Self::Ws(mut ws) => {
                let _ = Ws::close(&mut ws, None).await;
            }
            Self::Quic(mut q) => {
                let _ = SinkExt::<Bytes>::close(&mut q.send).await;
                q.connection.close(NORMAL_CLOSE.into(), b"");
            }
        }
    }
}

impl Drop for QuicConn {
    /// Dropped without [`Conn::close`] (a churner that just goes away): the
    /// server still learns at once, like a closed TCP socket.
    fn drop(&mut self) {
        if self.connection.close_reason().is_none() {
            self.connection.close(NORMAL_CLOSE.into(), b"");
        }
    }
}
