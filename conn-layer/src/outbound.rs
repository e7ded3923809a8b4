//! What is queued for a connection: the queue item [`Outbound`] and the room
//! batches it carries, encoded once for every connection of the room. Below
//! the room feeds (which make batches), the session handle (which queues
//! them) and the upstream links (which queue removals and user pushes).

use std::sync::Arc;

use proto::client::v1::{Delivery, RoomMessage, ServerFrame, server_frame};

use crate::codec::SharedFrame;

/// What is queued for a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Durable messages of one room, encoded once for all.
    Batch(Arc<RoomBatch>),
    /// An ephemeral frame shared by many connections.
    Shared(Arc<SharedFrame>),
    /// A frame for this connection only (replies). Boxed, like `Remove`, so
    /// a queue slot stays two words: every idle connection holds a block of
    /// slots.
    Own(Box<ServerFrame>),
    /// room-biz removed this user from a room (kick, block): stop delivering it.
    Remove(Box<Removal>),
}

/// Why a user's fan-out for a room stops.
#[derive(Debug)]
pub(crate) struct Removal {
    pub(crate) room: Arc<str>,
    /// The `Left` reason the client is told.
    pub(crate) reason: String,
}

/// Contiguous durable messages of one room, encoded once.
#[derive(Debug)]
pub(crate) struct RoomBatch {
    pub(crate) room: Arc<str>,
    pub(crate) epoch: u64,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) frame: SharedFrame,
    /// The span that made this batch (a traced message's fan-out), parent of
    /// each socket write; `Span::none()` unless traces are exported.
    pub(crate) trace: tracing::Span,
}

impl RoomBatch {
    /// A frame covering `first_seq..=last_seq` that carries `messages` (the
    /// rest of the range was sampled out; possibly none carried).
    pub(crate) fn covering(
        room: &Arc<str>,
        epoch: u64,
        first_seq: u64,
        last_seq: u64,
        messages: Vec<RoomMessage>,
    ) -> Arc<Self> {
        let frame = delivery_frame(room, epoch, first_seq, last_seq, messages);
        Arc::new(Self {
            room: room.clone(),
            epoch,
            first_seq,
            last_seq,
            frame: SharedFrame::new(frame),
            trace: if common::trace::enabled() {
                tracing::Span::current()
            } else {
                tracing::Span::none()
            },
        })
    }

    pub(crate) fn messages(&self) -> &[RoomMessage] {
        match &self.frame.frame.frame {
            Some(server_frame::Frame::Delivery(d)) => &d.messages,
            _ => &[],
        }
    }
}

/// A `Delivery` frame covering `first_seq..=last_seq` of `room`.
pub(crate) fn delivery_frame(
    room: &str,
    epoch: u64,
    first_seq: u64,
    last_seq: u64,
    messages: Vec<RoomMessage>,
) -> ServerFrame {
    ServerFrame {
        frame: Some(server_frame::Frame::Delivery(Delivery {
            room: room.to_string(),
            epoch,
            first_seq,
            last_seq,
            messages,
        })),
    }
}
