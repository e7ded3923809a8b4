//! What an SRE relies on, with every service a real process: a conn node
//! drained through the admin API exits and its node id serves again when
//! started anew; `roomcast ctl undrain` withdraws a request; `/readyz` of all
//! four services stays 200 through an etcd outage; the ops listener of a
//! process cuts sockets that never send a request.

use std::time::Duration;

use anyhow::{Context as _, bail};
use common::discovery::ServiceKind;
use common::live_config::etcd::EtcdLiveConfig;
use common::live_config::{LiveConfig, keys};
use integration_tests::ADMIN_TOKEN;
use integration_tests::procs::{Topology, TopologyOptions, run_to_exit};
use tokio::io::AsyncReadExt as _;

/// Conn nodes drain fast in these tests.
const DRAIN_DEADLINE_MS: u64 = 4_000;
/// Request-head deadline of the processes' ops listeners in these tests.
const OPS_HEADER_TIMEOUT_MS: u64 = 800;

fn options() -> TopologyOptions {
    let mut env = Vec::new();
    for (key, value) in [
        ("ROOMCAST_CONN_NODE__DRAIN_WINDOW_MS", "300".to_string()),
        (
            "ROOMCAST_CONN_NODE__DRAIN_DEADLINE_MS",
            DRAIN_DEADLINE_MS.to_string(),
        ),
        (
            "ROOMCAST_CONN_OPS_HTTP__HEADER_READ_TIMEOUT_MS",
            OPS_HEADER_TIMEOUT_MS.to_string(),
        ),
        (
            "ROOMCAST_PUSH_OPS_HTTP__HEADER_READ_TIMEOUT_MS",
            OPS_HEADER_TIMEOUT_MS.to_string(),
        ),
    ] {
        env.push((key.to_string(), value));
    }
    TopologyOptions {
        push: 1,
        env,
        ..TopologyOptions::default()
    }
}

async fn live_config(t: &Topology) -> anyhow::Result<EtcdLiveConfig> {
    Ok(EtcdLiveConfig::connect(vec![t.etcd.endpoint()], "/roomcast/").await?)
}

/// `GET {base}/readyz` → status code (0 when unreachable).
async fn readyz(http: &reqwest::Client, base: &str) -> u16 {
    match http
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Wait until `{base}/readyz` answers `status`.
async fn wait_readyz(http: &reqwest::Client, base: &str, status: u16) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = readyz(http, base).await;
        if got == status {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{base}/readyz stayed {got}, expected {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drained_through_the_admin_api_exits_and_its_id_serves_again() -> anyhow::Result<()>
{
    let mut t = Topology::start(options()).await?;
    let http = reqwest::Client::new();
    let live = live_config(&t).await?;
    let conn0 = t.conn[0].id.clone();
    let ops0 = t.conn[0].ops_url.clone().context("conn ops url")?;
    wait_readyz(&http, &ops0, 200).await?;

    // Drain through the admin API: 202, then the process exits 0 by itself.
    let drain_url = format!("{}/v1/admin/nodes/{conn0}/drain", t.admin_url);
    let answer = http
        .post(&drain_url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 202, "{}", answer.text().await?);
    let status = t.conn[0]
        .wait_exit(Duration::from_millis(DRAIN_DEADLINE_MS + 5_000))
        .await?;
    assert!(status.success(), "drained conn node exited with {status}");
    t.wait_registered(ServiceKind::Conn, &conn0, false).await?;
    assert_eq!(
        live.get(&keys::drain(&conn0)).await?,
        None,
        "the drain request is consumed when the drain ends"
    );

    // The same node id started again serves: registered, not draining, ready.
    t.conn[0].start_again()?;
    t.wait_registered(ServiceKind::Conn, &conn0, true).await?;
    wait_readyz(&http, &ops0, 200).await?;
    assert!(!t.node(ServiceKind::Conn, &conn0)?.draining);

    // A request left behind (the node was killed while draining) does not
    // drain the next process with that id, and `ctl undrain` withdraws one.
    let conn1 = t.conn[1].id.clone();
    let ops1 = t.conn[1].ops_url.clone().context("conn ops url")?;
    t.conn[1].kill9();
    live.put(&keys::drain(&conn1), r#"{"requested_at_ms":1}"#)
        .await?;
    let ctl = |args: &[&str]| {
        let mut all = vec![
            "ctl",
            "--admin-url",
            &t.admin_url,
            "--admin-token",
            ADMIN_TOKEN,
        ];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let args = ctl(&["undrain", &conn1]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr) = run_to_exit("roomcast", &args, &[]).await?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(live.get(&keys::drain(&conn1)).await?, None, "withdrawn");
    live.put(&keys::drain(&conn1), r#"{"requested_at_ms":1}"#)
        .await?;
    t.conn[1].start_again()?;
    wait_readyz(&http, &ops1, 200).await?;
    assert!(!t.node(ServiceKind::Conn, &conn1)?.draining);
    assert_eq!(
        live.get(&keys::drain(&conn1)).await?,
        None,
        "a leftover request is cleared at start"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_stays_ready_through_an_etcd_outage() -> anyhow::Result<()> {
    let mut t = Topology::start(options()).await?;
    let http = reqwest::Client::new();
    let bases = vec![
        ("conn", t.conn[0].ops_url.clone().context("conn ops url")?),
        ("push", t.push[0].ops_url.clone().context("push ops url")?),
        ("biz", t.biz.ops_url.clone().context("biz ops url")?),
        (
            "router",
            t.router.ops_url.clone().context("router ops url")?,
        ),
    ];
    for (_, base) in &bases {
        wait_readyz(&http, base, 200).await?;
    }

    t.etcd.stop();
    // Our own client loses etcd about when the services' clients do.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while t.discovery.healthy() {
        if tokio::time::Instant::now() > deadline {
            bail!("the test's etcd client never noticed the outage");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Readiness is re-evaluated every second: watch it for several.
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < watch_until {
        // (Conn and push: their ops limits are configurable and set short here.)
        for (name, base) in &bases[..2] {
            let status = readyz(&http, base).await;
            assert_eq!(status, 200, "{name} /readyz during the etcd outage");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.etcd.start_again()?;
    for (_, base) in &bases {
        wait_readyz(&http, base, 200).await?;
    }
    // The ops listener of a process cuts a socket that never sends a request.
    // (Conn and push: their ops limits are configurable and set short here.)
    for (name, base) in &bases[..2] {
        let addr = base.trim_start_matches("http://");
        let mut silent = tokio::net::TcpStream::connect(addr).await?;
        let mut partial = tokio::net::TcpStream::connect(addr).await?;
        tokio::io::AsyncWriteExt::write_all(&mut partial, b"GET /readyz HTTP/1.1\r\n").await?;
        for socket in [&mut silent, &mut partial] {
            let mut buf = [0u8; 64];
            let closed = tokio::time::timeout(
                Duration::from_millis(OPS_HEADER_TIMEOUT_MS + 5_000),
                socket.read(&mut buf),
            )
            .await
            .with_context(|| format!("the {name} ops listener kept a silent socket open"))?;
            assert!(matches!(closed, Ok(0) | Err(_)), "{name}: {closed:?}");
        }
    }

    Ok(())
}
