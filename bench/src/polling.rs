//! HTTP long polling of room-biz, as a bench client does it:
//! `GET {biz}/v1/rooms/{id}/messages?after=&epoch=&wait=` with the client's
//! bearer JWT (docs/room-api.md, "Polling clients"). A reply covers
//! `[first_seq, last_seq]` and becomes one `Delivery`, so it goes through the
//! same seq checks and latency stamp as a socket's frames.
//!
//! "Joining" is the first poll without a position (`after=0&epoch=0`): the
//! server answers `recovered: false` at the head, as a socket join without
//! resume. Each following poll asks from `next_after` after `poll_after_ms`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::Context as _;
use proto::client::v1::{Delivery, RoomMessage};
use serde::Deserialize;

/// Extra time a poll may take beyond its `wait` before it counts as failed.
const POLL_GRACE: Duration = Duration::from_secs(15);
/// Idle pooled connections are kept this long (a poller is rarely idle longer
/// than `poll_after_ms`).
const POOL_IDLE: Duration = Duration::from_secs(60);

/// One poll reply (the fields the bench needs).
#[derive(Debug, Deserialize)]
pub struct PollReply {
    /// Stream epoch of the reply.
    pub epoch: u64,
    /// Start of the range the reply covers.
    #[serde(default)]
    pub first_seq: u64,
    /// End of the range the reply covers.
    #[serde(default)]
    pub last_seq: u64,
    /// False: the position could not be resumed; start over at `next_after`.
    pub recovered: bool,
    /// The messages, in seq order.
    #[serde(default)]
    pub messages: Vec<PolledMessage>,
    /// `after` of the next poll.
    pub next_after: u64,
    /// How long to wait before the next poll.
    #[serde(default)]
    pub poll_after_ms: u64,
}

/// One polled message.
#[derive(Debug, Deserialize)]
pub struct PolledMessage {
    /// Its seq.
    pub seq: u64,
    /// The body as JSON (the bench's `{"t": µs}`), or `{"base64": …}`.
    #[serde(default)]
    pub body: serde_json::Value,
}

impl PollReply {
    /// The reply as the `Delivery` a socket would have carried (bodies as JSON
    /// text: enough for the `t` stamp).
    pub fn delivery(&self, room: &str) -> Delivery {
        Delivery {
            room: room.to_owned(),
            epoch: self.epoch,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            messages: self
                .messages
                .iter()
                .map(|m| RoomMessage {
                    seq: m.seq,
                    body: m.body.to_string().into_bytes().into(),
                    ..RoomMessage::default()
                })
                .collect(),
        }
    }
}

/// An HTTP client whose connections leave from `source`: HTTP/1.1, kept
/// alive, one connection per poll in flight (a long poll holds its
/// connection while it waits).
pub fn http_client(source: Ipv4Addr) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .tcp_nodelay(true)
        .pool_idle_timeout(POOL_IDLE)
        .build()
        .context("cannot build the polling HTTP client")
}

/// One long poll from `(after, epoch)`, waiting up to `wait` for news.
pub async fn poll(
    http: &reqwest::Client,
    biz_url: &str,
    room: &str,
    token: &str,
    (after, epoch): (u64, u64),
    wait: Duration,
) -> anyhow::Result<PollReply> {
    // Room ids are `[A-Za-z0-9]`: no escaping needed.
    let url = format!(
        "{biz_url}/v1/rooms/{room}/messages?after={after}&epoch={epoch}&wait={}",
        wait.as_secs()
    );
    let response = http
        .get(url)
        .bearer_auth(token)
        .timeout(wait + POLL_GRACE)
        .send()
        .await
        .context("poll failed")?;
    let status = response.status();
    let bytes = response.bytes().await.context("poll reply")?;
    anyhow::ensure!(
        status.is_success(),
        "poll refused: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).context("unreadable poll reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_becomes_a_delivery_with_stamps() {
        let text = r#"{"room":"r1","epoch":7,"head_seq":43,"first_seq":42,"last_seq":43,
            "recovered":true,"messages":[
              {"seq":42,"kind":"bench","sender":"","ts_ms":1,"priority":"high","body":{"t":1234}},
              {"seq":43,"kind":"bench","sender":"","ts_ms":1,"priority":"high","body":{"base64":"AAEC"}}],
            "snapshot":null,"next_after":43,"poll_after_ms":100}"#;
        let reply: PollReply = serde_json::from_str(text).expect("parse");
        assert_eq!((reply.next_after, reply.poll_after_ms), (43, 100));
        let d = reply.delivery("r1");
        assert_eq!((d.first_seq, d.last_seq, d.epoch), (42, 43, 7));
        assert_eq!(d.messages.len(), 2);
        assert_eq!(crate::client::stamp(&d.messages[0].body), Some(1234));
        assert_eq!(crate::client::stamp(&d.messages[1].body), None);
    }
}
