//! The token revocations this node was told of (pushed by room-biz with the
//! order to close the uid's sessions): hellos and refreshes with a token
//! issued before a remembered revocation are refused. Bounded; an entry
//! lasts as long as a token may live. What is not remembered here, room-biz
//! still enforces at every join (docs/protocol.md, "Revocation").

use std::collections::HashMap;
use std::sync::Mutex;

/// uid → (tokens issued before this are revoked, Unix s; forget at Unix s).
#[derive(Debug)]
pub(crate) struct Revocations {
    max: usize,
    keep_secs: u64,
    by_uid: Mutex<HashMap<String, (u64, u64)>>,
}

impl Revocations {
    /// At most `max` entries, each kept `keep_secs` (the longest token
    /// lifetime; 0 keeps entries until pushed out by newer ones).
    pub(crate) fn new(max: usize, keep_secs: u64) -> Self {
        Self {
            max,
            keep_secs,
            by_uid: Mutex::default(),
        }
    }

    /// Remember that `uid`'s tokens issued before `before_secs` are revoked.
    pub(crate) fn record(&self, uid: &str, before_secs: u64, now_secs: u64) {
        if self.max == 0 {
            return;
        }
        let until = if self.keep_secs == 0 {
            u64::MAX
        } else {
            before_secs
                .saturating_add(self.keep_secs)
                .saturating_add(common::auth::LEEWAY_SECS)
        };
        let mut by_uid = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        if !by_uid.contains_key(uid) && by_uid.len() >= self.max {
            by_uid.retain(|_, (_, until)| *until > now_secs);
            if by_uid.len() >= self.max {
                // Full of live entries: the oldest revocation goes (room-biz
                // still refuses its tokens at join).
                if let Some(oldest) = by_uid
                    .iter()
                    .min_by_key(|(_, (before, _))| *before)
                    .map(|(u, _)| u.clone())
                {
                    by_uid.remove(&oldest);
                }
            }
        }
        let entry = by_uid.entry(uid.to_owned()).or_insert((before_secs, until));
        if before_secs >= entry.0 {
            *entry = (before_secs, until);
        }
    }

    /// Whether a token of `uid` issued at `iat` is revoked.
    pub(crate) fn revoked_before(&self, uid: &str, now_secs: u64) -> Option<u64> {
        let by_uid = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        by_uid
            .get(uid)
            .filter(|(_, until)| *until > now_secs)
            .map(|(before, _)| *before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_uid_forward_only_and_forgets_after_keep() {
        let r = Revocations::new(10, 100);
        r.record("a", 1_000, 1_000);
        assert_eq!(r.revoked_before("a", 1_000), Some(1_000));
        assert_eq!(r.revoked_before("b", 1_000), None);
        r.record("a", 900, 1_000);
        assert_eq!(
            r.revoked_before("a", 1_000),
            Some(1_000),
            "never moves back"
        );
        assert_eq!(
            r.revoked_before("a", 1_200),
            None,
            "every such token expired"
        );
    }

    #[test]
    fn a_full_table_drops_expired_then_the_oldest() {
        let r = Revocations::new(2, 100);
        r.record("a", 1_000, 1_000);
        r.record("b", 1_050, 1_050);
        r.record("c", 1_060, 1_060);
        assert_eq!(r.revoked_before("a", 1_060), None, "oldest went");
        assert_eq!(r.revoked_before("b", 1_060), Some(1_050));
        assert_eq!(r.revoked_before("c", 1_060), Some(1_060));
        let off = Revocations::new(0, 100);
        off.record("a", 1, 1);
        assert_eq!(off.revoked_before("a", 1), None);
    }
}
