//! How much of a room's stream one reply or frame carries: pulls, broadcasts
//! and `Delivery` frames are pages bounded by bytes as well as by count, so a
//! history of large messages never becomes one message too large for a peer
//! to decode (gRPC decodes 4 MiB by default; the SDK's QUIC framing 8 MiB).

use prost::Message as _;

use crate::client::v1::RoomMessage;

/// Encoded message bytes one page carries at most, unless its single message
/// is larger: well under every decoder limit on the way to a client.
pub const PAGE_BYTES: usize = 1024 * 1024;

/// Split contiguous `messages` into pages in order, each of at most
/// `max_messages` messages (at least 1) and `max_bytes` encoded bytes (one
/// message is always taken, whatever its size).
pub fn split_pages(
    messages: Vec<RoomMessage>,
    max_messages: usize,
    max_bytes: usize,
) -> Vec<Vec<RoomMessage>> {
    let max_messages = max_messages.max(1);
    let mut pages = Vec::new();
    let mut page = Vec::new();
    let mut bytes = 0usize;
    for m in messages {
        let size = m.encoded_len();
        if !page.is_empty()
            && (page.len() == max_messages || bytes.saturating_add(size) > max_bytes)
        {
            pages.push(std::mem::take(&mut page));
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        page.push(m);
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(seq: u64, body: usize) -> RoomMessage {
        RoomMessage {
            seq,
            body: vec![0; body].into(),
            ..Default::default()
        }
    }

    #[test]
    fn pages_keep_order_and_both_bounds() {
        let size = sized(1, 1000).encoded_len();
        let messages: Vec<RoomMessage> = (1..=7).map(|s| sized(s, 1000)).collect();
        let pages = split_pages(messages, 100, size * 3);
        let seqs: Vec<Vec<u64>> = pages
            .iter()
            .map(|p| p.iter().map(|m| m.seq).collect())
            .collect();
        assert_eq!(seqs, [vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
        let messages: Vec<RoomMessage> = (1..=5).map(|s| sized(s, 10)).collect();
        assert_eq!(split_pages(messages, 2, usize::MAX).len(), 3);
        // A message larger than the budget travels alone.
        let messages = vec![sized(1, 10), sized(2, 5000), sized(3, 10)];
        assert_eq!(split_pages(messages, 100, 1000).len(), 3);
        assert!(split_pages(Vec::new(), 10, 10).is_empty());
    }
}
