//! An HTTP listener serving TLS: requests over HTTPS, a plain request refused, a
//! silent socket cut at the head deadline, and handshakes counted in the
//! connection cap (a real client evicts a silent one).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::http::{HttpLimits, serve_http_tls};
use common::tls::{ServerTls, TlsFiles};
use test_servers::TestCa;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Server {
    addr: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(ca: &TestCa, limits: HttpLimits) -> Result<Server, Box<dyn std::error::Error>> {
    let issued = ca.issue("https", &["localhost"])?;
    let files = TlsFiles {
        cert: Some(issued.cert_path.display().to_string()),
        key: Some(issued.key_path.display().to_string()),
        ..TlsFiles::default()
    };
    let tls = ServerTls::start(&files)?.ok_or("TLS is on")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let app = Router::new().route("/hello", get(|| async { "hello over tls" }));
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve_http_tls(
        listener,
        app,
        "https_test",
        &limits,
        Some(tls),
        &prometheus::Registry::new(),
        stop.clone(),
    ));
    Ok(Server { addr, stop, task })
}

/// `GET /hello` over TLS trusting `ca`; the response text.
async fn get_hello(addr: &str, ca: &TestCa) -> Result<String, Box<dyn std::error::Error>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in common::tls::read_chain(ca.ca_path())? {
        roots.add(cert)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(common::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut tls = connector.connect(name, tcp).await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// Read until the server closes `socket`; what it sent.
async fn read_until_closed(socket: &mut TcpStream, within: Duration) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {within:?}")),
            Ok(Ok(0) | Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn https_serves_and_plain_http_gets_no_answer() -> TestResult {
    let ca = TestCa::new()?;
    let server = serve(&ca, HttpLimits::default()).await?;
    let response = get_hello(&server.addr, &ca).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello over tls"), "{response}");

    // Plain HTTP to the TLS port: no HTTP answer, closed at once.
    let mut plain = TcpStream::connect(&server.addr).await?;
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let started = Instant::now();
    let answer = read_until_closed(&mut plain, Duration::from_secs(5)).await?;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a plain answer on a TLS port"
    );
    server.stop.cancel();
    server.task.await??;
    Ok(())
}

#[tokio::test]
async fn a_silent_handshake_is_cut_at_the_deadline_and_counts_in_the_cap() -> TestResult {
    let ca = TestCa::new()?;
    let limits = HttpLimits {
        header_read_timeout_ms: 500,
        max_connections: 2,
    };
    let server = serve(&ca, limits).await?;
    // Two sockets that never start their handshake fill the listener...
    let mut silent = vec![
        TcpStream::connect(&server.addr).await?,
        TcpStream::connect(&server.addr).await?,
    ];
    // ... and a real client still gets in: the oldest silent one makes room.
    let response = get_hello(&server.addr, &ca).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let started = Instant::now();
    for socket in &mut silent {
        read_until_closed(socket, Duration::from_secs(5)).await?;
    }
    // Evicted at once or cut at the 500 ms deadline, never left open.
    assert!(started.elapsed() < Duration::from_secs(3));

    // A lone silent socket lives until the deadline, not forever.
    let mut lone = TcpStream::connect(&server.addr).await?;
    let opened = Instant::now();
    read_until_closed(&mut lone, Duration::from_secs(5)).await?;
    assert!(
        opened.elapsed() >= Duration::from_millis(300),
        "cut before the deadline"
    );
    server.stop.cancel();
    server.task.await??;
    Ok(())
}
