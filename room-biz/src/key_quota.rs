//! Backend API writes per API key: a keyed rate limiter, shared by the HTTP
//! middleware that checks it and the housekeeping that trims it.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Writes per API key and second on this node, with a burst.
pub(crate) struct KeyQuota {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl KeyQuota {
    pub(crate) fn new(per_sec: u32, burst: u32) -> Self {
        let per_sec = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_sec);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst)),
        }
    }

    /// Whether key `id` may write now.
    pub(crate) fn admit(&self, id: &str) -> bool {
        self.limiter.check_key(&id.to_owned()).is_ok()
    }

    /// Forget idle keys (called by housekeeping).
    pub(crate) fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
