//! Live configuration: small JSON documents (rollout policy, drain requests,
//! runtime switches) that operators change and every node sees at once.
//!
//! In-process in standalone ([`MemoryLiveConfig`]); etcd in distributed mode
//! (`etcd` submodule). Watchers get the current value first, then every change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub mod etcd;

/// Well-known keys.
pub mod keys {
    /// The router's rollout policy (JSON).
    pub const ROLLOUT: &str = "rollout";
    /// The API keys of app backends (JSON, see [`crate::api_keys::Keyring`]).
    pub const API_KEYS: &str = "api_keys";

    /// A drain request for one conn node (JSON `{"requested_at_ms":…}`).
    pub fn drain(node_id: &str) -> String {
        format!("drain/{node_id}")
    }
}

/// Why a live-config operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveConfigError {
    /// The backend (etcd) cannot be reached; watchers keep the last value.
    #[error("live configuration unavailable: {0}")]
    Unavailable(String),
}

/// A store of small documents with live watches.
#[async_trait::async_trait]
pub trait LiveConfig: Send + Sync + 'static {
    /// The current value of `key`.
    async fn get(&self, key: &str) -> Result<Option<String>, LiveConfigError>;
    /// Replace `key` atomically.
    async fn put(&self, key: &str, value: &str) -> Result<(), LiveConfigError>;
    /// Remove `key`.
    async fn delete(&self, key: &str) -> Result<(), LiveConfigError>;
    /// The value of `key` now and after every change (`None` when absent).
    fn watch(&self, key: &str) -> watch::Receiver<Option<String>>;
}

/// In-process live configuration.
#[derive(Clone, Default)]
pub struct MemoryLiveConfig {
    // Writes are rare (operator actions); a std mutex around the map is enough.
    keys: Arc<Mutex<HashMap<String, watch::Sender<Option<String>>>>>,
}

impl MemoryLiveConfig {
    fn sender(&self, key: &str) -> watch::Sender<Option<String>> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.entry(key.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }
}

#[async_trait::async_trait]
impl LiveConfig for MemoryLiveConfig {
    async fn get(&self, key: &str) -> Result<Option<String>, LiveConfigError> {
        Ok(self.sender(key).borrow().clone())
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), LiveConfigError> {
        self.sender(key).send_replace(Some(value.to_string()));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), LiveConfigError> {
        self.sender(key).send_replace(None);
        Ok(())
    }

    fn watch(&self, key: &str) -> watch::Receiver<Option<String>> {
        self.sender(key).subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_see_the_current_value_then_changes() {
        let live = MemoryLiveConfig::default();
        live.put("rollout", "{\"percent\":5}").await.expect("put");
        let mut watch = live.watch("rollout");
        assert_eq!(
            watch.borrow_and_update().as_deref(),
            Some("{\"percent\":5}")
        );
        live.put("rollout", "{\"percent\":50}").await.expect("put");
        watch.changed().await.expect("changed");
        assert_eq!(
            watch.borrow_and_update().as_deref(),
            Some("{\"percent\":50}")
        );
        live.delete("rollout").await.expect("delete");
        watch.changed().await.expect("changed");
        assert!(watch.borrow().is_none());
        assert_eq!(live.get("other").await.expect("get"), None);
    }
}
