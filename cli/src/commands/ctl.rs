//! `roomcast ctl ...`: the router's admin API for SREs (docs/operations.md).
//!
//! # Layout
//! - [`CtlArgs`], [`CtlCommand`], [`RolloutCommand`], [`ListCommand`]: clap.
//! - `AdminClient`: one method per admin route over `http://` or `https://`
//!   (the SDK's HTTP client; `--ca-file` for a private CA); errors are one
//!   line (a refused token is "admin token refused").
//! - `edit`: the pure policy edits of `set`, `allow` and `deny`.
//!
//! `set`, `allow` and `deny` read the policy in force, change it, and write
//! the whole document back (the API replaces policies atomically; two
//! operators editing at the same instant: the last write wins).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use common::discovery::NodeInfo;
use roomcast_client::http::{Auth, HttpClient, Method, StatusCode, Url};
use router::policy::{Policy, Rules};
use serde::Deserialize;

use super::Global;
use super::api_client::{self, REQUEST_TIMEOUT};

// The defaults point at `roomcast standalone` (its dev token: production
// routers are given their own).
use crate::standalone::{DEFAULT_ADMIN_URL, DEFAULT_DEV_ADMIN_TOKEN};

/// `roomcast ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Router admin API base URL.
    #[arg(long, global = true, env = "ROOMCAST_ADMIN_URL", default_value = DEFAULT_ADMIN_URL)]
    pub admin_url: String,
    /// Admin bearer token (the router's node.admin_token).
    #[arg(
        long,
        global = true,
        env = "ROOMCAST_ADMIN_TOKEN",
        default_value = DEFAULT_DEV_ADMIN_TOKEN,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub admin_token: String,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Show or change the rollout policy.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// List every registered node with its load.
    Nodes,
    /// Ask a conn node to drain: it leaves the router's choices, moves its
    /// clients to other nodes, and exits.
    Drain {
        /// The conn node id (see `roomcast ctl nodes`).
        node_id: String,
    },
    /// Withdraw a drain request the node has not acted on yet. A node
    /// already draining finishes and exits; started again, it serves.
    Undrain {
        /// The conn node id.
        node_id: String,
    },
    /// Manage the API keys app backends present to the room API.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

/// `roomcast ctl api-key ...`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it: the only time it is shown.
    Create {
        /// Who holds it ("billing backend").
        #[arg(long)]
        name: String,
        /// A scope it grants (repeat; default all): rooms:read, rooms:write,
        /// messages:write, users:write.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List the active keys (ids, names, scopes; never the keys).
    List,
    /// Revoke a key by id: room-biz refuses it from then on.
    Revoke {
        /// The key id (`rck_<id>_…`, see `list`).
        id: String,
    },
}

/// `roomcast ctl rollout ...`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Print the policy in force and where it comes from.
    Show,
    /// Change the percentage and/or the switch.
    Set(SetArgs),
    /// Clients always given a long connection (unless denied).
    #[command(subcommand)]
    Allow(ListCommand),
    /// Clients never given a long connection.
    #[command(subcommand)]
    Deny(ListCommand),
}

/// `roomcast ctl rollout set`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = true)]
pub struct SetArgs {
    /// Share of clients on long connections, 0–100 (one decimal at most).
    #[arg(long)]
    pub percent: Option<f64>,
    /// Long connections on (true) or only for the allow list (false).
    #[arg(long)]
    pub enabled: Option<bool>,
}

/// `allow` / `deny` edits.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Add an entry.
    Add(Entry),
    /// Remove an entry.
    Rm(Entry),
}

/// One list entry: exactly one of the keys.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct Entry {
    /// A user id.
    #[arg(long)]
    pub uid: Option<String>,
    /// A device id.
    #[arg(long)]
    pub device_id: Option<String>,
    /// A semver range of app versions (`^2.3`, `>=3.0.0, <3.2.0`).
    #[arg(long)]
    pub app_version: Option<String>,
}

/// Run a ctl command, printing its result on stdout.
pub async fn run(global: &Global, args: CtlArgs) -> anyhow::Result<()> {
    let output = execute(&args, global.ca_file.as_deref()).await?;
    print!("{output}");
    Ok(())
}

/// Run a ctl command and return what it prints; `https://` admin URLs are
/// verified against `ca_file` when given, else the webpki roots.
pub async fn execute(args: &CtlArgs, ca_file: Option<&Path>) -> anyhow::Result<String> {
    let admin = AdminClient::new(&args.admin_url, &args.admin_token, ca_file)?;
    match &args.command {
        CtlCommand::Rollout(RolloutCommand::Show) => {
            let current = admin.rollout().await?;
            Ok(pretty(&current.raw))
        }
        CtlCommand::Rollout(RolloutCommand::Set(set)) => {
            let mut policy = admin.rollout().await?.policy;
            edit::set(&mut policy, set);
            admin.replace(&policy).await
        }
        CtlCommand::Rollout(RolloutCommand::Allow(change)) => {
            modify(&admin, change, |p| &mut p.allow, "allow").await
        }
        CtlCommand::Rollout(RolloutCommand::Deny(change)) => {
            modify(&admin, change, |p| &mut p.deny, "deny").await
        }
        CtlCommand::Nodes => Ok(nodes_table(&admin.nodes().await?)),
        CtlCommand::Drain { node_id } => {
            let at = admin.drain(node_id).await?;
            Ok(format!(
                "drain requested for {node_id} (requested_at_ms {at}); it stops taking clients \
                 and exits once they moved\n"
            ))
        }
        CtlCommand::ApiKey(ApiKeyCommand::Create { name, scopes }) => {
            let body = serde_json::json!({ "name": name, "scopes": scopes });
            let url = admin.url("/v1/admin/api-keys", &[])?;
            let made: serde_json::Value = admin.send(Method::POST, url, Some(&body)).await?;
            let key = made["key"].as_str().unwrap_or_default();
            let id = made["id"].as_str().unwrap_or_default();
            Ok(format!(
                "{key}\n# id {id}, scopes {}: store the key now, it is not shown again\n",
                made["scopes"]
            ))
        }
        CtlCommand::ApiKey(ApiKeyCommand::List) => {
            let url = admin.url("/v1/admin/api-keys", &[])?;
            let listed: serde_json::Value = admin.send(Method::GET, url, None).await?;
            Ok(pretty(&listed))
        }
        CtlCommand::ApiKey(ApiKeyCommand::Revoke { id }) => {
            let url = admin.url("/v1/admin/api-keys", &[id])?;
            let _: serde_json::Value = admin.send(Method::DELETE, url, None).await?;
            Ok(format!("API key {id} revoked\n"))
        }
        CtlCommand::Undrain { node_id } => {
            let answer = admin.undrain(node_id).await?;
            let mut out = if answer.withdrawn {
                format!("drain request for {node_id} withdrawn\n")
            } else {
                format!("no drain request for {node_id} was pending\n")
            };
            if answer.draining {
                let _ = writeln!(
                    out,
                    "{node_id} is already draining: it finishes and exits; start it again to serve"
                );
            }
            Ok(out)
        }
    }
}

/// Read, add or remove one entry, write back (nothing to write: say so).
async fn modify(
    admin: &AdminClient,
    change: &ListCommand,
    list: impl Fn(&mut Policy) -> &mut Rules,
    name: &str,
) -> anyhow::Result<String> {
    let mut policy = admin.rollout().await?.policy;
    let (entry, add) = match change {
        ListCommand::Add(entry) => (entry, true),
        ListCommand::Rm(entry) => (entry, false),
    };
    let (key, value) = entry.key_value()?;
    let changed = edit::change(list(&mut policy), key, value, add);
    if !changed {
        let state = if add { "already on" } else { "not on" };
        eprintln!("{key} {value} is {state} the {name} list; nothing to change");
        return Ok(String::new());
    }
    admin.replace(&policy).await
}

impl Entry {
    fn key_value(&self) -> anyhow::Result<(edit::Key, &str)> {
        match (&self.uid, &self.device_id, &self.app_version) {
            (Some(v), None, None) => Ok((edit::Key::Uid, v)),
            (None, Some(v), None) => Ok((edit::Key::DeviceId, v)),
            (None, None, Some(v)) => Ok((edit::Key::AppVersion, v)),
            _ => bail!("give exactly one of --uid, --device-id, --app-version"),
        }
    }
}

/// The pure edits.
mod edit {
    use std::fmt;

    use router::policy::{Policy, Rules};

    use super::SetArgs;

    /// Which list of a [`Rules`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Key {
        Uid,
        DeviceId,
        AppVersion,
    }

    impl fmt::Display for Key {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Self::Uid => "uid",
                Self::DeviceId => "device id",
                Self::AppVersion => "app version range",
            })
        }
    }

    pub(super) fn set(policy: &mut Policy, set: &SetArgs) {
        if let Some(percent) = set.percent {
            policy.percent = percent;
        }
        if let Some(enabled) = set.enabled {
            policy.enabled = enabled;
        }
    }

    /// Add or remove `value`; false when there was nothing to do.
    pub(super) fn change(rules: &mut Rules, key: Key, value: &str, add: bool) -> bool {
        let list = match key {
            Key::Uid => &mut rules.uids,
            Key::DeviceId => &mut rules.device_ids,
            Key::AppVersion => &mut rules.app_versions,
        };
        let present = list.iter().any(|v| v == value);
        match (add, present) {
            (true, false) => {
                list.push(value.to_owned());
                true
            }
            (false, true) => {
                list.retain(|v| v != value);
                true
            }
            _ => false,
        }
    }
}

// === admin client ===

/// `GET /v1/admin/rollout`.
struct Current {
    policy: Policy,
    /// The whole answer, for `show`.
    raw: serde_json::Value,
}

#[derive(Deserialize)]
struct RolloutAnswer {
    policy: Policy,
}

#[derive(Deserialize)]
struct NodesAnswer {
    nodes: Vec<NodeRow>,
}

#[derive(Deserialize)]
struct NodeRow {
    kind: String,
    #[serde(flatten)]
    node: NodeInfo,
}

#[derive(Deserialize)]
struct DrainAnswer {
    requested_at_ms: u64,
}

#[derive(Deserialize)]
struct UndrainAnswer {
    withdrawn: bool,
    draining: bool,
}

struct AdminClient {
    http: HttpClient,
    base: String,
    token: String,
}

impl AdminClient {
    fn new(base: &str, token: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        if token.is_empty() {
            bail!("no admin token: pass --admin-token or set ROOMCAST_ADMIN_TOKEN");
        }
        let http = api_client::client(ca_file)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    async fn rollout(&self) -> anyhow::Result<Current> {
        let url = self.url("/v1/admin/rollout", &[])?;
        let raw: serde_json::Value = self.send(Method::GET, url, None).await?;
        let answer: RolloutAnswer = serde_json::from_value(raw.clone())
            .context("the router sent a rollout policy this CLI cannot read")?;
        Ok(Current {
            policy: answer.policy,
            raw,
        })
    }

    /// Validate locally (a clearer error, no round trip), then PUT; returns
    /// the policy now in force, pretty-printed.
    async fn replace(&self, policy: &Policy) -> anyhow::Result<String> {
        policy
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid policy: {e}"))?;
        let url = self.url("/v1/admin/rollout", &[])?;
        let body = serde_json::to_value(policy).context("cannot encode the policy")?;
        let answer: serde_json::Value = self.send(Method::PUT, url, Some(&body)).await?;
        Ok(pretty(&answer))
    }

    async fn nodes(&self) -> anyhow::Result<Vec<NodeRow>> {
        let url = self.url("/v1/admin/nodes", &[])?;
        let answer: NodesAnswer = self.send(Method::GET, url, None).await?;
        Ok(answer.nodes)
    }

    async fn drain(&self, node_id: &str) -> anyhow::Result<u64> {
        let url = self.url("/v1/admin/nodes", &[node_id, "drain"])?;
        let answer: DrainAnswer = self.send(Method::POST, url, None).await?;
        Ok(answer.requested_at_ms)
    }

    async fn undrain(&self, node_id: &str) -> anyhow::Result<UndrainAnswer> {
        let url = self.url("/v1/admin/nodes", &[node_id, "drain"])?;
        self.send(Method::DELETE, url, None).await
    }

    /// `{base}{path}`, then each of `segments` escaped as one path segment
    /// (`/v1/admin/nodes/{id}/drain`).
    fn url(&self, path: &str, segments: &[&str]) -> anyhow::Result<Url> {
        api_client::url(&self.base, path, segments).context("bad --admin-url")
    }

    /// Send with the token (and `body` as JSON); a non-2xx answer becomes
    /// one clear line.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .request(
                method,
                &url,
                Auth::Bearer(&self.token),
                body,
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|failure| {
                api_client::unreachable("the router admin API", &self.base, &failure)
            })?;
        let (status, body) = (response.status, response.text());
        if status == StatusCode::UNAUTHORIZED {
            bail!("admin token refused by {}", self.base);
        }
        if !status.is_success() {
            bail!("{}", refusal(status, &body));
        }
        serde_json::from_str(&body)
            .with_context(|| format!("the router sent an answer this CLI cannot read: {body}"))
    }
}

/// One line for a refused request: the API's message when it sent one.
fn refusal(status: StatusCode, body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| body.trim().to_owned());
    match status {
        StatusCode::BAD_REQUEST => format!("refused: {message}"),
        StatusCode::NOT_FOUND => format!("not found: {message}"),
        StatusCode::SERVICE_UNAVAILABLE => format!("router cannot store it now: {message}"),
        _ => format!("router answered {status}: {message}"),
    }
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

fn nodes_table(rows: &[NodeRow]) -> String {
    let mut out = format!(
        "{:<7} {:<24} {:<10} {:>11} {:>7} {:<8} {}\n",
        "KIND", "ID", "ZONE", "CONNECTIONS", "ROOMS", "DRAINING", "ENDPOINTS"
    );
    for row in rows {
        let n = &row.node;
        let endpoints: Vec<String> = n
            .endpoints
            .iter()
            .filter(|(name, _)| name.as_str() != proto::transport::QUIC_CERT_SHA256)
            .map(|(name, url)| format!("{name}={url}"))
            .collect();
        let zone = if n.zone.is_empty() { "-" } else { &n.zone };
        let _ = writeln!(
            out,
            "{:<7} {:<24} {:<10} {:>11} {:>7} {:<8} {}",
            row.kind,
            n.id,
            zone,
            n.connections,
            n.rooms,
            if n.draining { "yes" } else { "no" },
            endpoints.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use clap::Parser as _;
    use common::discovery::{Discovery as _, MemoryDiscovery, ServiceKind};
    use common::live_config::{LiveConfig as _, MemoryLiveConfig, keys};
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::commands::{Cli, Command};

    const TOKEN: &str = "ctl-test-token-0123456789";

    fn parse(args: &[&str]) -> CtlArgs {
        let mut argv = vec!["roomcast", "ctl"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Ctl(args)) => args,
            Ok(other) => panic!("parsed as {other:?}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn edits_add_remove_and_set() {
        let mut policy = Policy::default();
        assert!(edit::change(&mut policy.allow, edit::Key::Uid, "bob", true));
        assert!(!edit::change(
            &mut policy.allow,
            edit::Key::Uid,
            "bob",
            true
        ));
        assert!(edit::change(
            &mut policy.deny,
            edit::Key::AppVersion,
            "^2.3",
            true
        ));
        assert_eq!(policy.allow.uids, ["bob"]);
        assert_eq!(policy.deny.app_versions, ["^2.3"]);
        assert!(edit::change(
            &mut policy.allow,
            edit::Key::Uid,
            "bob",
            false
        ));
        assert!(!edit::change(
            &mut policy.allow,
            edit::Key::DeviceId,
            "d",
            false
        ));
        assert!(policy.allow.is_empty());
        let set = SetArgs {
            percent: Some(12.5),
            enabled: None,
        };
        edit::set(&mut policy, &set);
        assert_eq!((policy.enabled, policy.percent), (true, 12.5));
    }

    #[test]
    fn the_command_line_parses() {
        let args = parse(&["rollout", "set", "--percent", "5", "--enabled", "false"]);
        assert!(matches!(
            args.command,
            CtlCommand::Rollout(RolloutCommand::Set(SetArgs {
                percent: Some(5.0),
                enabled: Some(false)
            }))
        ));
        let args = parse(&["rollout", "deny", "add", "--app-version", ">=3.0.0, <3.2.0"]);
        let CtlCommand::Rollout(RolloutCommand::Deny(ListCommand::Add(entry))) = args.command
        else {
            panic!("deny add");
        };
        assert_eq!(entry.app_version.as_deref(), Some(">=3.0.0, <3.2.0"));
        let argv = [
            "roomcast",
            "ctl",
            "rollout",
            "allow",
            "add",
            "--uid",
            "a",
            "--device-id",
            "b",
        ];
        assert!(Cli::try_parse_from(argv).is_err(), "one key at a time");
        assert!(Cli::try_parse_from(["roomcast", "ctl", "rollout", "set"]).is_err());
        let args = parse(&["--admin-url", "http://r:1", "drain", "conn-a"]);
        assert_eq!(args.admin_url, "http://r:1");
        assert!(matches!(args.command, CtlCommand::Drain { ref node_id } if node_id == "conn-a"));
    }

    struct Router {
        url: String,
        live: Arc<MemoryLiveConfig>,
        discovery: Arc<MemoryDiscovery>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), router::Error>>,
    }

    async fn router() -> Router {
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", admin.local_addr().expect("addr"));
        let live = Arc::new(MemoryLiveConfig::default());
        let discovery = Arc::new(MemoryDiscovery::new());
        let deps = router::Deps {
            discovery: discovery.clone(),
            live_config: live.clone(),
            registry: prometheus::Registry::new(),
            pages: None,
        };
        let cfg = router::Config {
            admin_token: TOKEN.into(),
            ..router::Config::default()
        };
        let stop = CancellationToken::new();
        let listeners = router::Listeners {
            http,
            admin: Some(admin),
            ops: None,
        };
        let task = tokio::spawn(router::run(cfg, deps, listeners, stop.clone()));
        let mut view = discovery.watch(ServiceKind::Router);
        tokio::time::timeout(Duration::from_secs(5), view.wait_for(|n| !n.is_empty()))
            .await
            .expect("router up")
            .expect("view");
        Router {
            url,
            live,
            discovery,
            stop,
            task,
        }
    }

    async fn ctl(r: &Router, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["--admin-url", r.url.as_str(), "--admin-token", TOKEN];
        full.extend_from_slice(args);
        execute(&parse(&full), None).await
    }

    async fn stored(r: &Router) -> serde_json::Value {
        let text = r
            .live
            .get(keys::ROLLOUT)
            .await
            .expect("get")
            .expect("stored");
        serde_json::from_str(&text).expect("JSON")
    }

    #[tokio::test]
    async fn ctl_drives_a_real_router() {
        let r = router().await;
        let shown = ctl(&r, &["rollout", "show"]).await.expect("show");
        assert!(shown.contains(r#""source": "default""#), "{shown}");

        ctl(&r, &["rollout", "set", "--percent", "5"])
            .await
            .expect("set");
        ctl(&r, &["rollout", "allow", "add", "--uid", "tester"])
            .await
            .expect("allow");
        ctl(&r, &["rollout", "deny", "add", "--app-version", "^2.3"])
            .await
            .expect("deny");
        ctl(&r, &["rollout", "deny", "add", "--device-id", "bad-phone"])
            .await
            .expect("deny");
        ctl(&r, &["rollout", "deny", "rm", "--device-id", "bad-phone"])
            .await
            .expect("rm");
        let out = ctl(&r, &["rollout", "set", "--enabled", "false"])
            .await
            .expect("set");
        assert!(out.contains(r#""enabled": false"#), "{out}");
        assert_eq!(
            stored(&r).await,
            serde_json::json!({
                "enabled": false, "percent": 5,
                "allow": {"uids": ["tester"], "device_ids": [], "app_versions": []},
                "deny": {"uids": [], "device_ids": [], "app_versions": ["^2.3"]},
            })
        );

        let e = ctl(&r, &["rollout", "set", "--percent", "150"])
            .await
            .expect_err("bad");
        assert!(e.to_string().contains("percent"), "{e}");
        let e = ctl(&r, &["rollout", "deny", "add", "--app-version", "two"])
            .await
            .expect_err("bad");
        assert!(e.to_string().contains("deny.app_versions[1]"), "{e}");
        assert_eq!(stored(&r).await["percent"], 5, "unchanged");

        let conn = NodeInfo {
            id: "conn-a".into(),
            zone: "eu-1".into(),
            connections: 42,
            endpoints: [("ws".to_owned(), "ws://h:8601/v1/ws".to_owned())].into(),
            ..NodeInfo::default()
        };
        r.discovery
            .register(ServiceKind::Conn, conn)
            .await
            .expect("register");
        let table = ctl(&r, &["nodes"]).await.expect("nodes");
        let line = table
            .lines()
            .find(|l| l.contains("conn-a"))
            .expect("conn-a listed");
        assert!(
            line.contains("eu-1") && line.contains("42") && line.contains("ws=ws://h:8601"),
            "{table}"
        );
        assert!(table.contains("router"), "{table}");

        let made = ctl(
            &r,
            &[
                "api-key",
                "create",
                "--name",
                "billing",
                "--scope",
                "rooms:write",
            ],
        )
        .await
        .expect("api-key create");
        let key = made.lines().next().expect("the key line").to_owned();
        let stored_keys = r.live.get(keys::API_KEYS).await.expect("get");
        let ring = common::api_keys::Keyring::from_stored(stored_keys.as_deref()).expect("ring");
        let record = ring
            .authenticate(&key, common::api_keys::Scope::RoomsWrite)
            .expect("the printed key works");
        let listed = ctl(&r, &["api-key", "list"]).await.expect("list");
        assert!(
            listed.contains("billing") && !listed.contains(&key),
            "{listed}"
        );
        let e = ctl(
            &r,
            &["api-key", "create", "--name", "x", "--scope", "rooms:nuke"],
        )
        .await
        .expect_err("bad scope");
        assert!(e.to_string().contains("unknown scope"), "{e}");
        let out = ctl(&r, &["api-key", "revoke", &record.id])
            .await
            .expect("revoke");
        assert!(out.contains("revoked"), "{out}");
        let e = ctl(&r, &["api-key", "revoke", &record.id])
            .await
            .expect_err("gone");
        assert!(e.to_string().contains("not found"), "{e}");

        let out = ctl(&r, &["drain", "conn-a"]).await.expect("drain");
        assert!(out.contains("drain requested for conn-a"), "{out}");
        assert!(
            r.live
                .get(&keys::drain("conn-a"))
                .await
                .expect("get")
                .is_some()
        );
        let e = ctl(&r, &["drain", "conn-zz"]).await.expect_err("unknown");
        assert!(e.to_string().starts_with("not found"), "{e}");
        let out = ctl(&r, &["undrain", "conn-a"]).await.expect("undrain");
        assert!(out.contains("drain request for conn-a withdrawn"), "{out}");
        assert!(
            r.live
                .get(&keys::drain("conn-a"))
                .await
                .expect("get")
                .is_none()
        );
        let out = ctl(&r, &["undrain", "conn-a"]).await.expect("undrain");
        assert!(out.contains("no drain request for conn-a"), "{out}");

        let wrong = parse(&["--admin-url", &r.url, "--admin-token", "wrong", "nodes"]);
        let e = execute(&wrong, None).await.expect_err("refused");
        assert!(e.to_string().starts_with("admin token refused"), "{e}");
        let closed = parse(&["--admin-url", "http://127.0.0.1:1", "nodes"]);
        let e = execute(&closed, None).await.expect_err("unreachable");
        assert!(
            e.to_string().contains("cannot reach the router admin API"),
            "{e}"
        );

        r.stop.cancel();
        r.task.await.expect("task").expect("clean stop");
    }
}
