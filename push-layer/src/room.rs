//! One room on its owning push node: the ring of recent messages, the conn
//! nodes subscribed to it with their member counts, the fan-out mode, and the
//! publisher task that serialises appends so seqs reach the ring in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::client::v1::RoomMessage;
use proto::internal::v1::{Broadcast, Notify, PushToConn, push_to_conn};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use message_log::MessageLog;

use crate::conn_nodes::ConnNodes;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::ring::Ring;

/// How a room reaches its conn nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Tell conn nodes the new head; they pull.
    Notify,
    /// Carry the messages in the stream, batched.
    Broadcast,
}

/// A publish waiting for its seq.
pub(crate) struct PublishCmd {
    pub(crate) message: RoomMessage,
    pub(crate) reply: oneshot::Sender<Result<(u64, u64), Error>>,
    /// The publish call's span (`Span::none()` unless traces are exported).
    pub(crate) trace: tracing::Span,
}

pub(crate) struct Room {
    pub(crate) id: Arc<str>,
    pub(crate) publish_tx: mpsc::Sender<PublishCmd>,
    pub(crate) state: Mutex<RoomState>,
    /// Cancelled when the room is dropped from memory; ends the publisher task.
    pub(crate) closed: CancellationToken,
}

pub(crate) struct RoomState {
    /// 0 until the stream head is known.
    pub(crate) epoch: u64,
    pub(crate) head: u64,
    pub(crate) ring: Ring,
    /// Conn node id → members of this room on that node.
    pub(crate) subscribers: HashMap<Arc<str>, u32>,
    pub(crate) mode: Mode,
    pub(crate) last_active: Instant,
}

impl RoomState {
    pub(crate) fn members(&self) -> u64 {
        self.subscribers.values().map(|m| u64::from(*m)).sum()
    }

    /// Re-evaluate the mode with hysteresis; returns the new mode if it changed.
    pub(crate) fn update_mode(&mut self, enter: u32, exit: u32) -> Option<Mode> {
        let members = self.members();
        let next = match self.mode {
            Mode::Notify if members >= u64::from(enter) => Mode::Broadcast,
            Mode::Broadcast if members < u64::from(exit) => Mode::Notify,
            same => same,
        };
        (next != self.mode).then(|| {
            self.mode = next;
            next
        })
    }

    fn targets(&self) -> Vec<Arc<str>> {
        self.subscribers.keys().cloned().collect()
    }
}

impl Room {
    pub(crate) fn new(
        id: &str,
        ring_size: usize,
        queue: usize,
    ) -> (Arc<Self>, mpsc::Receiver<PublishCmd>) {
        let (publish_tx, publish_rx) = mpsc::channel(queue);
        let room = Arc::new(Self {
            id: Arc::from(id),
            publish_tx,
            state: Mutex::new(RoomState {
                epoch: 0,
                head: 0,
                ring: Ring::new(ring_size),
                subscribers: HashMap::new(),
                mode: Mode::Notify,
                last_active: Instant::now(),
            }),
            closed: CancellationToken::new(),
        });
        (room, publish_rx)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every room's publisher task is given (shared, built once by the hub).
pub(crate) struct Publishing {
    pub(crate) log: Arc<dyn MessageLog>,
    pub(crate) conns: Arc<ConnNodes>,
    pub(crate) metrics: Metrics,
    /// Publishes appended to the log in one call, at most.
    pub(crate) batch_max: usize,
    /// How long broadcast messages wait to leave together (0: at once).
    pub(crate) window: Duration,
    /// Encoded bytes one broadcast frame carries at most (one message always).
    pub(crate) frame_bytes: usize,
    /// Encoded bytes of an appended batch a notify carries inline at most.
    pub(crate) notify_inline_max_bytes: usize,
}

/// The publisher task of one room: drain queued publishes into one log append,
/// put them in the ring in seq order, answer the callers, and fan out through
/// `out` (the log and the conn nodes).
pub(crate) async fn run_publisher(
    out: Arc<Publishing>,
    room: Arc<Room>,
    mut rx: mpsc::Receiver<PublishCmd>,
) {
    let (batch_max, window) = (out.batch_max, out.window);
    let mut pending: Vec<RoomMessage> = Vec::new();
    // traceparent of the newest traced message in `pending` (empty: none).
    let mut pending_trace = String::new();
    let mut pending_epoch = 0;
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let cmd = tokio::select! {
            cmd = rx.recv() => cmd,
            _ = sleep_until(flush_at) => {
                flush_broadcast(&out, &room, pending_epoch, &mut pending, &mut pending_trace);
                flush_at = None;
                continue;
            }
            _ = room.closed.cancelled() => None,
        };
        let Some(first) = cmd else { break };
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        // One `push.append` span per traced publish, open until its
        // message is handed to the conn nodes (none when traces are off).
        let spans = append_spans(&room, &batch);
        let Some((epoch, appended, mode, targets)) = append(&out, &room, batch).await else {
            continue;
        };
        // The conn nodes continue the trace of the newest traced message.
        let trace = spans
            .iter()
            .rev()
            .map(common::trace::traceparent)
            .find(|t| !t.is_empty())
            .unwrap_or_default();
        match mode {
            Mode::Notify => {
                let notify = notify_frame(
                    &room.id,
                    epoch,
                    appended,
                    trace,
                    out.notify_inline_max_bytes,
                );
                let inline = !notify.messages.is_empty();
                let frame = PushToConn {
                    msg: Some(push_to_conn::Msg::Notify(notify)),
                };
                out.conns.send_to_nodes(&targets, &frame);
                out.metrics.notifies.inc_by(targets.len() as u64);
                if inline {
                    out.metrics.notifies_inline.inc_by(targets.len() as u64);
                }
            }
            Mode::Broadcast => {
                if pending_epoch != epoch && !pending.is_empty() {
                    flush_broadcast(&out, &room, pending_epoch, &mut pending, &mut pending_trace);
                }
                pending_epoch = epoch;
                pending.extend(appended);
                if !trace.is_empty() {
                    pending_trace = trace;
                }
                if window.is_zero() {
                    flush_broadcast(&out, &room, pending_epoch, &mut pending, &mut pending_trace);
                } else if flush_at.is_none() {
                    flush_at = Some(tokio::time::Instant::now() + window);
                }
            }
        }
        drop(spans);
    }
    flush_broadcast(&out, &room, pending_epoch, &mut pending, &mut pending_trace);
}

/// The notify of an appended batch (contiguous, newest last): it carries the
/// messages themselves when their encoded size is at most `inline_max_bytes`,
/// so a conn node right before them needs no pull; otherwise only the head.
fn notify_frame(
    room: &str,
    epoch: u64,
    appended: Vec<RoomMessage>,
    traceparent: String,
    inline_max_bytes: usize,
) -> Notify {
    let seq = appended.last().map(|m| m.seq).unwrap_or_default();
    let bytes: usize = appended.iter().map(prost::Message::encoded_len).sum();
    let messages = if bytes <= inline_max_bytes {
        appended
    } else {
        Vec::new()
    };
    Notify {
        room: room.to_string(),
        epoch,
        seq,
        traceparent,
        messages,
    }
}

/// A `push.append` span for each publish of `batch` that is traced; an
/// empty vector (no allocation) when traces are off.
fn append_spans(room: &Room, batch: &[PublishCmd]) -> Vec<tracing::Span> {
    if !common::trace::enabled() {
        return Vec::new();
    }
    batch
        .iter()
        .filter(|cmd| !cmd.trace.is_none())
        .map(|cmd| {
            tracing::info_span!(parent: &cmd.trace, "push.append", room = %room.id, batch = batch.len())
        })
        .collect()
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Appended = (u64, Vec<RoomMessage>, Mode, Vec<Arc<str>>);

async fn append(out: &Publishing, room: &Room, batch: Vec<PublishCmd>) -> Option<Appended> {
    let messages: Vec<RoomMessage> = batch.iter().map(|c| c.message.clone()).collect();
    let started = Instant::now();
    let result = out.log.append(&room.id, &messages).await;
    out.metrics
        .append_seconds
        .observe(started.elapsed().as_secs_f64());
    let appended = match result {
        Ok(a) => a,
        Err(error) => {
            tracing::warn!(room = %room.id, %error, "Message log append failed.");
            let shared = error.to_string();
            for cmd in batch {
                let _ = cmd
                    .reply
                    .send(Err(Error::Log(message_log::LogError::Unavailable(
                        shared.clone(),
                    ))));
            }
            return None;
        }
    };
    let mut messages = messages;
    for (i, m) in messages.iter_mut().enumerate() {
        m.seq = appended.first_seq + i as u64;
    }
    let (mode, targets) = {
        let mut state = room.lock();
        if state.epoch != appended.epoch {
            if state.epoch != 0 {
                tracing::warn!(room = %room.id, old = state.epoch, new = appended.epoch, "Room stream has a new epoch.");
            }
            state.ring.clear();
            state.epoch = appended.epoch;
        }
        state.ring.extend(&messages);
        state.head = messages.last().map(|m| m.seq).unwrap_or(state.head);
        state.last_active = Instant::now();
        (state.mode, state.targets())
    };
    out.metrics
        .published
        .with_label_values(&["true"])
        .inc_by(messages.len() as u64);
    for (cmd, m) in batch.into_iter().zip(&messages) {
        let _ = cmd.reply.send(Ok((appended.epoch, m.seq)));
    }
    Some((appended.epoch, messages, mode, targets))
}

fn flush_broadcast(
    out: &Publishing,
    room: &Room,
    epoch: u64,
    pending: &mut Vec<RoomMessage>,
    pending_trace: &mut String,
) {
    if pending.is_empty() {
        return;
    }
    let messages = std::mem::take(pending);
    let trace = std::mem::take(pending_trace);
    let targets = room.lock().targets();
    // A batch of large messages leaves as several frames, in order: one
    // frame must stay small enough for the conn node to decode.
    for messages in proto::paging::split_pages(messages, usize::MAX, out.frame_bytes) {
        let frame = PushToConn {
            msg: Some(push_to_conn::Msg::Broadcast(Broadcast {
                room: room.id.to_string(),
                epoch,
                messages,
                traceparent: trace.clone(),
            })),
        };
        out.conns.send_to_nodes(&targets, &frame);
        out.metrics.broadcast_batches.inc_by(targets.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(seqs: std::ops::RangeInclusive<u64>, body: usize) -> Vec<RoomMessage> {
        seqs.map(|seq| RoomMessage {
            seq,
            body: vec![b'x'; body].into(),
            ..Default::default()
        })
        .collect()
    }

    #[test]
    fn a_small_batch_rides_inside_the_notify() {
        let batch = messages(4..=6, 100);
        let notify = notify_frame("r", 3, batch.clone(), String::new(), 16 * 1024);
        assert_eq!(
            (notify.room.as_str(), notify.epoch, notify.seq),
            ("r", 3, 6)
        );
        assert_eq!(notify.messages, batch);
    }

    #[test]
    fn a_batch_over_the_limit_leaves_only_the_head() {
        let batch = messages(4..=6, 100);
        let bytes: usize = batch.iter().map(prost::Message::encoded_len).sum();
        let notify = notify_frame("r", 3, batch.clone(), String::new(), bytes - 1);
        assert_eq!(notify.seq, 6);
        assert!(notify.messages.is_empty(), "too big: the conn node pulls");
        // Exactly at the limit still rides along.
        let notify = notify_frame("r", 3, batch.clone(), String::new(), bytes);
        assert_eq!(notify.messages, batch);
    }

    #[test]
    fn a_zero_limit_never_inlines() {
        let notify = notify_frame("r", 1, messages(1..=1, 1), String::new(), 0);
        assert_eq!(notify.seq, 1);
        assert!(notify.messages.is_empty());
    }

    #[test]
    fn mode_switches_with_hysteresis() {
        let (room, _rx) = Room::new("r", 8, 8);
        let mut state = room.lock();
        state.subscribers.insert(Arc::from("c1"), 60);
        assert_eq!(state.update_mode(100, 50), None);
        state.subscribers.insert(Arc::from("c2"), 40);
        assert_eq!(state.update_mode(100, 50), Some(Mode::Broadcast));
        state.subscribers.insert(Arc::from("c2"), 0);
        assert_eq!(
            state.update_mode(100, 50),
            None,
            "60 is above the exit threshold"
        );
        state.subscribers.remove("c2");
        state.subscribers.insert(Arc::from("c1"), 49);
        assert_eq!(state.update_mode(100, 50), Some(Mode::Notify));
    }
}
