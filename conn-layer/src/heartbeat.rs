//! The node's heartbeat sweep: once a heartbeat, every session is flagged
//! and checks its client (idle timeout) and its token (expiry, warning).
//!
//! One timer for the node instead of one per session: an idle session then
//! holds no timer entry (≈ 120 bytes each) and the timer wheel does not
//! carry one per connection. A session checks at the sweep's moment rather
//! than at its own, which moves each check by less than one heartbeat.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::config::Config;

/// How often sessions are checked.
pub(crate) fn period(cfg: &Config) -> Duration {
    Duration::from_millis(cfg.heartbeat_ms.max(100))
}

/// Flag every session once a heartbeat until `stop`.
pub(crate) async fn run(ctx: Arc<Ctx>, stop: CancellationToken) {
    let period = period(&ctx.cfg);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for session in ctx.registry.sessions() {
            session.heartbeat();
        }
    }
}
