//! `comment`: a bullet comment, pushed to the room.
//!
//! Payload `{"text": "...", "attrs": {...}}` (attrs optional: opaque display
//! attributes such as colour, passed through). Pushed as kind `comment`, body
//! `{"uid","text","attrs"}`, durable, low priority (huge rooms may sample it).
//! Replies `{"seq": N}`.
//!
//! Checked against the node's cached room view (live, not kicked, blocked or
//! uninvited), then the per-user rate limit, then slow mode (one store
//! check-and-set, only while slow mode is on; the host and moderators are
//! exempt). The room's comment count is aggregated like likes.

use std::num::NonZeroU32;

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use proto::client::v1::{Code, Priority};
use proto::internal::v1::PushRoomRequest;
use room_store::domain::rules::{self, Refusal};
use room_store::domain::text::{self, Lines};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ActionCall, ActionHandler, Backends};
use crate::config::Config;
use crate::error::Error;

/// The message kind pushed to the room.
const KIND: &str = "comment";

/// The comment handler and its per-(room, uid) rate limiter.
pub(super) struct Comment {
    max_chars: usize,
    attrs_max_bytes: usize,
    rate_per_sec: NonZeroU32,
    limiter: DefaultKeyedRateLimiter<(String, String)>,
}

#[derive(Deserialize)]
struct Payload {
    text: String,
    #[serde(default)]
    attrs: Map<String, Value>,
}

#[derive(Serialize)]
struct Pushed<'a> {
    uid: &'a str,
    text: &'a str,
    attrs: &'a Map<String, Value>,
}

impl Comment {
    /// A handler with the limits of `cfg`.
    pub(super) fn new(cfg: &Config) -> Result<Self, Error> {
        let positive = |name: &str, value: u32| {
            NonZeroU32::new(value).ok_or_else(|| Error::Config(format!("{name} must be > 0")))
        };
        let rate_per_sec = positive("comment_rate_per_sec", cfg.comment_rate_per_sec)?;
        let burst = positive("comment_burst", cfg.comment_burst)?;
        Ok(Self {
            max_chars: cfg.comment_max_chars,
            attrs_max_bytes: cfg.comment_attrs_max_bytes,
            rate_per_sec,
            limiter: RateLimiter::keyed(Quota::per_second(rate_per_sec).allow_burst(burst)),
        })
    }

    /// Decode and check a payload; no I/O.
    fn parse(&self, payload: &[u8]) -> Result<Payload, Refusal> {
        let comment: Payload = serde_json::from_slice(payload)
            .map_err(|e| Refusal::bad_request(format!("invalid comment payload: {e}")))?;
        if comment.text.trim().is_empty() {
            return Err(Refusal::bad_request("comment text is empty"));
        }
        text::check("text", &comment.text, Lines::Many)?;
        // Characters, not bytes: a limit in bytes would give CJK or emoji
        // writers a third of the room Latin writers get.
        if comment.text.chars().count() > self.max_chars {
            return Err(Refusal::bad_request(format!(
                "comment is longer than {} characters",
                self.max_chars
            )));
        }
        if !comment.attrs.is_empty() && json_len(&comment.attrs) > self.attrs_max_bytes {
            return Err(Refusal::bad_request(format!(
                "comment attrs are larger than {} bytes",
                self.attrs_max_bytes
            )));
        }
        Ok(comment)
    }
}

/// Encoded size of a JSON object, as it will be pushed.
fn json_len(object: &Map<String, Value>) -> usize {
    serde_json::to_vec(object).map_or(usize::MAX, |v| v.len())
}

#[async_trait::async_trait]
impl ActionHandler for Comment {
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal> {
        let comment = self.parse(call.payload)?;
        let rooms = &backends.rooms;
        let view = rooms.gate(call.room, call.uid).await?;
        rules::live_for_audience(view.room.state)?;
        // Checked after the room lookup so that requests for unknown rooms do
        // not grow the limiter's key set.
        let key = (call.room.to_owned(), call.uid.to_owned());
        if self.limiter.check_key(&key).is_err() {
            return Err(Refusal::new(
                Code::RateLimited,
                format!(
                    "too many comments: at most {} per second",
                    self.rate_per_sec
                ),
            ));
        }
        if view.room.slow_mode_secs > 0 && !view.moderates(call.uid) {
            let now = common::time::now_ms();
            let wait = backends
                .store
                .slow_comment(call.room, call.uid, view.room.slow_mode_secs, now)
                .await?;
            if let Some(wait_ms) = wait {
                return Err(Refusal::new(
                    Code::RateLimited,
                    format!(
                        "slow mode: one comment per {} s; wait {} ms",
                        view.room.slow_mode_secs, wait_ms
                    ),
                ));
            }
        }
        let pushed = Pushed {
            uid: call.uid,
            text: &comment.text,
            attrs: &comment.attrs,
        };
        let body = serde_json::to_vec(&pushed)
            .map_err(|e| Refusal::new(Code::Internal, format!("cannot encode comment: {e}")))?;
        let request = PushRoomRequest {
            room: call.room.to_owned(),
            kind: KIND.to_owned(),
            body: body.into(),
            sender: call.uid.to_owned(),
            priority: Priority::Low as i32,
            durable: true,
        };
        let reply = backends.pusher.push_room(request).await.map_err(|error| {
            tracing::warn!(room = call.room, %error, "Cannot push comment.");
            Refusal::new(
                Code::Unavailable,
                format!("cannot publish the comment: {error}"),
            )
        })?;
        rooms.counters.add_comment(call.room);
        Ok(Bytes::from(
            serde_json::json!({ "seq": reply.seq }).to_string(),
        ))
    }

    fn housekeep(&self) {
        // Keys whose bucket is full again carry no state worth keeping.
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use room_store::NewRoom;

    use super::*;
    use crate::actions::ActionTable;
    use crate::test_util::{RecordingPusher, backends};

    fn table(cfg: &Config) -> ActionTable {
        ActionTable::new(cfg).expect("table")
    }

    async fn live_room(b: &Backends) -> String {
        let new = NewRoom::titled("t", None);
        b.store.create_room(new).await.expect("create").id
    }

    async fn comment(
        table: &ActionTable,
        b: &Backends,
        room: &str,
        uid: &str,
        payload: &[u8],
    ) -> Result<Value, Refusal> {
        let call = ActionCall {
            uid,
            room,
            session_id: "s1",
            payload,
        };
        let body = table.dispatch(b, "comment", call).await?;
        Ok(serde_json::from_slice(&body).expect("reply body is JSON"))
    }

    #[tokio::test]
    async fn a_valid_comment_is_pushed_low_priority_and_durable() {
        let pusher = RecordingPusher::new();
        let b = backends(pusher.clone());
        let room = live_room(&b).await;
        let table = table(&Config::default());
        let payload = br##"{"text":"hello","attrs":{"color":"#ff0"}}"##;
        let reply = comment(&table, &b, &room, "bob", payload)
            .await
            .expect("ok");
        assert_eq!(reply, serde_json::json!({"seq": 1}));

        let sent = pusher.sent();
        assert_eq!(sent.len(), 1);
        let push = &sent[0];
        assert_eq!(
            (push.room.as_str(), push.kind.as_str()),
            (room.as_str(), "comment")
        );
        assert_eq!(push.sender, "bob");
        assert_eq!(push.priority, Priority::Low as i32);
        assert!(push.durable);
        let body: Value = serde_json::from_slice(&push.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({"uid": "bob", "text": "hello", "attrs": {"color": "#ff0"}})
        );

        let second = comment(&table, &b, &room, "bob", br#"{"text":"again"}"#).await;
        assert_eq!(second.expect("ok"), serde_json::json!({"seq": 2}));
        let body: Value = serde_json::from_slice(&pusher.sent()[1].body).expect("json");
        assert_eq!(body["attrs"], serde_json::json!({}));
    }

    #[tokio::test]
    async fn length_is_counted_in_characters() {
        let b = backends(RecordingPusher::new());
        let room = live_room(&b).await;
        let table = table(&Config {
            comment_max_chars: 5,
            ..Config::default()
        });
        // Five 4-byte characters (20 bytes) fit a 5-character limit.
        let five = serde_json::json!({"text": "😀😀😀😀😀"}).to_string();
        comment(&table, &b, &room, "bob", five.as_bytes())
            .await
            .expect("5 chars fit");
        let six = serde_json::json!({"text": "héllo!"}).to_string();
        let err = comment(&table, &b, &room, "bob", six.as_bytes()).await;
        let err = err.expect_err("6 characters (7 bytes) do not fit");
        assert_eq!(
            (err.code, err.message.as_str()),
            (Code::BadRequest, "comment is longer than 5 characters")
        );
    }

    #[tokio::test]
    async fn invalid_payloads_are_bad_requests() {
        let b = backends(RecordingPusher::new());
        let room = live_room(&b).await;
        let table = table(&Config {
            comment_max_chars: 5,
            ..Config::default()
        });
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "invalid comment payload"),
            (br#"{"txt":"hi"}"#, "missing field `text`"),
            (br#"{"text":42}"#, "invalid comment payload"),
            (br#"{"text":"  "}"#, "comment text is empty"),
            (
                "{\"text\":\"\u{4f60}\u{597d}\u{4f60}\u{597d}\u{4f60}\u{597d}\"}".as_bytes(),
                "comment is longer than 5 characters",
            ),
            (br#"{"text":"hi","attrs":"red"}"#, "invalid comment payload"),
        ];
        for (payload, expected) in cases {
            let err = comment(&table, &b, &room, "bob", payload)
                .await
                .expect_err("rejected");
            assert_eq!(err.code, Code::BadRequest, "{err:?}");
            assert!(
                err.message.contains(expected),
                "{:?}: {}",
                String::from_utf8_lossy(payload),
                err.message
            );
        }
    }

    #[tokio::test]
    async fn oversized_attrs_are_bad_requests() {
        let b = backends(RecordingPusher::new());
        let room = live_room(&b).await;
        let table = table(&Config {
            comment_attrs_max_bytes: 16,
            ..Config::default()
        });
        let payload = serde_json::json!({"text": "hi", "attrs": {"badge": "x".repeat(32)}});
        let err = comment(&table, &b, &room, "bob", payload.to_string().as_bytes()).await;
        let err = err.expect_err("too large");
        assert_eq!(err.code, Code::BadRequest);
        assert_eq!(err.message, "comment attrs are larger than 16 bytes");
    }

    #[tokio::test]
    async fn unknown_and_ended_rooms_are_refused() {
        let b = backends(RecordingPusher::new());
        let table = table(&Config::default());
        let err = comment(&table, &b, "r-missing", "bob", br#"{"text":"hi"}"#).await;
        let err = err.expect_err("unknown room");
        assert_eq!(
            (err.code, err.message.as_str()),
            (Code::RoomNotFound, "room r-missing not found")
        );

        let room = live_room(&b).await;
        b.store.end_room(&room).await.expect("end");
        let err = comment(&table, &b, &room, "bob", br#"{"text":"hi"}"#).await;
        assert_eq!(err.expect_err("ended").code, Code::RoomEnded);
    }

    #[tokio::test]
    async fn unknown_actions_are_bad_requests() {
        let b = backends(RecordingPusher::new());
        let table = table(&Config::default());
        let call = ActionCall {
            uid: "bob",
            room: "r1",
            session_id: "s1",
            payload: b"{}",
        };
        let err = table
            .dispatch(&b, "teleport", call)
            .await
            .expect_err("unknown");
        assert_eq!(
            (err.code, err.message.as_str()),
            (Code::BadRequest, "unknown action teleport")
        );
        assert_eq!(table.label("teleport"), "unknown");
        assert_eq!(table.label("comment"), "comment");
    }

    #[tokio::test]
    async fn a_burst_is_allowed_then_the_user_is_rate_limited() {
        let pusher = RecordingPusher::new();
        let b = backends(pusher.clone());
        let room = live_room(&b).await;
        // One per second leaves no time to refill during the test.
        let cfg = Config {
            comment_rate_per_sec: 1,
            comment_burst: 3,
            ..Config::default()
        };
        let table = table(&cfg);
        for _ in 0..3 {
            comment(&table, &b, &room, "bob", br#"{"text":"hi"}"#)
                .await
                .expect("within burst");
        }
        let err = comment(&table, &b, &room, "bob", br#"{"text":"hi"}"#).await;
        let err = err.expect_err("limited");
        assert_eq!(err.code, Code::RateLimited, "{err:?}");
        assert_eq!(pusher.sent().len(), 3, "a limited comment is not pushed");
        // The limit is per user and room: others are unaffected.
        comment(&table, &b, &room, "carol", br#"{"text":"hi"}"#)
            .await
            .expect("other user");
        let other_room = live_room(&b).await;
        comment(&table, &b, &other_room, "bob", br#"{"text":"hi"}"#)
            .await
            .expect("other room");
    }

    #[tokio::test]
    async fn push_failures_are_unavailable() {
        let b = backends(RecordingPusher::failing());
        let room = live_room(&b).await;
        let table = table(&Config::default());
        let err = comment(&table, &b, &room, "bob", br#"{"text":"hi"}"#).await;
        let err = err.expect_err("push fails");
        assert_eq!(err.code, Code::Unavailable);
        assert!(err.message.contains("no push node"), "{}", err.message);
    }
}
