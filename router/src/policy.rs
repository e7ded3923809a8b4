//! The rollout policy: which clients get a long connection. Pure, sans-IO.
//!
//! # Layout
//! - [`Policy`]: the JSON document operators store (serde, wire form), with
//!   [`Policy::validate`].
//! - [`Rollout`]: a validated policy compiled for fast decisions
//!   ([`Rollout::decide`]).
//! - [`ClientInfo`], [`Decision`], [`Mode`], [`Reason`]: what a decision reads
//!   and returns.
//!
//! # Semantics
//! 1. Deny: the uid, the device id, or the app version (semver range) is on
//!    the deny list → short. Deny beats allow.
//! 2. Allow: on the allow list by any of the same keys → long, even when the
//!    policy is disabled or the client is outside the percentage.
//! 3. Percentage: enabled, and the client's bucket (stable hash of the uid, or
//!    of the device id when there is no uid, modulo 10,000) is below
//!    `percent × 100` → long.
//! 4. Otherwise short.
//!
//! The bucket does not depend on the percentage, so a client long at `p` is
//! long at every `p' > p` (monotone rollout), and the same in every router.

use std::collections::HashSet;

use common::hashing::stable_hash;
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize, Serializer};

pub use crate::error::PolicyError;

/// Buckets of the percentage: 10,000 gives the one-decimal resolution.
const BUCKETS: u64 = 10_000;
/// Salt of the bucket hash, so the rollout bucket is independent of every
/// other use of `stable_hash` on uids (polling node choice, sharding).
const BUCKET_SALT: &[u8] = b"roomcast-rollout";
/// Most uids or device ids per list: set lookups stay O(1) per route.
pub const MAX_IDS: usize = 100_000;
/// Most version ranges per list: every range is tried on every route.
pub const MAX_VERSION_RANGES: usize = 1_000;
/// Longest single entry (uid, device id, version range), in bytes.
pub const MAX_ENTRY_BYTES: usize = 256;
/// Largest policy as stored JSON: etcd refuses values over 1.5 MiB by default.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// The stored rollout policy (JSON). Unknown fields are refused so a typo
/// (`"percentage"`) does not silently leave the old behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Long connections for the percentage; when false only the allow list
    /// gets them.
    pub enabled: bool,
    /// Share of clients (0–100, at most one decimal) given a long connection.
    #[serde(serialize_with = "serialize_percent")]
    pub percent: f64,
    /// Clients always given a long connection (unless denied).
    #[serde(default)]
    pub allow: Rules,
    /// Clients never given a long connection.
    #[serde(default)]
    pub deny: Rules,
}

impl Default for Policy {
    /// What runs when nothing is stored: long connections for everyone.
    fn default() -> Self {
        Self {
            enabled: true,
            percent: 100.0,
            allow: Rules::default(),
            deny: Rules::default(),
        }
    }
}

/// One allow or deny list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Exact uids.
    pub uids: Vec<String>,
    /// Exact device ids.
    pub device_ids: Vec<String>,
    /// semver ranges (`^2.3`, `>=3.0.0, <3.2.0`, `=2.4.1`).
    pub app_versions: Vec<String>,
}

impl Rules {
    /// True when no entry is set.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty() && self.device_ids.is_empty() && self.app_versions.is_empty()
    }
}

/// `50` rather than `50.0` for whole percentages: what an operator typed.
fn serialize_percent<S: Serializer>(percent: &f64, s: S) -> Result<S::Ok, S::Error> {
    let tenths = (percent * 10.0).round();
    if tenths % 10.0 == 0.0 && (0.0..=1000.0).contains(&tenths) {
        // In 0..=100 after the check above, so the cast is exact.
        s.serialize_u64((tenths / 10.0) as u64)
    } else {
        s.serialize_f64(*percent)
    }
}

impl Policy {
    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), PolicyError> {
        basis_points(self.percent)?;
        self.allow.validate("allow")?;
        self.deny.validate("deny")?;
        let bytes = serde_json::to_vec(self).map_or(usize::MAX, |v| v.len());
        if bytes > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                bytes,
                max: MAX_POLICY_BYTES,
            });
        }
        Ok(())
    }

    /// Parse and validate a stored or submitted document.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        let policy: Self =
            serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Validate and compile for decisions.
    pub fn compile(self) -> Result<Rollout, PolicyError> {
        self.validate()?;
        let basis_points = basis_points(self.percent)?;
        let allow = CompiledRules::new(&self.allow, "allow")?;
        let deny = CompiledRules::new(&self.deny, "deny")?;
        Ok(Rollout {
            policy: self,
            basis_points,
            allow,
            deny,
        })
    }
}

/// `percent` as hundredths of a percent (0..=10,000).
fn basis_points(percent: f64) -> Result<u64, PolicyError> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return Err(PolicyError::Percent(percent));
    }
    let tenths = (percent * 10.0).round();
    // Tolerate binary noise (`12.3` is not exact) but not a second decimal.
    if (percent * 10.0 - tenths).abs() > 1e-6 {
        return Err(PolicyError::Percent(percent));
    }
    // 0 ≤ tenths ≤ 1000 after the range check: the cast is exact.
    Ok(tenths as u64 * 10)
}

impl Rules {
    fn validate(&self, list: &'static str) -> Result<(), PolicyError> {
        check_entries(list, "uids", &self.uids, MAX_IDS)?;
        check_entries(list, "device_ids", &self.device_ids, MAX_IDS)?;
        check_entries(list, "app_versions", &self.app_versions, MAX_VERSION_RANGES)?;
        for (index, range) in self.app_versions.iter().enumerate() {
            VersionReq::parse(range).map_err(|e| PolicyError::VersionRange {
                field: format!("{list}.app_versions[{index}]"),
                value: range.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

fn check_entries(
    list: &str,
    name: &str,
    entries: &[String],
    max: usize,
) -> Result<(), PolicyError> {
    if entries.len() > max {
        return Err(PolicyError::TooMany {
            field: format!("{list}.{name}"),
            len: entries.len(),
            max,
        });
    }
    for (index, entry) in entries.iter().enumerate() {
        if entry.trim().is_empty() || entry.len() > MAX_ENTRY_BYTES {
            return Err(PolicyError::Entry {
                field: format!("{list}.{name}[{index}]"),
                max: MAX_ENTRY_BYTES,
            });
        }
    }
    Ok(())
}

/// A list ready for lookups.
#[derive(Debug)]
struct CompiledRules {
    uids: HashSet<String>,
    device_ids: HashSet<String>,
    app_versions: Vec<VersionReq>,
}

impl CompiledRules {
    fn new(rules: &Rules, list: &'static str) -> Result<Self, PolicyError> {
        let app_versions = rules
            .app_versions
            .iter()
            .enumerate()
            .map(|(index, range)| {
                VersionReq::parse(range).map_err(|e| PolicyError::VersionRange {
                    field: format!("{list}.app_versions[{index}]"),
                    value: range.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            uids: rules.uids.iter().cloned().collect(),
            device_ids: rules.device_ids.iter().cloned().collect(),
            app_versions,
        })
    }

    fn matches(&self, client: &ClientInfo<'_>) -> bool {
        client.uid.is_some_and(|u| self.uids.contains(u))
            || client
                .device_id
                .is_some_and(|d| self.device_ids.contains(d))
            || client
                .app_version
                .is_some_and(|v| self.app_versions.iter().any(|r| r.matches(v)))
    }
}

/// What a decision knows about the client. Empty strings count as absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientInfo<'a> {
    /// User id.
    pub uid: Option<&'a str>,
    /// Device id.
    pub device_id: Option<&'a str>,
    /// App version, already parsed.
    pub app_version: Option<&'a Version>,
}

impl ClientInfo<'_> {
    /// The key of the percentage bucket: the uid, else the device id.
    fn identity(&self) -> Option<&str> {
        self.uid
            .filter(|s| !s.is_empty())
            .or(self.device_id.filter(|s| !s.is_empty()))
    }
}

/// How the client should talk to Roomcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A long connection (QUIC or WebSocket) to a conn node.
    Long,
    /// HTTP polling.
    Short,
}

impl Mode {
    /// The `mode` label of `roomcast_router_routes_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
        }
    }
}

/// Which rule decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// On the deny list.
    Deny,
    /// On the allow list.
    Allow,
    /// Enabled and inside the percentage.
    Percent,
    /// Enabled and outside the percentage.
    Outside,
    /// Disabled and not on the allow list.
    Disabled,
}

impl Reason {
    /// The `reason` label of `roomcast_router_rollout_decisions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
            Self::Percent => "percent",
            Self::Outside => "outside",
            Self::Disabled => "disabled",
        }
    }
}

/// The outcome of [`Rollout::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Long or short.
    pub mode: Mode,
    /// Why.
    pub reason: Reason,
}

/// A validated policy, compiled for decisions.
#[derive(Debug)]
pub struct Rollout {
    policy: Policy,
    /// `percent × 100`.
    basis_points: u64,
    allow: CompiledRules,
    deny: CompiledRules,
}

impl Default for Rollout {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            basis_points: BUCKETS,
            allow: CompiledRules::empty(),
            deny: CompiledRules::empty(),
        }
    }
}

impl CompiledRules {
    fn empty() -> Self {
        Self {
            uids: HashSet::new(),
            device_ids: HashSet::new(),
            app_versions: Vec::new(),
        }
    }
}

impl Rollout {
    /// The policy as stored.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Long or short for `client`. See the module docs.
    pub fn decide(&self, client: &ClientInfo<'_>) -> Decision {
        let (mode, reason) = if self.deny.matches(client) {
            (Mode::Short, Reason::Deny)
        } else if self.allow.matches(client) {
            (Mode::Long, Reason::Allow)
        } else if !self.policy.enabled {
            (Mode::Short, Reason::Disabled)
        } else if self.inside(client.identity()) {
            (Mode::Long, Reason::Percent)
        } else {
            (Mode::Short, Reason::Outside)
        };
        Decision { mode, reason }
    }

    /// True when the client's bucket is below the percentage. A client with
    /// no identity has no bucket: only 100 % includes it.
    fn inside(&self, identity: Option<&str>) -> bool {
        match identity {
            Some(id) => bucket(id) < self.basis_points,
            None => self.basis_points >= BUCKETS,
        }
    }
}

/// The client's rollout bucket, 0..10,000: the same in every process.
pub fn bucket(identity: &str) -> u64 {
    stable_hash(&[BUCKET_SALT, identity.as_bytes()]) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> Rollout {
        let policy: Policy = serde_json::from_value(json).expect("policy JSON");
        policy.compile().expect("valid policy")
    }

    fn uid(uid: &str) -> ClientInfo<'_> {
        ClientInfo {
            uid: Some(uid),
            ..ClientInfo::default()
        }
    }

    fn version(v: &str) -> Version {
        Version::parse(v).expect("version")
    }

    /// A uid whose bucket is in `range`.
    fn uid_in(range: std::ops::Range<u64>) -> String {
        (0..)
            .map(|i| format!("user-{i}"))
            .find(|u| range.contains(&bucket(u)))
            .expect("some uid")
    }

    fn decide(rollout: &Rollout, client: ClientInfo<'_>) -> (Mode, Reason) {
        let d = rollout.decide(&client);
        (d.mode, d.reason)
    }

    #[test]
    fn deny_by_each_key_gives_short_and_beats_allow() {
        let r = policy(serde_json::json!({
            "enabled": true, "percent": 100,
            "allow": {"uids": ["u-bad"], "device_ids": ["d-bad"], "app_versions": ["^2"]},
            "deny": {"uids": ["u-bad"], "device_ids": ["d-bad"], "app_versions": [">=2.3.0, <2.4.0"]},
        }));
        assert_eq!(decide(&r, uid("u-bad")), (Mode::Short, Reason::Deny));
        let device = ClientInfo {
            uid: Some("u-fine"),
            device_id: Some("d-bad"),
            ..ClientInfo::default()
        };
        assert_eq!(decide(&r, device), (Mode::Short, Reason::Deny));
        let v = version("2.3.7");
        let old = ClientInfo {
            app_version: Some(&v),
            ..uid("u-fine")
        };
        assert_eq!(decide(&r, old), (Mode::Short, Reason::Deny));
        // 2.4.0 is outside the deny range but inside the allow range.
        let v = version("2.4.0");
        let newer = ClientInfo {
            app_version: Some(&v),
            ..uid("u-fine")
        };
        assert_eq!(decide(&r, newer), (Mode::Long, Reason::Allow));
    }

    #[test]
    fn allow_by_each_key_gives_long_even_when_disabled_or_outside() {
        for (enabled, percent) in [(false, 100.0), (true, 0.0), (false, 0.0)] {
            let r = policy(serde_json::json!({
                "enabled": enabled, "percent": percent,
                "allow": {"uids": ["tester"], "device_ids": ["qa-phone"], "app_versions": ["^3.1"]},
            }));
            let other = if enabled {
                Reason::Outside
            } else {
                Reason::Disabled
            };
            assert_eq!(decide(&r, uid("tester")), (Mode::Long, Reason::Allow));
            let device = ClientInfo {
                device_id: Some("qa-phone"),
                ..ClientInfo::default()
            };
            assert_eq!(decide(&r, device), (Mode::Long, Reason::Allow));
            let v = version("3.1.4");
            let beta = ClientInfo {
                app_version: Some(&v),
                ..uid("someone")
            };
            assert_eq!(decide(&r, beta), (Mode::Long, Reason::Allow));
            let v = version("3.0.9");
            let older = ClientInfo {
                app_version: Some(&v),
                ..uid("someone")
            };
            assert_eq!(
                decide(&r, older),
                (Mode::Short, other),
                "{enabled} {percent}"
            );
            assert_eq!(decide(&r, uid("someone")), (Mode::Short, other));
        }
    }

    #[test]
    fn version_ranges_follow_semver() {
        let r = policy(serde_json::json!({
            "enabled": true, "percent": 100,
            "deny": {"app_versions": ["^2.3", ">=3.0.0, <3.2.0", "=4.0.0-beta.1"]},
        }));
        let cases = [
            ("2.3.0", true),
            ("2.9.9", true),
            ("2.2.9", false),
            ("3.0.0", true),
            ("3.1.99", true),
            ("3.2.0", false),
            ("4.0.0-beta.1", true),
            ("4.0.0", false),
            // A pre-release matches only a range naming that version's pre-releases.
            ("3.1.0-rc.1", false),
        ];
        for (v, denied) in cases {
            let v = version(v);
            let client = ClientInfo {
                app_version: Some(&v),
                ..uid("someone")
            };
            let expected = if denied { Mode::Short } else { Mode::Long };
            assert_eq!(r.decide(&client).mode, expected, "{v}");
        }
        // No app version: version rules do not match.
        assert_eq!(r.decide(&uid("someone")).mode, Mode::Long);
    }

    #[test]
    fn percent_0_50_100() {
        let inside = uid_in(0..5000);
        let outside = uid_in(5000..10_000);
        let at = |p: f64| policy(serde_json::json!({"enabled": true, "percent": p}));
        for u in [&inside, &outside] {
            assert_eq!(decide(&at(0.0), uid(u)), (Mode::Short, Reason::Outside));
            assert_eq!(decide(&at(100.0), uid(u)), (Mode::Long, Reason::Percent));
        }
        assert_eq!(
            decide(&at(50.0), uid(&inside)),
            (Mode::Long, Reason::Percent)
        );
        assert_eq!(
            decide(&at(50.0), uid(&outside)),
            (Mode::Short, Reason::Outside)
        );
        // Disabled: nobody by percentage, even at 100.
        let off = policy(serde_json::json!({"enabled": false, "percent": 100}));
        assert_eq!(decide(&off, uid(&inside)), (Mode::Short, Reason::Disabled));
    }

    #[test]
    fn the_device_id_is_the_key_without_a_uid() {
        let inside = uid_in(0..5000);
        let outside = uid_in(5000..10_000);
        let r = policy(serde_json::json!({"enabled": true, "percent": 50}));
        let device = |d| ClientInfo {
            device_id: Some(d),
            ..ClientInfo::default()
        };
        assert_eq!(r.decide(&device(&inside)).mode, Mode::Long);
        assert_eq!(r.decide(&device(&outside)).mode, Mode::Short);
        // The uid wins when both are sent; an empty uid counts as absent.
        let both = ClientInfo {
            uid: Some(&outside),
            device_id: Some(&inside),
            ..ClientInfo::default()
        };
        assert_eq!(r.decide(&both).mode, Mode::Short);
        let empty_uid = ClientInfo {
            uid: Some(""),
            device_id: Some(&inside),
            ..ClientInfo::default()
        };
        assert_eq!(r.decide(&empty_uid).mode, Mode::Long);
        // No identity at all: only 100 % includes it.
        assert_eq!(r.decide(&ClientInfo::default()).mode, Mode::Short);
        let all = policy(serde_json::json!({"enabled": true, "percent": 100}));
        assert_eq!(all.decide(&ClientInfo::default()).mode, Mode::Long);
    }

    #[test]
    fn the_answer_is_stable_and_monotone_in_the_percentage() {
        let steps = [0.0, 0.1, 1.0, 5.0, 12.5, 33.3, 50.0, 75.0, 99.9, 100.0];
        let rollouts: Vec<Rollout> = steps
            .iter()
            .map(|p| policy(serde_json::json!({"enabled": true, "percent": p})))
            .collect();
        for i in 0..20_000 {
            let u = format!("uid-{i}");
            let modes: Vec<Mode> = rollouts.iter().map(|r| r.decide(&uid(&u)).mode).collect();
            // Stable: the same answer twice (and bucket() is a pure function).
            assert_eq!(rollouts[3].decide(&uid(&u)).mode, modes[3]);
            // Monotone: once long, long at every higher percentage.
            if let Some(first) = modes.iter().position(|m| *m == Mode::Long) {
                assert!(
                    modes[first..].iter().all(|m| *m == Mode::Long),
                    "{u}: {modes:?}"
                );
            }
        }
    }

    #[test]
    fn the_share_is_within_two_points_over_100k_uids() {
        for percent in [1.0, 5.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 99.5] {
            let r = policy(serde_json::json!({"enabled": true, "percent": percent}));
            let long = (0..100_000)
                .filter(|i| r.decide(&uid(&format!("u{i}"))).mode == Mode::Long)
                .count();
            let share = long as f64 / 1000.0;
            eprintln!("percent {percent}: {share:.2} % long over 100,000 uids");
            assert!((share - percent).abs() <= 2.0, "{percent}: {share}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |json: serde_json::Value| -> String {
            let policy: Policy = serde_json::from_value(json).expect("shape");
            policy.validate().expect_err("invalid").to_string()
        };
        for p in [-1.0, 100.1, 12.34, f64::NAN] {
            let policy = Policy {
                percent: p,
                ..Policy::default()
            };
            let e = policy.validate().expect_err("bad percent").to_string();
            assert!(e.contains("percent"), "{e}");
        }
        let e = bad(serde_json::json!({"enabled": true, "percent": 5,
            "deny": {"app_versions": ["^2.3", "two point three"]}}));
        assert!(e.contains("deny.app_versions[1]"), "{e}");
        assert!(e.contains("two point three"), "{e}");
        let e = bad(serde_json::json!({"enabled": true, "percent": 5, "allow": {"uids": [""]}}));
        assert!(e.contains("allow.uids[0]"), "{e}");
        let many: Vec<String> = (0..=MAX_IDS).map(|i| i.to_string()).collect();
        let e =
            bad(serde_json::json!({"enabled": true, "percent": 5, "deny": {"device_ids": many}}));
        assert!(e.contains("deny.device_ids") && e.contains("100000"), "{e}");

        // Shape errors come from parsing and name the field too.
        let e = Policy::from_json(r#"{"enabled": true, "percentage": 5}"#)
            .expect_err("unknown field")
            .to_string();
        assert!(e.contains("percentage"), "{e}");
        let e = Policy::from_json(r#"{"enabled": true}"#)
            .expect_err("missing")
            .to_string();
        assert!(e.contains("percent"), "{e}");
        assert!(Policy::from_json("not json").is_err());
        // One decimal and integers are fine.
        for p in ["0", "12.5", "33.3", "100", "0.1"] {
            Policy::from_json(&format!(r#"{{"enabled": true, "percent": {p}}}"#)).expect(p);
        }
    }

    #[test]
    fn whole_percentages_serialize_as_integers() {
        let json = |p: f64| {
            let policy = Policy {
                percent: p,
                ..Policy::default()
            };
            serde_json::to_value(&policy).expect("json")["percent"].to_string()
        };
        assert_eq!(json(50.0), "50");
        assert_eq!(json(12.5), "12.5");
        let round_trip = Policy::from_json(
            &serde_json::to_string(&Policy {
                percent: 33.3,
                ..Policy::default()
            })
            .expect("json"),
        )
        .expect("valid");
        assert_eq!(round_trip.percent, 33.3);
    }
}
