//! The JSON subprotocol v2 (`roomcast.v2.json`): the frames of v1, with
//! payloads a browser can read without decoding twice.
//!
//! Differences from v1 ([`crate::json`]):
//! - **Bodies are JSON.** `Publish.payload`, `RoomSnapshot.state`,
//!   `RoomMessage.body`, `Ephemeral.body` and `Reply.body` are embedded as
//!   JSON values, byte for byte, when their bytes are exactly one JSON value
//!   (UTF-8, no surrounding whitespace). Any other bytes travel base64-encoded
//!   in a sibling field named `<field>_b64` (`body_b64`, `state_b64`,
//!   `payload_b64`). Empty bytes are neither field. So every frame round-trips
//!   exactly, and a client reads `body` or, if absent, decodes `body_b64`.
//! - **Epochs are strings.** `epoch` (in `Joined`, `Delivery`, `Resume`) is a
//!   random stream identifier: a client compares it and sends it back, never
//!   does arithmetic on it, so it is a decimal string and may use all 64 bits.
//!   Seqs and millisecond times stay numbers: they count up from 1 or from 1970
//!   and stay far below 2^53.
//! - On input every 64-bit field takes a number or a decimal string.
//!
//! Everything else (externally tagged oneof in snake case, enums as numbers,
//! unknown kinds) is as in v1.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::client::v1::{
    self as v1, ClientFrame, ServerFrame, client_frame::Frame as C, server_frame::Frame as S,
};

/// Parse one client frame from v2 JSON text.
pub fn decode_client(text: &str) -> Result<ClientFrame, serde_json::Error> {
    serde_json::from_str::<ClientFrameV2>(text)?.into_v1()
}

/// Render one server frame as v2 JSON text.
pub fn encode_server(frame: &ServerFrame) -> Result<String, serde_json::Error> {
    serde_json::to_string(&ServerFrameV2::from_v1(frame))
}

/// Render one client frame as v2 JSON text (SDKs and tests).
pub fn encode_client(frame: &ClientFrame) -> Result<String, serde_json::Error> {
    serde_json::to_string(&ClientFrameV2::from_v1(frame))
}

/// Parse one server frame from v2 JSON text (SDKs and tests).
pub fn decode_server(text: &str) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_str::<ServerFrameV2>(text)?.into_v1()
}

/// Bytes as a JSON value when they are one, otherwise base64.
#[derive(Debug, Default)]
struct Payload {
    json: Option<Box<RawValue>>,
    b64: Option<String>,
}

impl Payload {
    fn from_bytes(bytes: &Bytes) -> Self {
        if bytes.is_empty() {
            return Self::default();
        }
        // Embedded verbatim only when the text is exactly one JSON value: a
        // raw value drops surrounding whitespace, which would change the bytes.
        let json = std::str::from_utf8(bytes)
            .ok()
            .filter(|text| text.trim_matches(JSON_WHITESPACE) == *text)
            .and_then(|text| serde_json::from_str::<Box<RawValue>>(text).ok())
            .filter(|raw| raw.get().len() == bytes.len());
        match json {
            Some(raw) => Self {
                json: Some(raw),
                b64: None,
            },
            None => Self {
                json: None,
                b64: Some(STANDARD.encode(bytes)),
            },
        }
    }

    fn into_bytes(
        json: Option<Box<RawValue>>,
        b64: Option<String>,
        field: &str,
    ) -> Result<Bytes, serde_json::Error> {
        match (json, b64) {
            (None, None) => Ok(Bytes::new()),
            (Some(raw), None) => Ok(Bytes::from(String::from(raw.get()))),
            (None, Some(text)) => STANDARD
                .decode(text.as_bytes())
                .map(Bytes::from)
                .map_err(|e| serde_json::Error::custom(format!("{field}_b64 is not base64: {e}"))),
            (Some(_), Some(_)) => Err(serde_json::Error::custom(format!(
                "{field} and {field}_b64 are exclusive"
            ))),
        }
    }
}

const JSON_WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// A JSON value of any kind, `null` included (an `Option<Box<RawValue>>`
/// alone would read `null` as absent).
fn present_raw<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(de).map(Some)
}

/// A `u64` from a JSON number or a decimal string.
fn lenient_u64<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(de)? {
        Either::Number(n) => Ok(n),
        Either::Text(text) => text
            .parse::<u64>()
            .map_err(|_| D::Error::custom(format!("{text:?} is not a 64-bit unsigned integer"))),
    }
}

/// Epochs: written as decimal strings, read from strings or numbers.
mod epoch {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &u64, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
        super::lenient_u64(de)
    }
}

// ---- client frames ----

#[derive(Debug, Default, Serialize, Deserialize)]
struct ClientFrameV2 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frame: Option<ClientKind>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClientKind {
    Hello(v1::Hello),
    Join(JoinV2),
    Leave(v1::Leave),
    Publish(PublishV2),
    Ping(PingV2),
    Refresh(v1::Refresh),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct JoinV2 {
    r#ref: u32,
    room: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<ResumeV2>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ResumeV2 {
    #[serde(with = "epoch")]
    epoch: u64,
    #[serde(deserialize_with = "lenient_u64")]
    last_seq: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct PublishV2 {
    r#ref: u32,
    room: String,
    action: String,
    #[serde(
        deserialize_with = "present_raw",
        skip_serializing_if = "Option::is_none"
    )]
    payload: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_b64: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct PingV2 {
    #[serde(deserialize_with = "lenient_u64")]
    client_time_ms: u64,
}

impl ClientFrameV2 {
    fn from_v1(frame: &ClientFrame) -> Self {
        let frame = frame.frame.as_ref().map(|kind| match kind {
            C::Hello(h) => ClientKind::Hello(h.clone()),
            C::Join(j) => ClientKind::Join(JoinV2 {
                r#ref: j.r#ref,
                room: j.room.clone(),
                resume: j.resume.map(|r| ResumeV2 {
                    epoch: r.epoch,
                    last_seq: r.last_seq,
                }),
            }),
            C::Leave(l) => ClientKind::Leave(l.clone()),
            C::Publish(p) => {
                let payload = Payload::from_bytes(&p.payload);
                ClientKind::Publish(PublishV2 {
                    r#ref: p.r#ref,
                    room: p.room.clone(),
                    action: p.action.clone(),
                    payload: payload.json,
                    payload_b64: payload.b64,
                })
            }
            C::Ping(p) => ClientKind::Ping(PingV2 {
                client_time_ms: p.client_time_ms,
            }),
            C::Refresh(r) => ClientKind::Refresh(r.clone()),
        });
        Self { frame }
    }

    fn into_v1(self) -> Result<ClientFrame, serde_json::Error> {
        let frame = match self.frame {
            None => None,
            Some(ClientKind::Hello(h)) => Some(C::Hello(h)),
            Some(ClientKind::Join(j)) => Some(C::Join(v1::Join {
                r#ref: j.r#ref,
                room: j.room,
                resume: j.resume.map(|r| v1::Resume {
                    epoch: r.epoch,
                    last_seq: r.last_seq,
                }),
            })),
            Some(ClientKind::Leave(l)) => Some(C::Leave(l)),
            Some(ClientKind::Publish(p)) => Some(C::Publish(v1::Publish {
                r#ref: p.r#ref,
                room: p.room,
                action: p.action,
                payload: Payload::into_bytes(p.payload, p.payload_b64, "payload")?,
            })),
            Some(ClientKind::Ping(p)) => Some(C::Ping(v1::Ping {
                client_time_ms: p.client_time_ms,
            })),
            Some(ClientKind::Refresh(r)) => Some(C::Refresh(r)),
        };
        Ok(ClientFrame { frame })
    }
}

// ---- server frames ----

#[derive(Debug, Default, Serialize, Deserialize)]
struct ServerFrameV2 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frame: Option<ServerKind>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ServerKind {
    Welcome(v1::Welcome),
    Joined(JoinedV2),
    Delivery(DeliveryV2),
    Ephemeral(EphemeralV2),
    Reply(ReplyV2),
    Lagged(LaggedV2),
    GoAway(v1::GoAway),
    Error(v1::Error),
    Pong(PongV2),
    Left(v1::Left),
    Refreshed(v1::Refreshed),
    TokenExpiring(v1::TokenExpiring),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct SnapshotV2 {
    room: String,
    title: String,
    role: String,
    members: u32,
    #[serde(
        deserialize_with = "present_raw",
        skip_serializing_if = "Option::is_none"
    )]
    state: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_b64: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct JoinedV2 {
    r#ref: u32,
    room: String,
    #[serde(with = "epoch")]
    epoch: u64,
    #[serde(deserialize_with = "lenient_u64")]
    start_seq: u64,
    recovered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<SnapshotV2>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct MessageV2 {
    #[serde(deserialize_with = "lenient_u64")]
    seq: u64,
    kind: String,
    #[serde(
        deserialize_with = "present_raw",
        skip_serializing_if = "Option::is_none"
    )]
    body: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_b64: Option<String>,
    sender: String,
    #[serde(deserialize_with = "lenient_u64")]
    ts_ms: u64,
    priority: i32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct DeliveryV2 {
    room: String,
    #[serde(with = "epoch")]
    epoch: u64,
    #[serde(deserialize_with = "lenient_u64")]
    first_seq: u64,
    #[serde(deserialize_with = "lenient_u64")]
    last_seq: u64,
    messages: Vec<MessageV2>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct EphemeralV2 {
    room: String,
    kind: String,
    #[serde(
        deserialize_with = "present_raw",
        skip_serializing_if = "Option::is_none"
    )]
    body: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_b64: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    ts_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ReplyV2 {
    r#ref: u32,
    code: i32,
    message: String,
    #[serde(
        deserialize_with = "present_raw",
        skip_serializing_if = "Option::is_none"
    )]
    body: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_b64: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct LaggedV2 {
    room: String,
    #[serde(deserialize_with = "lenient_u64")]
    resume_after_seq: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct PongV2 {
    #[serde(deserialize_with = "lenient_u64")]
    client_time_ms: u64,
    #[serde(deserialize_with = "lenient_u64")]
    server_time_ms: u64,
}

impl ServerFrameV2 {
    fn from_v1(frame: &ServerFrame) -> Self {
        let frame = frame.frame.as_ref().map(|kind| match kind {
            S::Welcome(w) => ServerKind::Welcome(w.clone()),
            S::Joined(j) => ServerKind::Joined(JoinedV2 {
                r#ref: j.r#ref,
                room: j.room.clone(),
                epoch: j.epoch,
                start_seq: j.start_seq,
                recovered: j.recovered,
                snapshot: j.snapshot.as_ref().map(|s| {
                    let state = Payload::from_bytes(&s.state);
                    SnapshotV2 {
                        room: s.room.clone(),
                        title: s.title.clone(),
                        role: s.role.clone(),
                        members: s.members,
                        state: state.json,
                        state_b64: state.b64,
                    }
                }),
            }),
            S::Delivery(d) => ServerKind::Delivery(DeliveryV2 {
                room: d.room.clone(),
                epoch: d.epoch,
                first_seq: d.first_seq,
                last_seq: d.last_seq,
                messages: d
                    .messages
                    .iter()
                    .map(|m| {
                        let body = Payload::from_bytes(&m.body);
                        MessageV2 {
                            seq: m.seq,
                            kind: m.kind.clone(),
                            body: body.json,
                            body_b64: body.b64,
                            sender: m.sender.clone(),
                            ts_ms: m.ts_ms,
                            priority: m.priority,
                        }
                    })
                    .collect(),
            }),
            S::Ephemeral(e) => {
                let body = Payload::from_bytes(&e.body);
                ServerKind::Ephemeral(EphemeralV2 {
                    room: e.room.clone(),
                    kind: e.kind.clone(),
                    body: body.json,
                    body_b64: body.b64,
                    ts_ms: e.ts_ms,
                })
            }
            S::Reply(r) => {
                let body = Payload::from_bytes(&r.body);
                ServerKind::Reply(ReplyV2 {
                    r#ref: r.r#ref,
                    code: r.code,
                    message: r.message.clone(),
                    body: body.json,
                    body_b64: body.b64,
                })
            }
            S::Lagged(l) => ServerKind::Lagged(LaggedV2 {
                room: l.room.clone(),
                resume_after_seq: l.resume_after_seq,
            }),
            S::GoAway(g) => ServerKind::GoAway(g.clone()),
            S::Error(e) => ServerKind::Error(e.clone()),
            S::Pong(p) => ServerKind::Pong(PongV2 {
                client_time_ms: p.client_time_ms,
                server_time_ms: p.server_time_ms,
            }),
            S::Left(l) => ServerKind::Left(l.clone()),
            S::Refreshed(r) => ServerKind::Refreshed(*r),
            S::TokenExpiring(t) => ServerKind::TokenExpiring(*t),
        });
        Self { frame }
    }

    fn into_v1(self) -> Result<ServerFrame, serde_json::Error> {
        let frame = match self.frame {
            None => None,
            Some(kind) => Some(match kind {
                ServerKind::Welcome(w) => S::Welcome(w),
                ServerKind::Joined(j) => S::Joined(v1::Joined {
                    r#ref: j.r#ref,
                    room: j.room,
                    epoch: j.epoch,
                    start_seq: j.start_seq,
                    recovered: j.recovered,
                    snapshot: match j.snapshot {
                        None => None,
                        Some(s) => Some(v1::RoomSnapshot {
                            room: s.room,
                            title: s.title,
                            role: s.role,
                            members: s.members,
                            state: Payload::into_bytes(s.state, s.state_b64, "state")?,
                        }),
                    },
                }),
                ServerKind::Delivery(d) => S::Delivery(v1::Delivery {
                    room: d.room,
                    epoch: d.epoch,
                    first_seq: d.first_seq,
                    last_seq: d.last_seq,
                    messages: d
                        .messages
                        .into_iter()
                        .map(|m| {
                            Ok(v1::RoomMessage {
                                seq: m.seq,
                                kind: m.kind,
                                body: Payload::into_bytes(m.body, m.body_b64, "body")?,
                                sender: m.sender,
                                ts_ms: m.ts_ms,
                                priority: m.priority,
                            })
                        })
                        .collect::<Result<_, serde_json::Error>>()?,
                }),
                ServerKind::Ephemeral(e) => S::Ephemeral(v1::Ephemeral {
                    room: e.room,
                    kind: e.kind,
                    body: Payload::into_bytes(e.body, e.body_b64, "body")?,
                    ts_ms: e.ts_ms,
                }),
                ServerKind::Reply(r) => S::Reply(v1::Reply {
                    r#ref: r.r#ref,
                    code: r.code,
                    message: r.message,
                    body: Payload::into_bytes(r.body, r.body_b64, "body")?,
                }),
                ServerKind::Lagged(l) => S::Lagged(v1::Lagged {
                    room: l.room,
                    resume_after_seq: l.resume_after_seq,
                }),
                ServerKind::GoAway(g) => S::GoAway(g),
                ServerKind::Error(e) => S::Error(e),
                ServerKind::Pong(p) => S::Pong(v1::Pong {
                    client_time_ms: p.client_time_ms,
                    server_time_ms: p.server_time_ms,
                }),
                ServerKind::Left(l) => S::Left(l),
                ServerKind::Refreshed(r) => S::Refreshed(r),
                ServerKind::TokenExpiring(t) => S::TokenExpiring(t),
            }),
        };
        Ok(ServerFrame { frame })
    }
}

#[cfg(test)]
mod tests;
