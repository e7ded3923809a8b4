//! Idempotency keys: a request retried with the same key within the window
//! gets the first request's reply, and its work is not done again (a system
//! message appended twice, a gift counted twice). Keys live in the store's
//! [`Ledger`] (`SET NX` with a TTL on Redis), so a retry that lands on
//! another biz node is recognised too.
//!
//! A key is taken (pending) before the work and given up if the work fails,
//! so a retry after a failure does the work; a retry while the first request
//! is still running is told to retry later.

use std::future::Future;
use std::time::Duration;

use room_store::{Ledger, Once, StoreError};

/// Longest idempotency key accepted, in bytes.
pub(crate) const KEY_MAX_BYTES: usize = 128;

/// Why [`once`] did not answer.
#[derive(Debug)]
pub(crate) enum OnceError<E> {
    /// The key is held by a request still running.
    InProgress,
    /// The ledger could not be read or written.
    Store(StoreError),
    /// The work failed (the key was given up).
    Work(E),
}

impl<E> From<StoreError> for OnceError<E> {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// A reply and whether it is a repeat of an earlier request's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Replied {
    /// The reply (the first request's on a repeat).
    pub(crate) reply: String,
    /// True if the work was done by an earlier request with the key.
    pub(crate) repeat: bool,
}

/// Whether `key` is an acceptable idempotency key: 1 to [`KEY_MAX_BYTES`]
/// printable ASCII characters.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > KEY_MAX_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "an idempotency key must be 1 to {KEY_MAX_BYTES} printable ASCII characters"
        ));
    }
    Ok(())
}

/// Do `work` once per `key` within `window`: the first call runs it and
/// records its reply; later calls get that reply without running it.
pub(crate) async fn once<E, F, Fut>(
    ledger: &dyn Ledger,
    key: &str,
    window: Duration,
    work: F,
) -> Result<Replied, OnceError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, E>>,
{
    match ledger.once_begin(key, window).await? {
        Once::Done(reply) => Ok(Replied {
            reply,
            repeat: true,
        }),
        Once::Pending => Err(OnceError::InProgress),
        Once::First => match work().await {
            Ok(reply) => {
                if let Err(error) = ledger.once_finish(key, &reply, window).await {
                    // The work is done; only a later retry may do it again.
                    tracing::warn!(key, %error, "Cannot record an idempotent reply.");
                }
                Ok(Replied {
                    reply,
                    repeat: false,
                })
            }
            Err(error) => {
                if let Err(abort) = ledger.once_abort(key).await {
                    tracing::warn!(key, error = %abort, "Cannot give up an idempotency key; it expires with its window.");
                }
                Err(OnceError::Work(error))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use room_store::MemoryLedger;

    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_work_runs_once_per_key_and_failures_free_the_key() {
        let ledger = MemoryLedger::default();
        let runs = AtomicU32::new(0);
        let work = || async {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, String>(format!("run {n}"))
        };
        let first = once(&ledger, "k1", WINDOW, work).await.expect("first");
        assert_eq!((first.reply.as_str(), first.repeat), ("run 1", false));
        let again = once(&ledger, "k1", WINDOW, work).await.expect("again");
        assert_eq!((again.reply.as_str(), again.repeat), ("run 1", true));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let failed = once(&ledger, "k2", WINDOW, || async {
            Err::<String, _>("push failed")
        })
        .await;
        assert!(matches!(failed, Err(OnceError::Work("push failed"))));
        let retried = once(&ledger, "k2", WINDOW, work).await.expect("retry");
        assert_eq!((retried.reply.as_str(), retried.repeat), ("run 2", false));

        ledger.once_begin("k3", WINDOW).await.expect("held");
        let busy = once(&ledger, "k3", WINDOW, work).await;
        assert!(matches!(busy, Err(OnceError::InProgress)));
    }

    #[test]
    fn keys_are_short_printable_ascii() {
        assert!(check_key("order-17/retry").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("has space").is_err());
        assert!(check_key("é").is_err());
        assert!(check_key(&"k".repeat(KEY_MAX_BYTES + 1)).is_err());
    }
}
