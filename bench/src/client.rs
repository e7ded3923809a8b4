//! One bench client on the wire: `Hello` + `Join` over any long connection
//! ([`Conn`]), and the checks every delivery goes through, whatever the
//! transport (seq coverage, duplicates, reordering, the publish stamp).

use anyhow::bail;
use proto::client::v1::{Delivery, Hello, Join, Priority, client_frame, server_frame};

use crate::conn::{Conn, Incoming};
use crate::wire::Tally;

/// What `Joined` said.
#[derive(Clone, Copy, Debug)]
pub struct JoinedRoom {
    /// Seq the client's stream starts after.
    pub start_seq: u64,
}

/// Send `Hello` and `Join` back to back, wait for `Joined`.
pub async fn hello_join(conn: &mut Conn, token: String, room: &str) -> anyhow::Result<JoinedRoom> {
    conn.feed(client_frame::Frame::Hello(Hello {
        token,
        ..Default::default()
    }))
    .await?;
    conn.send(client_frame::Frame::Join(Join {
        r#ref: 1,
        room: room.to_owned(),
        resume: None,
    }))
    .await?;
    loop {
        match conn.recv().await {
            Incoming::Frame(frame) => match frame.frame {
                Some(server_frame::Frame::Joined(j)) => {
                    return Ok(JoinedRoom {
                        start_seq: j.start_seq,
                    });
                }
                Some(server_frame::Frame::Error(e)) => {
                    bail!("refused: {} (code {})", e.message, e.code)
                }
                _ => {}
            },
            Incoming::Skip => {}
            Incoming::Closed(why) => bail!("closed before joining: {why}"),
        }
    }
}

/// Per-connection seq bookkeeping for one room.
#[derive(Debug, Default)]
pub struct SeqCheck {
    /// Highest seq covered so far.
    last: u64,
    /// Seq ranges skipped over (inclusive), waiting to be filled.
    holes: Vec<(u64, u64)>,
}

impl SeqCheck {
    /// A stream that starts after `start_seq`.
    pub fn new(start_seq: u64) -> Self {
        Self {
            last: start_seq,
            holes: Vec::new(),
        }
    }

    /// Check one delivery; `each` sees the body of every message that is new
    /// to this connection (not a duplicate). Returns how many of those were
    /// low priority.
    pub fn delivery(&mut self, d: &Delivery, t: &mut Tally, mut each: impl FnMut(&[u8])) -> u64 {
        let mut low = 0;
        let before = self.last;
        let (first, last) = (d.first_seq.max(1), d.last_seq);
        if first > before + 1 {
            self.holes.push((before + 1, first - 1));
        }
        // Highest seq covered so far, counting this delivery's range.
        let mut covered = before.max(last);
        let mut fresh_in_range = 0u64;
        for m in &d.messages {
            let seq = m.seq;
            if seq > before && seq > self.last {
                if seq > covered + 1 {
                    // Beyond the range the frame claims to cover: never covered.
                    self.holes.push((covered + 1, seq - 1));
                }
                covered = covered.max(seq);
                self.last = seq;
                if seq <= last {
                    fresh_in_range += 1;
                }
            } else if seq > before || self.fill(seq) {
                // Behind a higher seq of this frame, or filling an older hole.
                t.out_of_order += 1;
            } else {
                t.duplicates += 1;
                continue;
            }
            t.received += 1;
            match Priority::try_from(m.priority) {
                Ok(Priority::High) => t.high_received += 1,
                Ok(Priority::Low) => {
                    t.low_received += 1;
                    low += 1;
                }
                _ => {}
            }
            each(&m.body);
        }
        if last > before {
            // Seqs this frame newly covers but does not carry were sampled out.
            let newly_covered = last - before.max(first - 1);
            t.sampled += newly_covered.saturating_sub(fresh_in_range);
        }
        self.last = covered;
        low
    }

    /// Remove `seq` from the holes; true if it was in one.
    fn fill(&mut self, seq: u64) -> bool {
        let Some(i) = self.holes.iter().position(|&(a, b)| a <= seq && seq <= b) else {
            return false;
        };
        let (a, b) = self.holes.swap_remove(i);
        if a < seq {
            self.holes.push((a, seq - 1));
        }
        if seq < b {
            self.holes.push((seq + 1, b));
        }
        true
    }

    /// Seqs still missing.
    pub fn open_gaps(&self) -> u64 {
        self.holes.iter().map(|&(a, b)| b - a + 1).sum()
    }
}

/// Messages one connection received per whole second of wall time: the
/// first and the last second seen are partial and left out; seconds without
/// any count as 0.
#[derive(Debug, Default)]
pub struct PerSecond {
    /// The second being counted and its count so far.
    current: Option<(u64, u64)>,
    /// Whether `current` is the first second seen (partial).
    first: bool,
    /// Counts of the whole seconds so far.
    done: Vec<u64>,
}

impl PerSecond {
    /// `n` more at `second` (seconds never go back).
    pub fn add(&mut self, second: u64, n: u64) {
        match &mut self.current {
            None => {
                self.current = Some((second, n));
                self.first = true;
            }
            Some((at, count)) if *at >= second => *count += n,
            Some((at, count)) => {
                if !std::mem::take(&mut self.first) {
                    self.done.push(*count);
                }
                let idle = second - *at - 1;
                self.done
                    .extend(std::iter::repeat_n(0, idle.min(3600) as usize));
                *at = second;
                *count = n;
            }
        }
    }

    /// The counts of the whole seconds.
    pub fn whole_seconds(&self) -> &[u64] {
        &self.done
    }
}

/// The `t` stamp (µs) of a bench message body `{"t":123}`, without a JSON parser.
pub fn stamp(body: &[u8]) -> Option<u64> {
    let at = body.windows(4).position(|w| w == b"\"t\":")? + 4;
    let digits = &body[at..];
    let digits = &digits[digits
        .iter()
        .take_while(|b| b.is_ascii_whitespace())
        .count()..];
    let end = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use proto::client::v1::RoomMessage;

    use super::*;

    fn delivery(first: u64, last: u64, seqs: &[u64]) -> Delivery {
        Delivery {
            first_seq: first,
            last_seq: last,
            messages: seqs
                .iter()
                .map(|&seq| RoomMessage {
                    seq,
                    body: b"{\"t\":5}".to_vec().into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn in_order_stream_is_clean() {
        let mut c = SeqCheck::new(0);
        let mut t = Tally::default();
        c.delivery(&delivery(1, 2, &[1, 2]), &mut t, |_| {});
        c.delivery(&delivery(3, 3, &[3]), &mut t, |_| {});
        assert_eq!(
            (t.received, t.duplicates, t.out_of_order, t.sampled),
            (3, 0, 0, 0)
        );
        assert_eq!(c.open_gaps(), 0);
    }

    #[test]
    fn gaps_duplicates_and_late_fills() {
        let mut c = SeqCheck::new(0);
        let mut t = Tally::default();
        c.delivery(&delivery(1, 1, &[1]), &mut t, |_| {});
        c.delivery(&delivery(4, 5, &[4, 5]), &mut t, |_| {}); // 2, 3 missing
        assert_eq!(c.open_gaps(), 2);
        c.delivery(&delivery(2, 2, &[2]), &mut t, |_| {}); // late fill
        c.delivery(&delivery(5, 5, &[5]), &mut t, |_| {}); // duplicate
        assert_eq!(t.out_of_order, 1);
        assert_eq!(t.duplicates, 1);
        assert_eq!(c.open_gaps(), 1);
        assert_eq!(t.received, 4);
    }

    #[test]
    fn covered_but_absent_is_sampled_not_a_gap() {
        let mut c = SeqCheck::new(10);
        let mut t = Tally::default();
        c.delivery(&delivery(11, 15, &[11, 15]), &mut t, |_| {});
        assert_eq!(t.sampled, 3);
        assert_eq!(c.open_gaps(), 0);
    }

    #[test]
    fn priorities_are_counted_and_low_returned() {
        let mut c = SeqCheck::new(0);
        let mut t = Tally::default();
        let mut d = delivery(1, 4, &[1, 2, 4]);
        d.messages[0].priority = Priority::High as i32;
        d.messages[1].priority = Priority::Low as i32;
        d.messages[2].priority = Priority::Low as i32;
        assert_eq!(c.delivery(&d, &mut t, |_| {}), 2);
        assert_eq!((t.high_received, t.low_received, t.sampled), (1, 2, 1));
        // A duplicate counts nowhere.
        assert_eq!(c.delivery(&d, &mut t, |_| {}), 0);
        assert_eq!(t.low_received, 2);
    }

    #[test]
    fn per_second_counts_whole_seconds_only() {
        let mut p = PerSecond::default();
        p.add(10, 3); // partial first second: left out
        p.add(11, 5);
        p.add(11, 2);
        p.add(14, 1); // 12 and 13 had none
        p.add(15, 9); // the last second is partial: not counted yet
        assert_eq!(p.whole_seconds(), &[7, 0, 0, 1]);
    }

    #[test]
    fn stamp_is_read() {
        assert_eq!(stamp(br#"{"t":1234567}"#), Some(1_234_567));
        assert_eq!(stamp(br#"{"x":1, "t": 42}"#), Some(42));
        assert_eq!(stamp(b"{}"), None);
    }
}
