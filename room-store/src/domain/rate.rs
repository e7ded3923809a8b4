//! Rate rules and payload limits of the audience actions, and the pacing of
//! pushed totals. Pure: time is passed in.

use serde::Deserialize;

/// Likes one `like` action may carry (the client batches taps).
pub const LIKE_MAX_PER_ACTION: u32 = 100;
/// Longest reaction, in characters: one emoji, possibly with modifiers
/// (skin tone, ZWJ sequences such as a family emoji are up to 11).
pub const REACTION_MAX_CHARS: usize = 16;
/// Longest slow mode, in seconds.
pub const SLOW_MODE_MAX_SECS: u32 = 3600;
/// Most gifts of one kind in one `gift` action.
pub const GIFT_MAX_COUNT: u32 = 10_000;
/// Highest value of one gift (in the app's smallest unit).
pub const GIFT_MAX_VALUE: u64 = 1_000_000_000;
/// Longest gift id, in characters.
pub const GIFT_ID_MAX_CHARS: usize = 64;
/// Longest client `request_id` of a gift.
pub const GIFT_REQUEST_ID_MAX_CHARS: usize = 128;

/// How long `uid` must still wait before commenting, in ms, under a slow mode
/// of `secs`, given their last comment at `last_ms`; `None`: they may now.
pub fn slow_mode_wait(last_ms: Option<u64>, secs: u32, now_ms: u64) -> Option<u64> {
    if secs == 0 {
        return None;
    }
    let period = u64::from(secs) * 1000;
    let last = last_ms?;
    let since = now_ms.saturating_sub(last);
    (since < period).then(|| period - since)
}

/// The `like` payload.
#[derive(Debug, Deserialize)]
pub struct Like {
    /// Taps, 1 to [`LIKE_MAX_PER_ACTION`]; 1 when absent.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl Like {
    /// Check the count.
    pub fn validate(self) -> Result<u32, String> {
        if (1..=LIKE_MAX_PER_ACTION).contains(&self.count) {
            Ok(self.count)
        } else {
            Err(format!("count must be 1 to {LIKE_MAX_PER_ACTION}"))
        }
    }
}

/// Check a reaction: one short token without whitespace or control
/// characters (it becomes a counter name and a JSON key).
pub fn validate_reaction(emoji: &str) -> Result<(), String> {
    let chars = emoji.chars().count();
    if chars == 0 || chars > REACTION_MAX_CHARS {
        return Err(format!(
            "emoji must be 1 to {REACTION_MAX_CHARS} characters"
        ));
    }
    if emoji
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err("emoji must not contain spaces, control characters or ':'".into());
    }
    Ok(())
}

/// The `gift` payload: which gift and how many. Its value comes from the
/// server's catalog ([`super::catalog::GiftCatalog`]); a `value` sent by the
/// client is ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Gift {
    /// The catalog's gift id.
    pub gift_id: String,
    /// How many, 1 to [`GIFT_MAX_COUNT`]; 1 when absent.
    #[serde(default = "one")]
    pub count: u32,
    /// The client's id for this sending (1 to [`GIFT_REQUEST_ID_MAX_CHARS`]
    /// printable ASCII): a retry with the same id is counted once.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Gift {
    /// Check the limits.
    pub fn validate(self) -> Result<Self, String> {
        let id = self.gift_id.trim();
        if id.is_empty() || id.chars().count() > GIFT_ID_MAX_CHARS {
            return Err(format!(
                "gift_id must be 1 to {GIFT_ID_MAX_CHARS} characters"
            ));
        }
        if !(1..=GIFT_MAX_COUNT).contains(&self.count) {
            return Err(format!("count must be 1 to {GIFT_MAX_COUNT}"));
        }
        if let Some(request_id) = &self.request_id
            && (request_id.is_empty()
                || request_id.len() > GIFT_REQUEST_ID_MAX_CHARS
                || !request_id.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "request_id must be 1 to {GIFT_REQUEST_ID_MAX_CHARS} printable ASCII characters"
            ));
        }
        Ok(Self {
            gift_id: id.to_owned(),
            ..self
        })
    }

    /// The total value of `count` gifts worth `value` each.
    pub fn total_value(&self, value: u64) -> u64 {
        u64::from(self.count).saturating_mul(value)
    }
}

/// How join and leave events of a room are pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceMode {
    /// One ephemeral event per join or leave, naming the user.
    Individual,
    /// One ephemeral count per window ("120 people joined").
    Aggregated,
}

impl PresenceMode {
    /// The mode of a room of `members` with the threshold `aggregate_from`.
    pub fn of(members: u32, aggregate_from: u32) -> Self {
        if members >= aggregate_from {
            Self::Aggregated
        } else {
            Self::Individual
        }
    }
}

/// At most one event per `period_ms`: the pacing of throttled pushes.
#[derive(Clone, Debug)]
pub struct Throttle {
    period_ms: u64,
    last_ms: Option<u64>,
}

impl Throttle {
    /// At most one per `period_ms`.
    pub fn new(period_ms: u64) -> Self {
        Self {
            period_ms,
            last_ms: None,
        }
    }

    /// Whether an event may go at `now_ms`; if so, it is counted.
    pub fn ready(&mut self, now_ms: u64) -> bool {
        match self.last_ms {
            Some(last) if now_ms.saturating_sub(last) < self.period_ms => false,
            _ => {
                self.last_ms = Some(now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_mode_spaces_comments() {
        assert_eq!(slow_mode_wait(Some(1_000), 0, 1_001), None, "off");
        assert_eq!(slow_mode_wait(None, 10, 1_000), None, "first comment");
        assert_eq!(slow_mode_wait(Some(1_000), 10, 4_000), Some(7_000));
        assert_eq!(slow_mode_wait(Some(1_000), 10, 11_000), None);
    }

    #[test]
    fn likes_reactions_and_gifts_are_bounded() {
        assert_eq!(Like { count: 1 }.validate(), Ok(1));
        assert_eq!(Like { count: 100 }.validate(), Ok(100));
        assert!(Like { count: 0 }.validate().is_err());
        assert!(Like { count: 101 }.validate().is_err());
        let like: Like = serde_json::from_str("{}").expect("json");
        assert_eq!(like.count, 1);

        assert!(validate_reaction("❤️").is_ok());
        assert!(validate_reaction("👨‍👩‍👧‍👦").is_ok());
        assert!(validate_reaction("").is_err());
        assert!(validate_reaction("a b").is_err());
        assert!(validate_reaction("r:x").is_err());
        assert!(validate_reaction(&"x".repeat(17)).is_err());

        let gift = Gift {
            gift_id: " rose ".into(),
            count: 3,
            request_id: Some("tap-17".into()),
        };
        let gift = gift.validate().expect("valid");
        assert_eq!((gift.gift_id.as_str(), gift.total_value(10)), ("rose", 30));
        for bad in [
            Gift {
                gift_id: "".into(),
                count: 1,
                request_id: None,
            },
            Gift {
                gift_id: "g".into(),
                count: 0,
                request_id: None,
            },
            Gift {
                gift_id: "g".into(),
                count: GIFT_MAX_COUNT + 1,
                request_id: None,
            },
            Gift {
                gift_id: "g".into(),
                count: 1,
                request_id: Some(String::new()),
            },
            Gift {
                gift_id: "g".into(),
                count: 1,
                request_id: Some("has space".into()),
            },
            Gift {
                gift_id: "g".into(),
                count: 1,
                request_id: Some("x".repeat(GIFT_REQUEST_ID_MAX_CHARS + 1)),
            },
        ] {
            assert!(bad.validate().is_err());
        }
        // A value claimed by the client is not part of the payload.
        let claimed: Gift =
            serde_json::from_str(r#"{"gift_id":"rose","count":1,"value":10000000000000}"#)
                .expect("json");
        assert_eq!(claimed.total_value(1), 1);
    }

    #[test]
    fn presence_aggregates_in_large_rooms_and_throttles_pace() {
        assert_eq!(PresenceMode::of(99, 100), PresenceMode::Individual);
        assert_eq!(PresenceMode::of(100, 100), PresenceMode::Aggregated);
        let mut t = Throttle::new(250);
        assert!(t.ready(1_000));
        assert!(!t.ready(1_249));
        assert!(t.ready(1_250));
        assert!(!t.ready(1_400));
    }
}
