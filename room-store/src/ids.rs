//! Random identifiers: room, poll and default node ids.

use rand::Rng as _;
use rand::distr::Alphanumeric;

/// Random characters after the `r` of a room id: 62^10 ≈ 8·10^17 ids, so
/// collisions are rare enough that a store can retry on one.
const ROOM_ID_CHARS: usize = 10;

/// `len` random base62 characters (URL-safe).
pub fn random_base62(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new room id: `r` followed by ten base62 characters.
pub fn new_room_id() -> String {
    format!("r{}", random_base62(ROOM_ID_CHARS))
}

/// A new poll id: `p` followed by eight base62 characters (unique within a
/// room: a collision is ~1 in 10^14 per pair).
pub fn new_poll_id() -> String {
    format!("p{}", random_base62(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_short_url_safe_and_distinct() {
        let a = new_room_id();
        assert_eq!(a.len(), 11);
        assert!(a.starts_with('r'));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, new_room_id());
    }
}
