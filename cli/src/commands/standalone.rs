//! `roomcast standalone`: start everything, print where it listens, wait for a signal.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;
use common::tls::TlsFiles;

use super::Global;
use crate::standalone::{
    DEFAULT_BACKEND_URL, DEFAULT_DEV_ADMIN_TOKEN, DEFAULT_DEV_API_KEY, DEFAULT_DEV_SECRET,
    DEFAULT_ROUTER_URL, Standalone, StandaloneConfig,
};

/// Ports and settings of standalone mode (defaults: [`StandaloneConfig::default`]).
#[derive(Debug, Clone, Args)]
pub struct StandaloneArgs {
    /// Address every public listener binds.
    #[arg(long, env = "ROOMCAST_BIND", default_value_t = StandaloneConfig::default().bind_host)]
    pub bind: String,
    /// Router HTTP port (0 = any free port).
    #[arg(long, env = "ROOMCAST_ROUTER_PORT", default_value_t = StandaloneConfig::default().router_port)]
    pub router_port: u16,
    /// Conn node WebSocket port (0 = any free port).
    #[arg(long, env = "ROOMCAST_WS_PORT", default_value_t = StandaloneConfig::default().ws_port)]
    pub ws_port: u16,
    /// Room-biz client HTTP port: long polling, actions (0 = any free port).
    #[arg(long, env = "ROOMCAST_BIZ_PORT", default_value_t = StandaloneConfig::default().biz_port)]
    pub biz_port: u16,
    /// Room-biz backend API port: rooms, system messages, with an API key (0 = any free port).
    #[arg(long, env = "ROOMCAST_BACKEND_PORT", default_value_t = StandaloneConfig::default().backend_port)]
    pub backend_port: u16,
    /// Metrics and health port (0 = any free port).
    #[arg(
        long,
        env = "ROOMCAST_METRICS_PORT",
        default_value_t = StandaloneConfig::default().metrics_port
    )]
    pub metrics_port: u16,
    /// Conn node QUIC (UDP) port (0 = any free port).
    #[arg(long, env = "ROOMCAST_QUIC_PORT", default_value_t = crate::standalone::DEFAULT_QUIC_PORT)]
    pub quic_port: u16,
    /// Disable QUIC.
    #[arg(long)]
    pub no_quic: bool,
    /// Router admin API port (0 = any free port).
    #[arg(long, env = "ROOMCAST_ADMIN_PORT", default_value_t = crate::standalone::DEFAULT_ADMIN_PORT)]
    pub admin_port: u16,
    /// Bearer token of the admin API.
    #[arg(long, env = "ROOMCAST_ADMIN_TOKEN", default_value = crate::standalone::DEFAULT_DEV_ADMIN_TOKEN, hide_env_values = true)]
    pub admin_token: String,
    /// Subscribers above which a room switches from notify/pull to broadcast.
    #[arg(
        long,
        env = "ROOMCAST_BROADCAST_THRESHOLD",
        default_value_t = StandaloneConfig::default().broadcast_threshold
    )]
    pub broadcast_threshold: u32,
    /// Sessions of a room on the conn node at which its low-priority
    /// messages (plain comments) are sampled per connection.
    #[arg(
        long,
        env = "ROOMCAST_SAMPLE_ABOVE_MEMBERS",
        default_value_t = conn_layer::config::DEFAULT_SAMPLE_ABOVE_MEMBERS
    )]
    pub sample_above_members: u32,
    /// Low-priority messages per second a sampled room's connections get at
    /// most (0: no sampling).
    #[arg(
        long,
        env = "ROOMCAST_SAMPLE_LOW_PER_SEC",
        default_value_t = conn_layer::config::DEFAULT_SAMPLE_LOW_PER_SEC
    )]
    pub sample_low_per_sec: u32,
    /// Origin allowed to call the router and room API from a browser
    /// (repeatable; `scheme://host[:port]` or `*`). Standalone's own origin,
    /// which serves the demo page, is always allowed.
    #[arg(
        long = "cors-origin",
        env = "ROOMCAST_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Do not serve the demo page at /demo/.
    #[arg(long)]
    pub no_demo: bool,
    /// Required `aud` of client tokens (unset: tokens naming an audience are refused).
    #[arg(long, env = "ROOMCAST_TOKEN_AUDIENCE")]
    pub token_audience: Option<String>,
    /// Required `iss` of client tokens (unset: not checked).
    #[arg(long, env = "ROOMCAST_TOKEN_ISSUER")]
    pub token_issuer: Option<String>,
    /// Longest client token lifetime in seconds (exp - iat); 0: no limit.
    #[arg(
        long,
        env = "ROOMCAST_TOKEN_MAX_LIFETIME_SECS",
        default_value_t = common::auth::DEFAULT_TOKEN_MAX_LIFETIME_SECS
    )]
    pub token_max_lifetime_secs: u64,
    /// Keep the archive of ended rooms (an SQLite file, `archive.db`) in
    /// this folder, so it survives restarts (unset: in memory, like the
    /// rest of standalone's state).
    #[arg(long, env = "ROOMCAST_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Backend API writes (room creation, pushes) per API key and second
    /// (load generators and busy backends raise it).
    #[arg(
        long,
        env = "ROOMCAST_BACKEND_WRITE_RATE",
        default_value_t = room_biz::config::DEFAULT_BACKEND_WRITE_RATE_PER_SEC
    )]
    pub backend_write_rate: u32,
    /// Burst of backend API writes per API key.
    #[arg(
        long,
        env = "ROOMCAST_BACKEND_WRITE_BURST",
        default_value_t = room_biz::config::DEFAULT_BACKEND_WRITE_BURST
    )]
    pub backend_write_burst: u32,
    /// PEM certificate chain (leaf first): with --tls-key, the WebSocket,
    /// router, admin, client and backend API listeners speak wss/https and
    /// QUIC serves it (no pin); reloaded when the files change.
    #[arg(long, env = "ROOMCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROOMCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl StandaloneArgs {
    /// The certificate files to serve, checked now so a bad file is one clear
    /// error before anything starts; `None` without --tls-cert/--tls-key.
    fn tls_files(&self) -> anyhow::Result<Option<TlsFiles>> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => return Ok(None),
            _ => anyhow::bail!("give both --tls-cert and --tls-key, or neither"),
        };
        common::tls::load_certified_key(cert, key).context("bad --tls-cert/--tls-key")?;
        Ok(Some(TlsFiles {
            cert: Some(cert.display().to_string()),
            key: Some(key.display().to_string()),
            ..TlsFiles::default()
        }))
    }

    /// Put the token rules into the conn node's and room-biz's settings.
    fn apply_token_rules(&self, cfg: &mut StandaloneConfig) {
        for (audience, issuer, lifetime) in [
            (
                &mut cfg.conn.token_audience,
                &mut cfg.conn.token_issuer,
                &mut cfg.conn.token_max_lifetime_secs,
            ),
            (
                &mut cfg.biz.token_audience,
                &mut cfg.biz.token_issuer,
                &mut cfg.biz.token_max_lifetime_secs,
            ),
        ] {
            audience.clone_from(&self.token_audience);
            issuer.clone_from(&self.token_issuer);
            *lifetime = self.token_max_lifetime_secs;
        }
    }
}

/// Start every service, print the URLs, run until SIGINT or SIGTERM.
pub async fn run(global: &Global, args: StandaloneArgs) -> anyhow::Result<()> {
    // Traces too when OTEL_* asks for it: one service, `roomcast`.
    let telemetry = common::telemetry::init_service("roomcast", "info", global.log_format);
    warn_if_exposed(&args, global);
    let tls = args.tls_files()?;
    let mut cfg = StandaloneConfig {
        bind_host: args.bind.clone(),
        router_port: args.router_port,
        ws_port: args.ws_port,
        biz_port: args.biz_port,
        backend_port: args.backend_port,
        api_key: global.api_key.clone(),
        metrics_port: args.metrics_port,
        quic_port: (!args.no_quic).then_some(args.quic_port),
        admin_port: args.admin_port,
        admin_token: args.admin_token.clone(),
        secret: global.secret.clone(),
        broadcast_threshold: args.broadcast_threshold,
        cors_origins: args.cors_origins.clone(),
        demo: !args.no_demo,
        ca_file: global.ca_file.clone(),
        ..StandaloneConfig::default()
    };
    if let Some(files) = &tls {
        cfg.serve_tls(files);
    }
    args.apply_token_rules(&mut cfg);
    if let Some(dir) = &args.data_dir {
        cfg.biz.archive_url = crate::standalone::archive_url_in(dir);
    }
    cfg.biz.backend_write_rate_per_sec = args.backend_write_rate;
    cfg.biz.backend_write_burst = args.backend_write_burst;
    cfg.conn.sample_above_members = args.sample_above_members;
    cfg.conn.sample_low_per_sec = args.sample_low_per_sec;
    let shutdown = common::shutdown::signal_token();
    let standalone = Standalone::start(cfg, shutdown)
        .await
        .context("cannot start standalone mode")?;
    let urls = Urls {
        router: &standalone.router_url,
        ws: &standalone.ws_url,
        biz: &standalone.biz_url,
        backend: &standalone.backend_url,
        metrics: &standalone.metrics_url,
        admin: &standalone.admin_url,
        quic: standalone.quic_url.as_deref(),
        quic_cert_sha256: standalone.quic_cert_sha256.as_deref(),
        demo: !args.no_demo,
        ca_file: global.ca_file.as_deref(),
    };
    // A reader that went away (a closed pipe) must not take the servers down.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", banner(&urls, &global.secret, &global.api_key));
        let _ = out.flush();
    }
    let result = standalone
        .wait()
        .await
        .context("standalone mode stopped with an error");
    // Flushing blocks until the exporter thread sent what is buffered.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

/// Standalone runs on development credentials unless told otherwise: fine on
/// loopback, dangerous anywhere else. Say so loudly.
fn warn_if_exposed(args: &StandaloneArgs, global: &Global) {
    let loopback = match args.bind.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => args.bind == "localhost",
    };
    if loopback {
        return;
    }
    let dev = [
        (
            global.secret == DEFAULT_DEV_SECRET,
            "token secret (--secret)",
        ),
        (
            args.admin_token == DEFAULT_DEV_ADMIN_TOKEN,
            "admin token (--admin-token)",
        ),
        (global.api_key == DEFAULT_DEV_API_KEY, "API key (--api-key)"),
    ];
    let defaults: Vec<&str> = dev
        .iter()
        .filter(|(is, _)| *is)
        .map(|(_, what)| *what)
        .collect();
    tracing::warn!(
        bind = %args.bind,
        "!!! Standalone is listening beyond loopback. It is a development server: \
         anyone who can reach it can use its public development credentials{}.",
        if defaults.is_empty() {
            String::new()
        } else {
            format!(" (still the defaults: {})", defaults.join(", "))
        }
    );
}

/// Where the running services listen.
struct Urls<'a> {
    router: &'a str,
    ws: &'a str,
    biz: &'a str,
    backend: &'a str,
    metrics: &'a str,
    admin: &'a str,
    quic: Option<&'a str>,
    quic_cert_sha256: Option<&'a str>,
    demo: bool,
    /// The CA file the other commands need to trust these URLs, if given.
    ca_file: Option<&'a std::path::Path>,
}

/// What a newcomer needs: the URLs, the secret, and a next command that works.
fn banner(urls: &Urls<'_>, secret: &str, api_key: &str) -> String {
    let mut text = String::from("Roomcast standalone is running.\n");
    let _ = writeln!(text, "  router     {}", urls.router);
    let _ = writeln!(text, "  websocket  {}", urls.ws);
    if let Some(quic) = urls.quic {
        let _ = writeln!(text, "  quic       {quic}");
    }
    if let Some(fingerprint) = urls.quic_cert_sha256 {
        let _ = writeln!(
            text,
            "  quic cert  sha256 {fingerprint} (self-signed; pin it)"
        );
    }
    // The URL ends each line: scripts take the last word.
    let _ = writeln!(text, "  room API   {}", urls.backend);
    let _ = writeln!(text, "  client API {}", urls.biz);
    if urls.demo {
        let _ = writeln!(text, "  demo page  {}/demo/", urls.router);
    }
    let _ = writeln!(text, "  metrics    {}/metrics", urls.metrics);
    let _ = writeln!(
        text,
        "  admin      {} (roomcast ctl; bearer token from --admin-token)",
        urls.admin
    );
    let note = if secret == DEFAULT_DEV_SECRET {
        " (the development default)"
    } else {
        ""
    };
    let _ = writeln!(text, "  dev token secret (HS256): {secret}{note}");
    let key_note = if api_key == DEFAULT_DEV_API_KEY {
        " (the development default)"
    } else {
        ""
    };
    let _ = writeln!(text, "  dev API key: {api_key}{key_note}");

    // Flags the other commands need when this process does not use the defaults.
    let mut flags = String::new();
    if urls.router != DEFAULT_ROUTER_URL {
        let _ = write!(flags, " --router-url {}", urls.router);
    }
    if urls.backend != DEFAULT_BACKEND_URL {
        let _ = write!(flags, " --backend-url {}", urls.backend);
    }
    if let Some(ca_file) = urls.ca_file {
        let _ = write!(flags, " --ca-file {}", ca_file.display());
    }
    if api_key != DEFAULT_DEV_API_KEY {
        flags.push_str(" --api-key \"$ROOMCAST_API_KEY\"");
    }
    if secret != DEFAULT_DEV_SECRET {
        flags.push_str(" --secret \"$ROOMCAST_SECRET\"");
    }
    let _ = writeln!(text, "\nTry, in another terminal:");
    let _ = writeln!(
        text,
        "  ROOM=$(roomcast{flags} room create --title \"Night talk\")"
    );
    let _ = writeln!(text, "  roomcast{flags} listen --room \"$ROOM\" &");
    let _ = write!(
        text,
        "  roomcast{flags} say --room \"$ROOM\" --uid alice hello everyone"
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(router: &str) -> Urls<'_> {
        Urls {
            router,
            ws: "ws://127.0.0.1:8601/v1/ws",
            biz: "http://127.0.0.1:8602",
            backend: DEFAULT_BACKEND_URL,
            metrics: "http://127.0.0.1:8609",
            admin: "http://127.0.0.1:8603",
            quic: Some("quic://127.0.0.1:8604"),
            quic_cert_sha256: Some("ab12"),
            demo: true,
            ca_file: None,
        }
    }

    #[test]
    fn banner_adds_flags_only_when_not_default() {
        let plain = banner(
            &running(DEFAULT_ROUTER_URL),
            DEFAULT_DEV_SECRET,
            DEFAULT_DEV_API_KEY,
        );
        assert!(plain.contains("roomcast room create --title"), "{plain}");
        assert!(plain.contains("ws://127.0.0.1:8601/v1/ws"), "{plain}");
        assert!(plain.contains("/demo/"), "{plain}");

        let custom = banner(
            &running("http://127.0.0.1:9000"),
            "s3cret",
            DEFAULT_DEV_API_KEY,
        );
        assert!(
            custom.contains("roomcast --router-url http://127.0.0.1:9000 --secret"),
            "{custom}"
        );
        assert!(!custom.contains("--backend-url"), "{custom}");
        assert!(
            plain.contains(DEFAULT_DEV_API_KEY),
            "the dev key is printed: {plain}"
        );
    }

    #[test]
    fn a_tls_banner_prints_the_tls_urls_and_the_flags_to_reach_them() {
        let ca = std::path::Path::new("/etc/roomcast/ca.pem");
        let urls = Urls {
            ws: "wss://127.0.0.1:8601/v1/ws",
            biz: "https://127.0.0.1:8602",
            backend: "https://127.0.0.1:8605",
            admin: "https://127.0.0.1:8603",
            quic_cert_sha256: None,
            ca_file: Some(ca),
            ..running("https://127.0.0.1:8600")
        };
        let text = banner(&urls, DEFAULT_DEV_SECRET, DEFAULT_DEV_API_KEY);
        assert!(text.contains("websocket  wss://"), "{text}");
        assert!(!text.contains("pin it"), "{text}");
        assert!(
            text.contains(
                "roomcast --router-url https://127.0.0.1:8600 --backend-url \
                 https://127.0.0.1:8605 --ca-file /etc/roomcast/ca.pem room create"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_certificate_pair_is_checked_before_anything_starts() {
        let args = |cert: Option<&str>, key: Option<&str>| StandaloneArgs {
            tls_cert: cert.map(Into::into),
            tls_key: key.map(Into::into),
            ..parse_args(&[])
        };
        assert!(args(None, None).tls_files().expect("no TLS").is_none());
        let error = args(Some("/nonexistent/c.pem"), None)
            .tls_files()
            .expect_err("half a pair");
        assert!(error.to_string().contains("both --tls-cert and --tls-key"));
        let error = args(Some("/nonexistent/c.pem"), Some("/nonexistent/k.pem"))
            .tls_files()
            .expect_err("unreadable");
        let text = format!("{error:#}");
        assert!(text.contains("/nonexistent/c.pem"), "{text}");
    }

    fn parse_args(extra: &[&str]) -> StandaloneArgs {
        use clap::Parser as _;
        let mut argv = vec!["roomcast", "standalone"];
        argv.extend_from_slice(extra);
        match crate::commands::Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(crate::commands::Command::Standalone(args)) => args,
            other => panic!("parsed as {other:?}"),
        }
    }
}
