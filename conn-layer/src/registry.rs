//! Which connections this node holds, by session and by user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::handle::SessionHandle;

/// The user holds as many sessions here as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

/// Sessions by user, for user-targeted pushes and presence.
#[derive(Default)]
pub(crate) struct Registry {
    users: Mutex<HashMap<Arc<str>, Vec<SessionHandle>>>,
}

impl Registry {
    /// Add a session unless its user already holds `max_per_uid` here (0:
    /// no limit); `Ok(true)` if it is the user's first on this node.
    pub(crate) fn add(&self, handle: SessionHandle, max_per_uid: usize) -> Result<bool, TooMany> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        // Most users hold one session: room for one, not the four a first
        // push reserves.
        let sessions = users
            .entry(handle.uid().clone())
            .or_insert_with(|| Vec::with_capacity(1));
        if max_per_uid > 0 && sessions.len() >= max_per_uid {
            return Err(TooMany);
        }
        sessions.push(handle);
        Ok(sessions.len() == 1)
    }

    /// Remove a session; true if it was the user's last on this node.
    pub(crate) fn remove(&self, uid: &Arc<str>, session_id: &str) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sessions) = users.get_mut(uid) else {
            return false;
        };
        sessions.retain(|s| &**s.id() != session_id);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, uid: &str) -> SessionHandle {
        SessionHandle::new(Arc::from(id), Arc::from(uid), 4, None).0
    }

    #[test]
    fn a_user_holds_at_most_the_cap_and_others_are_unaffected() {
        let registry = Registry::default();
        assert_eq!(registry.add(session("s1", "a"), 2), Ok(true), "first of a");
        assert_eq!(registry.add(session("s2", "a"), 2), Ok(false));
        assert_eq!(registry.add(session("s3", "a"), 2), Err(TooMany));
        assert_eq!(
            registry.sessions_of("a").len(),
            2,
            "the refused one is not held"
        );
        assert_eq!(registry.add(session("s4", "b"), 2), Ok(true));
        assert!(!registry.remove(&Arc::from("a"), "s1"));
        assert_eq!(registry.add(session("s5", "a"), 2), Ok(false), "room again");
        let unlimited = Registry::default();
        for i in 0..20 {
            assert!(unlimited.add(session(&i.to_string(), "a"), 0).is_ok());
        }
    }
}
