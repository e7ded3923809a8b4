//! The message log's Redis keys.
//!
//! Per room, all under the room hash tag of [`common::redis_keys`] so they
//! share one Cluster slot and one Lua script may touch them together:
//! `{prefix}{room:<id>}:epoch`, `:seq` and `:log`.

use common::redis_keys::room_key;

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
    }
}
