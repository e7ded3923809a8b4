//! The retry delay shared by the etcd engines (discovery, live configuration).

use std::time::Duration;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Exponential retry delay, 100 ms doubling to 2 s, with ±20 % jitter so many
/// nodes do not hammer a recovering etcd in step.
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN }
    }
}

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(BACKOFF_MAX);
        delay.mul_f64(rand::random_range(0.8..1.2))
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}
