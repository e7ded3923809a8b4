//! HTTP polling, the fallback when no long connection holds.
//!
//! `GET {polling_url}/{room}/messages?after=SEQ&epoch=E&wait=S` answers with the messages
//! after the cursor (or a fresh start when the cursor cannot be resumed), and
//! `POST {polling_url}/{room}/actions` publishes. [`apply`] turns one poll reply into the
//! same [`Event`]s a socket would have produced, through the same [`RoomCursor`], so the
//! app cannot tell the modes apart and a switch in either direction neither repeats nor
//! skips a message.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::StatusCode;
use proto::client::v1::{Code, Delivery, Priority, RoomMessage, RoomSnapshot};
use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, warn};

use crate::cursor::{Accept, RoomCursor};
use crate::error::{Error, code_from_wire, is_auth_code};
use crate::event::{Event, JoinedRoom, ReplyInfo};
use crate::http::{HttpClient, HttpFailure};

/// One poll reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct PollReply {
    #[serde(default)]
    pub(crate) room: String,
    pub(crate) epoch: u64,
    #[serde(default)]
    pub(crate) head_seq: u64,
    /// The reply covers `[first_seq, last_seq]` (sampled-out messages included).
    #[serde(default)]
    pub(crate) first_seq: u64,
    #[serde(default)]
    pub(crate) last_seq: u64,
    /// False: the cursor could not be resumed; start over at `next_after` with the snapshot.
    pub(crate) recovered: bool,
    #[serde(default)]
    pub(crate) messages: Vec<PolledMessage>,
    #[serde(default)]
    pub(crate) snapshot: Option<PolledSnapshot>,
    pub(crate) next_after: u64,
    /// Wait this long before the next poll.
    #[serde(default)]
    pub(crate) poll_after_ms: u64,
}

/// One message in a poll reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct PolledMessage {
    pub(crate) seq: u64,
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) sender: String,
    #[serde(default)]
    pub(crate) ts_ms: u64,
    #[serde(default)]
    pub(crate) priority: Value,
    /// JSON, or `{"base64": "..."}` for bodies that are not JSON.
    #[serde(default)]
    pub(crate) body: Value,
}

/// The room snapshot of a reply that starts over.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct PolledSnapshot {
    #[serde(default)]
    pub(crate) room: String,
    #[serde(default)]
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) members: u32,
    #[serde(default)]
    pub(crate) state: Value,
}

/// A body as the socket would carry it: JSON text, the decoded bytes of
/// `{"base64": ...}`, or nothing for `null`.
pub(crate) fn body_bytes(body: &Value) -> Bytes {
    match body {
        Value::Null => Bytes::new(),
        Value::Object(map) if map.len() == 1 => match map.get("base64") {
            Some(Value::String(text)) => match BASE64.decode(text) {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) => {
                    // Keep the message (its seq matters more than its body) as JSON text.
                    warn!(error = %e, "Polled body is not valid base64; keeping it as JSON.");
                    Bytes::from(body.to_string())
                }
            },
            _ => Bytes::from(body.to_string()),
        },
        other => Bytes::from(other.to_string()),
    }
}

fn priority(value: &Value) -> Priority {
    match value {
        Value::String(name) => match name.as_str() {
            "high" | "PRIORITY_HIGH" => Priority::High,
            "low" | "PRIORITY_LOW" => Priority::Low,
            _ => Priority::Normal,
        },
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .and_then(|n| Priority::try_from(n).ok())
            .unwrap_or(Priority::Normal),
        _ => Priority::Normal,
    }
}

impl PolledMessage {
    fn into_message(self) -> RoomMessage {
        RoomMessage {
            seq: self.seq,
            kind: self.kind,
            body: body_bytes(&self.body),
            sender: self.sender,
            ts_ms: self.ts_ms,
            priority: priority(&self.priority) as i32,
        }
    }
}

impl PolledSnapshot {
    fn into_snapshot(self, room: &str) -> RoomSnapshot {
        RoomSnapshot {
            room: if self.room.is_empty() {
                room.to_owned()
            } else {
                self.room
            },
            title: self.title,
            role: self.role,
            members: self.members,
            state: body_bytes(&self.state),
        }
    }
}

/// What one reply did to a room.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Applied {
    /// The events to surface, in order.
    pub(crate) events: Vec<Event>,
    /// The `Joined` announced, to answer waiting `join` calls.
    pub(crate) joined: Option<JoinedRoom>,
}

/// Apply one poll reply to a room's cursor.
///
/// - No cursor (first join while polling): a fresh start at the head, like a socket
///   join without resume: `Joined{recovered: false}` and no history.
/// - A cursor the reply resumes (`recovered` and the same epoch): the messages after the
///   cursor, deduplicated and in order; `announce` adds a `Joined{recovered: true}` first
///   (the first poll after a switch stands for the socket's re-join).
/// - A cursor the reply cannot resume: `StreamReset` + `Joined{recovered: false}` with
///   the snapshot, and the cursor restarts at `next_after`.
pub(crate) fn apply(
    room: &str,
    cursor: &mut Option<RoomCursor>,
    announce: bool,
    reply: PollReply,
) -> Applied {
    let epoch = reply.epoch;
    let mut events = Vec::new();
    let (start, recovered, announce) = match *cursor {
        Some(current) if reply.recovered && current.epoch == epoch => {
            (reply.head_seq.max(current.last_seq), true, announce)
        }
        Some(_) => {
            events.push(Event::StreamReset {
                room: room.to_owned(),
                epoch,
            });
            *cursor = Some(RoomCursor {
                epoch,
                last_seq: reply.next_after,
            });
            (reply.next_after, false, true)
        }
        None => {
            // A fresh join takes no history, whatever the server offered.
            let start = if reply.recovered {
                reply.head_seq.max(reply.next_after)
            } else {
                reply.next_after
            };
            *cursor = Some(RoomCursor {
                epoch,
                last_seq: start,
            });
            (start, false, true)
        }
    };
    let joined = announce.then(|| JoinedRoom {
        room: room.to_owned(),
        epoch,
        start_seq: start,
        recovered,
        snapshot: reply.snapshot.map(|s| s.into_snapshot(room)),
    });
    if let Some(joined) = &joined {
        events.push(Event::Joined(joined.clone()));
    }
    let delivery = Delivery {
        room: room.to_owned(),
        epoch,
        first_seq: reply.first_seq,
        last_seq: reply.last_seq,
        messages: reply
            .messages
            .into_iter()
            .map(PolledMessage::into_message)
            .collect(),
    };
    if let Some(cursor) = cursor.as_mut() {
        match cursor.accept(delivery) {
            Accept::Deliver(messages) => {
                events.extend(messages.into_iter().map(|message| Event::Message {
                    room: room.to_owned(),
                    epoch,
                    message,
                }));
            }
            // The next poll asks again from the cursor, so a gap heals like a socket
            // re-join with resume.
            Accept::Gap {
                last_seq,
                first_seq,
            } => {
                debug!(%room, last_seq, first_seq, "Gap in a poll reply; polling from the cursor.")
            }
            Accept::OtherEpoch => debug!(%room, epoch, "Poll reply of another epoch ignored."),
        }
    }
    Applied { events, joined }
}

/// Why a poll failed.
#[derive(Debug)]
pub(crate) enum PollError {
    /// The token was refused: stop the client.
    Auth(Error),
    /// The room was refused (forbidden, not found, ended, bad id): stop tracking it.
    Refused { code: Code, message: String },
    /// Anything worth retrying (network, overload, server error, unreadable reply).
    Retry(String),
}

/// `{polling_url}/{room}/{leaf}`, the room as one escaped path segment.
pub(crate) fn room_url(base: &str, room: &str, leaf: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("bad polling URL {base:?}: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("bad polling URL {base:?}: cannot have a path"))?
        .pop_if_empty()
        .push(room)
        .push(leaf);
    Ok(url)
}

/// One long poll. `cursor = None` asks for a fresh start (`after=0&epoch=0`: epochs are
/// never 0, so the server answers `recovered: false` at the head).
pub(crate) async fn poll(
    http: &HttpClient,
    base: &str,
    room: &str,
    token: &str,
    cursor: Option<RoomCursor>,
    wait: Duration,
    timeout: Duration,
) -> Result<PollReply, PollError> {
    let mut url = room_url(base, room, "messages").map_err(PollError::Retry)?;
    let (after, epoch) = cursor.map_or((0, 0), |c| (c.last_seq, c.epoch));
    url.query_pairs_mut()
        .append_pair("after", &after.to_string())
        .append_pair("epoch", &epoch.to_string())
        .append_pair("wait", &wait.as_secs().to_string());
    // The server holds the request up to `wait`: the deadline comes on top.
    let response = http
        .get(&url, Some(token), wait + timeout)
        .await
        .map_err(|e| PollError::Retry(format!("poll failed: {e}")))?;
    let status = response.status;
    if !status.is_success() {
        return Err(match http_error(status, &response.text()) {
            HttpError::Refused { code, message }
                if is_auth_code(code) && code != Code::Forbidden =>
            {
                PollError::Auth(Error::Auth { code, message })
            }
            HttpError::Refused { code, message } => match code {
                Code::RateLimited | Code::Unavailable | Code::Internal | Code::ShuttingDown => {
                    PollError::Retry(format!("poll refused ({}): {message}", code.as_str_name()))
                }
                _ => PollError::Refused { code, message },
            },
            HttpError::Other(message) => PollError::Retry(message),
        });
    }
    serde_json::from_slice(&response.body)
        .map_err(|e| PollError::Retry(format!("unreadable poll reply: {e}")))
}

/// The action reply: `{"code":0,"message":"","body":{...}}`.
#[derive(Debug, Deserialize)]
struct ActionReply {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    body: Value,
}

/// Publish through `POST {polling_url}/{room}/actions`. Answers like a socket `Reply`:
/// success is [`ReplyInfo`], a refusal [`Error::Refused`]; a request that may not have
/// arrived is [`Error::Disconnected`].
pub(crate) async fn action(
    http: &HttpClient,
    base: &str,
    room: &str,
    token: &str,
    action: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<ReplyInfo, Error> {
    let url = room_url(base, room, "actions").map_err(Error::Protocol)?;
    let payload = payload_value(payload);
    let request = serde_json::json!({ "action": action, "payload": payload });
    let response = http
        .post_json(&url, Some(token), &request, timeout)
        .await
        .map_err(|e| match e {
            HttpFailure::Timeout => Error::Timeout,
            error => {
                debug!(%error, "Action request failed.");
                Error::Disconnected
            }
        })?;
    let (status, body) = (response.status, response.body);
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(match http_error(status, &text) {
            HttpError::Refused { code, message } => Error::Refused { code, message },
            HttpError::Other(message) => Error::Refused {
                code: code_for_status(status),
                message,
            },
        });
    }
    let reply: ActionReply = serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("unreadable action reply: {e}")))?;
    let code = code_from_wire(reply.code);
    if code != Code::Ok {
        return Err(Error::Refused {
            code,
            message: reply.message,
        });
    }
    Ok(ReplyInfo {
        code,
        message: reply.message,
        body: body_bytes(&reply.body),
    })
}

/// The action payload as JSON: built-in actions take JSON; anything else travels as
/// `{"base64": ...}`, the form bodies take.
fn payload_value(payload: &[u8]) -> Value {
    if payload.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| serde_json::json!({ "base64": BASE64.encode(payload) }))
}

pub(crate) enum HttpError {
    /// The server's own refusal (`{"error":{"code","message"}}`, or a status that says
    /// it plainly).
    Refused { code: Code, message: String },
    /// Not an answer from the polling service (a proxy, a missing route, ...).
    Other(String),
}

pub(crate) fn http_error(status: StatusCode, body: &str) -> HttpError {
    let error = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").cloned());
    if let Some(error) = error {
        let code = match error.get("code") {
            Some(Value::String(name)) => {
                Code::from_str_name(name).unwrap_or(code_for_status(status))
            }
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map_or(code_for_status(status), code_from_wire),
            _ => code_for_status(status),
        };
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return HttpError::Refused { code, message };
    }
    let text = format!("polling answered {status}: {}", body.trim());
    match status.as_u16() {
        // A 404 without our error body is a missing route, not a missing room.
        401 | 403 | 429 | 503 => HttpError::Refused {
            code: code_for_status(status),
            message: text,
        },
        _ => HttpError::Other(text),
    }
}

fn code_for_status(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::BadRequest,
        401 => Code::Unauthenticated,
        403 => Code::Forbidden,
        404 => Code::RoomNotFound,
        409 => Code::RoomEnded,
        413 => Code::TooLarge,
        429 => Code::RateLimited,
        500 => Code::Internal,
        _ => Code::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(json: Value) -> PollReply {
        serde_json::from_value(json).expect("a poll reply")
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message { message, .. } => Some(message.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_resumed_reply_delivers_after_the_cursor_with_coverage() {
        let mut cursor = Some(RoomCursor {
            epoch: 7,
            last_seq: 10,
        });
        // 9..=10 already seen; 12 sampled out (low priority) but covered.
        let applied = apply(
            "r1",
            &mut cursor,
            false,
            reply(serde_json::json!({
                "room": "r1", "epoch": 7, "head_seq": 14, "first_seq": 9, "last_seq": 14,
                "recovered": true,
                "messages": [
                    {"seq": 9, "kind": "comment", "sender": "a", "ts_ms": 1, "priority": "normal", "body": {"text": "old"}},
                    {"seq": 10, "kind": "comment", "sender": "a", "ts_ms": 1, "priority": "normal", "body": {"text": "old"}},
                    {"seq": 11, "kind": "gift", "sender": "b", "ts_ms": 2, "priority": "high", "body": {"gift": "rose"}},
                    {"seq": 13, "kind": "comment", "sender": "c", "ts_ms": 3, "priority": "low", "body": {"text": "hi"}},
                    {"seq": 14, "kind": "blob", "sender": "d", "ts_ms": 4, "priority": "normal", "body": {"base64": "/wA="}}
                ],
                "snapshot": null, "next_after": 14, "poll_after_ms": 0
            })),
        );
        assert_eq!(applied.joined, None);
        assert_eq!(seqs(&applied.events), vec![11, 13, 14]);
        assert_eq!(applied.events.len(), 3, "{:?}", applied.events);
        assert_eq!(
            cursor,
            Some(RoomCursor {
                epoch: 7,
                last_seq: 14
            })
        );
        let Event::Message {
            message,
            epoch,
            room,
        } = &applied.events[0]
        else {
            panic!("message")
        };
        assert_eq!((room.as_str(), *epoch), ("r1", 7));
        assert_eq!(&message.body[..], br#"{"gift":"rose"}"#);
        assert_eq!(message.priority, Priority::High as i32);
        assert_eq!((message.sender.as_str(), message.ts_ms), ("b", 2));
        let Event::Message { message, .. } = &applied.events[1] else {
            panic!("message")
        };
        assert_eq!(message.priority, Priority::Low as i32);
        let Event::Message { message, .. } = &applied.events[2] else {
            panic!("message")
        };
        assert_eq!(&message.body[..], b"\xff\x00", "base64 body decoded");

        // An empty reply (the long poll timed out) changes nothing.
        let applied = apply(
            "r1",
            &mut cursor,
            false,
            reply(serde_json::json!({
                "epoch": 7, "head_seq": 14, "first_seq": 15, "last_seq": 14,
                "recovered": true, "messages": [], "next_after": 14
            })),
        );
        assert!(applied.events.is_empty());
        assert_eq!(cursor.map(|c| c.last_seq), Some(14));
    }

    #[test]
    fn the_first_reply_after_a_switch_announces_a_recovered_join() {
        let mut cursor = Some(RoomCursor {
            epoch: 7,
            last_seq: 10,
        });
        let applied = apply(
            "r1",
            &mut cursor,
            true,
            reply(serde_json::json!({
                "epoch": 7, "head_seq": 11, "first_seq": 11, "last_seq": 11, "recovered": true,
                "messages": [{"seq": 11, "kind": "comment", "body": {"text": "x"}}],
                "next_after": 11
            })),
        );
        let joined = applied.joined.clone().expect("announced");
        assert_eq!(
            (joined.epoch, joined.start_seq, joined.recovered),
            (7, 11, true)
        );
        assert!(matches!(applied.events[0], Event::Joined(_)));
        assert_eq!(seqs(&applied.events), vec![11]);
    }

    #[test]
    fn an_unrecovered_reply_resets_the_stream_with_the_snapshot() {
        let mut cursor = Some(RoomCursor {
            epoch: 7,
            last_seq: 10,
        });
        let applied = apply(
            "r1",
            &mut cursor,
            false,
            reply(serde_json::json!({
                "room": "r1", "epoch": 9, "head_seq": 3, "first_seq": 0, "last_seq": 0,
                "recovered": false, "messages": [],
                "snapshot": {"room": "r1", "title": "Live", "role": "listener", "members": 4, "state": {"poll": null}},
                "next_after": 3, "poll_after_ms": 0
            })),
        );
        assert_eq!(
            applied.events[0],
            Event::StreamReset {
                room: "r1".into(),
                epoch: 9
            }
        );
        let Event::Joined(joined) = &applied.events[1] else {
            panic!("joined after the reset: {:?}", applied.events)
        };
        assert_eq!(
            (joined.epoch, joined.start_seq, joined.recovered),
            (9, 3, false)
        );
        let snapshot = joined.snapshot.as_ref().expect("snapshot");
        assert_eq!(
            (
                snapshot.title.as_str(),
                snapshot.role.as_str(),
                snapshot.members
            ),
            ("Live", "listener", 4)
        );
        assert_eq!(&snapshot.state[..], br#"{"poll":null}"#);
        assert_eq!(applied.events.len(), 2);
        assert_eq!(
            cursor,
            Some(RoomCursor {
                epoch: 9,
                last_seq: 3
            })
        );
        // The same epoch but not recovered (history too short) also resets.
        let applied = apply(
            "r1",
            &mut cursor,
            false,
            reply(serde_json::json!({
                "epoch": 9, "head_seq": 5000, "recovered": false, "messages": [], "next_after": 5000
            })),
        );
        assert!(matches!(
            applied.events[0],
            Event::StreamReset { epoch: 9, .. }
        ));
        assert_eq!(cursor.map(|c| c.last_seq), Some(5000));
    }

    #[test]
    fn a_fresh_join_starts_at_the_head_without_history() {
        let mut cursor = None;
        let applied = apply(
            "r1",
            &mut cursor,
            false,
            reply(serde_json::json!({
                "epoch": 5, "head_seq": 20, "first_seq": 1, "last_seq": 20, "recovered": true,
                "messages": [{"seq": 19, "kind": "comment", "body": null}],
                "next_after": 20
            })),
        );
        assert_eq!(applied.events.len(), 1, "{:?}", applied.events);
        let Event::Joined(joined) = &applied.events[0] else {
            panic!("joined")
        };
        assert_eq!(
            (joined.epoch, joined.start_seq, joined.recovered),
            (5, 20, false)
        );
        assert_eq!(
            cursor,
            Some(RoomCursor {
                epoch: 5,
                last_seq: 20
            })
        );
    }

    #[test]
    fn bodies_and_payloads() {
        assert_eq!(body_bytes(&Value::Null), Bytes::new());
        assert_eq!(body_bytes(&serde_json::json!(7)), Bytes::from_static(b"7"));
        assert_eq!(
            body_bytes(&serde_json::json!({"base64": "aGk="})),
            Bytes::from_static(b"hi")
        );
        // Not base64: kept as its JSON text rather than dropping the message.
        assert_eq!(
            body_bytes(&serde_json::json!({"base64": "!!"})),
            Bytes::from_static(br#"{"base64":"!!"}"#)
        );
        // An object that merely has a base64 key among others is plain JSON.
        assert_eq!(
            body_bytes(&serde_json::json!({"base64": "aGk=", "x": 1})),
            Bytes::from_static(br#"{"base64":"aGk=","x":1}"#)
        );
        assert_eq!(
            payload_value(br#"{"text":"hi"}"#),
            serde_json::json!({"text": "hi"})
        );
        assert_eq!(
            payload_value(b"\xff"),
            serde_json::json!({"base64": "/w=="})
        );
        assert_eq!(payload_value(b""), Value::Null);
    }

    #[test]
    fn http_errors_map_to_codes() {
        let status = |n| StatusCode::from_u16(n).expect("status");
        let refused = |e: HttpError| match e {
            HttpError::Refused { code, message } => (code, message),
            HttpError::Other(m) => panic!("expected a refusal, got {m}"),
        };
        assert_eq!(
            refused(http_error(
                status(429),
                r#"{"error":{"code":"RATE_LIMITED","message":"slow down"}}"#
            )),
            (Code::RateLimited, "slow down".to_owned())
        );
        assert_eq!(
            refused(http_error(
                status(403),
                r#"{"error":{"code":7,"message":"kicked"}}"#
            ))
            .0,
            Code::Forbidden
        );
        assert_eq!(
            refused(http_error(
                status(404),
                r#"{"error":{"code":"nope","message":"?"}}"#
            ))
            .0,
            Code::RoomNotFound
        );
        assert!(matches!(
            http_error(status(404), "Not Found"),
            HttpError::Other(_)
        ));
        assert_eq!(refused(http_error(status(503), "")).0, Code::Unavailable);
    }

    #[test]
    fn room_urls_escape_the_room() {
        assert_eq!(
            room_url("http://h:1/v1/rooms", "r 1/x", "messages")
                .expect("url")
                .as_str(),
            "http://h:1/v1/rooms/r%201%2Fx/messages"
        );
        assert_eq!(
            room_url("http://h:1/v1/rooms/", "r1", "actions")
                .expect("url")
                .as_str(),
            "http://h:1/v1/rooms/r1/actions"
        );
    }
}
