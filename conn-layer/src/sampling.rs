//! Socket-path sampling of low-priority messages in big rooms, with explicit
//! coverage (DESIGN guarantee 3; docs/protocol.md, "Sampling and coverage").
//!
//! A person reads perhaps 20 comments a second; a room of thousands can post
//! hundreds. Once a room holds `sample_above_members` sessions on this node,
//! its feed keeps every high- and normal-priority message and at most
//! `sample_low_per_sec` low-priority ones (a token bucket per room on this
//! node). The decision is made once per room batch, so every session of the
//! room gets the same frame, encoded once. Each frame still covers its whole
//! seq range: what it does not carry was sampled out, never lost.
//!
//! A batch left with nothing to carry is not sent: its coverage is held and
//! joins the next frame's range (`first_seq` reaches back over it), or goes
//! out alone as an empty frame once it has waited [`HELD_COVERAGE_MAX`]. So
//! consecutive frames stay gap-free while a viewer gets about one frame per
//! kept message, not one per batch.
//!
//! History replayed to one session (resume, a gap fill after lag) is thinned
//! by [`ReplayThinner`] under the same rate, counted per second of publish
//! time, and covers its range the same way.
//!
//! Pure apart from the rate limiter's clock (injectable for tests).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, QuantaClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use proto::client::v1::{Priority, RoomMessage};

/// Coverage held back (everything in it sampled out) goes out as an empty
/// frame after this long, so an idle room's viewers still learn how far the
/// stream went.
pub(crate) const HELD_COVERAGE_MAX: Duration = Duration::from_secs(1);

/// When a room samples and how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SamplingRule {
    /// Sessions of the room on this node at which sampling starts (0: every
    /// room samples). It stops below nine tenths of it, so a room hovering
    /// around the threshold does not flap.
    pub(crate) above_members: u32,
    /// Low-priority messages per second a room's sessions get at most (0:
    /// sampling is off).
    pub(crate) low_per_sec: u32,
}

impl SamplingRule {
    /// Whether a room of `members` samples, given whether it did so far.
    pub(crate) fn active(&self, members: u32, was_active: bool) -> bool {
        if self.low_per_sec == 0 {
            return false;
        }
        let stop_below = self.above_members - self.above_members / 10;
        if was_active {
            members >= stop_below
        } else {
            members >= self.above_members
        }
    }

    /// The burst the token bucket allows: a quarter second's worth, so kept
    /// messages are spread over the second rather than bunched at its start.
    fn burst(&self) -> u32 {
        self.low_per_sec.div_ceil(4).max(1)
    }
}

/// Whether `message` may be sampled out. Unknown priorities count as normal:
/// never sample what we do not understand.
pub(crate) fn is_low(message: &RoomMessage) -> bool {
    Priority::try_from(message.priority) == Ok(Priority::Low)
}

/// One frame's worth: the range `first_seq..=last_seq` and the messages of it
/// that are carried.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Covered {
    pub(crate) epoch: u64,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) messages: Vec<RoomMessage>,
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The sampling state of one room on this node, owned by its feed task.
pub(crate) struct RoomSampler<C: Clock = QuantaClock> {
    rule: SamplingRule,
    active: bool,
    /// `None` when sampling is off by configuration.
    limiter: Option<Limiter<C>>,
    /// Coverage not sent yet: `(epoch, first, last)`, all of it sampled out.
    held: Option<(u64, u64, u64)>,
    /// Low-priority messages left out so far (for the metrics).
    sampled_out: u64,
}

impl<C: Clock + Clone> RoomSampler<C> {
    pub(crate) fn new(rule: SamplingRule, clock: &C) -> Self {
        let limiter = NonZeroU32::new(rule.low_per_sec).map(|rate| {
            let burst = NonZeroU32::new(rule.burst()).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct_with_clock(
                Quota::per_second(rate).allow_burst(burst),
                clock.clone(),
            )
        });
        Self {
            rule,
            active: false,
            limiter,
            held: None,
            sampled_out: 0,
        }
    }

    /// Follow the room's size; true while it samples.
    pub(crate) fn set_members(&mut self, members: u32) -> bool {
        self.active = self.rule.active(members, self.active);
        self.active
    }

    /// Low-priority messages left out since the last call.
    pub(crate) fn take_sampled_out(&mut self) -> u64 {
        std::mem::take(&mut self.sampled_out)
    }

    /// Whether coverage is held back (to be flushed after [`HELD_COVERAGE_MAX`]).
    pub(crate) fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// The frame for `messages` (non-empty, contiguous, right after what was
    /// given before in `epoch`), or `None` when all of it was sampled out
    /// (its coverage is then held for the next frame).
    pub(crate) fn sample(&mut self, epoch: u64, messages: Vec<RoomMessage>) -> Option<Covered> {
        let (first, last) = (messages.first()?.seq, messages.last()?.seq);
        // Held coverage of another epoch is moot: the sessions start over.
        let first = match self.held.take() {
            Some((held_epoch, held_first, held_last))
                if held_epoch == epoch && held_last.saturating_add(1) == first =>
            {
                held_first
            }
            _ => first,
        };
        let messages = match (&self.limiter, self.active) {
            (Some(limiter), true) => {
                let before = messages.len();
                let kept: Vec<RoomMessage> = messages
                    .into_iter()
                    .filter(|m| !is_low(m) || limiter.check().is_ok())
                    .collect();
                self.sampled_out += (before - kept.len()) as u64;
                kept
            }
            _ => messages,
        };
        if messages.is_empty() {
            self.held = Some((epoch, first, last));
            return None;
        }
        Some(Covered {
            epoch,
            first_seq: first,
            last_seq: last,
            messages,
        })
    }

    /// The held coverage as an empty frame, if any.
    pub(crate) fn flush_held(&mut self) -> Option<Covered> {
        let (epoch, first_seq, last_seq) = self.held.take()?;
        Some(Covered {
            epoch,
            first_seq,
            last_seq,
            messages: Vec::new(),
        })
    }
}

/// Thins history replayed to one session of a sampling room: every high- and
/// normal-priority message, and at most `per_sec` low-priority ones per second
/// of publish time (`ts_ms`), the first of each second. Feed it the replay in
/// seq order, page after page; the pages keep their ranges.
pub(crate) struct ReplayThinner {
    per_sec: u32,
    second: u64,
    kept_in_second: u32,
}

impl ReplayThinner {
    pub(crate) fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            second: u64::MAX,
            kept_in_second: 0,
        }
    }

    /// What of `page` is carried.
    pub(crate) fn thin(&mut self, page: Vec<RoomMessage>) -> Vec<RoomMessage> {
        page.into_iter()
            .filter(|m| {
                if !is_low(m) {
                    return true;
                }
                let second = m.ts_ms / 1000;
                if second != self.second {
                    self.second = second;
                    self.kept_in_second = 0;
                }
                if self.kept_in_second < self.per_sec {
                    self.kept_in_second += 1;
                    true
                } else {
                    false
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;
    use proptest::prelude::*;

    use super::*;

    fn msg(seq: u64, priority: Priority) -> RoomMessage {
        RoomMessage {
            seq,
            kind: "m".into(),
            ts_ms: seq * 10,
            priority: priority as i32,
            ..Default::default()
        }
    }

    fn rule(above: u32, per_sec: u32) -> SamplingRule {
        SamplingRule {
            above_members: above,
            low_per_sec: per_sec,
        }
    }

    #[test]
    fn sampling_starts_at_the_threshold_and_stops_below_nine_tenths() {
        let r = rule(1000, 20);
        assert!(!r.active(999, false));
        assert!(r.active(1000, false));
        assert!(r.active(900, true), "hysteresis keeps it on");
        assert!(!r.active(899, true));
        assert!(rule(0, 20).active(0, false), "threshold 0: every room");
        assert!(!rule(0, 0).active(5000, true), "rate 0: never");
    }

    #[test]
    fn a_small_room_gets_everything() {
        let clock = FakeRelativeClock::default();
        let mut s = RoomSampler::new(rule(1000, 1), &clock);
        assert!(!s.set_members(10));
        let batch: Vec<RoomMessage> = (1..=50).map(|q| msg(q, Priority::Low)).collect();
        let out = s.sample(1, batch.clone()).expect("a frame");
        assert_eq!(out.messages, batch);
        assert_eq!((out.first_seq, out.last_seq), (1, 50));
    }

    #[test]
    fn a_big_room_keeps_high_and_normal_and_bounds_low() {
        let clock = FakeRelativeClock::default();
        let mut s = RoomSampler::new(rule(2, 4), &clock);
        assert!(s.set_members(3));
        // burst 1 (4/s → a quarter second's worth): one low of ten, and both
        // high-priority messages.
        let mut batch: Vec<RoomMessage> = (1..=10).map(|q| msg(q, Priority::Low)).collect();
        batch[4].priority = Priority::High as i32;
        batch[8].priority = Priority::Normal as i32;
        let out = s.sample(7, batch).expect("a frame");
        let seqs: Vec<u64> = out.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 5, 9]);
        assert_eq!((out.epoch, out.first_seq, out.last_seq), (7, 1, 10));
        assert_eq!(s.take_sampled_out(), 7);
    }

    #[test]
    fn an_all_sampled_batch_is_held_and_joins_the_next_frame() {
        let clock = FakeRelativeClock::default();
        let mut s = RoomSampler::new(rule(0, 4), &clock);
        s.set_members(1);
        assert!(s.sample(1, vec![msg(1, Priority::Low)]).is_some());
        assert_eq!(s.sample(1, vec![msg(2, Priority::Low)]), None);
        assert_eq!(s.sample(1, vec![msg(3, Priority::Low)]), None);
        assert!(s.holds());
        let out = s.sample(1, vec![msg(4, Priority::High)]).expect("a frame");
        assert_eq!((out.first_seq, out.last_seq), (2, 4));
        assert!(!s.holds());
        // Held coverage also leaves on its own, as an empty frame.
        assert_eq!(s.sample(1, vec![msg(5, Priority::Low)]), None);
        let flushed = s.flush_held().expect("held");
        assert_eq!((flushed.first_seq, flushed.last_seq), (5, 5));
        assert!(flushed.messages.is_empty());
        assert_eq!(s.flush_held(), None);
        // A new epoch drops what was held for the old one.
        assert_eq!(s.sample(1, vec![msg(6, Priority::Low)]), None);
        let out = s.sample(2, vec![msg(1, Priority::High)]).expect("a frame");
        assert_eq!((out.epoch, out.first_seq, out.last_seq), (2, 1, 1));
    }

    #[test]
    fn the_bucket_refills_with_time() {
        let clock = FakeRelativeClock::default();
        let mut s = RoomSampler::new(rule(0, 20), &clock);
        s.set_members(1);
        let kept = |s: &mut RoomSampler<FakeRelativeClock>, from: u64| {
            let batch = (from..from + 100).map(|q| msg(q, Priority::Low)).collect();
            s.sample(1, batch).map_or(0, |c| c.messages.len())
        };
        assert_eq!(kept(&mut s, 1), 5, "the burst");
        clock.advance(Duration::from_millis(500));
        assert_eq!(
            kept(&mut s, 101),
            5,
            "half a second: 10 tokens, capped at 5"
        );
        clock.advance(Duration::from_millis(100));
        assert_eq!(kept(&mut s, 201), 2);
    }

    #[test]
    fn replay_keeps_the_first_low_messages_of_each_second() {
        let mut t = ReplayThinner::new(2);
        // ts 10 ms apart: seqs 1..=99 in second 0, 100..=199 in second 1.
        let page: Vec<RoomMessage> = (1..=150)
            .map(|q| {
                if q == 50 {
                    msg(q, Priority::High)
                } else {
                    msg(q, Priority::Low)
                }
            })
            .collect();
        let seqs: Vec<u64> = t.thin(page).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 2, 50, 100, 101]);
        // The count carries over to the next page of the same second.
        let next: Vec<RoomMessage> = (151..=210).map(|q| msg(q, Priority::Low)).collect();
        let seqs: Vec<u64> = t.thin(next).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![200, 201]);
    }

    proptest! {
        /// Whatever the stream, the batching and the timing: the frames'
        /// ranges, with the held coverage flushed at the end, are contiguous
        /// and cover every seq exactly once; every high- and normal-priority
        /// message is carried; low ones never beat the bucket (burst plus
        /// rate × elapsed time); each carried message is inside its frame.
        #[test]
        fn coverage_is_complete_and_low_rate_bounded(
            priorities in proptest::collection::vec(0u8..3, 1..400),
            cuts in proptest::collection::vec(1usize..20, 1..400),
            steps_ms in proptest::collection::vec(0u64..200, 1..400),
            rate in 1u32..50,
        ) {
            let clock = FakeRelativeClock::default();
            let r = rule(0, rate);
            let mut s = RoomSampler::new(r, &clock);
            s.set_members(1);
            let stream: Vec<RoomMessage> = priorities
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let p = match p { 0 => Priority::High, 1 => Priority::Normal, _ => Priority::Low };
                    msg(i as u64 + 1, p)
                })
                .collect();
            let mut frames = Vec::new();
            let mut rest = stream.as_slice();
            let mut elapsed_ms = 0u64;
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                let step = steps_ms[i % steps_ms.len()];
                clock.advance(Duration::from_millis(step));
                elapsed_ms += step;
                i += 1;
                if let Some(c) = s.sample(3, rest[..n].to_vec()) {
                    frames.push(c);
                }
                rest = &rest[n..];
            }
            frames.extend(s.flush_held());
            let mut next = 1u64;
            let mut low_kept = 0u64;
            let mut carried = Vec::new();
            for f in &frames {
                prop_assert_eq!(f.epoch, 3);
                prop_assert_eq!(f.first_seq, next, "frames are contiguous");
                prop_assert!(f.last_seq >= f.first_seq);
                next = f.last_seq + 1;
                for m in &f.messages {
                    prop_assert!(m.seq >= f.first_seq && m.seq <= f.last_seq);
                    low_kept += u64::from(is_low(m));
                    carried.push(m.seq);
                }
            }
            prop_assert_eq!(next, stream.len() as u64 + 1, "every seq covered");
            for m in stream.iter().filter(|m| !is_low(m)) {
                prop_assert!(carried.contains(&m.seq), "seq {} (not low) carried", m.seq);
            }
            let bound = u64::from(r.burst()) + u64::from(rate) * elapsed_ms / 1000 + 1;
            prop_assert!(low_kept <= bound, "{} low kept, bound {}", low_kept, bound);
        }
    }
}
