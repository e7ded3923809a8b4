//! Where a reader is in one room's stream, and what each fact about the stream
//! means for it. Pure and synchronous (no I/O, no clock, no tokio): every
//! branch of the delivery promise — per-room order, no gaps, resume, explicit
//! coverage — is decided here and unit-tested here. The room feed (`feeds`)
//! and each session (`session`) keep one [`Cursor`] per room and do the reads
//! and writes it asks for. `client/src/cursor.rs` is the same idea on the SDK side.
//!
//! A room's stream is `(epoch, seq)`: seqs are dense from 1 within an epoch,
//! and a new epoch (the log was lost or reset) starts over. A cursor covers
//! everything up to `seq` in `epoch`.

use proto::client::v1::{Resume, RoomMessage};

/// The last seq covered in one epoch of a room's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

/// Where a contiguous run `first..=last` of an epoch falls for a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Another epoch than the cursor's: the stream was reset.
    OtherEpoch,
    /// Everything in it is covered already (a duplicate), or it is empty.
    Covered,
    /// It starts right after the cursor: take it whole.
    Next,
    /// It starts at or before the cursor and ends after it: take `from..=last`.
    Overlap { from: u64 },
    /// A hole: `after + 1 ..= upto` is missing before it.
    Gap { after: u64, upto: u64 },
}

/// What a read of history after the cursor says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum History {
    /// Contiguous from the cursor (possibly empty): take it.
    Continues,
    /// The stream is in another epoch than the cursor's.
    NewEpoch,
    /// History no longer reaches back to the cursor: the hole cannot be filled.
    Truncated,
}

/// What a read of a room's stream returned, as far as positions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadFacts {
    pub(crate) epoch: u64,
    /// The newest seq of the stream when it was read.
    pub(crate) head: u64,
    pub(crate) truncated: bool,
    /// The seq of the last message read, if any.
    pub(crate) last: Option<u64>,
}

/// Where a joining session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Continue from the client's resume point (`Joined{recovered: true}`);
    /// the messages read after it, if any, follow.
    Resumed(Cursor),
    /// Start over here with a fresh snapshot (`Joined{recovered: false}`).
    Fresh(Cursor),
    /// The feed's position cannot tell: read history after `after` up to the
    /// head, then decide with [`resume_from_history`].
    ReadHistory { after: u64 },
}

impl Cursor {
    pub(crate) fn new(epoch: u64, seq: u64) -> Self {
        Self { epoch, seq }
    }

    /// An announced head (`Subscribed`, `Notify`) that needs nothing: the
    /// cursor already covers it.
    pub(crate) fn covers(&self, epoch: u64, seq: u64) -> bool {
        epoch == self.epoch && seq <= self.seq
    }

    /// Where the run `first..=last` of `epoch` falls.
    pub(crate) fn place(&self, epoch: u64, first: u64, last: u64) -> Place {
        if epoch != self.epoch {
            Place::OtherEpoch
        } else if last < first || last <= self.seq {
            Place::Covered
        } else if first == self.seq + 1 {
            Place::Next
        } else if first <= self.seq {
            Place::Overlap { from: self.seq + 1 }
        } else {
            Place::Gap {
                after: self.seq,
                upto: first - 1,
            }
        }
    }

    /// Where a run of messages (sorted, contiguous) falls; `Covered` if empty.
    pub(crate) fn place_messages(&self, epoch: u64, messages: &[RoomMessage]) -> Place {
        match (messages.first(), messages.last()) {
            (Some(first), Some(last)) => self.place(epoch, first.seq, last.seq),
            _ => Place::Covered,
        }
    }

    /// The messages of a run that the cursor does not cover yet.
    pub(crate) fn fresh(&self, messages: Vec<RoomMessage>) -> Vec<RoomMessage> {
        let seq = self.seq;
        let mut messages = messages;
        messages.retain(|m| m.seq > seq);
        messages
    }

    /// A run was taken: the cursor covers up to `last` (never moves back).
    pub(crate) fn advance(&mut self, last: u64) {
        self.seq = self.seq.max(last);
    }

    /// Follow an announced epoch: a different one starts over at 0, so the
    /// next read takes the new epoch from its beginning.
    pub(crate) fn follow_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            *self = Self::new(epoch, 0);
        }
    }

    /// What a read of history after the cursor means.
    pub(crate) fn history(&self, read: &ReadFacts) -> History {
        if read.epoch != self.epoch {
            History::NewEpoch
        } else if read.truncated {
            History::Truncated
        } else {
            History::Continues
        }
    }
}

/// Where a joining session starts, from the feed's position (what the fan-out
/// delivers next continues it) and the client's resume point.
///
/// A resume point exactly at the feed's position needs no read: nothing was
/// missed. Any other resume point needs history (inside it, the missed
/// messages are replayed; outside it, the client starts over), and the feed
/// cannot tell which: its position may lag the stream's head.
pub(crate) fn resume_start(feed: Cursor, resume: Option<&Resume>) -> Start {
    match resume {
        None => Start::Fresh(feed),
        Some(r) if r.epoch == feed.epoch && r.last_seq == feed.seq => Start::Resumed(feed),
        Some(r) => Start::ReadHistory { after: r.last_seq },
    }
}

/// Decide a resume after reading history after `resume.last_seq`: recovered
/// when the read is of the client's epoch, reaches back to its point and the
/// point is not past the head (a future seq is the client's error); otherwise
/// the client starts over at the feed's position.
pub(crate) fn resume_from_history(feed: Cursor, resume: &Resume, read: &ReadFacts) -> Start {
    if read.epoch == resume.epoch && !read.truncated && resume.last_seq <= read.head {
        Start::Resumed(Cursor::new(
            read.epoch,
            read.last.unwrap_or(resume.last_seq),
        ))
    } else {
        Start::Fresh(feed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> RoomMessage {
        RoomMessage {
            seq,
            ..Default::default()
        }
    }

    fn msgs(seqs: std::ops::RangeInclusive<u64>) -> Vec<RoomMessage> {
        seqs.map(msg).collect()
    }

    fn read(epoch: u64, head: u64, truncated: bool, last: Option<u64>) -> ReadFacts {
        ReadFacts {
            epoch,
            head,
            truncated,
            last,
        }
    }

    fn resume(epoch: u64, last_seq: u64) -> Resume {
        Resume { epoch, last_seq }
    }

    #[test]
    fn next_run_continues_and_advances() {
        let mut c = Cursor::new(7, 10);
        assert_eq!(c.place(7, 11, 12), Place::Next);
        c.advance(12);
        assert_eq!(c, Cursor::new(7, 12));
        assert_eq!(c.place_messages(7, &msgs(13..=13)), Place::Next);
    }

    #[test]
    fn gap_names_the_hole() {
        let c = Cursor::new(1, 5);
        assert_eq!(c.place(1, 8, 9), Place::Gap { after: 5, upto: 7 });
        assert_eq!(
            c.place_messages(1, &msgs(7..=9)),
            Place::Gap { after: 5, upto: 6 }
        );
    }

    #[test]
    fn overlap_is_trimmed_to_what_is_new() {
        let c = Cursor::new(1, 5);
        assert_eq!(c.place(1, 3, 8), Place::Overlap { from: 6 });
        let fresh = c.fresh(msgs(3..=8));
        assert_eq!(
            fresh.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
    }

    #[test]
    fn duplicates_are_covered() {
        let c = Cursor::new(1, 5);
        assert_eq!(c.place(1, 3, 5), Place::Covered);
        assert_eq!(c.place(1, 5, 5), Place::Covered);
        assert_eq!(c.place(1, 1, 1), Place::Covered);
        assert!(c.fresh(msgs(1..=5)).is_empty());
    }

    #[test]
    fn empty_and_inverted_runs_are_covered() {
        let c = Cursor::new(1, 5);
        assert_eq!(c.place_messages(1, &[]), Place::Covered);
        assert_eq!(c.place(1, 9, 7), Place::Covered);
    }

    #[test]
    fn epoch_change_is_its_own_case() {
        let c = Cursor::new(1, 5);
        // Even a run that would continue the seq belongs to another stream.
        assert_eq!(c.place(2, 6, 6), Place::OtherEpoch);
        assert_eq!(c.place(2, 1, 1), Place::OtherEpoch);
        assert!(!c.covers(2, 1));
    }

    #[test]
    fn announced_heads_are_covered_only_in_the_same_epoch() {
        let c = Cursor::new(3, 10);
        assert!(c.covers(3, 10));
        assert!(c.covers(3, 4));
        assert!(!c.covers(3, 11));
        assert!(!c.covers(4, 0));
    }

    #[test]
    fn advance_never_moves_back() {
        let mut c = Cursor::new(1, 9);
        c.advance(4);
        assert_eq!(c.seq, 9);
    }

    #[test]
    fn following_a_new_epoch_starts_it_from_zero() {
        let mut c = Cursor::new(1, 9);
        c.follow_epoch(1);
        assert_eq!(c, Cursor::new(1, 9));
        c.follow_epoch(2);
        assert_eq!(c, Cursor::new(2, 0));
        assert_eq!(c.place(2, 1, 3), Place::Next);
    }

    #[test]
    fn history_continues_resets_or_is_truncated() {
        let c = Cursor::new(1, 5);
        assert_eq!(c.history(&read(1, 9, false, Some(9))), History::Continues);
        assert_eq!(c.history(&read(1, 5, false, None)), History::Continues);
        assert_eq!(c.history(&read(2, 3, false, Some(3))), History::NewEpoch);
        // A new epoch wins over truncation: the old stream is gone either way.
        assert_eq!(c.history(&read(2, 900, true, Some(900))), History::NewEpoch);
        assert_eq!(
            c.history(&read(1, 900, true, Some(900))),
            History::Truncated
        );
    }

    #[test]
    fn join_without_resume_starts_at_the_feed() {
        let feed = Cursor::new(4, 20);
        assert_eq!(resume_start(feed, None), Start::Fresh(feed));
    }

    #[test]
    fn resume_at_the_feed_position_needs_no_read() {
        let feed = Cursor::new(4, 20);
        assert_eq!(
            resume_start(feed, Some(&resume(4, 20))),
            Start::Resumed(feed)
        );
    }

    #[test]
    fn other_resume_points_read_history() {
        let feed = Cursor::new(4, 20);
        for r in [resume(4, 12), resume(4, 25), resume(3, 20), resume(5, 1)] {
            assert_eq!(
                resume_start(feed, Some(&r)),
                Start::ReadHistory { after: r.last_seq }
            );
        }
    }

    #[test]
    fn resume_inside_history_recovers_to_the_last_message_read() {
        let feed = Cursor::new(4, 20);
        let r = resume(4, 12);
        assert_eq!(
            resume_from_history(feed, &r, &read(4, 22, false, Some(22))),
            Start::Resumed(Cursor::new(4, 22))
        );
        // Nothing after the point (the head moved back to it): still recovered.
        assert_eq!(
            resume_from_history(feed, &r, &read(4, 12, false, None)),
            Start::Resumed(Cursor::new(4, 12))
        );
    }

    #[test]
    fn resume_outside_history_starts_over_at_the_feed() {
        let feed = Cursor::new(4, 20);
        // History no longer reaches the point.
        assert_eq!(
            resume_from_history(feed, &resume(4, 2), &read(4, 20, true, Some(20))),
            Start::Fresh(feed)
        );
        // The point is of another epoch.
        assert_eq!(
            resume_from_history(feed, &resume(3, 12), &read(4, 20, false, Some(20))),
            Start::Fresh(feed)
        );
    }

    #[test]
    fn resume_from_a_future_seq_starts_over() {
        let feed = Cursor::new(4, 20);
        assert_eq!(
            resume_from_history(feed, &resume(4, 99), &read(4, 20, false, None)),
            Start::Fresh(feed)
        );
    }
}
