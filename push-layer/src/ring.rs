//! Recent messages of one room, contiguous by seq, for pulls without a log read.

use std::collections::VecDeque;

use bytes::Bytes;
use message_log::ReadLimit;
use prost::Message as _;
use proto::client::v1::RoomMessage;

/// A bounded, contiguous window of a room's newest messages.
#[derive(Debug)]
pub(crate) struct Ring {
    capacity: usize,
    messages: VecDeque<RoomMessage>,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            messages: VecDeque::new(),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.messages.clear();
    }

    /// Append messages that directly follow the newest one; anything else
    /// (a hole after an ownership move) restarts the window.
    pub(crate) fn extend(&mut self, batch: &[RoomMessage]) {
        for m in batch {
            if self
                .messages
                .back()
                .is_some_and(|last| last.seq + 1 != m.seq)
            {
                self.messages.clear();
            }
            if self.messages.len() == self.capacity {
                self.messages.pop_front();
            }
            self.messages.push_back(RoomMessage {
                // A body decoded from gRPC is a slice of the request's receive
                // buffer (8 KiB): kept as is, each retained message would keep
                // that whole buffer alive. The ring keeps a copy of its own.
                body: Bytes::copy_from_slice(&m.body),
                ..m.clone()
            });
        }
    }

    /// One page of messages after `after_seq` (within `limit`, at least one
    /// message when any follows), if the window reaches back that far.
    pub(crate) fn read_after(&self, after_seq: u64, limit: ReadLimit) -> Option<Vec<RoomMessage>> {
        let first = self.messages.front()?.seq;
        let last = self.messages.back()?.seq;
        if after_seq + 1 < first || after_seq > last {
            return None;
        }
        let skip = (after_seq + 1 - first) as usize;
        let mut page = Vec::new();
        let mut bytes = 0usize;
        for m in self.messages.iter().skip(skip).take(limit.max_messages) {
            bytes = bytes.saturating_add(m.encoded_len());
            if !page.is_empty() && bytes > limit.max_bytes {
                break;
            }
            page.push(m.clone());
        }
        Some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(seq: u64) -> RoomMessage {
        RoomMessage {
            seq,
            ..Default::default()
        }
    }

    fn count(n: usize) -> ReadLimit {
        ReadLimit::messages(n)
    }

    #[test]
    fn pages_are_bounded_by_bytes_with_at_least_one_message() {
        let mut ring = Ring::new(10);
        let big = |seq| RoomMessage {
            seq,
            body: vec![0; 1000].into(),
            ..Default::default()
        };
        ring.extend(&[big(1), big(2), big(3), big(4)]);
        let size = big(1).encoded_len();
        let seqs = |p: Vec<RoomMessage>| p.iter().map(|m| m.seq).collect::<Vec<_>>();
        let page = ring.read_after(0, ReadLimit::new(10, size * 2 + 1));
        assert_eq!(page.map(seqs), Some(vec![1, 2]));
        let page = ring.read_after(2, ReadLimit::new(10, 1));
        assert_eq!(page.map(seqs), Some(vec![3]), "one message at least");
        let page = ring.read_after(0, ReadLimit::new(3, usize::MAX));
        assert_eq!(page.map(seqs), Some(vec![1, 2, 3]));
    }

    #[test]
    fn kept_bodies_do_not_hold_the_buffer_they_were_sliced_from() {
        let received = Bytes::from(vec![7u8; 8192]);
        let message = RoomMessage {
            seq: 1,
            body: received.slice(100..200),
            ..Default::default()
        };
        let mut ring = Ring::new(4);
        ring.extend(&[message]);
        let kept = ring.read_after(0, count(1)).expect("covered");
        assert_eq!(kept[0].body, received.slice(100..200));
        let buffer = received.as_ptr_range();
        assert!(
            !buffer.contains(&kept[0].body.as_ptr()),
            "the ring's body points into the 8 KiB buffer it came from"
        );
    }

    #[test]
    fn serves_only_what_it_covers() {
        let mut ring = Ring::new(3);
        ring.extend(&[m(1), m(2), m(3), m(4)]);
        assert!(ring.read_after(0, count(10)).is_none(), "seq 1 fell out");
        let got: Vec<u64> = ring
            .read_after(1, count(10))
            .expect("covered")
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(got, vec![2, 3, 4]);
        assert_eq!(ring.read_after(4, count(10)).expect("at head").len(), 0);
        assert!(ring.read_after(5, count(10)).is_none(), "ahead of the ring");
        ring.extend(&[m(9)]);
        assert!(
            ring.read_after(4, count(10)).is_none(),
            "a hole restarts the window"
        );
        assert_eq!(ring.read_after(8, count(10)).expect("covered").len(), 1);
    }
}
