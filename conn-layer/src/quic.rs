//! QUIC transport: the client protocol as length-delimited protobuf frames on
//! one bidirectional stream per connection (ALPN `roomcast/1`, TLS 1.3 always).
//!
//! The certificate is the node's configured one (`tls`, the WebSocket
//! listener's, reloaded with it), verified by clients like any other; or,
//! without one (standalone, development), a self-signed one generated at
//! start whose SHA-256 fingerprint is advertised in discovery
//! (`endpoints["quic_cert_sha256"]`) so SDKs can pin it.
//!
//! Under a handshake flood (more than `quic_retry_above` in progress) new
//! clients get a stateless Retry and must come back with its token.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use futures::{Sink, StreamExt as _};
use quinn::crypto::rustls::QuicServerConfig;
use sha2::{Digest as _, Sha256};
use tokio_util::codec::{Decoder, FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::codec::{Message, Wire};
use crate::config::Config;
use crate::error::Error;
use crate::session::ReadError;

/// Largest server frame (a history replay chunk of large messages).
const MAX_SERVER_FRAME: usize = 64 * 1024 * 1024;
/// How long a closing connection waits before it is torn down, so the final
/// error frame reaches the client first.
const CLOSE_LINGER: Duration = Duration::from_millis(200);

/// A TLS configuration for the QUIC listener, and the fingerprint clients
/// pin when the certificate is a development one.
pub(crate) struct QuicTls {
    pub(crate) server: quinn::ServerConfig,
    pub(crate) cert_sha256: Option<String>,
}

/// Serve the node's configured certificate (`tls`, reloaded with the
/// WebSocket listener's), or generate a self-signed development one.
pub(crate) fn tls(cfg: &Config, tls: Option<&common::tls::ServerTls>) -> Result<QuicTls, Error> {
    let alpn = vec![proto::QUIC_ALPN.to_vec()];
    let (crypto, cert_sha256) = match tls {
        Some(tls) => (
            tls.rustls_config(alpn, true)
                .map_err(|e| Error::Tls(e.to_string()))?,
            None,
        ),
        None => {
            let (crypto, fingerprint) = development_config(cfg, alpn)?;
            (crypto, Some(fingerprint))
        }
    };
    let crypto = QuicServerConfig::try_from(crypto).map_err(|e| Error::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // The session enforces the heartbeat; QUIC's own idle timeout is a backstop.
    let idle = Duration::from_millis(
        cfg.heartbeat_ms
            .saturating_mul(u64::from(cfg.idle_heartbeats.max(1)) + 1),
    );
    transport.max_idle_timeout(idle.try_into().ok());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_concurrent_bidi_streams(1u32.into());
    server.transport_config(Arc::new(transport));
    Ok(QuicTls {
        server,
        cert_sha256,
    })
}

/// A self-signed certificate for `localhost` and the advertise host, made
/// fresh at every start, and the hex SHA-256 clients pin it by.
fn development_config(
    cfg: &Config,
    alpn: Vec<Vec<u8>>,
) -> Result<(rustls::ServerConfig, String), Error> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    let mut names = vec!["localhost".to_string(), cfg.advertise_host.clone()];
    names.dedup();
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Tls(format!("cannot generate a development certificate: {e}")))?;
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    let cert = generated.cert.der().clone();
    let fingerprint = hex::encode(Sha256::digest(cert.as_ref()));
    let mut crypto = rustls::ServerConfig::builder_with_provider(common::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key.into())
        .map_err(|e| Error::Tls(e.to_string()))?;
    crypto.alpn_protocols = alpn;
    Ok((crypto, fingerprint))
}

/// Receive buffer asked for the QUIC socket. The kernel default (~208 KiB)
/// overflows when hundreds of clients handshake at once, and every dropped
/// handshake datagram costs its client a ~1 s retransmit. The kernel caps it
/// at `net.core.rmem_max`.
const QUIC_RECEIVE_BUFFER: usize = 4 << 20;

/// Ask for [`QUIC_RECEIVE_BUFFER`]; say so when the kernel grants less.
pub(crate) fn size_receive_buffer(socket: &std::net::UdpSocket) {
    let granted = quinn::udp::UdpSocketState::new(socket.into()).and_then(|state| {
        state.set_recv_buffer_size(socket.into(), QUIC_RECEIVE_BUFFER)?;
        state.recv_buffer_size(socket.into())
    });
    match granted {
        // Linux reports twice what it was asked (bookkeeping overhead).
        Ok(bytes) if bytes >= QUIC_RECEIVE_BUFFER => {}
        Ok(bytes) => tracing::warn!(
            granted = bytes,
            wanted = QUIC_RECEIVE_BUFFER,
            "QUIC receive buffer is smaller than wanted; raise net.core.rmem_max for connect bursts."
        ),
        Err(error) => tracing::warn!(%error, "Cannot size the QUIC receive buffer."),
    }
}

/// Accept QUIC connections until `stop`.
pub(crate) async fn serve(ctx: Arc<Ctx>, endpoint: quinn::Endpoint, stop: CancellationToken) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = stop.cancelled() => break,
        };
        let Some(incoming) = incoming else { break };
        // Admission before the handshake: refusing costs one packet.
        if ctx.metrics.connections.get() as usize >= ctx.cfg.max_connections {
            incoming.refuse();
            continue;
        }
        // Under a handshake flood, make unvalidated clients prove their
        // address first: a Retry costs one packet and no state, and a
        // spoofed source never comes back with the token.
        if !incoming.remote_address_validated()
            && incoming.may_retry()
            && handshakes.load(Ordering::Acquire) >= ctx.cfg.quic_retry_above
        {
            ctx.metrics.quic_retries.inc();
            if let Err(error) = incoming.retry() {
                error.into_incoming().ignore();
            }
            continue;
        }
        let handshake = Handshake::new(handshakes.clone());
        let ctx2 = ctx.clone();
        ctx.tracker.spawn(async move {
            let peer = incoming.remote_address();
            if let Err(error) = accept(ctx2, incoming, peer, handshake).await {
                tracing::debug!(%peer, %error, "QUIC connection failed before its session started.");
            }
        });
    }
    endpoint.close(1001u32.into(), b"going away");
}

/// Counts a QUIC handshake in progress until dropped.
struct Handshake(Arc<AtomicUsize>);

impl Handshake {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept(
    ctx: Arc<Ctx>,
    incoming: quinn::Incoming,
    peer: SocketAddr,
    handshake: Handshake,
) -> Result<(), String> {
    let hello_timeout = Duration::from_millis(ctx.cfg.hello_timeout_ms);
    let connection = tokio::time::timeout(hello_timeout, incoming)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    drop(handshake);
    let (send, recv) = tokio::time::timeout(hello_timeout, connection.accept_bi())
        .await
        .map_err(|_| "no stream opened in time".to_string())?
        .map_err(|e| e.to_string())?;
    // Client frames are capped; server frames (history replays) may be large.
    let read_codec = ClientFrames {
        max: ctx.cfg.max_frame_bytes,
    };
    let write_codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_SERVER_FRAME)
        .new_codec();
    let stream = FramedRead::new(recv, read_codec).map(|frame| match frame {
        Ok(bytes) => Ok(Message::Binary(bytes)),
        Err(ClientFrameError::TooLarge(size)) => Err(ReadError::TooLarge(size)),
        Err(ClientFrameError::Io(e)) => Err(ReadError::Transport(e.to_string())),
    });
    let sink = QuicSink {
        framed: FramedWrite::new(send, write_codec),
        connection,
        closing: None,
    };
    crate::session::serve(ctx, sink, stream, Wire::Protobuf, peer).await;
    Ok(())
}

/// Client frames: a 4-byte big-endian length, then that many bytes. A length
/// over the limit is refused as it is read, with the size it claims, so no
/// byte of such a frame is buffered (the session answers TOO_LARGE + 1009).
struct ClientFrames {
    max: usize,
}

#[derive(Debug, thiserror::Error)]
enum ClientFrameError {
    #[error("frame of {0} bytes over the limit")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Bytes of the length prefix.
const LENGTH_PREFIX: usize = 4;

impl Decoder for ClientFrames {
    type Item = Bytes;
    type Error = ClientFrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, ClientFrameError> {
        let Some(prefix) = src.first_chunk::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix);
        if u64::from(len) > self.max as u64 {
            return Err(ClientFrameError::TooLarge(u64::from(len)));
        }
        let len = len as usize;
        if src.len() < LENGTH_PREFIX + len {
            src.reserve(LENGTH_PREFIX + len - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        Ok(Some(src.split_to(len).freeze()))
    }
}

/// Writes session messages as length-delimited frames; a close message ends
/// the stream and closes the connection with the WebSocket close code.
struct QuicSink {
    framed: FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
    connection: quinn::Connection,
    /// Set by a close message; applied once everything before it is flushed.
    closing: Option<(u16, String)>,
}

impl Sink<Message> for QuicSink {
    type Error = std::io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Sink::<Bytes>::poll_ready(Pin::new(&mut self.framed), cx)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
        match message {
            Message::Binary(bytes) => Pin::new(&mut self.framed).start_send(bytes),
            Message::Text(text) => {
                Pin::new(&mut self.framed).start_send(Bytes::copy_from_slice(text.as_bytes()))
            }
            Message::Close(frame) => {
                self.closing = Some(
                    frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1000, String::new())),
                );
                Ok(())
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(Sink::<Bytes>::poll_flush(Pin::new(&mut self.framed), cx))?;
        if let Some((code, reason)) = self.closing.take() {
            // End the stream after the frames already written, then close the
            // connection a moment later so they arrive before the close.
            let _ = self.framed.get_mut().finish();
            let connection = self.connection.clone();
            tokio::spawn(async move {
                tokio::time::sleep(CLOSE_LINGER).await;
                connection.close(u32::from(code).into(), reason.as_bytes());
            });
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Sink::<Bytes>::poll_close(Pin::new(&mut self.framed), cx)
    }
}

impl crate::session::Outgoing for QuicSink {
    type Failure = std::io::Error;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_within_the_limit_decode_and_larger_ones_are_refused_unread() {
        let mut codec = ClientFrames { max: 8 };
        let mut src = BytesMut::from(&[0, 0, 0, 3, b'a', b'b'][..]);
        assert!(matches!(codec.decode(&mut src), Ok(None)));
        src.extend_from_slice(b"c");
        assert!(matches!(codec.decode(&mut src), Ok(Some(b)) if &b[..] == b"abc"));
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut huge),
            Err(ClientFrameError::TooLarge(n)) if n == u64::from(u32::MAX)
        ));
        assert!(huge.capacity() < 1024, "nothing reserved for it");
    }
}
