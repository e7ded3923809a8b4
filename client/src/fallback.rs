//! When to give up on the long connection and poll, and when to come back (pure, no I/O).
//!
//! The connection task feeds every long-connection attempt's outcome to [`Fallback`] and
//! does what the returned [`Step`] says. Keeping the rule here, away from sockets and
//! timers, is what lets it be tested exactly ("after 3, not 2 or 4").

use crate::transport::Transport;

/// The outcome of one long-connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// One endpoint failed to connect or to complete the hello (not an auth refusal).
    Failed(Transport),
    /// The router assigned short (polling) mode, or offered no endpoint this client uses.
    Short,
    /// A long connection completed the hello.
    Connected(Transport),
}

/// What to do after an [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep trying long connections (with backoff).
    Retry,
    /// Switch to polling now.
    SwitchToPolling,
    /// Already polling: keep polling, try the long connection again later.
    KeepPolling,
    /// Use the new long connection (it was already long: a plain reconnect).
    Connected,
    /// Use the new long connection and stop polling.
    BackToLong,
}

/// Counts consecutive failed long-connection attempts across transports and re-routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    threshold: u32,
    consecutive: u32,
    polling: bool,
}

impl Fallback {
    /// Switch after `threshold` consecutive failures; 0 never switches on failures (only
    /// on [`Outcome::Short`]).
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold,
            consecutive: 0,
            polling: false,
        }
    }

    /// Whether the client is polling.
    pub fn is_polling(&self) -> bool {
        self.polling
    }

    /// Failed attempts since the last long connection.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// How many more failures the client takes before switching: `None` when no number
    /// of failures will switch (already polling, or a threshold of 0). Lets the caller
    /// stop trying a route's remaining endpoints at exactly the threshold.
    pub fn failures_left(&self) -> Option<u32> {
        if self.polling || self.threshold == 0 {
            None
        } else {
            Some(self.threshold.saturating_sub(self.consecutive))
        }
    }

    /// Take one outcome.
    pub fn record(&mut self, outcome: Outcome) -> Step {
        match outcome {
            Outcome::Connected(_) => {
                self.consecutive = 0;
                if std::mem::replace(&mut self.polling, false) {
                    Step::BackToLong
                } else {
                    Step::Connected
                }
            }
            Outcome::Failed(_) | Outcome::Short if self.polling => {
                self.consecutive = self.consecutive.saturating_add(1);
                Step::KeepPolling
            }
            Outcome::Short => {
                self.polling = true;
                Step::SwitchToPolling
            }
            Outcome::Failed(_) => {
                self.consecutive = self.consecutive.saturating_add(1);
                if self.threshold > 0 && self.consecutive >= self.threshold {
                    self.polling = true;
                    Step::SwitchToPolling
                } else {
                    Step::Retry
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Transport::{Quic, Ws};

    #[test]
    fn switches_after_exactly_the_threshold_and_back_on_success() {
        let mut fallback = Fallback::new(3);
        assert_eq!(fallback.failures_left(), Some(3));
        assert_eq!(fallback.record(Outcome::Failed(Quic)), Step::Retry);
        assert_eq!(fallback.record(Outcome::Failed(Ws)), Step::Retry);
        assert_eq!(fallback.failures_left(), Some(1));
        assert!(!fallback.is_polling());
        assert_eq!(
            fallback.record(Outcome::Failed(Quic)),
            Step::SwitchToPolling
        );
        assert!(fallback.is_polling());
        assert_eq!(fallback.failures_left(), None);
        // Retries from polling that fail keep polling; the switch is not repeated.
        assert_eq!(fallback.record(Outcome::Failed(Quic)), Step::KeepPolling);
        assert_eq!(fallback.record(Outcome::Failed(Ws)), Step::KeepPolling);
        assert_eq!(fallback.record(Outcome::Short), Step::KeepPolling);
        assert_eq!(fallback.record(Outcome::Connected(Ws)), Step::BackToLong);
        assert!(!fallback.is_polling());
        assert_eq!(fallback.consecutive_failures(), 0);
        assert_eq!(fallback.record(Outcome::Connected(Quic)), Step::Connected);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut fallback = Fallback::new(3);
        for _ in 0..5 {
            assert_eq!(fallback.record(Outcome::Failed(Quic)), Step::Retry);
            assert_eq!(fallback.record(Outcome::Failed(Ws)), Step::Retry);
            assert_eq!(fallback.record(Outcome::Connected(Ws)), Step::Connected);
        }
        assert!(!fallback.is_polling());
        // After coming back from polling, it takes three fresh failures again.
        for _ in 0..3 {
            fallback.record(Outcome::Failed(Ws));
        }
        assert!(fallback.is_polling());
        fallback.record(Outcome::Connected(Quic));
        assert_eq!(fallback.record(Outcome::Failed(Ws)), Step::Retry);
        assert_eq!(fallback.record(Outcome::Failed(Ws)), Step::Retry);
        assert_eq!(fallback.record(Outcome::Failed(Ws)), Step::SwitchToPolling);
    }

    #[test]
    fn short_mode_switches_at_once() {
        let mut fallback = Fallback::new(3);
        assert_eq!(fallback.record(Outcome::Short), Step::SwitchToPolling);
        assert!(fallback.is_polling());
        assert_eq!(fallback.record(Outcome::Connected(Quic)), Step::BackToLong);
    }

    #[test]
    fn threshold_zero_never_switches_on_failures() {
        let mut fallback = Fallback::new(0);
        for _ in 0..100 {
            assert_eq!(fallback.record(Outcome::Failed(Quic)), Step::Retry);
        }
        assert_eq!(fallback.failures_left(), None);
        assert_eq!(fallback.record(Outcome::Short), Step::SwitchToPolling);
    }

    #[test]
    fn threshold_one_switches_on_the_first_failure() {
        let mut fallback = Fallback::new(1);
        assert_eq!(fallback.record(Outcome::Failed(Ws)), Step::SwitchToPolling);
    }
}
