//! How a feed takes what the push layer tells it about a room: a notify that
//! carries the appended messages is applied directly when the feed is right
//! before them; anything else (a hole, another epoch, a notify without
//! messages) is a pull. Pure and synchronous, like `cursor`, so every branch
//! is unit-tested here; the feed task (`feeds`) does the pulls and fan-outs.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use proto::client::v1::RoomMessage;

use crate::cursor::{Cursor, Place};

/// Why a feed pulls instead of taking a notify's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PullReason {
    /// The notify carried no messages (too big to inline, or an older push node).
    NotInline,
    /// Messages before the inline ones are missing here.
    Hole,
    /// The stream has another epoch than the feed's position.
    Epoch,
    /// The inline messages do not form a run ending at the notified seq.
    Malformed,
}

impl PullReason {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::NotInline => "not_inline",
            Self::Hole => "hole",
            Self::Epoch => "epoch",
            Self::Malformed => "malformed",
        }
    }
}

/// What a notify means for a feed at a cursor.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotifyAction {
    /// The feed has everything up to the notified seq already.
    Covered,
    /// Hand these messages (right after the cursor, contiguous) to the sessions.
    Apply(Vec<RoomMessage>),
    /// Pull everything after the cursor.
    Pull(PullReason),
}

/// Decide what to do with a notify of `epoch` up to `seq` carrying `messages`
/// (empty when the push node did not inline them).
pub(crate) fn on_notify(
    cursor: &Cursor,
    epoch: u64,
    seq: u64,
    messages: Vec<RoomMessage>,
) -> NotifyAction {
    if cursor.covers(epoch, seq) {
        return NotifyAction::Covered;
    }
    if epoch != cursor.epoch {
        return NotifyAction::Pull(PullReason::Epoch);
    }
    if messages.is_empty() {
        return NotifyAction::Pull(PullReason::NotInline);
    }
    if !is_run_ending_at(&messages, seq) {
        return NotifyAction::Pull(PullReason::Malformed);
    }
    match cursor.place_messages(epoch, &messages) {
        Place::Next => NotifyAction::Apply(messages),
        Place::Overlap { .. } => NotifyAction::Apply(cursor.fresh(messages)),
        Place::Covered => NotifyAction::Covered,
        Place::Gap { .. } => NotifyAction::Pull(PullReason::Hole),
        Place::OtherEpoch => NotifyAction::Pull(PullReason::Epoch),
    }
}

/// Whether `messages` are dense seqs ending at `seq`.
fn is_run_ending_at(messages: &[RoomMessage], seq: u64) -> bool {
    let Some(first) = messages.first().map(|m| m.seq) else {
        return false;
    };
    messages.last().map(|m| m.seq) == Some(seq)
        && messages
            .iter()
            .enumerate()
            .all(|(i, m)| Some(m.seq) == first.checked_add(i as u64))
}

/// Counters of the feed intake: how much arrived inline, how often feeds
/// pulled and why, and how many frames the push streams carried.
#[derive(Clone)]
pub(crate) struct IntakeMetrics {
    pub(crate) inline_applied: IntCounter,
    pub(crate) feed_pulls: IntCounterVec,
    pub(crate) push_frames: IntCounter,
    pub(crate) push_entries: IntCounter,
}

impl IntakeMetrics {
    pub(crate) fn new(registry: &Registry) -> Self {
        let m = Self {
            inline_applied: IntCounter::new(
                "roomcast_conn_inline_applied_total",
                "Room messages taken from notifies without a pull",
            )
            .expect("static metric"),
            feed_pulls: IntCounterVec::new(
                Opts::new(
                    "roomcast_conn_feed_pulls_total",
                    "Catch-up reads of room feeds from the push layer, by reason",
                ),
                &["reason"],
            )
            .expect("static metric"),
            push_frames: IntCounter::new(
                "roomcast_conn_push_frames_total",
                "Frames read from push node streams (a batch counts once)",
            )
            .expect("static metric"),
            push_entries: IntCounter::new(
                "roomcast_conn_push_entries_total",
                "Entries (notify, broadcast, ack, ephemeral, user delivery) read from push node streams",
            )
            .expect("static metric"),
        };
        common::ops::register(registry, &m.inline_applied);
        common::ops::register(registry, &m.feed_pulls);
        common::ops::register(registry, &m.push_frames);
        common::ops::register(registry, &m.push_entries);
        m
    }
}

/// Whether a feed whose subscription was just acknowledged at `(epoch,
/// head)` must pull at once: a notify or broadcast that arrived before the
/// acknowledgement (`early`, the last one's position) announced messages past
/// the head. The push node may hand a message to this node between registering
/// its interest and sending the acknowledgement; ignored, that message would
/// wait for the room's next one.
pub(crate) fn early_news_past_head(early: Option<(u64, u64)>, epoch: u64, head: u64) -> bool {
    early.is_some_and(|(early_epoch, early_seq)| early_epoch == epoch && early_seq > head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(seqs: std::ops::RangeInclusive<u64>) -> Vec<RoomMessage> {
        seqs.map(|seq| RoomMessage {
            seq,
            ..Default::default()
        })
        .collect()
    }

    fn seqs(action: &NotifyAction) -> Vec<u64> {
        match action {
            NotifyAction::Apply(m) => m.iter().map(|m| m.seq).collect(),
            other => panic!("expected Apply, got {other:?}"),
        }
    }

    #[test]
    fn continuous_inline_messages_are_applied_without_a_pull() {
        let c = Cursor::new(7, 10);
        let action = on_notify(&c, 7, 12, msgs(11..=12));
        assert_eq!(seqs(&action), vec![11, 12]);
    }

    #[test]
    fn a_hole_before_the_inline_messages_pulls() {
        let c = Cursor::new(7, 10);
        assert_eq!(
            on_notify(&c, 7, 13, msgs(12..=13)),
            NotifyAction::Pull(PullReason::Hole)
        );
    }

    #[test]
    fn an_epoch_change_pulls_even_when_the_seqs_would_continue() {
        let c = Cursor::new(7, 10);
        assert_eq!(
            on_notify(&c, 8, 11, msgs(11..=11)),
            NotifyAction::Pull(PullReason::Epoch)
        );
        assert_eq!(
            on_notify(&c, 8, 1, msgs(1..=1)),
            NotifyAction::Pull(PullReason::Epoch)
        );
    }

    #[test]
    fn a_notify_without_messages_pulls() {
        // Too big to inline, or a push node that predates inline notifies.
        let c = Cursor::new(7, 10);
        assert_eq!(
            on_notify(&c, 7, 11, Vec::new()),
            NotifyAction::Pull(PullReason::NotInline)
        );
    }

    #[test]
    fn what_the_feed_has_already_is_covered_or_trimmed() {
        let c = Cursor::new(7, 10);
        assert_eq!(on_notify(&c, 7, 10, msgs(9..=10)), NotifyAction::Covered);
        assert_eq!(on_notify(&c, 7, 9, Vec::new()), NotifyAction::Covered);
        // A pull already took 11: only 12 is new.
        let c = Cursor::new(7, 11);
        assert_eq!(seqs(&on_notify(&c, 7, 12, msgs(11..=12))), vec![12]);
    }

    #[test]
    fn inline_messages_that_are_not_a_run_ending_at_seq_pull() {
        let c = Cursor::new(7, 10);
        let mut holey = msgs(11..=13);
        holey.remove(1);
        assert_eq!(
            on_notify(&c, 7, 13, holey),
            NotifyAction::Pull(PullReason::Malformed)
        );
        // The run ends before the announced head.
        assert_eq!(
            on_notify(&c, 7, 14, msgs(11..=13)),
            NotifyAction::Pull(PullReason::Malformed)
        );
    }

    #[test]
    fn news_before_the_acknowledgement_past_its_head_is_pulled() {
        // Nothing arrived early: nothing to do.
        assert!(!early_news_past_head(None, 7, 10));
        // Announced up to 12, acknowledged at 10: 11 and 12 must be pulled.
        assert!(early_news_past_head(Some((7, 12)), 7, 10));
        // Already within the head: the join starts after it anyway.
        assert!(!early_news_past_head(Some((7, 10)), 7, 10));
        assert!(!early_news_past_head(Some((7, 3)), 7, 10));
        // Another epoch: the acknowledgement's position is the truth.
        assert!(!early_news_past_head(Some((6, 12)), 7, 10));
    }
}
