//! `GET /v1/rooms/{id}/messages`: long polling of a room's stream for
//! clients that cannot hold a long connection, authenticated with the
//! client's token (`Authorization: Bearer <JWT>`).
//!
//! A long poll is a socket join and its deliveries in one request: from a
//! position `(epoch, after)` the history still reaches, it resumes with the
//! messages after it (waiting up to `wait` seconds for news when there is
//! none); otherwise it answers `recovered: false` with a fresh snapshot and
//! the head, which is where the client starts. Coverage and sampling are the
//! socket rules (`crate::longpoll::cover`). Reads go through the node's
//! [`LongPollCache`](crate::longpoll::LongPollCache), so a room's pollers cost
//! one push-layer read per refresh; positions the cache cannot answer (older
//! than its window, another epoch, past its head) read the push layer
//! directly.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use proto::client::v1::{Priority, RoomMessage};
use proto::internal::v1::PullRequest;
use room_store::domain::entry::{self, Barred};
use room_store::{Room, RoomState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::auth;
use super::error::{ApiError, refusal_error};
use super::messages::json_or_base64;
use crate::error::PushError;
use crate::longpoll::cache::{OpenError, Settings, Source, Window};
use crate::longpoll::cover;
use crate::shared::Shared;

/// Longest `wait` a poll may ask for, in seconds: below common proxy and load
/// balancer idle timeouts (60 s), so a waiting poll is not cut by the network.
const MAX_WAIT_SECS: u64 = 30;
/// Messages a direct read asks for in rooms that sample: more than any reply
/// cap, so a sampled reply can cover a long range (the push layer's largest pull).
const DIRECT_PULL_SAMPLED: u32 = 1000;

/// Query of `GET /v1/rooms/{id}/messages`.
#[derive(Debug, Deserialize)]
pub(super) struct LongPollQuery {
    after: Option<u64>,
    epoch: Option<u64>,
    wait: Option<u64>,
    limit: Option<u32>,
}

/// A validated poll request.
#[derive(Debug)]
struct LongPollParams {
    after: u64,
    /// 0: the client has no position.
    epoch: u64,
    wait: Duration,
    limit: Option<usize>,
}

impl LongPollQuery {
    fn validate(self) -> Result<LongPollParams, ApiError> {
        let wait = self.wait.unwrap_or(0);
        if wait > MAX_WAIT_SECS {
            return Err(ApiError::bad_request(format!(
                "wait must be 0 to {MAX_WAIT_SECS} seconds"
            )));
        }
        if self.limit == Some(0) {
            return Err(ApiError::bad_request("limit must be at least 1"));
        }
        Ok(LongPollParams {
            after: self.after.unwrap_or(0),
            epoch: self.epoch.unwrap_or(0),
            wait: Duration::from_secs(wait),
            limit: self.limit.map(|l| l as usize),
        })
    }
}

/// The answer to a poll.
#[derive(Debug, Serialize)]
pub(super) struct LongPollReply {
    room: String,
    epoch: u64,
    head_seq: u64,
    first_seq: u64,
    last_seq: u64,
    recovered: bool,
    messages: Vec<MessageJson>,
    snapshot: Option<SnapshotJson>,
    next_after: u64,
    poll_after_ms: u64,
}

impl LongPollReply {
    /// A resume that covers nothing: the client is at the head.
    fn is_empty_resume(&self) -> bool {
        self.recovered && self.last_seq < self.first_seq
    }

    fn label(&self) -> &'static str {
        if !self.recovered {
            "snapshot"
        } else if self.is_empty_resume() {
            "empty"
        } else {
            "messages"
        }
    }
}

/// A room message as JSON.
#[derive(Debug, Serialize)]
struct MessageJson {
    seq: u64,
    kind: String,
    sender: String,
    ts_ms: u64,
    priority: &'static str,
    body: Value,
}

impl From<&RoomMessage> for MessageJson {
    fn from(m: &RoomMessage) -> Self {
        let priority = match Priority::try_from(m.priority) {
            Ok(Priority::High) => "high",
            Ok(Priority::Low) => "low",
            // Unknown values are treated as normal, as in sampling.
            Ok(Priority::Normal) | Err(_) => "normal",
        };
        Self {
            seq: m.seq,
            kind: m.kind.clone(),
            sender: m.sender.clone(),
            ts_ms: m.ts_ms,
            priority,
            body: json_or_base64(&m.body),
        }
    }
}

/// The room state a client starts from, as a socket join's snapshot.
#[derive(Debug, Serialize)]
struct SnapshotJson {
    room: String,
    title: String,
    role: &'static str,
    members: u32,
    state: Value,
}

/// What a reply is built from besides the stream.
struct Context<'a> {
    room: &'a Room,
    members: u32,
    uid: &'a str,
    settings: &'a Settings,
    params: &'a LongPollParams,
}

impl Context<'_> {
    fn cap(&self) -> usize {
        cover::cap_for_members(self.members).min(self.params.limit.unwrap_or(usize::MAX))
    }

    fn sample(&self) -> bool {
        self.settings.is_large(self.members)
    }

    /// Resume: `pending` is contiguous from `after + 1`, `head` the newest seq known.
    fn resume(&self, epoch: u64, head: u64, pending: &[&RoomMessage]) -> LongPollReply {
        let covered = cover::cover(self.params.after, pending, self.cap(), self.sample());
        // Nothing newer can be seen before the next refresh; if the reply was
        // cut short, the rest is ready now.
        let poll_after = if covered.last_seq < head {
            Duration::ZERO
        } else {
            self.settings.period(self.members)
        };
        LongPollReply {
            room: self.room.id.clone(),
            epoch,
            head_seq: head,
            first_seq: covered.first_seq,
            last_seq: covered.last_seq,
            recovered: true,
            messages: covered.messages.iter().map(MessageJson::from).collect(),
            snapshot: None,
            next_after: covered.last_seq,
            poll_after_ms: millis(poll_after),
        }
    }

    /// No usable position: a fresh snapshot, and the client starts at `head`.
    async fn reset(
        &self,
        shared: &Shared,
        epoch: u64,
        head: u64,
    ) -> Result<LongPollReply, ApiError> {
        let rooms = &shared.backends.rooms;
        let read = rooms
            .read(&self.room.id, Some(self.uid))
            .await
            .map_err(refusal_error)?;
        Ok(LongPollReply {
            room: self.room.id.clone(),
            epoch,
            head_seq: head,
            first_seq: head,
            last_seq: head,
            recovered: false,
            messages: Vec::new(),
            snapshot: Some(SnapshotJson {
                room: self.room.id.clone(),
                title: read.room.title.clone(),
                role: read.viewer_role().as_str(),
                members: read.members,
                state: read.snapshot_json(rooms.settings.polls_max),
            }),
            next_after: head,
            // The client should come back at once from its new position.
            poll_after_ms: 0,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `GET /v1/rooms/{id}/messages`.
pub(super) async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LongPollQuery>, QueryRejection>,
) -> Result<Json<LongPollReply>, ApiError> {
    let result = long_poll(&shared, &room, &headers, query).await;
    let label = match &result {
        Ok(reply) => reply.label(),
        Err(error) if error.status().is_server_error() => "error",
        Err(_) => "refused",
    };
    shared.metrics.longpolls.with_label_values(&[label]).inc();
    result.map(Json)
}

async fn long_poll(
    shared: &Shared,
    room: &str,
    headers: &HeaderMap,
    query: Result<Query<LongPollQuery>, QueryRejection>,
) -> Result<LongPollReply, ApiError> {
    let uid = auth::uid(shared, headers).await?;
    // Held until the reply: the uid's waiting polls are capped.
    let Some(_slot) = shared.poll_slots.try_take(&uid) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_polls",
            format!(
                "at most {} long polls per user may wait at once",
                shared.poll_slots.max()
            ),
        )
        .retry_after(1));
    };
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let params = query.validate()?;
    refuse_strangers(shared, room, &uid).await?;
    let deadline = Instant::now() + params.wait;
    let source = shared.longpoll.open(room).await.map_err(open_error)?;
    let mut waiting_since = None;
    let reply = match source {
        Source::Cached(cached) => {
            cached.attend(&uid);
            long_poll_cached(
                shared,
                room,
                &uid,
                &params,
                cached.rx,
                deadline,
                &mut waiting_since,
            )
            .await?
        }
        Source::Direct {
            room: found,
            members,
        } => {
            let ctx = Context {
                room: &found,
                members,
                uid: &uid,
                settings: shared.longpoll.settings(),
                params: &params,
            };
            long_poll_direct(shared, &ctx, deadline, &mut waiting_since).await?
        }
    };
    if let Some(since) = waiting_since {
        shared
            .metrics
            .longpoll_wait
            .observe(Instant::now().duration_since(since).as_secs_f64());
    }
    Ok(reply)
}

/// What the cache says about a poll.
enum Step {
    /// Answer this.
    Reply(LongPollReply),
    /// Answer with a fresh snapshot at this stream position.
    Reset {
        epoch: u64,
        head: u64,
        room: Room,
        members: u32,
    },
    /// The cache cannot tell: read the push layer.
    Direct(Room, u32),
    /// The room ended meanwhile.
    Ended,
}

fn from_window(w: &Window, uid: &str, settings: &Settings, params: &LongPollParams) -> Step {
    if w.room.state == RoomState::Ended {
        return Step::Ended;
    }
    let ctx = Context {
        room: &w.room,
        members: w.members,
        uid,
        settings,
        params,
    };
    if params.epoch == 0 {
        return Step::Reset {
            epoch: w.epoch,
            head: w.head,
            room: w.room.clone(),
            members: w.members,
        };
    }
    if params.epoch == w.epoch
        && let Some(pending) = w.after(params.after)
    {
        return Step::Reply(ctx.resume(w.epoch, w.head, &pending));
    }
    // Another epoch, past the cached head, or older than the window: the cache
    // may just be behind the stream, so only the push layer can decide.
    Step::Direct(w.room.clone(), w.members)
}

async fn long_poll_cached(
    shared: &Shared,
    room: &str,
    uid: &str,
    params: &LongPollParams,
    mut rx: tokio::sync::watch::Receiver<Window>,
    deadline: Instant,
    waiting_since: &mut Option<Instant>,
) -> Result<LongPollReply, ApiError> {
    let settings = shared.longpoll.settings();
    let stopping = shared.longpoll.stopping();
    loop {
        // The borrow is a lock on the window: compute, copy out, release.
        let step = from_window(&rx.borrow_and_update(), uid, settings, params);
        let reply = match step {
            Step::Reply(reply) => reply,
            Step::Reset {
                epoch,
                head,
                room: found,
                members,
            } => {
                let ctx = Context {
                    room: &found,
                    members,
                    uid,
                    settings,
                    params,
                };
                ctx.reset(shared, epoch, head).await?
            }
            Step::Ended => return Err(open_error(OpenError::Ended(room.to_owned()))),
            Step::Direct(found, members) => {
                let ctx = Context {
                    room: &found,
                    members,
                    uid,
                    settings,
                    params,
                };
                read_direct(shared, &ctx).await?
            }
        };
        if !reply.is_empty_resume() || Instant::now() >= deadline || stopping.is_cancelled() {
            return Ok(reply);
        }
        waiting_since.get_or_insert_with(Instant::now);
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    // The room left the cache (idle sweep, end, shutdown): answer
                    // what we have; the next poll reopens it.
                    return Ok(reply);
                }
            }
            () = tokio::time::sleep_until(deadline) => return Ok(reply),
            () = stopping.cancelled() => return Ok(reply),
        }
    }
}

/// A poll of a room the cache does not hold: read the push layer, and while
/// waiting, read it again at the large-room pace (a degraded mode for when the
/// cache is full; it keeps per-poller reads to one a second).
async fn long_poll_direct(
    shared: &Shared,
    ctx: &Context<'_>,
    deadline: Instant,
    waiting_since: &mut Option<Instant>,
) -> Result<LongPollReply, ApiError> {
    let stopping = shared.longpoll.stopping();
    loop {
        let reply = read_direct(shared, ctx).await?;
        let now = Instant::now();
        if !reply.is_empty_resume() || now >= deadline || stopping.is_cancelled() {
            return Ok(reply);
        }
        waiting_since.get_or_insert(now);
        let next = (now + ctx.settings.large_refresh).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = stopping.cancelled() => return Ok(reply),
        }
    }
}

/// Answer from the push layer directly.
async fn read_direct(shared: &Shared, ctx: &Context<'_>) -> Result<LongPollReply, ApiError> {
    let pusher = &shared.backends.pusher;
    let unavailable = |error: PushError| {
        tracing::debug!(room = %ctx.room.id, %error, "Cannot read a polled room.");
        ApiError::unavailable(format!("cannot read the room's messages: {error}"))
    };
    let params = ctx.params;
    let limit = if params.epoch == 0 {
        0
    } else if ctx.sample() {
        DIRECT_PULL_SAMPLED
    } else {
        u32::try_from(ctx.cap()).unwrap_or(u32::MAX)
    };
    let request = PullRequest {
        room: ctx.room.id.clone(),
        after_seq: params.after,
        limit,
    };
    let reply = pusher.pull(request).await.map_err(unavailable)?;
    if params.epoch != 0
        && reply.epoch == params.epoch
        && !reply.truncated
        && params.after <= reply.head_seq
    {
        let mut expected = params.after;
        let pending: Vec<&RoomMessage> = reply
            .messages
            .iter()
            .take_while(|m| {
                expected += 1;
                m.seq == expected
            })
            .collect();
        return Ok(ctx.resume(reply.epoch, reply.head_seq, &pending));
    }
    ctx.reset(shared, reply.epoch, reply.head_seq).await
}

/// The entry rule for a poller ([`entry::check`]): kicked, blocked and
/// uninvited users may not read a room (403). Unknown rooms, and rooms ended
/// since, are answered by the cache (404, 409), which re-reads the room more
/// often than the node's view of it. A store that cannot answer refuses
/// (503): a private room stays closed when its invite list can't be read.
async fn refuse_strangers(shared: &Shared, room: &str, uid: &str) -> Result<(), ApiError> {
    let Some(view) = shared.backends.rooms.views.get(room).await? else {
        return Ok(());
    };
    match entry::check(view.room.state, view.standing(uid)) {
        Ok(()) | Err(Barred::Ended) => Ok(()),
        Err(barred) => Err(refusal_error(barred.into())),
    }
}

fn open_error(error: OpenError) -> ApiError {
    match error {
        OpenError::NotFound(room) => ApiError::room_not_found(&room),
        OpenError::Ended(room) => ApiError::new(
            StatusCode::CONFLICT,
            "room_ended",
            format!("room {room} has ended"),
        ),
        OpenError::Unavailable(why) => ApiError::unavailable(why),
    }
}

#[cfg(test)]
mod tests;
