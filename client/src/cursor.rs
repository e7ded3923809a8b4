//! Per-room stream position: dedup, gap detection and resume (pure, no I/O).

use proto::client::v1::{Delivery, Resume, RoomMessage};

/// Where the client is in one room's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomCursor {
    /// Stream epoch.
    pub epoch: u64,
    /// Highest seq covered so far (delivered or sampled out).
    pub last_seq: u64,
}

/// What to do with a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Accept {
    /// Surface these messages, in this order (possibly none: all seen or sampled out).
    Deliver(Vec<RoomMessage>),
    /// The delivery starts after `last_seq + 1`. Nothing was accepted: re-join with
    /// resume instead of surfacing messages out of order.
    Gap {
        /// The cursor's position.
        last_seq: u64,
        /// Where the delivery started.
        first_seq: u64,
    },
    /// A different epoch than the cursor's: ignored until the `Joined` for it.
    OtherEpoch,
}

impl RoomCursor {
    /// The position after a `Joined` frame.
    ///
    /// A recovered resume of the same epoch keeps the old position (the missed messages
    /// follow as deliveries); anything else starts at `start_seq`.
    pub fn joined(previous: Option<Self>, epoch: u64, start_seq: u64, recovered: bool) -> Self {
        match previous {
            Some(prev) if recovered && prev.epoch == epoch && prev.last_seq <= start_seq => prev,
            _ => Self {
                epoch,
                last_seq: start_seq,
            },
        }
    }

    /// The resume point to send with a re-join.
    pub fn resume(&self) -> Resume {
        Resume {
            epoch: self.epoch,
            last_seq: self.last_seq,
        }
    }

    /// Take a delivery: drop what was already seen, refuse gaps, advance to its coverage.
    pub fn accept(&mut self, delivery: Delivery) -> Accept {
        if delivery.epoch != self.epoch {
            return Accept::OtherEpoch;
        }
        if delivery.last_seq < delivery.first_seq || delivery.last_seq <= self.last_seq {
            // Empty coverage, or everything in it was already covered.
            return Accept::Deliver(Vec::new());
        }
        if delivery.first_seq > self.last_seq.saturating_add(1) {
            return Accept::Gap {
                last_seq: self.last_seq,
                first_seq: delivery.first_seq,
            };
        }
        let (after, upto) = (self.last_seq, delivery.last_seq);
        let mut messages: Vec<RoomMessage> = delivery
            .messages
            .into_iter()
            // Messages outside the frame's own coverage are a server bug; surfacing them
            // would break dedup of the frame that does cover them.
            .filter(|m| m.seq > after && m.seq <= upto)
            .collect();
        messages.sort_by_key(|m| m.seq);
        messages.dedup_by_key(|m| m.seq);
        self.last_seq = upto;
        Accept::Deliver(messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> RoomMessage {
        RoomMessage {
            seq,
            kind: "comment".into(),
            ..Default::default()
        }
    }

    fn delivery(epoch: u64, first_seq: u64, last_seq: u64, seqs: &[u64]) -> Delivery {
        Delivery {
            room: "r".into(),
            epoch,
            first_seq,
            last_seq,
            messages: seqs.iter().copied().map(msg).collect(),
        }
    }

    fn seqs(accept: Accept) -> Vec<u64> {
        match accept {
            Accept::Deliver(messages) => messages.iter().map(|m| m.seq).collect(),
            other => panic!("expected Deliver, got {other:?}"),
        }
    }

    #[test]
    fn delivers_in_order_and_advances_to_coverage() {
        let mut cursor = RoomCursor::joined(None, 7, 10, false);
        assert_eq!(
            seqs(cursor.accept(delivery(7, 11, 12, &[12, 11]))),
            vec![11, 12]
        );
        assert_eq!(cursor.last_seq, 12);
    }

    #[test]
    fn sampled_ranges_are_not_gaps() {
        let mut cursor = RoomCursor {
            epoch: 1,
            last_seq: 0,
        };
        // 2..=4 sampled out: the frame still covers them.
        assert_eq!(seqs(cursor.accept(delivery(1, 1, 5, &[1, 5]))), vec![1, 5]);
        assert_eq!(cursor.last_seq, 5);
        // An empty frame covering a range advances the cursor too.
        assert_eq!(
            seqs(cursor.accept(delivery(1, 6, 9, &[]))),
            Vec::<u64>::new()
        );
        assert_eq!(seqs(cursor.accept(delivery(1, 10, 10, &[10]))), vec![10]);
    }

    #[test]
    fn duplicates_and_overlaps_are_dropped() {
        let mut cursor = RoomCursor {
            epoch: 1,
            last_seq: 5,
        };
        assert_eq!(
            seqs(cursor.accept(delivery(1, 3, 5, &[3, 4, 5]))),
            Vec::<u64>::new()
        );
        assert_eq!(cursor.last_seq, 5);
        assert_eq!(
            seqs(cursor.accept(delivery(1, 4, 7, &[4, 5, 6, 6, 7]))),
            vec![6, 7]
        );
        assert_eq!(cursor.last_seq, 7);
    }

    #[test]
    fn a_gap_is_refused_without_moving() {
        let mut cursor = RoomCursor {
            epoch: 1,
            last_seq: 5,
        };
        assert_eq!(
            cursor.accept(delivery(1, 8, 9, &[8, 9])),
            Accept::Gap {
                last_seq: 5,
                first_seq: 8
            }
        );
        assert_eq!(cursor.last_seq, 5);
        assert_eq!(
            seqs(cursor.accept(delivery(1, 6, 9, &[6, 7, 8, 9]))),
            vec![6, 7, 8, 9]
        );
    }

    #[test]
    fn other_epochs_are_ignored() {
        let mut cursor = RoomCursor {
            epoch: 1,
            last_seq: 5,
        };
        assert_eq!(cursor.accept(delivery(2, 1, 1, &[1])), Accept::OtherEpoch);
        assert_eq!(
            cursor,
            RoomCursor {
                epoch: 1,
                last_seq: 5
            }
        );
    }

    #[test]
    fn messages_outside_coverage_are_dropped() {
        let mut cursor = RoomCursor {
            epoch: 1,
            last_seq: 0,
        };
        assert_eq!(
            seqs(cursor.accept(delivery(1, 1, 2, &[1, 2, 3]))),
            vec![1, 2]
        );
        assert_eq!(seqs(cursor.accept(delivery(1, 3, 3, &[3]))), vec![3]);
    }

    #[test]
    fn inverted_coverage_is_ignored() {
        let mut cursor = RoomCursor {
            epoch: 1,
            last_seq: 2,
        };
        assert_eq!(
            seqs(cursor.accept(delivery(1, 9, 3, &[3]))),
            Vec::<u64>::new()
        );
        assert_eq!(cursor.last_seq, 2);
    }

    #[test]
    fn joined_keeps_position_only_for_a_recovered_resume() {
        let prev = Some(RoomCursor {
            epoch: 3,
            last_seq: 40,
        });
        // Recovered: missed 41..=50 follow as deliveries.
        assert_eq!(
            RoomCursor::joined(prev, 3, 50, true),
            RoomCursor {
                epoch: 3,
                last_seq: 40
            }
        );
        // Not recovered: start over at the head.
        assert_eq!(
            RoomCursor::joined(prev, 3, 50, false),
            RoomCursor {
                epoch: 3,
                last_seq: 50
            }
        );
        // New epoch: start over even if the server claims recovery.
        assert_eq!(
            RoomCursor::joined(prev, 4, 2, true),
            RoomCursor {
                epoch: 4,
                last_seq: 2
            }
        );
        // First join.
        assert_eq!(
            RoomCursor::joined(None, 4, 2, false),
            RoomCursor {
                epoch: 4,
                last_seq: 2
            }
        );
        assert_eq!(
            prev.map(|c| c.resume()),
            Some(Resume {
                epoch: 3,
                last_seq: 40
            })
        );
    }

    #[test]
    fn recovered_resume_then_replay_then_live() {
        let prev = Some(RoomCursor {
            epoch: 3,
            last_seq: 40,
        });
        let mut cursor = RoomCursor::joined(prev, 3, 42, true);
        // Replay may overlap what was seen before the disconnect.
        assert_eq!(
            seqs(cursor.accept(delivery(3, 39, 42, &[39, 40, 41, 42]))),
            vec![41, 42]
        );
        assert_eq!(seqs(cursor.accept(delivery(3, 43, 43, &[43]))), vec![43]);
    }

    proptest::proptest! {
        /// Frames as a sampling server sends them (contiguous ranges, any
        /// seqs left out, some frames carrying nothing): never a gap, every
        /// carried message surfaced once in order, the cursor at the end.
        #[test]
        fn sampled_frames_are_never_gaps(
            kept in proptest::collection::vec(proptest::bool::ANY, 1..300),
            cuts in proptest::collection::vec(1usize..12, 1..300),
        ) {
            let mut cursor = RoomCursor::joined(None, 9, 0, false);
            let mut surfaced = Vec::new();
            let (mut first, mut i) = (1u64, 0usize);
            let last_seq = kept.len() as u64;
            while first <= last_seq {
                let last = (first + cuts[i % cuts.len()] as u64 - 1).min(last_seq);
                i += 1;
                let carried: Vec<u64> = (first..=last).filter(|s| kept[(s - 1) as usize]).collect();
                match cursor.accept(delivery(9, first, last, &carried)) {
                    Accept::Deliver(messages) => surfaced.extend(messages.iter().map(|m| m.seq)),
                    other => proptest::prop_assert!(false, "frame {}..={}: {:?}", first, last, other),
                }
                first = last + 1;
            }
            let want: Vec<u64> = (1..=last_seq).filter(|s| kept[(s - 1) as usize]).collect();
            proptest::prop_assert_eq!(surfaced, want);
            proptest::prop_assert_eq!(cursor.last_seq, last_seq);
        }
    }
}
