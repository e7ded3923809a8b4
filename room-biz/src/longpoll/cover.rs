//! Which messages one long-poll reply carries: the reply size shrinks as the room
//! grows, and large rooms sample low-priority messages. Pure, no I/O.
//!
//! The rules are the socket path's (docs/protocol.md): a reply covers a seq
//! range `[first_seq, last_seq]`, and every seq in it is either in `messages`
//! or was left out on purpose, so a client never mistakes sampling for loss.
//! High- and normal-priority messages are never left out; when they alone
//! exceed the cap, the covered range ends early and the client polls again at
//! once for the rest. A range also ends once its messages reach
//! [`REPLY_BYTES`] (at least one message), so large messages come in pages.

use prost::Message as _;
use proto::client::v1::{Priority, RoomMessage};

/// Reply caps by room size: (members at most, messages per reply). A person
/// reads a few messages a second; huge rooms also have the most pollers, so
/// each reply shrinks to keep the bytes a node sends per second bounded.
const CAPS: &[(u32, usize)] = &[(100, 500), (1_000, 200), (10_000, 100)];
/// The cap of rooms larger than every entry of [`CAPS`].
const HUGE_ROOM_CAP: usize = 50;

/// The most messages one poll reply carries in a room of `members`.
pub(crate) fn cap_for_members(members: u32) -> usize {
    CAPS.iter()
        .find(|(most, _)| members <= *most)
        .map_or(HUGE_ROOM_CAP, |(_, cap)| *cap)
}

/// The part of the pending messages one reply carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Covered {
    /// First seq covered (`after + 1`).
    pub(crate) first_seq: u64,
    /// Last seq covered (`after` when nothing is pending).
    pub(crate) last_seq: u64,
    /// The messages of `[first_seq, last_seq]` the reply carries, in seq order.
    pub(crate) messages: Vec<RoomMessage>,
}

/// Encoded message bytes one reply covers at most (one message always): a
/// backlog of large messages is answered in pages, each a reply a client can
/// take in one read, the next one asked for at once (`poll_after_ms: 0`).
pub(crate) const REPLY_BYTES: usize = proto::paging::PAGE_BYTES;

/// How many of `pending` fit in `budget` encoded bytes (at least one when
/// any is pending). Sampled-out messages count too: a reply's range, not
/// just its carried messages, stays within the budget, which keeps the rule
/// simple and never lets a range grow past what a page can carry unsampled.
fn within_bytes(pending: &[&RoomMessage], budget: usize) -> usize {
    let mut bytes = 0usize;
    for (i, message) in pending.iter().enumerate() {
        bytes = bytes.saturating_add(message.encoded_len());
        if i > 0 && bytes > budget {
            return i;
        }
    }
    pending.len()
}

fn is_low(message: &RoomMessage) -> bool {
    // Unknown priorities count as normal: never sample what we do not understand.
    Priority::try_from(message.priority) == Ok(Priority::Low)
}

/// Cover `pending` (contiguous from `after + 1`) with at most `cap` messages
/// (`cap` ≥ 1).
///
/// Without `sample`, the range simply ends after `cap` messages. With
/// `sample`, the range is the longest prefix whose high- and normal-priority
/// messages fit in `cap`; it keeps all of those, and fills the remaining
/// slots with its newest low-priority messages (the ones still worth reading).
pub(crate) fn cover(after: u64, pending: &[&RoomMessage], cap: usize, sample: bool) -> Covered {
    let cap = cap.max(1);
    let first_seq = after.saturating_add(1);
    let pending = &pending[..within_bytes(pending, REPLY_BYTES)];
    let take_all = |messages: &[&RoomMessage]| Covered {
        first_seq,
        last_seq: messages.last().map_or(after, |m| m.seq),
        messages: messages.iter().map(|m| (*m).clone()).collect(),
    };
    if pending.len() <= cap {
        return take_all(pending);
    }
    if !sample {
        return take_all(&pending[..cap]);
    }
    // The prefix ends just before the (cap + 1)-th message that may not be sampled.
    let mut unsampled = 0;
    let mut end = pending.len();
    for (i, message) in pending.iter().enumerate() {
        if !is_low(message) {
            if unsampled == cap {
                end = i;
                break;
            }
            unsampled += 1;
        }
    }
    let prefix = &pending[..end];
    let mut low_slots = cap - unsampled;
    let mut keep = vec![false; prefix.len()];
    for (i, message) in prefix.iter().enumerate().rev() {
        if !is_low(message) {
            keep[i] = true;
        } else if low_slots > 0 {
            keep[i] = true;
            low_slots -= 1;
        }
    }
    Covered {
        first_seq,
        last_seq: prefix.last().map_or(after, |m| m.seq),
        messages: prefix
            .iter()
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|(m, _)| (*m).clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, priority: Priority) -> RoomMessage {
        RoomMessage {
            seq,
            priority: priority as i32,
            ..RoomMessage::default()
        }
    }

    fn seqs(covered: &Covered) -> Vec<u64> {
        covered.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn caps_shrink_as_rooms_grow() {
        let caps: Vec<usize> = [0, 100, 101, 1_000, 1_001, 10_000, 10_001, u32::MAX]
            .into_iter()
            .map(cap_for_members)
            .collect();
        assert_eq!(caps, [500, 500, 200, 200, 100, 100, 50, 50]);
    }

    #[test]
    fn nothing_pending_covers_an_empty_range_after_the_position() {
        let covered = cover(41, &[], 10, true);
        assert_eq!((covered.first_seq, covered.last_seq), (42, 41));
        assert!(covered.messages.is_empty());
    }

    #[test]
    fn small_rooms_are_cut_short_not_sampled() {
        let stream: Vec<RoomMessage> = (11..=20).map(|s| msg(s, Priority::Low)).collect();
        let pending: Vec<&RoomMessage> = stream.iter().collect();
        let covered = cover(10, &pending, 4, false);
        assert_eq!((covered.first_seq, covered.last_seq), (11, 14));
        assert_eq!(seqs(&covered), [11, 12, 13, 14]);
    }

    #[test]
    fn sampling_keeps_every_high_and_normal_message_and_the_newest_low_ones() {
        // 1..=12: every third message is high, the one after it normal, the rest low.
        let stream: Vec<RoomMessage> = (1..=12)
            .map(|s| match s % 3 {
                0 => msg(s, Priority::High),
                1 => msg(s, Priority::Normal),
                _ => msg(s, Priority::Low),
            })
            .collect();
        let pending: Vec<&RoomMessage> = stream.iter().collect();
        // 8 unsampled messages (3,4,6,7,9,10,12 and 1) fit in 10: the whole range
        // is covered, with the 2 newest low ones (11, 8).
        let covered = cover(0, &pending, 10, true);
        assert_eq!((covered.first_seq, covered.last_seq), (1, 12));
        assert_eq!(seqs(&covered), [1, 3, 4, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn when_unsampled_messages_exceed_the_cap_the_range_ends_early() {
        let stream: Vec<RoomMessage> = (1..=9)
            .map(|s| {
                let p = if s % 2 == 0 {
                    Priority::High
                } else {
                    Priority::Low
                };
                msg(s, p)
            })
            .collect();
        let pending: Vec<&RoomMessage> = stream.iter().collect();
        // Highs are 2,4,6,8: a cap of 3 ends the range before 8, at 7.
        let covered = cover(0, &pending, 3, true);
        assert_eq!((covered.first_seq, covered.last_seq), (1, 7));
        assert_eq!(seqs(&covered), [2, 4, 6]);
        // The next reply starts where this one ended and carries the rest.
        let rest: Vec<&RoomMessage> = stream[7..].iter().collect();
        let next = cover(7, &rest, 3, true);
        assert_eq!((next.first_seq, next.last_seq), (8, 9));
        assert_eq!(seqs(&next), [8, 9]);
    }

    #[test]
    fn large_messages_are_covered_in_pages_of_bytes() {
        let big = |seq| RoomMessage {
            seq,
            body: vec![b'x'; 300 * 1024].into(),
            ..RoomMessage::default()
        };
        let stream: Vec<RoomMessage> = (1..=10).map(big).collect();
        let pending: Vec<&RoomMessage> = stream.iter().collect();
        // Three of 300 KiB fit in a 1 MiB page, the fourth does not.
        let covered = cover(0, &pending, 500, false);
        assert_eq!((covered.first_seq, covered.last_seq), (1, 3));
        assert_eq!(seqs(&covered), [1, 2, 3]);
        let covered = cover(0, &pending, 500, true);
        assert_eq!(covered.last_seq, 3, "sampled rooms page too");
        // One message larger than a page still travels.
        let huge = RoomMessage {
            seq: 1,
            body: vec![0; 2 * REPLY_BYTES].into(),
            ..RoomMessage::default()
        };
        let covered = cover(0, &[&huge], 500, false);
        assert_eq!(seqs(&covered), [1]);
    }
}
