//! The per-room Redis key shape every engine shares (the message log's keys
//! are in the `message-log` crate, built with [`room_key`]).
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

/// `{prefix}{room:<id>}:<name>`.
pub fn room_key(prefix: &str, room: &str, name: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + room.len() + name.len() + 8);
    key.push_str(prefix);
    room_tag_into(&mut key, room);
    key.push(':');
    key.push_str(name);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_room_hash_tag() {
        assert_eq!(room_tag("r-1"), "{room:r-1}");
        assert_eq!(room_key("rc:", "r-1", "log"), "rc:{room:r-1}:log");
    }
}
