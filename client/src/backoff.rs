//! Reconnect delays: exponential cap with full jitter.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter: attempt `n` (from 0) waits a uniformly random
/// delay in `[min, min(max, min * 2^n)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff between `min` and `max` (`max` below `min` is raised to `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// Attempts since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Start over after a stable connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The current cap: `min(max, min * 2^attempt)`.
    pub fn cap(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.min
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The next delay (random in `[min, cap]`), counting one more attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let (low, high) = (self.min.as_nanos() as u64, self.cap().as_nanos() as u64);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_nanos(rng.random_range(low..=high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn delays_stay_within_min_and_the_growing_cap() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::new(min, max);
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..40u32 {
            let cap = (min * 2u32.pow(attempt.min(20))).min(max);
            assert_eq!(backoff.cap(), cap, "attempt {attempt}");
            let delay = backoff.next_delay(&mut rng);
            assert!(
                delay >= min && delay <= cap,
                "attempt {attempt}: {delay:?} not in [{min:?}, {cap:?}]"
            );
        }
        assert_eq!(backoff.attempts(), 40);
        assert_eq!(backoff.cap(), max);
    }

    #[test]
    fn jitter_spreads_over_the_range() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<Duration> = (0..200)
            .map(|_| {
                let mut backoff = Backoff::new(min, max);
                for _ in 0..10 {
                    backoff.next_delay(&mut rng);
                }
                backoff.next_delay(&mut rng)
            })
            .collect();
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(1_500))
            .count();
        let high = delays
            .iter()
            .filter(|d| **d > Duration::from_millis(3_500))
            .count();
        assert!(low > 20 && high > 20, "not spread: {low} low, {high} high");
    }

    #[test]
    fn reset_starts_over_and_bounds_are_sane() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_millis(10));
        let mut rng = StdRng::seed_from_u64(3);
        // max below min: every delay is exactly min.
        assert_eq!(backoff.next_delay(&mut rng), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(&mut rng), Duration::from_secs(1));
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.next_delay(&mut rng), Duration::ZERO);
    }
}
