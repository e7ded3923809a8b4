//! The QUIC transport: connect (ALPN `roomcast/1`, TLS 1.3), check the server certificate
//! against a pin or the webpki roots, and carry frames on one bidirectional stream, each
//! as a 4-byte big-endian length + protobuf bytes.
//!
//! Development conn nodes use self-signed certificates, so the main path is a pin: the
//! hex SHA-256 of the server's DER certificate, from [`ConnectOptions::quic_cert_sha256`]
//! or the router. A certificate that chains to the Mozilla roots is accepted too, so a
//! production node with a real certificate needs no pin.
//!
//! [`ConnectOptions::quic_cert_sha256`]: crate::ConnectOptions::quic_cert_sha256

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::time;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::debug;

use crate::close::{ABNORMAL_CLOSE, NORMAL_CLOSE};
use crate::error::Error;
use crate::tls::TlsTrust;

/// How long a graceful close (or reading the close reason after the stream ended) waits.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The hex SHA-256 of a DER certificate: the form pins take (lowercase, no separators).
pub fn cert_sha256(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Parse a pin: 64 hex digits, colons and spaces ignored (`openssl x509 -fingerprint`
/// prints `AB:CD:...`).
pub fn parse_pin(pin: &str) -> Result<[u8; 32], Error> {
    let digits: String = pin
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&digits, &mut out).map_err(|e| {
        Error::Quic(format!(
            "bad certificate pin {pin:?} (want the hex SHA-256 of the DER certificate): {e}"
        ))
    })?;
    Ok(out)
}

/// Accepts a server certificate whose SHA-256 equals the pin, or one that verifies against
/// the webpki roots. Handshake signatures are always checked against the certificate's
/// key, so a pinned certificate still proves the server holds its private key.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    pin: Option<[u8; 32]>,
    roots: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertVerifier {
    /// A verifier for `pin` (hex, see [`parse_pin`]), falling back to the webpki roots.
    pub fn new(pin: Option<&str>) -> Result<Self, Error> {
        Self::with_trust(pin, &TlsTrust::webpki())
    }

    /// A verifier for `pin`, falling back to the roots of `trust`.
    pub fn with_trust(pin: Option<&str>, trust: &TlsTrust) -> Result<Self, Error> {
        let pin = pin.map(parse_pin).transpose()?;
        let provider = crate::tls::provider();
        let roots = WebPkiServerVerifier::builder_with_provider(trust.roots(), provider.clone())
            .build()
            // Only fails with an empty root store; then only the pin can succeed.
            .inspect_err(|e| debug!(error = %e, "No webpki roots; only pins can verify."))
            .ok();
        Ok(Self {
            pin,
            roots,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = &self.pin {
            let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
            if &digest == pin {
                return Ok(ServerCertVerified::assertion());
            }
            debug!(
                got = %hex::encode(digest),
                want = %hex::encode(pin),
                "QUIC server certificate does not match the pin; trying the webpki roots."
            );
        }
        match &self.roots {
            Some(roots) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The quinn client configuration: TLS 1.3 with ring, our verifier, ALPN `roomcast/1`.
fn client_config(pin: Option<&str>, trust: &TlsTrust) -> Result<quinn::ClientConfig, Error> {
    let provider: Arc<CryptoProvider> = crate::tls::provider();
    let verifier = Arc::new(PinnedCertVerifier::with_trust(pin, trust)?);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Quic(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![proto::QUIC_ALPN.to_vec()];
    let crypto =
        QuicClientConfig::try_from(tls).map_err(|e| Error::Quic(format!("TLS setup: {e}")))?;
    let mut transport = quinn::TransportConfig::default();
    // Liveness is the session's own heartbeat (pings every heartbeat/2, dead after three
    // silent ticks). quinn's default 30 s idle timeout would cut a healthy session whose
    // server announces a long heartbeat, so leave the idle timeout to the server, which
    // derives it from that heartbeat. Connect attempts are bounded by `connect_timeout`.
    transport.max_idle_timeout(None);
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// `quic://host:port` (or a bare `host:port`) → host and port.
pub(crate) fn parse_url(url: &str) -> Result<(String, u16), Error> {
    let bad = |why: &str| Error::Quic(format!("bad QUIC endpoint {url:?}: {why}"));
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("quic://{url}")
    };
    let parsed = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != proto::transport::QUIC {
        return Err(bad("the scheme must be quic://"));
    }
    // IPv6 hosts come bracketed (`[::1]`); resolving and SNI want them bare.
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port().ok_or_else(|| bad("no port"))?;
    Ok((host, port))
}

/// What [`QuicStream::recv`] read.
#[derive(Debug)]
pub(crate) enum QuicRead {
    /// One length-delimited frame.
    Frame(Bytes),
    /// The connection is over: the application close code and reason, or 1006.
    Closed { code: u16, reason: String },
}

/// One QUIC connection and its single bidirectional stream.
#[derive(Debug)]
pub(crate) struct QuicStream {
    /// Kept so the UDP socket lives as long as the connection and a close can be flushed.
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    send: FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
    recv: FramedRead<quinn::RecvStream, LengthDelimitedCodec>,
}

impl QuicStream {
    /// Connect to `url` (`quic://host:port`) and open the stream. No frame is sent yet;
    /// the server sees the stream with the first frame (the hello).
    pub(crate) async fn connect(
        url: &str,
        pin: Option<&str>,
        trust: &TlsTrust,
    ) -> Result<Self, Error> {
        let (host, port) = parse_url(url)?;
        let config = client_config(pin, trust)?;
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Error::Quic(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| Error::Quic(format!("{host} resolves to no address")))?;
        let bind: SocketAddr = if addr.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| Error::Quic(format!("cannot open a UDP socket: {e}")))?;
        endpoint.set_default_client_config(config);
        let connection = endpoint
            .connect(addr, &host)
            .map_err(|e| Error::Quic(format!("cannot connect to {url}: {e}")))?
            .await
            .map_err(|e| Error::Quic(format!("cannot connect to {url}: {e}")))?;
        let (send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| Error::Quic(format!("cannot open a stream on {url}: {e}")))?;
        Ok(Self {
            endpoint,
            connection,
            send: FramedWrite::new(send, LengthDelimitedCodec::new()),
            recv: FramedRead::new(recv, LengthDelimitedCodec::new()),
        })
    }

    /// Send one frame (length prefix + bytes).
    pub(crate) async fn send(&mut self, bytes: Bytes) -> Result<(), Error> {
        self.send
            .send(bytes)
            .await
            .map_err(|e| Error::Quic(format!("send failed: {e}")))
    }

    /// Write bytes on the stream as they are, without a length prefix (tests of the
    /// server's framing limits).
    pub(crate) async fn send_unframed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.send
            .get_mut()
            .write_all(bytes)
            .await
            .map_err(|e| Error::Quic(format!("send failed: {e}")))
    }

    /// The next frame, or how the connection ended. Cancel safe.
    pub(crate) async fn recv(&mut self) -> Result<QuicRead, Error> {
        match self.recv.next().await {
            Some(Ok(bytes)) => Ok(QuicRead::Frame(bytes.freeze())),
            Some(Err(e)) => {
                if self.connection.close_reason().is_none()
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    // The codec refused the length prefix: the stream is unusable.
                    return Err(Error::Protocol(format!("bad QUIC frame: {e}")));
                }
                Ok(self.close_reason().await)
            }
            // The server finishes its stream, then closes the connection a moment later
            // with the close code: wait for it rather than report a bare 1006.
            None => Ok(self.close_reason().await),
        }
    }

    async fn close_reason(&self) -> QuicRead {
        match time::timeout(CLOSE_GRACE, self.connection.closed()).await {
            Ok(quinn::ConnectionError::ApplicationClosed(close)) => QuicRead::Closed {
                code: u16::try_from(close.error_code.into_inner()).unwrap_or(ABNORMAL_CLOSE),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            Ok(error) => QuicRead::Closed {
                code: ABNORMAL_CLOSE,
                reason: error.to_string(),
            },
            Err(_) => QuicRead::Closed {
                code: ABNORMAL_CLOSE,
                reason: "stream ended".into(),
            },
        }
    }

    /// Finish the stream, close with 1000 and give the close a moment to leave.
    pub(crate) async fn close(&mut self) {
        let graceful = async {
            let _ = futures::SinkExt::<Bytes>::close(&mut self.send).await;
            self.connection
                .close(quinn::VarInt::from_u32(u32::from(NORMAL_CLOSE)), b"");
            self.endpoint.wait_idle().await;
        };
        let _ = time::timeout(CLOSE_GRACE, graceful).await;
    }

    /// The underlying connection.
    pub(crate) fn connection(&self) -> &quinn::Connection {
        &self.connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(names: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("a certificate");
        certified.cert.der().clone()
    }

    fn verify(verifier: &PinnedCertVerifier, cert: &CertificateDer<'_>) -> bool {
        let name = ServerName::try_from("localhost").expect("a name");
        verifier
            .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn the_pinned_certificate_is_accepted_and_others_refused() {
        let cert = der(&["localhost"]);
        let other = der(&["localhost"]);
        let pin = cert_sha256(cert.as_ref());
        let verifier = PinnedCertVerifier::new(Some(&pin)).expect("verifier");
        assert!(verify(&verifier, &cert));
        assert!(!verify(&verifier, &other), "a different certificate");
        // Without a pin a self-signed certificate does not chain to the roots.
        let unpinned = PinnedCertVerifier::new(None).expect("verifier");
        assert!(!verify(&unpinned, &cert));
    }

    #[test]
    fn pins_accept_colons_and_case_and_refuse_garbage() {
        let cert = der(&["localhost"]);
        let pin = cert_sha256(cert.as_ref());
        let openssl_style = pin
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        let verifier = PinnedCertVerifier::new(Some(&openssl_style)).expect("verifier");
        assert!(verify(&verifier, &cert));
        assert!(matches!(parse_pin("abc"), Err(Error::Quic(_))));
        assert!(matches!(parse_pin(&"zz".repeat(32)), Err(Error::Quic(_))));
        assert!(matches!(parse_pin(&"00".repeat(33)), Err(Error::Quic(_))));
    }

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            parse_url("quic://127.0.0.1:8604").expect("ok"),
            ("127.0.0.1".to_owned(), 8604)
        );
        assert_eq!(
            parse_url("127.0.0.1:8604").expect("ok"),
            ("127.0.0.1".to_owned(), 8604)
        );
        assert_eq!(
            parse_url("quic://[::1]:9").expect("ok"),
            ("::1".to_owned(), 9)
        );
        assert_eq!(
            parse_url("quic://conn-1.example:443").expect("ok"),
            ("conn-1.example".to_owned(), 443)
        );
        assert!(parse_url("quic://127.0.0.1").is_err());
        assert!(parse_url("ws://127.0.0.1:1/v1/ws").is_err());
    }
}
