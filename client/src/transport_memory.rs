//! Remembering a transport that failed on this network (pure, time passed in).
//!
//! A QUIC endpoint behind a firewall that drops UDP never answers: every attempt costs
//! the whole `connect_timeout` before WebSocket is tried. After such a failure the
//! client skips that transport on its next reconnects for
//! [`ConnectOptions::remember_failed_transport`](crate::ConnectOptions) (default 5
//! minutes), then tries it again; a success over it forgets the failure at once. A
//! transport is never skipped when it is the only one left to try, so memory can make
//! a reconnect faster but never impossible.

use std::time::Duration;

use tokio::time::Instant;

use crate::transport::Transport;

/// Failed long-connection transports and when they failed.
#[derive(Debug, Clone, Default)]
pub struct TransportMemory {
    remember_for: Duration,
    failed: Vec<(Transport, Instant)>,
}

impl TransportMemory {
    /// Remember failures for `remember_for` (zero: never skip anything).
    pub fn new(remember_for: Duration) -> Self {
        Self {
            remember_for,
            failed: Vec::new(),
        }
    }

    /// `transport` failed at `now` (a later failure moves the window).
    pub fn failed(&mut self, transport: Transport, now: Instant) {
        self.forget(transport);
        if !self.remember_for.is_zero() {
            self.failed.push((transport, now));
        }
    }

    /// `transport` connected: forget its failure.
    pub fn succeeded(&mut self, transport: Transport) {
        self.forget(transport);
    }

    /// Whether `transport` is remembered as failing at `now`.
    pub fn is_failing(&self, transport: Transport, now: Instant) -> bool {
        self.failed.iter().any(|(t, at)| {
            *t == transport && now.saturating_duration_since(*at) < self.remember_for
        })
    }

    /// The endpoints to try at `now`: `endpoints` without the ones whose transport is
    /// remembered as failing, unless that would leave none (then all, in order).
    pub fn filter<T: Clone>(
        &self,
        endpoints: &[(Transport, T)],
        now: Instant,
    ) -> Vec<(Transport, T)> {
        let kept: Vec<_> = endpoints
            .iter()
            .filter(|(transport, _)| !self.is_failing(*transport, now))
            .cloned()
            .collect();
        if kept.is_empty() {
            endpoints.to_vec()
        } else {
            kept
        }
    }

    fn forget(&mut self, transport: Transport) {
        self.failed.retain(|(t, _)| *t != transport);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::{Quic, Ws};

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn endpoints() -> Vec<(Transport, &'static str)> {
        vec![(Quic, "quic://h:1"), (Ws, "ws://h:2/v1/ws")]
    }

    #[test]
    fn a_failed_transport_is_skipped_for_a_while_then_tried_again() {
        let now = Instant::now();
        let mut memory = TransportMemory::new(FIVE_MINUTES);
        assert_eq!(memory.filter(&endpoints(), now), endpoints());
        memory.failed(Quic, now);
        assert_eq!(memory.filter(&endpoints(), now), [(Ws, "ws://h:2/v1/ws")]);
        let almost = now + FIVE_MINUTES - Duration::from_millis(1);
        assert_eq!(
            memory.filter(&endpoints(), almost),
            [(Ws, "ws://h:2/v1/ws")]
        );
        assert_eq!(memory.filter(&endpoints(), now + FIVE_MINUTES), endpoints());
    }

    #[test]
    fn a_success_forgets_the_failure() {
        let now = Instant::now();
        let mut memory = TransportMemory::new(FIVE_MINUTES);
        memory.failed(Quic, now);
        memory.succeeded(Quic);
        assert!(!memory.is_failing(Quic, now));
        assert_eq!(memory.filter(&endpoints(), now), endpoints());
        // A success of another transport does not vouch for QUIC.
        memory.failed(Quic, now);
        memory.succeeded(Ws);
        assert!(memory.is_failing(Quic, now));
    }

    #[test]
    fn the_last_transport_is_never_skipped() {
        let now = Instant::now();
        let mut memory = TransportMemory::new(FIVE_MINUTES);
        memory.failed(Quic, now);
        memory.failed(Ws, now);
        assert_eq!(
            memory.filter(&endpoints(), now),
            endpoints(),
            "both failed: try both"
        );
        let ws_only = vec![(Ws, "ws://h:2/v1/ws")];
        assert_eq!(memory.filter(&ws_only, now), ws_only);
    }

    #[test]
    fn a_later_failure_moves_the_window_and_zero_disables() {
        let now = Instant::now();
        let mut memory = TransportMemory::new(FIVE_MINUTES);
        memory.failed(Quic, now);
        memory.failed(Quic, now + Duration::from_secs(200));
        assert!(memory.is_failing(Quic, now + Duration::from_secs(400)));
        let mut off = TransportMemory::new(Duration::ZERO);
        off.failed(Quic, now);
        assert!(!off.is_failing(Quic, now));
    }
}
