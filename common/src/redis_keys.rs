//! Every Redis key Roomcast writes, in one place.
//!
//! Each per-room key is `{prefix}{room:<id>}:<name>`. The `{room:<id>}` part is
//! the Redis Cluster hash tag, so all of one room's keys live in one slot and a
//! Lua script or MULTI may touch them together. Two consequences:
//! - `prefix` must not contain `{` or `}`: a brace in it would become the hash
//!   tag and put every room in the same slot (still correct, but one hot node).
//! - A room id containing `}` cuts the tag short (`{room:a}b}` hashes `room:a`);
//!   every key of that room is still cut the same way, so they still share a slot.

/// The hash tag shared by every key of `room`: `{room:<id>}`.
pub fn room_tag(room: &str) -> String {
    let mut tag = String::with_capacity(room.len() + 7);
    room_tag_into(&mut tag, room);
    tag
}

fn room_tag_into(out: &mut String, room: &str) {
    out.push_str("{room:");
    out.push_str(room);
    out.push('}');
}

fn room_key(prefix: &str, room: &str, name: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + room.len() + name.len() + 8);
    key.push_str(prefix);
    room_tag_into(&mut key, room);
    key.push(':');
    key.push_str(name);
    key
}

/// The message log's keys for one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageLogKeys {
    /// `{prefix}{room:<id>}:epoch`: the stream's incarnation (decimal u64).
    pub epoch: String,
    /// `{prefix}{room:<id>}:seq`: the last issued seq (decimal, INCRBY).
    pub seq: String,
    /// `{prefix}{room:<id>}:log`: the Redis Stream of messages.
    pub log: String,
}

/// The message log's keys for `room`.
pub fn message_log_keys(prefix: &str, room: &str) -> MessageLogKeys {
    MessageLogKeys {
        epoch: message_log_epoch(prefix, room),
        seq: message_log_seq(prefix, room),
        log: message_log_stream(prefix, room),
    }
}

/// `{prefix}{room:<id>}:epoch`.
pub fn message_log_epoch(prefix: &str, room: &str) -> String {
    room_key(prefix, room, "epoch")
}

/// `{prefix}{room:<id>}:seq`.
pub fn message_log_seq(prefix: &str, room: &str) -> String {
    room_key(prefix, room, "seq")
}

/// `{prefix}{room:<id>}:log`.
pub fn message_log_stream(prefix: &str, room: &str) -> String {
    room_key(prefix, room, "log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_room_hash_tag() {
        let keys = message_log_keys("rc:", "r-1");
        assert_eq!(keys.epoch, "rc:{room:r-1}:epoch");
        assert_eq!(keys.seq, "rc:{room:r-1}:seq");
        assert_eq!(keys.log, "rc:{room:r-1}:log");
        assert_eq!(room_tag("r-1"), "{room:r-1}");
    }
}
