//! The system under test: started in this process, started as a separate
//! `roomcast standalone` process (`--spawn-server`), or already running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use roomcast::standalone::{Standalone, StandaloneConfig};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::args::{TargetArgs, Transport};
use crate::proc::{self, ProcSample};

/// How the system under test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Inside the bench process: server and coordinator share one process.
    InProcess,
    /// A `roomcast standalone` child process.
    Spawned,
    /// A running system given by URLs.
    External,
}

/// A running system under test.
pub struct Target {
    /// How it runs.
    pub kind: Kind,
    /// Conn node WebSocket URL (empty when clients route themselves).
    pub ws_url: String,
    /// Room-biz client HTTP URL (long polling).
    pub biz_url: String,
    /// Room-biz backend API URL (rooms, publishing).
    pub backend_url: String,
    /// API key of the backend API.
    pub api_key: String,
    /// Router URL, when clients route themselves.
    pub router_url: Option<String>,
    /// Conn node QUIC URL (`quic://host:port`), when QUIC is on and known.
    pub quic_url: Option<String>,
    /// Hex SHA-256 of the conn node's QUIC certificate (the pin).
    pub quic_cert_sha256: Option<String>,
    /// The server processes measured.
    pub pids: Vec<u32>,
    /// Prometheus endpoint (`…/metrics`) of the system, when known.
    pub metrics_url: Option<String>,
    in_process: Option<(Standalone, CancellationToken)>,
    child: Option<tokio::process::Child>,
}

impl Target {
    /// Start (or find) the system. QUIC is on only for `--transport quic`.
    pub async fn start(args: &TargetArgs, broadcast_threshold: u32) -> anyhow::Result<Self> {
        let transport = args.transport;
        if args.biz_url.is_some()
            || args.ws_url.is_some()
            || args.router_url.is_some()
            || args.quic_url.is_some()
        {
            let biz_url = args
                .biz_url
                .clone()
                .context("--biz-url is needed with a running system")?;
            let backend_url = args
                .backend_url
                .clone()
                .context("--backend-url is needed with a running system")?;
            let routed = args.router_url.is_some();
            match transport {
                Transport::Ws if args.ws_url.is_none() && !routed => {
                    bail!("give --ws-url or --router-url with --biz-url")
                }
                Transport::Quic if args.quic_url.is_none() && !routed => {
                    bail!(
                        "--transport quic: give --quic-url (and --quic-cert-sha256) or --router-url with --biz-url"
                    )
                }
                _ => {}
            }
            let direct = match transport {
                Transport::Ws => args.ws_url.is_some(),
                Transport::Quic => args.quic_url.is_some(),
                Transport::Polling => true,
            };
            return Ok(Self {
                kind: Kind::External,
                ws_url: args.ws_url.clone().unwrap_or_default(),
                biz_url,
                backend_url,
                api_key: args.api_key.clone(),
                router_url: args.router_url.clone().filter(|_| !direct),
                quic_url: args.quic_url.clone(),
                quic_cert_sha256: args.quic_cert_sha256.clone(),
                pids: args.server_pid.clone(),
                metrics_url: args.metrics_url.clone(),
                in_process: None,
                child: None,
            });
        }
        if args.spawn_server {
            return spawn(args, broadcast_threshold).await;
        }
        let shutdown = CancellationToken::new();
        let mut cfg = StandaloneConfig {
            router_port: 0,
            ws_port: 0,
            biz_port: 0,
            backend_port: 0,
            api_key: args.api_key.clone(),
            metrics_port: 0,
            admin_port: 0,
            quic_port: (transport == Transport::Quic).then_some(0),
            secret: args.secret.clone(),
            broadcast_threshold,
            ..StandaloneConfig::default()
        };
        if let Some(members) = args.sample_above_members {
            cfg.conn.sample_above_members = members;
        }
        if let Some(rate) = args.sample_low_per_sec {
            cfg.conn.sample_low_per_sec = rate;
        }
        let system = Standalone::start(cfg, shutdown.clone()).await?;
        if transport == Transport::Quic && system.quic_url.is_none() {
            bail!("the in-process server has no QUIC endpoint");
        }
        Ok(Self {
            kind: Kind::InProcess,
            ws_url: system.ws_url.clone(),
            biz_url: system.biz_url.clone(),
            backend_url: system.backend_url.clone(),
            api_key: args.api_key.clone(),
            router_url: None,
            quic_url: system.quic_url.clone(),
            quic_cert_sha256: system.quic_cert_sha256.clone(),
            pids: vec![std::process::id()],
            metrics_url: Some(format!("{}/metrics", system.metrics_url)),
            in_process: Some((system, shutdown)),
            child: None,
        })
    }

    /// Selected series of the system's Prometheus endpoint, summed over
    /// labels not named: `name{labels} → value` for every series whose name
    /// starts with one of `prefixes` (histogram buckets left out).
    pub async fn metrics(
        &self,
        http: &reqwest::Client,
        prefixes: &[&str],
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let Some(url) = &self.metrics_url else {
            return out;
        };
        let Ok(resp) = http.get(url).send().await else {
            return out;
        };
        let text = resp.text().await.unwrap_or_default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series);
            if name.ends_with("_bucket") || !prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            if let Ok(v) = value.parse::<f64>() {
                *out.entry(series.to_owned()).or_insert(0.0) += v;
            }
        }
        out
    }

    /// CPU and RSS of the server processes now (zeros when none is known).
    pub fn sample(&self) -> ProcSample {
        ProcSample::sum(self.pids.iter().map(|&pid| proc::sample(Some(pid))))
    }

    /// Stop what this bench started.
    pub async fn stop(self) -> anyhow::Result<()> {
        if let Some((system, shutdown)) = self.in_process {
            shutdown.cancel();
            system.wait().await?;
        }
        if let Some(mut child) = self.child {
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        Ok(())
    }
}

/// Five free loopback TCP ports (bound together, so they differ, then released).
fn free_ports() -> anyhow::Result<[u16; 6]> {
    let listeners = (0..6)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0u16; 6];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l.local_addr()?.port();
    }
    Ok(ports)
}

/// A free loopback UDP port (bound, then released).
fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The conn node's QUIC URL and certificate pin, as the router hands them to
/// clients (`GET /v1/route`: the `quic` endpoint and `quic_cert_sha256`).
/// `None` while the router offers no QUIC endpoint yet.
async fn quic_of_route(
    http: &reqwest::Client,
    router_url: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let route: serde_json::Value = http
        .get(format!("{router_url}/v1/route?uid=bench-probe"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let url = route["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["transport"] == proto::transport::QUIC))
        .and_then(|e| e["url"].as_str());
    let pin = route[proto::transport::QUIC_CERT_SHA256].as_str();
    Ok(url.zip(pin).map(|(u, p)| (u.to_owned(), p.to_owned())))
}

fn server_bin(args: &TargetArgs) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &args.server_bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("roomcast");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p roomcast) or give --server-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// Backend writes per second the spawned server allows the bench's key.
const BENCH_WRITE_RATE: &str = "1000000";

/// Start `roomcast standalone` on free ports and wait until it is ready.
async fn spawn(args: &TargetArgs, broadcast_threshold: u32) -> anyhow::Result<Target> {
    let bin = server_bin(args)?;
    let [router, ws, biz, backend, metrics, admin] = free_ports()?;
    let quic = if args.transport == Transport::Quic {
        Some(free_udp_port()?)
    } else {
        None
    };
    let log = std::fs::File::create(&args.server_log)
        .with_context(|| format!("cannot write {}", args.server_log.display()))?;
    let mut command = tokio::process::Command::new(&bin);
    for pair in &args.server_env {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--server-env {pair}: expected KEY=VALUE"))?;
        command.env(key, value);
    }
    let child = command
        .arg("standalone")
        .args(["--bind", "127.0.0.1"])
        .args(["--router-port", &router.to_string()])
        .args(["--ws-port", &ws.to_string()])
        .args(["--biz-port", &biz.to_string()])
        .args(["--backend-port", &backend.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .args(["--admin-port", &admin.to_string()])
        .args(match quic {
            Some(port) => vec!["--quic-port".to_owned(), port.to_string()],
            None => vec!["--no-quic".to_owned()],
        })
        .args(["--broadcast-threshold", &broadcast_threshold.to_string()])
        // The load generator is one backend key publishing for every room:
        // the per-key write quota (200/s by default) would refuse most of it.
        .args(["--backend-write-rate", BENCH_WRITE_RATE])
        .args(["--backend-write-burst", BENCH_WRITE_RATE])
        .args(
            args.sample_above_members
                .map(|n| vec!["--sample-above-members".to_owned(), n.to_string()])
                .unwrap_or_default(),
        )
        .args(
            args.sample_low_per_sec
                .map(|n| vec!["--sample-low-per-sec".to_owned(), n.to_string()])
                .unwrap_or_default(),
        )
        .env("ROOMCAST_SECRET", &args.secret)
        .env("ROOMCAST_API_KEY", &args.api_key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id().context("server exited at once")?;
    let mut target = Target {
        kind: Kind::Spawned,
        ws_url: format!("ws://127.0.0.1:{ws}{}", proto::transport::WS_PATH),
        biz_url: format!("http://127.0.0.1:{biz}"),
        backend_url: format!("http://127.0.0.1:{backend}"),
        api_key: args.api_key.clone(),
        router_url: None,
        quic_url: None,
        quic_cert_sha256: None,
        pids: vec![pid],
        metrics_url: Some(format!("http://127.0.0.1:{metrics}/metrics")),
        in_process: None,
        child: Some(child),
    };
    let ready = format!("http://127.0.0.1:{metrics}/readyz");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(child) = target.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "the server exited ({status}); see {}",
                args.server_log.display()
            );
        }
        let ok = http
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok
            && tokio::net::TcpStream::connect(("127.0.0.1", ws))
                .await
                .is_ok()
        {
            let Some(port) = quic else {
                return Ok(target);
            };
            let router_url = format!("http://127.0.0.1:{router}");
            if let Ok(Some((url, pin))) = quic_of_route(&http, &router_url).await {
                let expected = format!("quic://127.0.0.1:{port}");
                if url != expected {
                    bail!("the server advertises QUIC at {url}, not {expected}");
                }
                target.quic_url = Some(url);
                target.quic_cert_sha256 = Some(pin);
                return Ok(target);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the server was not ready within 30 s; see {}",
                args.server_log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
