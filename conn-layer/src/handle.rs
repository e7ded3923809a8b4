//! The cheap handle others hold to a connection: its bounded outbound queue
//! and the flags fan-out uses to report lag without ever waiting on it.
//!
//! The queue is a mutex-guarded `VecDeque` with a waker and a `Notify` rather
//! than a `tokio::sync::mpsc` channel: an idle connection then holds ~200 bytes for
//! its queue instead of ~1.6 KB (the channel's cache-padded state plus one or
//! two 32-slot blocks), and its buffer shrinks back after a burst.
//!
//! The fast path: while the session waits with an empty queue on a plain
//! WebSocket socket, it lends the fan-out its room cursors, and the fan-out
//! writes a batch that continues a cursor straight to the socket (its frame
//! pre-built once for every socket): no queueing, no task wakeup. Anything
//! else (a queue with items in it, a session at work, a batch out of place,
//! a socket that does not take the whole frame at once, a lag episode) takes
//! the queue, so every frame a client gets is still in order and the queue
//! bound and slow-consumer rules are unchanged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use futures::task::AtomicWaker;
use proto::client::v1::Code;
use tokio::sync::Notify;

use crate::cursor::Place;
use crate::direct::{Direct, DirectSocket};
use crate::metrics::Metrics;
use crate::outbound::Outbound;

/// A drained queue keeps at most this many slots allocated.
const IDLE_QUEUE_SLOTS: usize = 4;

/// The session's per-room cursors.
pub(crate) type Rooms = crate::room_cursors::RoomCursors;

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outbound>,
    /// The session is waiting and lent its cursors (below): the fan-out may
    /// write to the socket.
    lent: bool,
    /// The session's cursors while lent; empty otherwise.
    rooms: Rooms,
}

/// `repr(C)`, hot fields first: a fan-out's direct write reads `closed`,
/// `lagged_since_ms`, `direct` and the queue of every member it walks, with
/// the member's memory cold; kept together they cost one or two cache misses
/// per delivery instead of one per field (`closed` sat three lines away).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct SessionShared {
    /// The session ended: offers are discarded without counting drops.
    closed: AtomicBool,
    /// Unix ms of the first drop of the current lag episode, 0 when keeping up.
    lagged_since_ms: AtomicU64,
    /// The plain socket the fan-out may write to (none over TLS or QUIC).
    /// Weak: the socket closes when the session ends, whoever holds a handle.
    direct: Option<Weak<DirectSocket>>,
    queue: Mutex<Queue>,
    capacity: usize,
    /// Set (then `queued` woken) when the session must look at
    /// [`Self::killed`] or [`Self::draining`]: the session loop then needs no
    /// future per signal, which every delivery's wakeup would poll.
    signalled: AtomicBool,
    /// [`SessionHandle::disconnect`] was called; the reason is set.
    killed: AtomicBool,
    /// The node is draining: send a go-away within the drain window.
    draining: AtomicBool,
    /// The node's heartbeat sweep passed: check for an idle client and the
    /// token's expiry.
    heartbeat: AtomicBool,
    /// Woken when an item was queued or a flag set. A waker, not a
    /// `Notify`: the session is its only waiter, and waiting on a `Notify`
    /// puts a waiter node in the session's future, which every idle session
    /// holds. A wake while the session is busy is not lost: it looks at the
    /// queue after it registers and before it waits.
    queued: AtomicWaker,
    /// An item left the queue (a waiting `send` retries), or the session
    /// was disconnected ([`Self::killed`] is set first; see
    /// [`Self::disconnected`], waited on only while a socket write is
    /// blocked). One `Notify` for both: each waiter re-checks what it waits
    /// for, and every session's state stays in a smaller allocation class.
    space: Notify,
    pub(crate) kill_reason: OnceLock<(Code, &'static str)>,
    /// `iat` of the session's current token (Unix s): a revocation closes
    /// sessions whose token is older.
    token_iat: AtomicU64,
    /// The session's id and its user: here rather than in every handle, so
    /// each copy of a handle (the user index, every room's member list) is
    /// one pointer.
    id: Arc<str>,
    uid: Arc<str>,
}

// The hot fields and the start of the queue share the allocation's first
// cache line (after the `Arc`'s two counters).
const _: () = assert!(std::mem::offset_of!(SessionShared, queue) + 16 < 64);
// One per connection, for its whole life: with the `Arc`'s two counters it
// stays in jemalloc's 256-byte class (the next is 320).
const _: () = assert!(std::mem::size_of::<SessionShared>() + 16 <= 256);

/// A connection as seen by the room index and the user index.
#[derive(Clone, Debug)]
pub(crate) struct SessionHandle {
    pub(crate) shared: Arc<SessionShared>,
}

/// Why an item was not queued.
enum Refused {
    Full(Outbound),
    Closed,
}

/// The session's end of its queue. Dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct Receiver {
    shared: Arc<SessionShared>,
    /// Items left behind by the last [`Self::try_recv`].
    remaining: usize,
}

/// What woke the session.
#[derive(Debug)]
pub(crate) enum Wake {
    Item(Outbound),
    /// Look at [`Receiver::killed`] and [`Receiver::draining`].
    Signal,
}

impl Receiver {
    /// The next queued item or signal (waits for one).
    pub(crate) fn recv(&mut self) -> impl Future<Output = Wake> + '_ {
        std::future::poll_fn(move |cx| self.poll_recv(cx))
    }

    /// The next queued item or signal, or `Pending` with `cx`'s waker
    /// registered to hear of one.
    fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Wake> {
        if let Some(wake) = self.ready() {
            return std::task::Poll::Ready(wake);
        }
        self.shared.queued.register(cx.waker());
        // Whatever came between the look above and the registration.
        match self.ready() {
            Some(wake) => std::task::Poll::Ready(wake),
            None => std::task::Poll::Pending,
        }
    }

    fn ready(&mut self) -> Option<Wake> {
        if let Some(item) = self.try_recv() {
            return Some(Wake::Item(item));
        }
        self.shared
            .signalled
            .swap(false, Ordering::Acquire)
            .then_some(Wake::Signal)
    }

    /// The next queued item, if any.
    pub(crate) fn try_recv(&mut self) -> Option<Outbound> {
        let (item, was_full) = {
            let mut queue = self.shared.lock();
            let items = &mut queue.items;
            let was_full = items.len() >= self.shared.capacity;
            let item = items.pop_front();
            if items.is_empty() && items.capacity() > IDLE_QUEUE_SLOTS {
                items.shrink_to(IDLE_QUEUE_SLOTS);
            }
            self.remaining = items.len();
            (item, was_full)
        };
        // Only a full queue has waiting senders (`send` waits after finding
        // it full, registered before it looked): wake them when it stops
        // being full, not on every pop.
        if item.is_some() && was_full {
            self.shared.space.notify_waiters();
        }
        item
    }

    /// Items left in the queue after the last item taken.
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }

    /// The session was told to disconnect.
    pub(crate) fn killed(&self) -> bool {
        self.shared.killed.load(Ordering::Acquire)
    }

    /// The node is draining.
    pub(crate) fn draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// True once per heartbeat the node's sweep flagged.
    pub(crate) fn take_heartbeat(&self) -> bool {
        self.shared.heartbeat.swap(false, Ordering::Acquire)
    }

    /// The session is about to wait: lend the fan-out its cursors (`rooms`
    /// is left empty), so batches that continue them may go straight to a
    /// plain socket. Nothing on other transports.
    pub(crate) fn lend(&self, rooms: &mut Rooms) {
        if self.shared.direct.is_none() {
            return;
        }
        let mut queue = self.shared.lock();
        std::mem::swap(&mut queue.rooms, rooms);
        queue.lent = true;
    }

    /// The session woke: take its cursors back (advanced by what the
    /// fan-out wrote meanwhile); the fan-out queues again.
    pub(crate) fn reclaim(&self, rooms: &mut Rooms) {
        if self.shared.direct.is_none() {
            return;
        }
        let mut queue = self.shared.lock();
        if std::mem::take(&mut queue.lent) {
            std::mem::swap(&mut queue.rooms, rooms);
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let mut queue = self.shared.lock();
        queue.items.clear();
        queue.lent = false;
        queue.rooms.clear();
        drop(queue);
        self.shared.space.notify_waiters();
    }
}

impl SessionShared {
    /// Ready once the session is disconnected.
    pub(crate) async fn disconnected(&self) {
        loop {
            // Registered before the flag is read: a disconnect in between
            // still wakes this waiter.
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.killed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the deque inconsistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write `item` to the socket at once when the session lent its cursors
    /// and nothing is queued, else queue it. `metrics` is given by the
    /// fan-out only (replies always take the queue).
    fn try_push(&self, item: Outbound, metrics: Option<&Metrics>) -> Result<(), Refused> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Refused::Closed);
        }
        {
            let mut queue = self.lock();
            if let Some(metrics) = metrics
                && queue.lent
                && queue.items.is_empty()
            {
                match self.write_direct(&mut queue.rooms, &item, metrics) {
                    Direct::Written => return Ok(()),
                    Direct::Partial => {
                        drop(queue);
                        // The rest of the frame waits: the session flushes it.
                        self.signal();
                        return Ok(());
                    }
                    Direct::Refused => {}
                }
            }
            if queue.items.len() >= self.capacity {
                return Err(Refused::Full(item));
            }
            queue.items.push_back(item);
        }
        self.queued.wake();
        Ok(())
    }

    /// The fan-out's write: a batch that continues the session's cursor for
    /// its room (what the session would write as is), or an ephemeral frame.
    fn write_direct(&self, rooms: &mut Rooms, item: &Outbound, metrics: &Metrics) -> Direct {
        // A lag episode is the session's to resolve (Lagged, then history).
        if self.lagged_since_ms.load(Ordering::Relaxed) != 0 {
            return Direct::Refused;
        }
        let Some(socket) = self.direct.as_ref().and_then(Weak::upgrade) else {
            return Direct::Refused;
        };
        let written = match item {
            Outbound::Batch(batch) => {
                // By `Arc`: equal pointers compare without reading the ids.
                let Some(cursor) = rooms.get_mut(&batch.room) else {
                    return Direct::Refused;
                };
                if cursor.place(batch.epoch, batch.first_seq, batch.last_seq) != Place::Next {
                    return Direct::Refused;
                }
                // The end of a traced message's trace: its frame handed to this socket.
                let span = if batch.trace.is_none() {
                    tracing::Span::none()
                } else {
                    tracing::info_span!(parent: &batch.trace, "conn.socket_write", room = %batch.room, last_seq = batch.last_seq)
                };
                let written =
                    span.in_scope(|| socket.try_write_now(&batch.frame.ws_frame(socket.wire)));
                if written != Direct::Refused {
                    metrics.deliveries.inc_by(batch.last_seq - cursor.seq);
                    cursor.advance(batch.last_seq);
                }
                written
            }
            Outbound::Shared(frame) => socket.try_write_now(&frame.ws_frame(socket.wire)),
            Outbound::Own(_) | Outbound::Remove(_) => return Direct::Refused,
        };
        if written != Direct::Refused {
            metrics.frames_out.inc();
            metrics.frames_direct.inc();
        }
        written
    }

    fn signal(&self) {
        self.signalled.store(true, Ordering::Release);
        self.queued.wake();
    }
}

impl SessionHandle {
    /// A session's handle and queue; `direct` is its plain socket, if any,
    /// which the fan-out may then write to.
    pub(crate) fn new(
        id: Arc<str>,
        uid: Arc<str>,
        capacity: usize,
        direct: Option<Weak<DirectSocket>>,
    ) -> (Self, Receiver) {
        let shared = Arc::new(SessionShared {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            direct,
            queued: AtomicWaker::new(),
            space: Notify::new(),
            closed: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            heartbeat: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            lagged_since_ms: AtomicU64::new(0),
            kill_reason: OnceLock::new(),
            token_iat: AtomicU64::new(0),
            id,
            uid,
        });
        let rx = Receiver {
            shared: shared.clone(),
            remaining: 0,
        };
        (Self { shared }, rx)
    }

    /// The session's id.
    pub(crate) fn id(&self) -> &Arc<str> {
        &self.shared.id
    }

    /// The session's user.
    pub(crate) fn uid(&self) -> &Arc<str> {
        &self.shared.uid
    }

    /// Hand over a durable batch without waiting: when `direct`, written to
    /// the socket at once if the session waits with nothing queued; else
    /// queued (a fan-out that is behind leaves the writes to the sessions,
    /// which merge what piled up into one write each). A full queue starts
    /// (or extends) a lag episode; one that lasts longer than
    /// `lag_disconnect_ms` disconnects.
    pub(crate) fn offer_as(
        &self,
        item: Outbound,
        lag_disconnect_ms: u64,
        metrics: &Metrics,
        direct: bool,
    ) {
        match self.shared.try_push(item, direct.then_some(metrics)) {
            Ok(()) => {}
            Err(Refused::Full(_)) => {
                metrics.drops.inc();
                let now = common::time::now_ms().max(1);
                let since = self.shared.lagged_since_ms.load(Ordering::Relaxed);
                if since == 0 {
                    self.shared.lagged_since_ms.store(now, Ordering::Relaxed);
                    metrics.lagged.inc();
                } else if now.saturating_sub(since) > lag_disconnect_ms {
                    self.disconnect(Code::SlowConsumer, "slow consumer", metrics);
                }
            }
            Err(Refused::Closed) => {}
        }
    }

    /// Queue a best-effort frame (or write it at once, as [`Self::offer`]);
    /// dropped when the queue is full.
    pub(crate) fn offer_ephemeral(&self, item: Outbound, metrics: &Metrics) {
        self.offer_ephemeral_as(item, metrics, true);
    }

    /// [`Self::offer_ephemeral`], queued only when `direct` is false.
    pub(crate) fn offer_ephemeral_as(&self, item: Outbound, metrics: &Metrics, direct: bool) {
        if let Err(Refused::Full(_)) = self.shared.try_push(item, direct.then_some(metrics)) {
            metrics.drops.inc();
        }
    }

    /// Queue a frame for this connection, waiting for room (replies).
    pub(crate) async fn send(&self, item: Outbound) {
        let mut item = item;
        loop {
            // Registered before the attempt, so a pop in between is not missed.
            let space = self.shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match self.shared.try_push(item, None) {
                Ok(()) | Err(Refused::Closed) => return,
                Err(Refused::Full(back)) => item = back,
            }
            space.await;
        }
    }

    pub(crate) fn disconnect(&self, code: Code, reason: &'static str, metrics: &Metrics) {
        if self.shared.kill_reason.set((code, reason)).is_ok() && code == Code::SlowConsumer {
            metrics.slow_disconnects.inc();
        }
        self.shared.killed.store(true, Ordering::Release);
        self.signal();
        self.shared.space.notify_waiters();
    }

    /// `iat` of the session's current token.
    pub(crate) fn token_iat(&self) -> u64 {
        self.shared.token_iat.load(Ordering::Relaxed)
    }

    /// The session's token was replaced by one issued at `iat`.
    pub(crate) fn set_token_iat(&self, iat: u64) {
        self.shared.token_iat.store(iat, Ordering::Relaxed);
    }

    /// A heartbeat passed: the session checks its client and token.
    pub(crate) fn heartbeat(&self) {
        self.shared.heartbeat.store(true, Ordering::Release);
        self.signal();
    }

    /// The node is draining: the session sends a go-away within the window.
    pub(crate) fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
        self.signal();
    }

    fn signal(&self) {
        self.shared.signal();
    }

    /// True once if a lag episode started since the last call.
    pub(crate) fn lag_started(&self) -> bool {
        self.shared.lagged_since_ms.load(Ordering::Relaxed) != 0
    }

    /// The session caught up from history: the lag episode is over.
    pub(crate) fn lag_recovered(&self) {
        self.shared.lagged_since_ms.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, Message, Wire};
    use crate::cursor::Cursor;
    use crate::outbound::RoomBatch;
    use futures::StreamExt as _;
    use proto::client::v1::{Pong, RoomMessage, ServerFrame, server_frame};
    use tokio::net::{TcpSocket, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    const ROOM: &str = "room";
    const LAG_MS: u64 = 60_000;

    fn metrics() -> Metrics {
        Metrics::new(&prometheus::Registry::new())
    }

    /// A loopback connection: the server's end (written to) and the
    /// client's; `small` buffers make the server's end fill up quickly.
    async fn pair(small: bool) -> (TcpStream, TcpStream) {
        let listen = TcpSocket::new_v4().expect("socket");
        let socket = TcpSocket::new_v4().expect("socket");
        if small {
            // Accepted sockets inherit the listener's receive buffer.
            listen.set_recv_buffer_size(4096).expect("SO_RCVBUF");
            socket.set_send_buffer_size(4096).expect("SO_SNDBUF");
        }
        listen
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let addr = listen.local_addr().expect("addr");
        let listener = listen.listen(16).expect("listen");
        let (server, accepted) = tokio::join!(socket.connect(addr), listener.accept());
        let (client, _) = accepted.expect("accept");
        (server.expect("connect"), client)
    }

    fn batch(seq: u64, body: usize) -> Outbound {
        let message = RoomMessage {
            seq,
            kind: "m".into(),
            body: vec![b'x'; body].into(),
            ..RoomMessage::default()
        };
        Outbound::Batch(RoomBatch::covering(
            &Arc::from(ROOM),
            1,
            seq,
            seq,
            vec![message],
        ))
    }

    /// A session of one room (cursor at 0) on `server`.
    fn session(server: TcpStream, capacity: usize) -> (Arc<DirectSocket>, SessionHandle, Receiver) {
        let socket = DirectSocket::new(server, Wire::Protobuf);
        let (handle, rx) = SessionHandle::new(
            Arc::from("s"),
            Arc::from("u"),
            capacity,
            Some(Arc::downgrade(&socket)),
        );
        (socket, handle, rx)
    }

    fn rooms() -> Rooms {
        Rooms::from([(Arc::from(ROOM), Cursor::new(1, 0))])
    }

    /// The session's own write of a queued item or a reply: after
    /// everything committed, then flushed.
    async fn session_writes(socket: &DirectSocket, frame: bytes::Bytes) {
        socket.push(frame).expect("push");
        std::future::poll_fn(|cx| socket.poll_drain(cx))
            .await
            .expect("drain");
    }

    fn frame_of(item: Outbound) -> (u64, bytes::Bytes) {
        match item {
            Outbound::Batch(b) => (b.last_seq, b.frame.ws_frame(Wire::Protobuf)),
            other => panic!("not a batch: {other:?}"),
        }
    }

    /// What the client reads: each frame's kind, a delivery as its last seq.
    async fn read(client: &mut WebSocketStream<TcpStream>, n: usize) -> Vec<String> {
        use prost::Message as _;
        let mut seen = Vec::new();
        while seen.len() < n {
            let Some(Ok(Message::Binary(data))) = client.next().await else {
                panic!("a binary frame");
            };
            let frame = ServerFrame::decode(data).expect("a server frame");
            seen.push(match frame.frame {
                Some(server_frame::Frame::Delivery(d)) => format!("d{}", d.last_seq),
                Some(server_frame::Frame::Pong(_)) => "pong".to_string(),
                other => panic!("unexpected {other:?}"),
            });
        }
        seen
    }

    #[tokio::test]
    async fn direct_writes_and_the_session_s_own_frames_keep_their_order() {
        let (server, client) = pair(false).await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let metrics = metrics();
        let (socket, handle, mut rx) = session(server, 8);
        let mut rooms = rooms();

        // Waiting session, empty queue: straight to the socket, nothing queued.
        rx.lend(&mut rooms);
        handle.offer_as(batch(1, 10), LAG_MS, &metrics, true);
        handle.offer_as(batch(2, 10), LAG_MS, &metrics, true);
        assert_eq!(metrics.frames_direct.get(), 2);
        assert!(rx.try_recv().is_none());

        // The session wakes (a ping): the cursors come back advanced, and
        // while it works every batch is queued.
        rx.reclaim(&mut rooms);
        assert_eq!(rooms.get(ROOM), Some(&Cursor::new(1, 2)));
        handle.offer_as(batch(3, 10), LAG_MS, &metrics, true);
        assert_eq!(metrics.frames_direct.get(), 2);
        // It feeds the queued batch and its pong, not flushed yet.
        let (last, frame) = frame_of(rx.try_recv().expect("queued"));
        socket.push(frame).expect("push");
        rooms.get_mut(ROOM).expect("joined").advance(last);
        let pong = server_frame::Frame::Pong(Pong::default());
        let pong = codec::encode(Wire::Protobuf, &ServerFrame { frame: Some(pong) });
        socket
            .push(codec::data_frame(&pong).expect("data"))
            .expect("push");
        // Even lent with an empty queue, frames committed and not flushed
        // go first: the next batch is queued.
        rx.lend(&mut rooms);
        handle.offer_as(batch(4, 10), LAG_MS, &metrics, true);
        assert_eq!(metrics.frames_direct.get(), 2);
        rx.reclaim(&mut rooms);
        std::future::poll_fn(|cx| socket.poll_drain(cx))
            .await
            .expect("drain");
        let (last, frame) = frame_of(rx.try_recv().expect("queued"));
        session_writes(&socket, frame).await;
        rooms.get_mut(ROOM).expect("joined").advance(last);
        // Waiting again with an empty queue: direct again.
        rx.lend(&mut rooms);
        handle.offer_as(batch(5, 10), LAG_MS, &metrics, true);
        // Out of place for the cursor (a hole): the session's to handle.
        handle.offer_as(batch(7, 10), LAG_MS, &metrics, true);
        assert_eq!(metrics.frames_direct.get(), 3);
        rx.reclaim(&mut rooms);
        assert_eq!(rooms.get(ROOM), Some(&Cursor::new(1, 5)));
        assert!(matches!(rx.try_recv(), Some(Outbound::Batch(b)) if b.first_seq == 7));

        assert_eq!(
            read(&mut client, 6).await,
            ["d1", "d2", "d3", "pong", "d4", "d5"]
        );
        assert_eq!(metrics.deliveries.get(), 3, "direct deliveries counted");

        // A fan-out that is behind queues even what the socket could take.
        rx.lend(&mut rooms);
        handle.offer_as(batch(6, 10), LAG_MS, &metrics, false);
        rx.reclaim(&mut rooms);
        assert_eq!(metrics.frames_direct.get(), 3);
        assert!(matches!(rx.try_recv(), Some(Outbound::Batch(b)) if b.first_seq == 6));
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_socket_fills_only_its_own_queue_and_lags() {
        const BATCHES: u64 = 200;
        const BODY: usize = 16 * 1024;
        const CAPACITY: usize = 8;
        let metrics = metrics();
        let (slow_server, slow_client) = pair(true).await;
        let (fast_server, fast_client) = pair(false).await;
        let (slow_socket, slow, mut slow_rx) = session(slow_server, CAPACITY);
        let (fast_socket, fast, mut fast_rx) = session(fast_server, CAPACITY);
        let (mut slow_rooms, mut fast_rooms) = (rooms(), rooms());
        slow_rx.lend(&mut slow_rooms);
        fast_rx.lend(&mut fast_rooms);
        let reader = tokio::spawn(async move {
            let mut client =
                WebSocketStream::from_raw_socket(fast_client, Role::Client, None).await;
            read(&mut client, BATCHES as usize).await
        });
        for seq in 1..=BATCHES {
            slow.offer_as(batch(seq, BODY), LAG_MS, &metrics, true);
            fast.offer_as(batch(seq, BODY), LAG_MS, &metrics, true);
            // The fast client's session: whatever its socket did not take
            // at once is written from its queue, after what is committed.
            if fast_rx.shared.lock().items.is_empty() && fast_socket.backlog_bytes() == 0 {
                continue;
            }
            fast_rx.reclaim(&mut fast_rooms);
            std::future::poll_fn(|cx| fast_socket.poll_drain(cx))
                .await
                .expect("drain");
            while let Some(item) = fast_rx.try_recv() {
                let (last, frame) = frame_of(item);
                session_writes(&fast_socket, frame).await;
                fast_rooms.get_mut(ROOM).expect("joined").advance(last);
            }
            fast_rx.lend(&mut fast_rooms);
        }
        // The fast one got everything, in order, and never lagged.
        let expected: Vec<String> = (1..=BATCHES).map(|s| format!("d{s}")).collect();
        assert_eq!(reader.await.expect("reader"), expected);
        assert!(!fast.lag_started());
        assert!(metrics.frames_direct.get() > BATCHES / 2);

        // The stalled one: its queue is at its bound, the rest dropped, and
        // a lag episode started; nothing more went to its socket.
        assert!(slow.lag_started());
        assert!(metrics.drops.get() > 0);
        assert_eq!(metrics.lagged.get(), 1);
        slow_rx.reclaim(&mut slow_rooms);
        let written = slow_rooms.get(ROOM).expect("joined").seq;
        assert!(
            written < BATCHES - CAPACITY as u64,
            "stalled after {written}"
        );
        let mut queued = Vec::new();
        while let Some(item) = slow_rx.try_recv() {
            queued.push(item);
        }
        assert_eq!(queued.len(), CAPACITY);

        // The client reads again: every direct frame whole (the last one
        // completed from the backlog), then the queued ones, in order.
        let expect = written as usize + CAPACITY;
        let reading = tokio::spawn(async move {
            let mut client =
                WebSocketStream::from_raw_socket(slow_client, Role::Client, None).await;
            read(&mut client, expect).await
        });
        std::future::poll_fn(|cx| slow_socket.poll_drain(cx))
            .await
            .expect("drain");
        for item in queued {
            session_writes(&slow_socket, frame_of(item).1).await;
        }
        let seen = reading.await.expect("reader");
        let expected: Vec<String> = (1..=written + CAPACITY as u64)
            .map(|s| format!("d{s}"))
            .collect();
        assert_eq!(seen, expected);
    }

    /// The queue's waker: an item or a signal that comes while the session
    /// is busy ends its next wait at once; one that comes while it waits
    /// wakes it; nothing else ends a wait.
    #[tokio::test]
    async fn the_session_hears_of_every_item_and_signal() {
        use futures::FutureExt as _;
        let metrics = metrics();
        let (handle, mut rx) = SessionHandle::new(Arc::from("s"), Arc::from("u"), 8, None);
        assert!(rx.recv().now_or_never().is_none(), "nothing queued");

        // Queued while the session was not waiting.
        handle.offer_as(batch(1, 10), LAG_MS, &metrics, false);
        assert!(matches!(rx.recv().now_or_never(), Some(Wake::Item(_))));
        assert!(rx.recv().now_or_never().is_none(), "taken once");

        // Queued while it waits (in another task: the wake must reach it).
        let waiting = tokio::spawn(async move { (rx.recv().await, rx) });
        tokio::task::yield_now().await;
        handle.offer_as(batch(2, 10), LAG_MS, &metrics, false);
        let (wake, mut rx) = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert!(matches!(wake, Wake::Item(Outbound::Batch(b)) if b.last_seq == 2));

        // A signal while it waits: a drain.
        let waiting = tokio::spawn(async move { (rx.recv().await, rx) });
        tokio::task::yield_now().await;
        handle.drain();
        let (wake, rx) = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        assert!(matches!(wake, Wake::Signal));
        assert!(rx.draining());
    }
}
