//! The command line: global flags, subcommands, and what they share.

mod api_client;
pub mod archive;
pub mod ctl;
pub mod listen;
pub mod room;
pub mod say;
pub mod standalone;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use roomcast_client::{Client, ConnectOptions, Events};
use tracing_subscriber::EnvFilter;

use crate::standalone::{
    DEFAULT_BACKEND_URL, DEFAULT_DEV_API_KEY, DEFAULT_DEV_SECRET, DEFAULT_ROUTER_URL,
};

/// Lifetime of the dev tokens the CLI mints.
const TOKEN_TTL_SECS: i64 = 3600;

/// Roomcast: live rooms over long connections.
#[derive(Debug, Parser)]
#[command(name = "roomcast", version, propagate_version = true)]
pub struct Cli {
    /// Flags every command understands.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Router base URL (clients ask it where to connect).
    #[arg(long, global = true, env = "ROOMCAST_ROUTER_URL", default_value = DEFAULT_ROUTER_URL)]
    pub router_url: String,
    /// Room-biz backend API base URL (room creation).
    #[arg(long, global = true, env = "ROOMCAST_BACKEND_URL", default_value = DEFAULT_BACKEND_URL)]
    pub backend_url: String,
    /// API key for the backend API (`roomcast ctl api-key create`; default:
    /// standalone's development key).
    #[arg(
        long,
        global = true,
        env = "ROOMCAST_API_KEY",
        default_value = DEFAULT_DEV_API_KEY,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub api_key: String,
    /// HS256 secret: the CLI mints dev tokens with it; `standalone` verifies them with it.
    #[arg(
        long,
        global = true,
        env = "ROOMCAST_SECRET",
        default_value = DEFAULT_DEV_SECRET,
        hide_env_values = true
    )]
    pub secret: String,
    /// PEM file of the CA certificates every client command (`room`, `ctl`,
    /// `listen`, `say`) trusts on `https://`, `wss://` and QUIC (a private CA);
    /// default: the webpki (Mozilla) roots. `standalone`'s demo page trusts it
    /// too when calling its own TLS backend API.
    #[arg(long, global = true, env = "ROOMCAST_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Log line format on stderr.
    #[arg(
        long,
        global = true,
        env = common::telemetry::LOG_FORMAT_ENV,
        value_enum,
        default_value_t
    )]
    pub log_format: common::telemetry::LogFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process on embedded defaults.
    Standalone(standalone::StandaloneArgs),
    /// Manage rooms through the room-biz API.
    #[command(subcommand)]
    Room(room::RoomCommand),
    /// Join a room and print every message as one JSON line.
    Listen(listen::ListenArgs),
    /// Join a room, post one comment and print the reply.
    Say(say::SayArgs),
    /// Operate the router: rollout policy, nodes, drains (admin API).
    Ctl(ctl::CtlArgs),
    /// Work with the archive of ended rooms (export for analytics).
    Archive(archive::ArchiveArgs),
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Standalone(args) => standalone::run(&cli.global, args).await,
        Command::Room(command) => {
            init_cli_logging(cli.global.log_format);
            room::run(&cli.global, command).await
        }
        Command::Listen(args) => {
            init_cli_logging(cli.global.log_format);
            listen::run(&cli.global, args).await
        }
        Command::Say(args) => {
            init_cli_logging(cli.global.log_format);
            say::run(&cli.global, args).await
        }
        Command::Ctl(args) => {
            init_cli_logging(cli.global.log_format);
            ctl::run(&cli.global, args).await
        }
        Command::Archive(args) => {
            init_cli_logging(cli.global.log_format);
            archive::run(args).await
        }
    }
}

/// Logs of the client commands go to stderr: stdout carries their output.
fn init_cli_logging(format: common::telemetry::LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,roomcast=info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        common::telemetry::LogFormat::Text => logs
            .with_ansi(common::telemetry::stderr_is_terminal())
            .try_init(),
        common::telemetry::LogFormat::Json => logs.json().with_ansi(false).try_init(),
    };
}

/// Mint a dev token for `uid` and connect through the router.
pub async fn connect(global: &Global, uid: &str) -> anyhow::Result<(Client, Events)> {
    let token = common::auth::mint_hs256(&global.secret, uid, TOKEN_TTL_SECS)
        .context("cannot mint a dev token")?;
    // A long `listen` outlives one token: the server warns before it expires and
    // the SDK renews the session with a fresh one.
    let (secret, owner) = (global.secret.clone(), uid.to_owned());
    let provider = roomcast_client::TokenProvider::new(move || {
        let minted = common::auth::mint_hs256(&secret, &owner, TOKEN_TTL_SECS);
        async move { minted.map_err(|e| e.to_string()) }
    });
    let opts = ConnectOptions {
        uid: uid.to_owned(),
        device_id: format!("roomcast-cli-{uid}"),
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        token_provider: Some(provider),
        ca_file: global.ca_file.clone(),
        ..ConnectOptions::new(global.router_url.clone(), token)
    };
    Client::connect(opts)
        .await
        .with_context(|| format!("cannot connect as {uid}"))
}
