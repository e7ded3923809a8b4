//! Every HTTP listener (conn WebSocket, room API, router, router admin,
//! metrics) closes sockets that never finish a request head, and counts them
//! against its connection cap without locking real clients out.
//!
//! One test in this file: the `roomcast_http_connections` gauge is per
//! process, and this test reads it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use common::http::HttpLimits;
use integration_tests::Cluster;
use roomcast::standalone::StandaloneConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

const SHORT_TIMEOUT_MS: u64 = 600;
const CAP: usize = 6;

fn limit_every_listener(cfg: &mut StandaloneConfig, limits: &HttpLimits) {
    cfg.conn.http = limits.clone();
    cfg.biz.http = limits.clone();
    cfg.router.http = limits.clone();
    cfg.router.admin_http = limits.clone();
    cfg.metrics_http = limits.clone();
}

/// `host:port` of each listener, with its metric label.
fn listeners(cluster: &Cluster) -> Vec<(&'static str, String)> {
    let host_port = |url: &str| {
        let rest = url.split("://").nth(1).unwrap_or(url);
        rest.split('/').next().unwrap_or(rest).to_string()
    };
    let sys = &cluster.sys;
    vec![
        ("conn_ws", host_port(&sys.ws_url)),
        ("biz_http", host_port(&sys.biz_url)),
        ("biz_backend_http", host_port(&sys.backend_url)),
        ("router_http", host_port(&sys.router_url)),
        ("router_admin", host_port(&sys.admin_url)),
        ("ops", host_port(&sys.metrics_url)),
    ]
}

/// A socket that sends nothing, or the start of a request and no more.
async fn junk(addr: &str, partial: bool) -> anyhow::Result<TcpStream> {
    let mut socket = TcpStream::connect(addr).await?;
    if partial {
        socket
            .write_all(b"GET /v1/ws HTTP/1.1\r\nHost: roomcast\r\nUpgrade: websock")
            .await?;
    }
    Ok(socket)
}

/// Wait until the server closes `socket` (EOF or reset), at most `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> anyhow::Result<()> {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => bail!("still open after {within:?}"),
            Ok(Ok(0) | Err(_)) => return Ok(()),
            // A 408 or similar before closing is fine too; read on to EOF.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_cut_unfinished_requests_and_admit_real_clients_at_the_cap() -> anyhow::Result<()>
{
    // 1. Short deadline: silent and half-sent sockets are closed after it.
    let limits = HttpLimits {
        header_read_timeout_ms: SHORT_TIMEOUT_MS,
        max_connections: 64,
    };
    let cluster = Cluster::start_with(|cfg| limit_every_listener(cfg, &limits)).await?;
    for (name, addr) in listeners(&cluster) {
        let opened = Instant::now();
        let mut sockets = Vec::new();
        for i in 0..4 {
            sockets.push(junk(&addr, i % 2 == 1).await?);
        }
        for socket in &mut sockets {
            closed_within(socket, Duration::from_millis(SHORT_TIMEOUT_MS + 5_000))
                .await
                .with_context(|| format!("{name}: an unfinished request"))?;
        }
        let took = opened.elapsed();
        assert!(
            took >= Duration::from_millis(SHORT_TIMEOUT_MS * 2 / 3),
            "{name}: closed after {took:?}, before the deadline"
        );
        // The listener still serves.
        if name == "conn_ws" {
            cluster.raw_authed("after-timeouts").await?;
        } else {
            let status = reqwest::get(format!("http://{addr}/livez")).await?.status();
            // An answer proves the listener serves: 200 on ops listeners, 401
            // from the admin listener (it wants a token), 404 from public
            // listeners (ops routes are not served there).
            assert!(
                status.is_success() || matches!(status.as_u16(), 401 | 404),
                "{name}: {status}"
            );
        }
    }
    let timeouts = cluster
        .metric(r#"roomcast_http_connections_dropped_total{listener="conn_ws",reason="header_timeout"}"#)
        .await?;
    assert!(timeouts >= 4.0, "header timeouts counted: {timeouts}");
    cluster.stop().await?;

    // 2. Long deadline, small cap: junk holds every slot, a real client still
    //    gets in (the oldest socket that sent no request head makes room).
    let limits = HttpLimits {
        header_read_timeout_ms: 60_000,
        max_connections: CAP,
    };
    let cluster = Cluster::start_with(|cfg| {
        limit_every_listener(cfg, &limits);
        // Read the gauge through a metrics listener that is not under test.
        cfg.metrics_http = HttpLimits::ops();
    })
    .await?;
    let mut held = Vec::new();
    for (name, addr) in listeners(&cluster) {
        if name == "ops" {
            continue;
        }
        let mut sockets = Vec::new();
        for i in 0..CAP {
            sockets.push(junk(&addr, i % 2 == 1).await?);
        }
        let gauge = format!(r#"roomcast_http_connections{{listener="{name}"}}"#);
        let full = cluster.wait_metric(&gauge, CAP as f64).await?;
        assert_eq!(full, CAP as f64, "{name}: every junk socket is counted");

        let admitted = async {
            if name == "conn_ws" {
                cluster.raw_authed("at-the-cap").await.map(drop)
            } else {
                let status = reqwest::get(format!("http://{addr}/livez")).await?.status();
                anyhow::ensure!(
                    status.is_success() || matches!(status.as_u16(), 401 | 404),
                    "{name}: {status}"
                );
                Ok(())
            }
        };
        tokio::time::timeout(Duration::from_secs(5), admitted)
            .await
            .with_context(|| format!("{name}: a real client waited behind junk"))??;
        // The oldest junk socket made room; the others are still held.
        closed_within(&mut sockets[0], Duration::from_secs(5))
            .await
            .with_context(|| format!("{name}: the oldest junk socket"))?;
        held.push((name, sockets));
    }
    let evicted = cluster
        .metric(r#"roomcast_http_connections_dropped_total{listener="biz_http",reason="evicted"}"#)
        .await?;
    assert!(evicted >= 1.0, "evictions counted: {evicted}");
    drop(held);
    cluster.stop().await
}
