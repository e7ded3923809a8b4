//! Which connections this node holds, by session and by user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::handle::SessionHandle;

/// Sessions by user, for user-targeted pushes and presence.
#[derive(Default)]
pub(crate) struct Registry {
    users: Mutex<HashMap<Arc<str>, Vec<SessionHandle>>>,
}

impl Registry {
    /// Add a session; true if it is the user's first on this node.
    pub(crate) fn add(&self, handle: SessionHandle) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let sessions = users.entry(handle.uid.clone()).or_default();
        sessions.push(handle);
        sessions.len() == 1
    }

    /// Remove a session; true if it was the user's last on this node.
    pub(crate) fn remove(&self, uid: &Arc<str>, session_id: &str) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sessions) = users.get_mut(uid) else {
            return false;
        };
        sessions.retain(|s| &*s.id != session_id);
        if sessions.is_empty() {
            users.remove(uid);
            true
        } else {
            false
        }
    }

    /// The sessions of a user.
    pub(crate) fn sessions_of(&self, uid: &str) -> Vec<SessionHandle> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(uid).cloned().unwrap_or_default()
    }

    /// Every session here.
    pub(crate) fn sessions(&self) -> Vec<SessionHandle> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.values().flatten().cloned().collect()
    }

    /// Every user with a session here.
    pub(crate) fn users(&self) -> Vec<String> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.keys().map(|u| u.to_string()).collect()
    }
}
