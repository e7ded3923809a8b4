//! The rollout policy in force: read from live configuration at start, then
//! followed through its watch (a change is served as soon as it arrives).
//!
//! # Layout
//! - [`PolicyView`]: the policy in force, where it came from, and the last
//!   refused document.
//! - [`apply`]: pure; what a stored value (or its absence) does to the view.
//! - [`initial`] and [`follow`]: the I/O around it.
//!
//! No policy stored → [`Policy::default`] (enabled, 100 %). An invalid stored
//! policy is logged and counted, and the last valid one stays in force: a bad
//! write must not flip every client to a surprising mode.

use std::sync::Arc;
use std::time::Duration;

use common::live_config::{LiveConfig, keys};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::PolicyError;
use crate::metrics::Metrics;
use crate::policy::{Policy, Rollout};

/// Bound on the first read at start; past it the default policy serves until
/// the watch delivers.
const INITIAL_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the policy in force comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    /// Nothing is stored: [`Policy::default`].
    Default,
    /// The document stored at `live_config::keys::ROLLOUT`.
    LiveConfig,
}

/// The policy in force.
#[derive(Debug)]
pub(crate) struct PolicyView {
    pub(crate) rollout: Arc<Rollout>,
    pub(crate) source: Source,
    /// The stored text last seen (valid or not); `None` when nothing is stored.
    pub(crate) stored: Option<String>,
    /// Why the stored text was refused, when it was.
    pub(crate) rejected: Option<PolicyError>,
}

impl Default for PolicyView {
    fn default() -> Self {
        Self {
            rollout: Arc::new(Rollout::default()),
            source: Source::Default,
            stored: None,
            rejected: None,
        }
    }
}

/// What a stored value did.
#[derive(Debug)]
pub(crate) enum Applied {
    /// Same text as before: nothing to do.
    Unchanged,
    /// A new policy is in force (or the default, when the key was removed).
    Replaced(PolicyView),
    /// The text is invalid; the view keeps the previous policy.
    Rejected(PolicyView),
}

/// The effect of `stored` on `current`. Pure.
pub(crate) fn apply(current: &PolicyView, stored: Option<String>) -> Applied {
    if stored == current.stored {
        return Applied::Unchanged;
    }
    let Some(text) = stored else {
        return Applied::Replaced(PolicyView::default());
    };
    match Policy::from_json(&text).and_then(Policy::compile) {
        Ok(rollout) => Applied::Replaced(PolicyView {
            rollout: Arc::new(rollout),
            source: Source::LiveConfig,
            stored: Some(text),
            rejected: None,
        }),
        Err(error) => Applied::Rejected(PolicyView {
            rollout: current.rollout.clone(),
            source: current.source,
            stored: Some(text),
            rejected: Some(error),
        }),
    }
}

/// The stored policy text at start. A watch may not have its first value yet
/// (etcd reads it in the background), so an absent value is confirmed by a read.
pub(crate) async fn initial(
    live: &dyn LiveConfig,
    stored_rx: &mut watch::Receiver<Option<String>>,
) -> Option<String> {
    if let Some(text) = stored_rx.borrow_and_update().clone() {
        return Some(text);
    }
    match tokio::time::timeout(INITIAL_READ_TIMEOUT, live.get(keys::ROLLOUT)).await {
        Ok(Ok(None)) => {
            tracing::info!("No rollout policy stored; serving the default (enabled, 100 %).");
            None
        }
        Ok(Ok(stored)) => stored,
        Ok(Err(error)) => {
            tracing::warn!(%error, "Cannot read the rollout policy; serving the default until the watch delivers it.");
            None
        }
        Err(_) => {
            tracing::warn!(timeout = ?INITIAL_READ_TIMEOUT, "Reading the rollout policy timed out; serving the default until the watch delivers it.");
            None
        }
    }
}

/// Apply `stored` to the view in `tx`, logging and counting the outcome.
pub(crate) fn update(
    tx: &watch::Sender<Arc<PolicyView>>,
    metrics: &Metrics,
    stored: Option<String>,
) {
    let applied = apply(&tx.borrow(), stored);
    match applied {
        Applied::Unchanged => {}
        Applied::Replaced(view) => {
            let policy = view.rollout.policy();
            tracing::info!(
                source = ?view.source,
                enabled = policy.enabled,
                percent = policy.percent,
                allow_uids = policy.allow.uids.len(),
                allow_devices = policy.allow.device_ids.len(),
                allow_versions = ?policy.allow.app_versions,
                deny_uids = policy.deny.uids.len(),
                deny_devices = policy.deny.device_ids.len(),
                deny_versions = ?policy.deny.app_versions,
                "Rollout policy in force.",
            );
            tx.send_replace(Arc::new(view));
        }
        Applied::Rejected(view) => {
            if let Some(error) = &view.rejected {
                tracing::warn!(%error, "Stored rollout policy is invalid; the previous one stays in force.");
            }
            metrics.rollout_rejected.inc();
            tx.send_replace(Arc::new(view));
        }
    }
    let view = tx.borrow();
    let policy = view.rollout.policy();
    metrics.rollout_percent.set(policy.percent);
    metrics.rollout_enabled.set(i64::from(policy.enabled));
}

/// Follow the stored policy until `stop` or until the live configuration
/// closes the watch.
pub(crate) async fn follow(
    mut stored_rx: watch::Receiver<Option<String>>,
    tx: watch::Sender<Arc<PolicyView>>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = stored_rx.changed() => {
                if changed.is_err() {
                    tracing::warn!("Live configuration closed the rollout watch; the policy in force stays.");
                    return;
                }
            }
        }
        let stored = stored_rx.borrow_and_update().clone();
        update(&tx, &metrics, stored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replaced(applied: Applied) -> PolicyView {
        match applied {
            Applied::Replaced(view) => view,
            other => panic!("expected a replacement, got {other:?}"),
        }
    }

    #[test]
    fn stored_policies_replace_invalid_ones_are_refused_and_removal_restores_the_default() {
        let start = PolicyView::default();
        assert_eq!(start.rollout.policy(), &Policy::default());
        assert!(matches!(apply(&start, None), Applied::Unchanged));

        let five = r#"{"enabled":true,"percent":5}"#.to_owned();
        let view = replaced(apply(&start, Some(five.clone())));
        assert_eq!(
            (view.source, view.rollout.policy().percent),
            (Source::LiveConfig, 5.0)
        );
        assert!(matches!(apply(&view, Some(five)), Applied::Unchanged));

        let bad = r#"{"enabled":true,"percent":500}"#.to_owned();
        let Applied::Rejected(refused) = apply(&view, Some(bad.clone())) else {
            panic!("an invalid policy is refused");
        };
        assert_eq!(
            refused.rollout.policy().percent,
            5.0,
            "the previous one stays"
        );
        assert_eq!(refused.source, Source::LiveConfig);
        assert!(matches!(refused.rejected, Some(PolicyError::Percent(_))));
        // The same bad text again is not refused (and logged) twice.
        assert!(matches!(apply(&refused, Some(bad)), Applied::Unchanged));
        let garbage = apply(&refused, Some("{".into()));
        assert!(matches!(garbage, Applied::Rejected(ref v) if v.rollout.policy().percent == 5.0));

        let back = replaced(apply(&refused, None));
        assert_eq!(back.source, Source::Default);
        assert_eq!(back.rollout.policy(), &Policy::default());
    }
}
