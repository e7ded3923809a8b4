//! The one retry delay of the services: exponential with jitter.
//!
//! (The client SDK keeps its own full-jitter backoff: it depends on `proto`
//! only, not on this crate.)

use std::time::Duration;

/// Retry delays of the etcd engines (discovery, live configuration):
/// 100 ms doubling to 2 s.
pub const ETCD_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Exponential retry delay, `min` doubling up to `max`, each delay with ±20 %
/// jitter so many nodes do not hammer a recovering server in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `min` doubling to `max` (`max` below `min` is raised to `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The etcd engines' delays ([`ETCD_RETRY`]).
    pub fn etcd() -> Self {
        Self::new(ETCD_RETRY.0, ETCD_RETRY.1)
    }

    /// The next delay (the current step ±20 %); the step then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        delay.mul_f64(rand::random_range(0.8..1.2))
    }

    /// Start over from `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_cap_with_bounded_jitter_and_reset() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::new(min, max);
        for step in [100, 200, 400, 800, 1600, 3200, 5000, 5000] {
            let step = Duration::from_millis(step);
            let delay = backoff.next_delay();
            assert!(
                delay >= step.mul_f64(0.8) && delay <= step.mul_f64(1.2),
                "{delay:?} is not {step:?} ±20 %"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= min.mul_f64(1.2));
        let mut flat = Backoff::new(Duration::from_secs(1), Duration::from_millis(1));
        flat.next_delay();
        assert!(
            flat.next_delay() <= Duration::from_millis(1200),
            "max raised to min"
        );
    }
}
