//! Answering `GET /v1/route`: sans-IO, from the query, the rollout policy and
//! a snapshot of the live nodes.
//!
//! # Layout
//! - [`RouteQuery`] → [`RouteQuery::validate`] → [`ClientQuery`]: parameter
//!   checks, each error naming its field.
//! - [`route`]: policy decision ([`crate::policy`]), then node choice
//!   ([`crate::balancer`]) in long mode, the polling URL always.
//! - [`Route`]: the JSON answer the SDK reads.
//!
//! The policy says long but no conn node takes clients → short, when a biz
//! node serves polling. The policy says short → short, never a conn node
//! (a denied app version may crash on long connections).

use common::discovery::NodeInfo;
use common::hashing::rendezvous_owner;
use proto::transport::{QUIC, QUIC_CERT_SHA256, Transport};
use rand::Rng;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::balancer;
use crate::error::RouteError;
use crate::policy::{ClientInfo, Decision, Mode, Rollout};

/// Path of the polling API on a biz node.
const POLLING_PATH: &str = "/v1/rooms";
/// Longest uid or device id, in bytes.
const MAX_ID_BYTES: usize = 256;
/// Longest app version or zone, in bytes.
const MAX_SHORT_BYTES: usize = 64;
/// Platforms SDKs report: app platforms, plus every `std::env::consts::OS`
/// value a Rust SDK may send. Anything else is a client bug worth a 400.
const PLATFORMS: &[&str] = &[
    "android",
    "ios",
    "ipados",
    "web",
    "harmonyos",
    "miniprogram",
    "macos",
    "windows",
    "linux",
    "freebsd",
    "openbsd",
    "netbsd",
    "dragonfly",
    "illumos",
    "solaris",
    "fuchsia",
    "tvos",
    "watchos",
    "visionos",
    "wasi",
    "emscripten",
    "unknown",
];

/// The client's `GET /v1/route` parameters, as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RouteQuery {
    /// User id.
    pub(crate) uid: Option<String>,
    /// Device id, for clients not logged in yet.
    pub(crate) device_id: Option<String>,
    /// App version (semver), matched against the policy's version ranges.
    pub(crate) app_version: Option<String>,
    /// One of [`PLATFORMS`].
    pub(crate) platform: Option<String>,
    /// The client's zone: nodes there are preferred.
    pub(crate) zone: Option<String>,
}

/// A validated query. Empty parameters are absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ClientQuery {
    pub(crate) uid: Option<String>,
    pub(crate) device_id: Option<String>,
    pub(crate) app_version: Option<Version>,
    pub(crate) zone: Option<String>,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn bounded<'a>(
    field: &'static str,
    value: &'a Option<String>,
    max: usize,
) -> Result<Option<&'a str>, RouteError> {
    match present(value) {
        Some(v) if v.len() > max => Err(RouteError::Invalid {
            field,
            message: format!("must be at most {max} bytes"),
        }),
        other => Ok(other),
    }
}

impl RouteQuery {
    /// Check every parameter. The identity is checked first: it is the one
    /// every client must send.
    pub(crate) fn validate(&self) -> Result<ClientQuery, RouteError> {
        let uid = bounded("uid", &self.uid, MAX_ID_BYTES)?;
        let device_id = bounded("device_id", &self.device_id, MAX_ID_BYTES)?;
        if uid.is_none() && device_id.is_none() {
            return Err(RouteError::MissingIdentity);
        }
        let app_version = match bounded("app_version", &self.app_version, MAX_SHORT_BYTES)? {
            Some(v) => Some(Version::parse(v).map_err(|e| RouteError::Invalid {
                field: "app_version",
                message: format!("{v:?} is not a semver version like 2.3.1: {e}"),
            })?),
            None => None,
        };
        if let Some(platform) = bounded("platform", &self.platform, MAX_SHORT_BYTES)?
            && !PLATFORMS.iter().any(|p| p.eq_ignore_ascii_case(platform))
        {
            return Err(RouteError::Invalid {
                field: "platform",
                message: format!(
                    "unknown platform {platform:?}; expected one of {}",
                    PLATFORMS.join(", ")
                ),
            });
        }
        let zone = bounded("zone", &self.zone, MAX_SHORT_BYTES)?;
        Ok(ClientQuery {
            uid: uid.map(str::to_owned),
            device_id: device_id.map(str::to_owned),
            app_version,
            zone: zone.map(str::to_owned),
        })
    }
}

impl ClientQuery {
    fn info(&self) -> ClientInfo<'_> {
        ClientInfo {
            uid: self.uid.as_deref(),
            device_id: self.device_id.as_deref(),
            app_version: self.app_version.as_ref(),
        }
    }

    /// The stable key of this client: its uid, else its device id.
    fn identity(&self) -> &str {
        self.uid
            .as_deref()
            .or(self.device_id.as_deref())
            .unwrap_or_default()
    }
}

/// One way to reach a conn node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Endpoint {
    /// `quic` or `ws`.
    pub(crate) transport: &'static str,
    /// As the conn node advertised it (`quic://host:port`, `ws://host:port/v1/ws`).
    pub(crate) url: String,
}

/// The answer to `GET /v1/route`. The SDK depends on this shape: fields may
/// be added, never renamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Route {
    pub(crate) mode: Mode,
    /// The chosen conn node (long mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) node_id: Option<String>,
    /// Endpoints in preference order (QUIC, then WebSocket); empty in short mode.
    pub(crate) endpoints: Vec<Endpoint>,
    /// Hex SHA-256 of the chosen node's QUIC certificate, for pinning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) quic_cert_sha256: Option<String>,
    /// The polling base URL, when a biz node is live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) polling_url: Option<String>,
    pub(crate) heartbeat_ms: u32,
    pub(crate) retry_ms: u32,
}

/// Connection hints sent with every route.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hints {
    pub(crate) heartbeat_ms: u32,
    pub(crate) retry_ms: u32,
}

/// Route `client` given the policy and the live conn and biz nodes. Returns
/// the policy's decision too (for metrics), even when the mode had to change.
pub(crate) fn route<R: Rng + ?Sized>(
    client: &ClientQuery,
    rollout: &Rollout,
    conns: &[NodeInfo],
    bizs: &[NodeInfo],
    hints: Hints,
    picker: &mut balancer::Picker<'_, R>,
) -> Result<(Route, Decision), RouteError> {
    let decision = rollout.decide(&client.info());
    let polling_url = polling_url(client.identity(), bizs);
    let node = match decision.mode {
        Mode::Long => balancer::choose(conns, client.zone.as_deref(), picker),
        Mode::Short => None,
    };
    let (mode, node_id, endpoints, quic_cert_sha256) = match node {
        Some(node) => (
            Mode::Long,
            Some(node.id.clone()),
            endpoints(node),
            quic_cert(node),
        ),
        None if polling_url.is_some() => (Mode::Short, None, Vec::new(), None),
        None => return Err(RouteError::NoNodes),
    };
    let route = Route {
        mode,
        node_id,
        endpoints,
        quic_cert_sha256,
        polling_url,
        heartbeat_ms: hints.heartbeat_ms,
        retry_ms: hints.retry_ms,
    };
    Ok((route, decision))
}

fn endpoints(node: &NodeInfo) -> Vec<Endpoint> {
    Transport::LONG
        .into_iter()
        .filter_map(|t| {
            node.endpoints.get(t.as_str()).map(|url| Endpoint {
                transport: t.as_str(),
                url: url.clone(),
            })
        })
        .collect()
}

/// The node's QUIC certificate fingerprint, when it has a QUIC endpoint and
/// the fingerprint is 64 hex digits (anything else would only make SDKs fail
/// the pin; it is left out and logged).
fn quic_cert(node: &NodeInfo) -> Option<String> {
    node.endpoints.get(QUIC)?;
    let hex = node.endpoints.get(QUIC_CERT_SHA256)?;
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(hex.to_ascii_lowercase())
    } else {
        tracing::debug!(node = %node.id, "Ignoring a malformed quic_cert_sha256 endpoint.");
        None
    }
}

/// The polling URL of the biz node this client hashes to: the same client
/// keeps polling the same node while the set is stable.
fn polling_url(identity: &str, bizs: &[NodeInfo]) -> Option<String> {
    let candidates = bizs
        .iter()
        .filter(|n| http_of(n).is_some())
        .map(|n| n.id.as_str());
    let owner = rendezvous_owner(identity, candidates)?;
    let base = bizs.iter().find(|n| n.id == owner).and_then(http_of)?;
    Some(format!("{}{POLLING_PATH}", base.trim_end_matches('/')))
}

/// A biz node's HTTP base URL, if it serves polling.
fn http_of(node: &NodeInfo) -> Option<&String> {
    node.endpoints.get("http").filter(|_| !node.draining)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::SeedableRng as _;
    use rand::rngs::StdRng;
    use std::time::Instant;

    use crate::balancer::{HandOuts, Picker};

    use super::*;
    use crate::policy::{Policy, Reason};

    const HINTS: Hints = Hints {
        heartbeat_ms: 25_000,
        retry_ms: 1_000,
    };
    const CERT: &str = "AB0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

    fn conn(id: &str, connections: u64, draining: bool) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            endpoints: BTreeMap::from([("ws".to_owned(), format!("ws://{id}:8601/v1/ws"))]),
            connections,
            draining,
            ..NodeInfo::default()
        }
    }

    fn biz(id: &str) -> NodeInfo {
        let http = BTreeMap::from([("http".to_owned(), format!("http://{id}:8602"))]);
        NodeInfo {
            id: id.into(),
            endpoints: http,
            ..NodeInfo::default()
        }
    }

    fn user(uid: &str) -> ClientQuery {
        ClientQuery {
            uid: Some(uid.into()),
            ..ClientQuery::default()
        }
    }

    fn go(
        client: &ClientQuery,
        rollout: &Rollout,
        conns: &[NodeInfo],
        bizs: &[NodeInfo],
    ) -> Result<Route, RouteError> {
        let mut picker = Picker {
            hand_outs: &mut HandOuts::default(),
            now: Instant::now(),
            rng: &mut StdRng::seed_from_u64(3),
        };
        route(client, rollout, conns, bizs, HINTS, &mut picker).map(|(r, _)| r)
    }

    fn query(pairs: &[(&str, &str)]) -> RouteQuery {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        };
        RouteQuery {
            uid: get("uid"),
            device_id: get("device_id"),
            app_version: get("app_version"),
            platform: get("platform"),
            zone: get("zone"),
        }
    }

    #[test]
    fn long_mode_gives_a_conn_node_with_quic_first_and_its_certificate() {
        let mut a = conn("conn-a", 3, false);
        a.endpoints
            .insert("quic".into(), "quic://conn-a:8604".into());
        a.endpoints.insert(QUIC_CERT_SHA256.into(), CERT.into());
        let conns = [a, conn("conn-b", 50, false), conn("conn-c", 0, true)];
        let route = go(&user("bob"), &Rollout::default(), &conns, &[biz("biz-1")]).expect("route");
        assert_eq!(route.mode, Mode::Long);
        assert_eq!(route.node_id.as_deref(), Some("conn-a"));
        let transports: Vec<_> = route.endpoints.iter().map(|e| e.transport).collect();
        assert_eq!(transports, ["quic", "ws"]);
        assert_eq!(route.endpoints[0].url, "quic://conn-a:8604");
        assert_eq!(route.quic_cert_sha256, Some(CERT.to_ascii_lowercase()));
        assert_eq!(
            route.polling_url.as_deref(),
            Some("http://biz-1:8602/v1/rooms")
        );
        assert_eq!((route.heartbeat_ms, route.retry_ms), (25_000, 1_000));
    }

    #[test]
    fn a_malformed_certificate_or_one_without_quic_is_left_out() {
        let mut a = conn("conn-a", 0, false);
        a.endpoints.insert(QUIC_CERT_SHA256.into(), CERT.into());
        let route = go(&user("bob"), &Rollout::default(), &[a.clone()], &[]).expect("route");
        assert_eq!(route.quic_cert_sha256, None, "no quic endpoint");
        a.endpoints
            .insert("quic".into(), "quic://conn-a:8604".into());
        a.endpoints
            .insert(QUIC_CERT_SHA256.into(), "not-hex".into());
        let route = go(&user("bob"), &Rollout::default(), &[a], &[]).expect("route");
        assert_eq!(route.quic_cert_sha256, None, "malformed");
    }

    #[test]
    fn the_policy_decides_the_mode() {
        let rollout = Policy {
            enabled: false,
            percent: 100.0,
            ..Policy::default()
        }
        .compile()
        .expect("valid");
        let conns = [conn("conn-a", 0, false)];
        let mut picker = Picker {
            hand_outs: &mut HandOuts::default(),
            now: Instant::now(),
            rng: &mut StdRng::seed_from_u64(1),
        };
        let (route, decision) = route(
            &user("bob"),
            &rollout,
            &conns,
            &[biz("biz-1")],
            HINTS,
            &mut picker,
        )
        .expect("route");
        assert_eq!(
            (route.mode, decision.reason),
            (Mode::Short, Reason::Disabled)
        );
        assert_eq!((route.node_id, route.endpoints.len()), (None, 0));
        assert_eq!(
            route.polling_url.as_deref(),
            Some("http://biz-1:8602/v1/rooms")
        );
        // Short by policy and no biz node: nothing to give.
        assert_eq!(
            go(&user("bob"), &rollout, &conns, &[]),
            Err(RouteError::NoNodes)
        );
    }

    #[test]
    fn short_mode_without_conn_nodes_and_an_error_without_any_node() {
        let conns = [conn("conn-a", 0, true)];
        let all = Rollout::default();
        let short = go(&user("bob"), &all, &conns, &[biz("biz-1")]).expect("route");
        assert_eq!((short.mode, short.node_id.as_deref()), (Mode::Short, None));
        assert!(short.endpoints.is_empty());
        assert_eq!(
            go(&user("bob"), &all, &conns, &[]),
            Err(RouteError::NoNodes)
        );
    }

    #[test]
    fn parameters_are_validated_naming_the_field() {
        let field = |pairs: &[(&str, &str)]| query(pairs).validate().err().and_then(|e| e.field());
        assert_eq!(query(&[]).validate(), Err(RouteError::MissingIdentity));
        assert_eq!(field(&[("uid", " "), ("platform", "ios")]), Some("uid"));
        assert_eq!(
            field(&[("uid", "u"), ("app_version", "1.2")]),
            Some("app_version")
        );
        assert_eq!(
            field(&[("uid", "u"), ("app_version", "latest")]),
            Some("app_version")
        );
        assert_eq!(
            field(&[("uid", "u"), ("platform", "toaster")]),
            Some("platform")
        );
        let long = "x".repeat(300);
        assert_eq!(field(&[("device_id", &long)]), Some("device_id"));
        assert_eq!(field(&[("uid", "u"), ("zone", &long)]), Some("zone"));

        let ok = query(&[
            ("device_id", "d1"),
            ("app_version", "2.3.1-beta.2"),
            ("platform", "iOS"),
            ("zone", "eu-1"),
            ("uid", ""),
        ])
        .validate()
        .expect("valid");
        assert_eq!(ok.uid, None);
        assert_eq!(ok.identity(), "d1");
        assert_eq!(ok.app_version, Version::parse("2.3.1-beta.2").ok());
        assert_eq!(ok.zone.as_deref(), Some("eu-1"));
        // Every OS a Rust SDK reports by default is known.
        let os = query(&[("uid", "u"), ("platform", std::env::consts::OS)]);
        assert!(os.validate().is_ok());
    }

    #[test]
    fn a_client_keeps_its_polling_node() {
        let bizs = [biz("biz-1"), biz("biz-2"), biz("biz-3")];
        let first = polling_url("bob", &bizs);
        assert!(first.is_some());
        assert_eq!(polling_url("bob", &bizs), first);
        let spread: std::collections::HashSet<_> = (0..50)
            .filter_map(|i| polling_url(&format!("user-{i}"), &bizs))
            .collect();
        assert!(spread.len() > 1, "clients spread over biz nodes");
    }
}
