//! Configuration of the service binaries, run as processes: unknown keys and
//! variables are refused by name, secrets never show in `--print-config`,
//! `--check-config` refuses what a start would,
//! logs can be JSON, and `--ops-listen` works on every service.

use std::time::Duration;

use anyhow::Context as _;
use integration_tests::procs::{Finished, Topology, TopologyOptions, run_captured};

/// The four service binaries and their environment prefixes.
const SERVICES: [(&str, &str); 4] = [
    ("roomcast-push", "ROOMCAST_PUSH"),
    ("roomcast-conn", "ROOMCAST_CONN"),
    ("roomcast-biz", "ROOMCAST_BIZ"),
    ("roomcast-router", "ROOMCAST_ROUTER"),
];

/// sysexits `EX_USAGE`: bad flags or configuration.
const EX_USAGE: i32 = 64;

fn expect_ok(bin: &str, run: &Finished) {
    assert_eq!(run.code, 0, "{bin}: {}", run.stderr);
}

#[tokio::test]
async fn unknown_variables_with_a_service_prefix_are_refused_by_name() -> anyhow::Result<()> {
    for (bin, prefix) in SERVICES {
        let typo = format!("{prefix}_NODE__NOT_A_SETTING");
        let run = run_captured(bin, &["--print-config"], &[(&typo, "1")]).await?;
        assert_eq!(run.code, EX_USAGE, "{bin}: {run:?}");
        assert!(run.stderr.contains(&typo), "{bin}: {}", run.stderr);
        assert!(
            run.stdout.is_empty(),
            "{bin} printed a config: {}",
            run.stdout
        );

        // One underscore where nested keys need two.
        let flat = format!("{prefix}_DISCOVERY_PREFIX");
        let run = run_captured(bin, &["--print-config"], &[(&flat, "/x/")]).await?;
        assert_eq!(run.code, EX_USAGE, "{bin}: {run:?}");
        assert!(run.stderr.contains(&flat), "{bin}: {}", run.stderr);

        // The same setting, spelt right, is taken.
        let right = format!("{prefix}_DISCOVERY__PREFIX");
        let run = run_captured(bin, &["--print-config"], &[(&right, "/spelt-right/")]).await?;
        expect_ok(bin, &run);
        assert!(
            run.stdout.contains("/spelt-right/"),
            "{bin}: {}",
            run.stdout
        );
    }
    Ok(())
}

#[tokio::test]
async fn unknown_file_keys_are_refused_with_the_key_and_the_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[discovery]\nlease_ttl_sec = 5\n")?;
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[discovery]\nlease_ttl_secs = 7\n")?;
    let typo_path = typo.to_str().context("path")?;
    let good_path = good.to_str().context("path")?;
    for (bin, _) in SERVICES {
        let run = run_captured(bin, &["--config", typo_path, "--print-config"], &[]).await?;
        assert_eq!(run.code, EX_USAGE, "{bin}: {run:?}");
        assert!(
            run.stderr.contains("discovery.lease_ttl_sec"),
            "{bin}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("typo.toml"), "{bin}: {}", run.stderr);
        assert!(
            run.stderr.contains("lease_ttl_secs"),
            "{bin}: {}",
            run.stderr
        );

        let run = run_captured(bin, &["--config", good_path, "--print-config"], &[]).await?;
        expect_ok(bin, &run);
        assert!(
            run.stdout.contains("lease_ttl_secs = 7"),
            "{bin}: {}",
            run.stdout
        );
    }
    Ok(())
}

#[tokio::test]
async fn cli_variables_that_share_a_prefix_do_not_stop_a_service() -> anyhow::Result<()> {
    let cli = [
        ("ROOMCAST_ROUTER_URL", "http://127.0.0.1:8600"),
        ("ROOMCAST_ROUTER_PORT", "8600"),
        ("ROOMCAST_BIZ_URL", "http://127.0.0.1:8602"),
        ("ROOMCAST_BIZ_PORT", "8602"),
    ];
    for bin in ["roomcast-router", "roomcast-biz"] {
        expect_ok(bin, &run_captured(bin, &["--print-config"], &cli).await?);
    }
    Ok(())
}

/// A binary, its flags and environment, each carrying a secret.
type SecretCase = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
);

#[tokio::test]
async fn print_config_redacts_every_secret() -> anyhow::Result<()> {
    let cases: [SecretCase; 4] = [
        (
            "roomcast-push",
            vec!["--redis", "redis://default:hunter-push@10.0.0.1:6379/0"],
            vec![],
        ),
        (
            "roomcast-conn",
            vec![],
            vec![("ROOMCAST_CONN_NODE__TOKEN_SECRET", "hunter-conn")],
        ),
        (
            "roomcast-biz",
            vec!["--redis", "redis://:hunter-redis@10.0.0.2:6379"],
            vec![("ROOMCAST_TOKEN_SECRET", "hunter-biz")],
        ),
        (
            "roomcast-router",
            vec![],
            vec![("ROOMCAST_ROUTER_NODE__ADMIN_TOKEN", "hunter-router")],
        ),
    ];
    for (bin, mut args, env) in cases {
        args.push("--print-config");
        let run = run_captured(bin, &args, &env).await?;
        expect_ok(bin, &run);
        assert!(
            !run.stdout.contains("hunter"),
            "{bin} leaked:\n{}",
            run.stdout
        );
        assert!(run.stdout.contains("<redacted>"), "{bin}:\n{}", run.stdout);
        // Everything else is still there.
        assert!(
            run.stdout.contains("etcd_endpoints"),
            "{bin}:\n{}",
            run.stdout
        );
    }
    Ok(())
}

/// A binary, the environment a start refuses, why, and an environment it
/// starts with.
type CheckCase = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

#[tokio::test]
async fn check_config_refuses_what_a_start_refuses_and_passes_the_rest() -> anyhow::Result<()> {
    const STRONG: &str = "check-config-0123456789abcdef0123456789abcdef";
    let cases: [CheckCase; 4] = [
        (
            "roomcast-push",
            vec![("ROOMCAST_INTERNAL_TOKEN", "short")],
            "node.internal_token",
            vec![("ROOMCAST_INTERNAL_TOKEN", STRONG)],
        ),
        (
            "roomcast-conn",
            vec![("ROOMCAST_INTERNAL_TOKEN", STRONG)],
            "no token key",
            vec![
                ("ROOMCAST_INTERNAL_TOKEN", STRONG),
                ("ROOMCAST_TOKEN_SECRET", STRONG),
            ],
        ),
        (
            "roomcast-biz",
            vec![
                ("ROOMCAST_INTERNAL_TOKEN", STRONG),
                (
                    "ROOMCAST_BIZ_NODE__WEBHOOKS__URLS",
                    "[https://app.example/hook]",
                ),
            ],
            "secrets must not be empty",
            vec![
                ("ROOMCAST_INTERNAL_TOKEN", STRONG),
                (
                    "ROOMCAST_BIZ_NODE__WEBHOOKS__URLS",
                    "[https://app.example/hook]",
                ),
                (
                    "ROOMCAST_BIZ_NODE__WEBHOOKS__SECRETS",
                    "[whsec-0123456789abcdef]",
                ),
            ],
        ),
        (
            "roomcast-router",
            vec![("ROOMCAST_ROUTER_NODE__ADMIN_TOKEN", "short")],
            "node.admin_token",
            vec![("ROOMCAST_ROUTER_NODE__ADMIN_TOKEN", STRONG)],
        ),
    ];
    for (bin, refused, reason, starts) in cases {
        let run = run_captured(bin, &["--check-config"], &refused).await?;
        assert_eq!(run.code, EX_USAGE, "{bin}: {run:?}");
        assert!(run.stderr.contains(reason), "{bin}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{bin} printed: {}", run.stdout);
        expect_ok(bin, &run_captured(bin, &["--check-config"], &starts).await?);
        // --print-config alone shows even a configuration a start refuses
        // (to find out why); with --check-config it prints, then refuses.
        expect_ok(
            bin,
            &run_captured(bin, &["--print-config"], &refused).await?,
        );
        let run = run_captured(bin, &["--print-config", "--check-config"], &refused).await?;
        assert_eq!(run.code, EX_USAGE, "{bin}: {run:?}");
        assert!(
            run.stdout.contains("etcd_endpoints"),
            "{bin}: {}",
            run.stdout
        );
    }
    Ok(())
}

/// The JSON objects among `stderr`'s lines.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}

#[tokio::test]
async fn logs_are_json_lines_when_asked() -> anyhow::Result<()> {
    // With an OTLP endpoint every binary logs where its traces go, at start.
    let otel = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9");
    let info = ("RUST_LOG", "info");
    for (bin, _) in SERVICES {
        let run = run_captured(
            bin,
            &["--log-format", "json", "--print-config"],
            &[otel, info],
        )
        .await?;
        expect_ok(bin, &run);
        let lines = json_lines(&run.stderr);
        assert!(
            lines.iter().any(|l| l["message"]
                .as_str()
                .is_some_and(|m| m.contains("Exporting traces"))
                && l["level"] == "INFO"),
            "{bin}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains('\u{1b}'),
            "{bin}: ANSI in JSON logs: {}",
            run.stderr
        );

        let run = run_captured(
            bin,
            &["--print-config"],
            &[otel, info, ("ROOMCAST_LOG_FORMAT", "json")],
        )
        .await?;
        expect_ok(bin, &run);
        assert!(!json_lines(&run.stderr).is_empty(), "{bin}: {}", run.stderr);

        let run = run_captured(bin, &["--print-config"], &[otel, info]).await?;
        expect_ok(bin, &run);
        assert!(
            run.stderr.contains("Exporting traces"),
            "{bin}: {}",
            run.stderr
        );
        assert!(json_lines(&run.stderr).is_empty(), "{bin}: {}", run.stderr);

        let run = run_captured(bin, &["--log-format", "yaml", "--print-config"], &[]).await?;
        assert_ne!(run.code, 0, "{bin} accepted --log-format yaml");
    }
    Ok(())
}

async fn status(http: &reqwest::Client, url: &str) -> u16 {
    match http.get(url).send().await {
        Ok(resp) => resp.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_listen_serves_health_and_metrics_on_every_service() -> anyhow::Result<()> {
    let t = Topology::start(TopologyOptions {
        push: 1,
        conn: 1,
        ..TopologyOptions::default()
    })
    .await?;
    let http = reqwest::Client::new();
    let procs = [&t.push[0], &t.conn[0], &t.biz, &t.router];
    for p in procs {
        let base = p
            .ops_url
            .clone()
            .context("every process has --ops-listen")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while status(&http, &format!("{base}/readyz")).await != 200 {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} never ready on {base}\n{}",
                p.id,
                p.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            status(&http, &format!("{base}/livez")).await,
            200,
            "{}",
            p.id
        );
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        assert!(metrics.contains("roomcast_"), "{}: {metrics}", p.id);
    }
    Ok(())
}
