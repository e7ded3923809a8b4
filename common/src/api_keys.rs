//! API keys: how app backends authenticate to the room and push API.
//!
//! A key reads `rck_<id>_<secret>`: `id` names the key in lists and logs,
//! `secret` is 32 random base62 characters (190 bits). Only the SHA-256 of
//! the whole key is stored (a fast hash is enough for a random secret of that
//! size: there is nothing to brute-force), compared in constant time. Several
//! keys may be active at once, so a backend rotates by creating a new key,
//! deploying it, then revoking the old one.
//!
//! The keyring is one JSON document in live configuration
//! ([`crate::live_config::keys::API_KEYS`]): written by the router's admin
//! API (`roomcast ctl api-key …`), watched by every room-biz node.

use std::collections::BTreeMap;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Every key starts with this, so a leaked key is easy to recognise (secret scanners).
pub const KEY_PREFIX: &str = "rck_";
/// Characters of the random secret.
const SECRET_CHARS: usize = 32;
/// Characters of the public id.
const ID_CHARS: usize = 8;
/// Longest key name accepted.
const NAME_MAX_CHARS: usize = 64;

/// What a key may do. Each backend route requires one scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read rooms, their state, members, summary.
    #[serde(rename = "rooms:read")]
    RoomsRead,
    /// Create, start, end rooms; invite users.
    #[serde(rename = "rooms:write")]
    RoomsWrite,
    /// Publish system messages into rooms.
    #[serde(rename = "messages:write")]
    MessagesWrite,
    /// Act on users: revoke their sessions, notify them.
    #[serde(rename = "users:write")]
    UsersWrite,
}

impl Scope {
    /// Every scope, for a key created without a list.
    pub const ALL: [Scope; 4] = [
        Scope::RoomsRead,
        Scope::RoomsWrite,
        Scope::MessagesWrite,
        Scope::UsersWrite,
    ];

    /// The scope's name on the wire and in `roomcast ctl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RoomsRead => "rooms:read",
            Scope::RoomsWrite => "rooms:write",
            Scope::MessagesWrite => "messages:write",
            Scope::UsersWrite => "users:write",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = ApiKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ApiKeyError::UnknownScope(s.to_owned()))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored key: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id (the part after `rck_`).
    pub id: String,
    /// Who holds it, for humans ("billing backend").
    pub name: String,
    /// Hex SHA-256 of the whole key.
    pub sha256: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

impl ApiKeyRecord {
    /// Whether the key grants `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why a key was refused or could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiKeyError {
    /// No key was presented.
    #[error("missing API key")]
    Missing,
    /// The presented value is not a key of this system, or not an active one.
    #[error("invalid API key")]
    Invalid,
    /// The key is valid but lacks the scope the route needs.
    #[error("this API key lacks the scope {0}")]
    MissingScope(Scope),
    /// A scope name that does not exist.
    #[error("unknown scope {0:?} (known: rooms:read, rooms:write, messages:write, users:write)")]
    UnknownScope(String),
    /// A key name that is empty or too long.
    #[error("a key name must be 1 to {NAME_MAX_CHARS} characters")]
    BadName,
    /// No key with that id.
    #[error("no API key with id {0:?}")]
    NotFound(String),
    /// The stored keyring is not valid JSON of the expected shape.
    #[error("the stored keyring is unreadable: {0}")]
    Corrupt(String),
}

/// The active keys, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    keys: BTreeMap<String, ApiKeyRecord>,
}

impl Keyring {
    /// Parse the stored document (`None`: no keys yet).
    pub fn from_stored(stored: Option<&str>) -> Result<Self, ApiKeyError> {
        match stored {
            None => Ok(Self::default()),
            Some(text) => {
                serde_json::from_str(text).map_err(|e| ApiKeyError::Corrupt(e.to_string()))
            }
        }
    }

    /// The document to store.
    pub fn to_stored(&self) -> String {
        // A map of plain strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The active keys, oldest id first.
    pub fn records(&self) -> impl Iterator<Item = &ApiKeyRecord> {
        self.keys.values()
    }

    /// Whether there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Make a new key named `name` with `scopes` (all when empty), add it, and
    /// return the key itself: the only time it is ever shown.
    pub fn create(
        &mut self,
        name: &str,
        scopes: &[Scope],
        now_ms: u64,
    ) -> Result<(String, ApiKeyRecord), ApiKeyError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > NAME_MAX_CHARS {
            return Err(ApiKeyError::BadName);
        }
        let id = loop {
            let id = random_base62(ID_CHARS);
            if !self.keys.contains_key(&id) {
                break id;
            }
        };
        let key = format!("{KEY_PREFIX}{id}_{}", random_base62(SECRET_CHARS));
        let record = self.insert(&key, name, scopes, now_ms)?;
        Ok((key, record))
    }

    /// Add a key chosen by the operator (standalone's development key, a key
    /// from configuration). It must have the `rck_<id>_<secret>` shape.
    pub fn insert(
        &mut self,
        key: &str,
        name: &str,
        scopes: &[Scope],
        now_ms: u64,
    ) -> Result<ApiKeyRecord, ApiKeyError> {
        let id = parse_id(key).ok_or(ApiKeyError::Invalid)?;
        let mut scopes = if scopes.is_empty() {
            Scope::ALL.to_vec()
        } else {
            scopes.to_vec()
        };
        scopes.sort_unstable();
        scopes.dedup();
        let record = ApiKeyRecord {
            id: id.to_owned(),
            name: name.trim().to_owned(),
            sha256: sha256_hex(key),
            scopes,
            created_at_ms: now_ms,
        };
        self.keys.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    /// Remove the key with `id`.
    pub fn revoke(&mut self, id: &str) -> Result<ApiKeyRecord, ApiKeyError> {
        self.keys
            .remove(id)
            .ok_or_else(|| ApiKeyError::NotFound(id.to_owned()))
    }

    /// The record of `presented` if it is an active key granting `scope`.
    pub fn authenticate(
        &self,
        presented: &str,
        scope: Scope,
    ) -> Result<&ApiKeyRecord, ApiKeyError> {
        let id = parse_id(presented).ok_or(ApiKeyError::Invalid)?;
        let record = self.keys.get(id).ok_or(ApiKeyError::Invalid)?;
        let hash = sha256_hex(presented);
        if !bool::from(hash.as_bytes().ct_eq(record.sha256.as_bytes())) {
            return Err(ApiKeyError::Invalid);
        }
        if !record.allows(scope) {
            return Err(ApiKeyError::MissingScope(scope));
        }
        Ok(record)
    }
}

/// The id of a well-formed key (`rck_<id>_<secret>`), without checking the secret.
pub fn parse_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    (!id.is_empty() && id.len() <= 32 && base62(id) && secret.len() >= 16 && base62(secret))
        .then_some(id)
}

fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_base62(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_authenticates_with_its_scopes_only() {
        let mut ring = Keyring::default();
        let (key, record) = ring
            .create("billing", &[Scope::MessagesWrite], 1)
            .expect("created");
        assert!(key.starts_with("rck_"));
        assert!(
            !ring.to_stored().contains(&key),
            "the key itself is never stored"
        );
        assert_eq!(
            ring.authenticate(&key, Scope::MessagesWrite).map(|r| &r.id),
            Ok(&record.id)
        );
        assert_eq!(
            ring.authenticate(&key, Scope::RoomsWrite),
            Err(ApiKeyError::MissingScope(Scope::RoomsWrite))
        );
    }

    #[test]
    fn a_wrong_secret_an_unknown_id_and_junk_are_refused() {
        let mut ring = Keyring::default();
        let (key, record) = ring.create("app", &[], 1).expect("created");
        let mut tampered = key.clone();
        let last = tampered
            .pop()
            .map_or('x', |c| if c == 'a' { 'b' } else { 'a' });
        tampered.push(last);
        for presented in [
            tampered.as_str(),
            "rck_nobody00_0123456789abcdef0123456789abcdef",
            "",
            "Bearer x",
            "rck_",
            "rck__",
            &format!("rck_{}_", record.id),
        ] {
            assert_eq!(
                ring.authenticate(presented, Scope::RoomsRead),
                Err(ApiKeyError::Invalid),
                "{presented:?}"
            );
        }
    }

    #[test]
    fn several_keys_rotate_and_a_revoked_key_stops_working() {
        let mut ring = Keyring::default();
        let (old, old_record) = ring.create("app v1", &[], 1).expect("old");
        let (new, _) = ring.create("app v2", &[], 2).expect("new");
        assert!(ring.authenticate(&old, Scope::RoomsWrite).is_ok());
        assert!(ring.authenticate(&new, Scope::RoomsWrite).is_ok());
        ring.revoke(&old_record.id).expect("revoked");
        assert_eq!(
            ring.authenticate(&old, Scope::RoomsWrite),
            Err(ApiKeyError::Invalid)
        );
        assert!(ring.authenticate(&new, Scope::RoomsWrite).is_ok());
        assert_eq!(
            ring.revoke(&old_record.id),
            Err(ApiKeyError::NotFound(old_record.id.clone()))
        );
    }

    #[test]
    fn the_keyring_round_trips_through_storage() {
        let mut ring = Keyring::default();
        let (key, _) = ring.create("app", &[Scope::RoomsRead], 7).expect("key");
        let stored = ring.to_stored();
        let back = Keyring::from_stored(Some(&stored)).expect("parses");
        assert_eq!(back, ring);
        assert!(back.authenticate(&key, Scope::RoomsRead).is_ok());
        assert!(matches!(
            Keyring::from_stored(Some("{not json")),
            Err(ApiKeyError::Corrupt(_))
        ));
        assert!(Keyring::from_stored(None).expect("empty").is_empty());
    }

    #[test]
    fn scopes_parse_by_name_and_names_are_checked() {
        assert_eq!("rooms:write".parse::<Scope>(), Ok(Scope::RoomsWrite));
        assert!(matches!(
            "rooms:delete".parse::<Scope>(),
            Err(ApiKeyError::UnknownScope(_))
        ));
        let mut ring = Keyring::default();
        assert_eq!(ring.create("  ", &[], 1).err(), Some(ApiKeyError::BadName));
        assert_eq!(
            ring.insert("not-a-key", "x", &[], 1).err(),
            Some(ApiKeyError::Invalid)
        );
    }
}
