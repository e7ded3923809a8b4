//! Recent messages of one room, contiguous by seq, for pulls without a log read.

use std::collections::VecDeque;

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
            self.messages.push_back(m.clone());
        }
    }

    /// Messages after `after_seq`, if the window reaches back that far.
    pub(crate) fn read_after(&self, after_seq: u64, limit: usize) -> Option<Vec<RoomMessage>> {
        let first = self.messages.front()?.seq;
        let last = self.messages.back()?.seq;
        if after_seq + 1 < first || after_seq > last {
            return None;
        }
        let skip = (after_seq + 1 - first) as usize;
        Some(
            self.messages
                .iter()
                .skip(skip)
                .take(limit)
                .cloned()
                .collect(),
        )
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

    #[test]
    fn serves_only_what_it_covers() {
        let mut ring = Ring::new(3);
        ring.extend(&[m(1), m(2), m(3), m(4)]);
        assert!(ring.read_after(0, 10).is_none(), "seq 1 fell out");
        let got: Vec<u64> = ring
            .read_after(1, 10)
            .expect("covered")
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(got, vec![2, 3, 4]);
        assert_eq!(ring.read_after(4, 10).expect("at head").len(), 0);
        assert!(ring.read_after(5, 10).is_none(), "ahead of the ring");
        ring.extend(&[m(9)]);
        assert!(
            ring.read_after(4, 10).is_none(),
            "a hole restarts the window"
        );
        assert_eq!(ring.read_after(8, 10).expect("covered").len(), 1);
    }
}
