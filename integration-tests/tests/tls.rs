//! TLS at the public edges: `https://` router and polling, `wss://` and QUIC with a
//! configured certificate from a test CA, the SDK trusting a CA file (and refusing
//! without it), plain requests to a TLS port, certificate reload without restart,
//! advertised public URLs, and QUIC Retry.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use common::discovery::ServiceKind;
use common::tls::TlsFiles;
use integration_tests::{Cluster, PATIENCE, assert_seqs, collect};
use roomcast_client::{ConnectOptions, RawConnection, RawQuicConnection, TlsTrust, Transport};
use test_servers::TestCa;
use tokio::time::Instant;

/// Every public listener of the cluster serves `issued` (re-read every 50 ms).
fn serve_tls(cfg: &mut roomcast::standalone::StandaloneConfig, files: &TlsFiles) {
    cfg.conn.tls = files.clone();
    cfg.router.tls = files.clone();
    cfg.biz.tls = files.clone();
}

fn files_of(issued: &test_servers::IssuedCert) -> TlsFiles {
    TlsFiles {
        cert: Some(issued.cert_path.display().to_string()),
        key: Some(issued.key_path.display().to_string()),
        reload_interval_ms: 50,
    }
}

async fn tls_cluster(ca: &TestCa) -> anyhow::Result<Cluster> {
    let issued = ca.issue("edge", &["localhost", "127.0.0.1"])?;
    let files = files_of(&issued);
    Cluster::start_with(|cfg| serve_tls(cfg, &files)).await
}

fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_speaks_wss_https_and_quic_with_the_ca_file_and_refuses_without_it()
-> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let cluster = tls_cluster(&ca).await?;
    assert!(
        cluster.sys.router_url.starts_with("https://"),
        "{}",
        cluster.sys.router_url
    );
    // What the nodes advertise: TLS schemes, and no pin for a configured certificate.
    let conns = cluster.sys.discovery.watch(ServiceKind::Conn);
    let conn = conns.borrow().first().cloned().context("a conn node")?;
    let ws_url = conn.endpoints.get("ws").cloned().context("ws endpoint")?;
    assert!(ws_url.starts_with("wss://"), "{ws_url}");
    assert!(conn.endpoints.contains_key("quic"));
    assert!(!conn.endpoints.contains_key("quic_cert_sha256"), "no pin");
    let bizs = cluster.sys.discovery.watch(ServiceKind::Biz);
    let biz_url = bizs
        .borrow()
        .first()
        .and_then(|b| b.endpoints.get("http").cloned());
    assert!(biz_url.is_some_and(|u| u.starts_with("https://")));

    let room = cluster.create_room("tls").await?;
    // WebSocket over TLS, routed over HTTPS.
    let opts = ConnectOptions::new(cluster.sys.router_url.clone(), cluster.token("w1"))
        .uid("w1")
        .transports([Transport::Ws])
        .ca_file(ca.ca_path());
    let (ws_client, mut ws_events) = roomcast_client::Client::connect(opts).await?;
    assert_eq!(ws_client.transport(), Transport::Ws);
    ws_client.join(room.as_str()).await?;
    // QUIC with the configured certificate, verified against the CA (no pin).
    let opts = ConnectOptions::new(cluster.sys.router_url.clone(), cluster.token("q1"))
        .uid("q1")
        .transports([Transport::Quic])
        .ca_file(ca.ca_path());
    let (quic_client, mut quic_events) = roomcast_client::Client::connect(opts).await?;
    assert_eq!(quic_client.transport(), Transport::Quic);
    quic_client.join(room.as_str()).await?;
    // Long polling over HTTPS (no long transport allowed).
    let mut opts = ConnectOptions::new(cluster.sys.router_url.clone(), cluster.token("p1"))
        .uid("p1")
        .transports(Vec::new())
        .ca_file(ca.ca_path());
    opts.polling_wait = Duration::from_secs(2);
    let (poll_client, mut poll_events) = roomcast_client::Client::connect(opts).await?;
    assert_eq!(poll_client.transport(), Transport::Polling);
    poll_client.join(room.as_str()).await?;

    for i in 1..=5 {
        cluster.publish(&room, &format!("m{i}")).await?;
    }
    assert_seqs(&collect(&mut ws_events, &room, 5).await?, 1, 5);
    assert_seqs(&collect(&mut quic_events, &room, 5).await?, 1, 5);
    assert_seqs(&collect(&mut poll_events, &room, 5).await?, 1, 5);
    // An action over HTTPS polling.
    let reply = poll_client.comment(room.as_str(), "over https").await?;
    assert_eq!(reply.code, roomcast_client::Code::Ok);

    // Without the CA file the certificate is refused, and the error says so.
    let opts = ConnectOptions::new(cluster.sys.router_url.clone(), cluster.token("x1")).uid("x1");
    let error = roomcast_client::Client::connect(opts)
        .await
        .err()
        .context("an untrusted certificate was accepted")?;
    let text = error.to_string();
    assert!(text.contains("certificate"), "{text}");
    // The same for a raw WebSocket, and for QUIC without a pin.
    let error = RawConnection::connect(&ws_url, None)
        .await
        .err()
        .context("wss without the CA")?;
    assert!(error.to_string().contains("certificate"), "{error}");
    let quic_url = cluster.sys.quic_url.clone().context("QUIC is on")?;
    let error = RawQuicConnection::connect(&quic_url, None)
        .await
        .err()
        .context("QUIC without the CA")?;
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    // With it, a raw QUIC connection says hello.
    let trust = TlsTrust::from_ca_file(ca.ca_path())?;
    let mut raw = RawQuicConnection::connect_with(&quic_url, None, &trust).await?;
    raw.hello(&cluster.token("q2"), PATIENCE).await?;

    // Plain ws:// to the TLS port fails cleanly and fast, and is counted.
    let plain = format!("ws://{}/v1/ws", host_port(&ws_url));
    let started = Instant::now();
    let error = RawConnection::connect(&plain, None)
        .await
        .err()
        .context("plain WebSocket on the TLS port")?;
    assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    cluster
        .wait_metric(
            r#"roomcast_http_connections_dropped_total{listener="conn_ws",reason="tls_handshake"}"#,
            1.0,
        )
        .await?;
    // The listener still serves TLS clients after it.
    RawConnection::connect_with(&ws_url, None, &trust)
        .await?
        .hello(&cluster.token("w2"), PATIENCE)
        .await?;
    cluster.stop().await
}

/// The leaf certificate a TLS server at `addr` presents, trusting `ca`.
async fn served_certificate(addr: &str, ca: &TestCa) -> anyhow::Result<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in common::tls::read_chain(ca.ca_path())? {
        roots.add(cert)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(common::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let tls = connector.connect(name, tcp).await?;
    let (_, session) = tls.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .context("no certificate")?;
    Ok(leaf.as_ref().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_files_are_served_without_a_restart() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let first = ca.issue("edge", &["localhost", "127.0.0.1"])?;
    let files = files_of(&first);
    let cluster = Cluster::start_with(|cfg| {
        serve_tls(cfg, &files);
        cfg.biz.backend_tls = true;
    })
    .await?;
    let ws = host_port(&cluster.sys.ws_url);
    let router = host_port(&cluster.sys.router_url);
    let polling = host_port(&cluster.sys.biz_url);
    assert!(cluster.sys.backend_url.starts_with("https://"));
    let backend = host_port(&cluster.sys.backend_url);
    for addr in [&ws, &router, &polling, &backend] {
        assert_eq!(
            served_certificate(addr, &ca).await?,
            first.cert_der,
            "{addr}"
        );
    }

    // A session opened before the renewal keeps working across it.
    let trust = TlsTrust::from_ca_file(ca.ca_path())?;
    let mut before = RawConnection::connect_with(&cluster.sys.ws_url, None, &trust).await?;
    before.hello(&cluster.token("early"), PATIENCE).await?;

    let renewed = ca.issue("edge", &["localhost", "127.0.0.1"])?;
    assert_ne!(renewed.cert_der, first.cert_der);
    let deadline = Instant::now() + PATIENCE;
    for addr in [&ws, &router, &polling, &backend] {
        while served_certificate(addr, &ca).await? != renewed.cert_der {
            if Instant::now() > deadline {
                bail!("{addr} still serves the old certificate");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let ping = proto::client::v1::ClientFrame {
        frame: Some(proto::client::v1::client_frame::Frame::Ping(
            proto::client::v1::Ping::default(),
        )),
    };
    before.send_frame(&ping).await?;
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_behind_a_tls_load_balancer_advertise_their_public_urls() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        cfg.conn.public_ws_url = Some("wss://lb.example/conn-1/v1/ws".into());
        cfg.biz.public_http_url = Some("https://lb.example/biz-1".into());
    })
    .await?;
    let url = format!("{}/v1/route?uid=alice&device_id=d", cluster.sys.router_url);
    let route: serde_json::Value = reqwest::get(url).await?.json().await?;
    let ws = route["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["transport"] == "ws"))
        .context("a ws endpoint")?;
    assert_eq!(ws["url"], "wss://lb.example/conn-1/v1/ws", "{route}");
    assert_eq!(
        route["polling_url"], "https://lb.example/biz-1/v1/rooms",
        "{route}"
    );
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_clients_answer_a_retry_under_a_handshake_flood() -> anyhow::Result<()> {
    // Threshold 0: every handshake counts as a flood, so each client is sent a
    // stateless Retry first and must come back with its token.
    let cluster = Cluster::start_with(|cfg| cfg.conn.quic_retry_above = 0).await?;
    let url = cluster.sys.quic_url.clone().context("QUIC is on")?;
    let pin = cluster
        .sys
        .quic_cert_sha256
        .clone()
        .context("development pin")?;
    for uid in ["r1", "r2", "r3"] {
        let mut raw = RawQuicConnection::connect(&url, Some(&pin)).await?;
        raw.hello(&cluster.token(uid), PATIENCE).await?;
    }
    let retries = cluster
        .wait_metric("roomcast_conn_quic_retries_total", 3.0)
        .await?;
    assert!(retries >= 3.0, "{retries}");
    cluster.stop().await
}
