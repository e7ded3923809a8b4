//! `roomcast listen`: print a room's messages as JSON lines.

use std::io::Write as _;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use rand::Rng as _;
use roomcast_client::{Event, RoomMessage};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use super::Global;

/// `roomcast listen --room ID`.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Room id.
    #[arg(long)]
    pub room: String,
    /// Listener uid (default: `listener-` and a random suffix).
    #[arg(long)]
    pub uid: Option<String>,
    /// Exit after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
}

/// Join and print one JSON line per message until Ctrl-C (or `--count`).
pub async fn run(global: &Global, args: ListenArgs) -> anyhow::Result<()> {
    let uid = args
        .uid
        .unwrap_or_else(|| format!("listener-{:08x}", rand::rng().random::<u32>()));
    let shutdown = common::shutdown::signal_token();
    let (client, mut events) = super::connect(global, &uid).await?;
    let joined = match client.join(&args.room).await {
        Ok(joined) => joined,
        Err(error) => {
            client.close().await;
            return Err(error).with_context(|| format!("cannot join room {}", args.room));
        }
    };
    let members = joined.snapshot.as_ref().map_or(0, |s| s.members);
    info!(room = %joined.room, %uid, epoch = joined.epoch, start_seq = joined.start_seq, members, "Listening.");

    if args.count == Some(0) {
        client.close().await;
        return Ok(());
    }
    let mut printed = 0u64;
    let mut stdout = std::io::stdout().lock();
    let outcome = loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            event = events.next() => event,
        };
        let Some(event) = event else {
            break Err(anyhow::anyhow!("the connection closed for good"));
        };
        match event {
            Event::Message { room, message, .. } => {
                let line = message_line(&room, &message);
                if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
                    // A closed pipe (`| head`) is a normal way to stop.
                    if error.kind() == std::io::ErrorKind::BrokenPipe {
                        break Ok(());
                    }
                    break Err(error).context("cannot write to stdout");
                }
                printed += 1;
                if args.count.is_some_and(|count| printed >= count) {
                    break Ok(());
                }
            }
            event => {
                if let Some(stop) = log_event(&args.room, event) {
                    break stop;
                }
            }
        }
    };
    client.close().await;
    outcome
}

/// Log a non-message event on stderr; `Some` when listening must stop.
fn log_event(room: &str, event: Event) -> Option<anyhow::Result<()>> {
    match event {
        Event::Connected {
            node_id,
            session_id,
        } => info!(%node_id, %session_id, "Connected."),
        Event::Joined(joined) => {
            info!(room = %joined.room, epoch = joined.epoch, start_seq = joined.start_seq, recovered = joined.recovered, "Joined.");
        }
        Event::TransportChanged { transport } => info!(%transport, "Transport."),
        Event::Disconnected { reason } => warn!(%reason, "Disconnected."),
        Event::Reconnecting { attempt, delay } => info!(attempt, ?delay, "Reconnecting."),
        Event::LongUnavailable { mode } => {
            warn!(%mode, "Router offers no long connection and no polling; retrying.")
        }
        Event::Lagged {
            room,
            resume_after_seq,
        } => {
            warn!(%room, resume_after_seq, "Lagged; the server resumes from history.");
        }
        Event::StreamReset { room, epoch } => {
            warn!(%room, epoch, "Stream reset: history did not reach back; starting from the new snapshot.");
        }
        Event::Left { room: left, reason } if left == room => {
            return Some(Err(anyhow::anyhow!("removed from room {left}: {reason}")));
        }
        Event::Left { room, reason } => info!(%room, %reason, "Left."),
        Event::Ephemeral { room, kind, .. } => tracing::debug!(%room, %kind, "Ephemeral."),
        other => tracing::debug!(?other, "Event."),
    }
    None
}

/// One output line: `{"room":..,"seq":..,"kind":..,"sender":..,"ts_ms":..,"body":..}`.
#[derive(Debug, Serialize)]
pub struct MessageLine<'a> {
    /// Room id.
    pub room: &'a str,
    /// Message seq.
    pub seq: u64,
    /// Message kind.
    pub kind: &'a str,
    /// Sender uid.
    pub sender: &'a str,
    /// Publish time, Unix milliseconds.
    pub ts_ms: u64,
    /// The body as JSON when it is UTF-8 JSON, else as a base64 string.
    pub body: Value,
}

impl std::fmt::Display for MessageLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// The output line of one message.
pub fn message_line<'a>(room: &'a str, message: &'a RoomMessage) -> MessageLine<'a> {
    MessageLine {
        room,
        seq: message.seq,
        kind: &message.kind,
        sender: &message.sender,
        ts_ms: message.ts_ms,
        body: body_value(&message.body),
    }
}

fn body_value(body: &[u8]) -> Value {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .unwrap_or_else(|| Value::String(BASE64.encode(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(body: &'static [u8]) -> RoomMessage {
        RoomMessage {
            seq: 3,
            kind: "comment".into(),
            body: Bytes::from_static(body),
            sender: "alice".into(),
            ts_ms: 42,
            priority: 0,
        }
    }

    #[test]
    fn json_bodies_are_inlined() {
        let message = message(br#"{"text":"hi"}"#);
        let line = message_line("r1", &message);
        assert_eq!(
            line.to_string(),
            r#"{"room":"r1","seq":3,"kind":"comment","sender":"alice","ts_ms":42,"body":{"text":"hi"}}"#
        );
    }

    #[test]
    fn other_bodies_are_base64() {
        assert_eq!(body_value(b"\xff\x00"), "/wA=");
        assert_eq!(body_value(b"not json"), "bm90IGpzb24=");
        assert_eq!(body_value(b""), "");
        assert_eq!(body_value(b"7"), 7);
    }
}
