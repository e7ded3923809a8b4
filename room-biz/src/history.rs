//! History and replay of a room: from the live log (through the room's push
//! node) while the room has live keys, with what the live log no longer
//! holds from the archive (a long room's checkpoints, see
//! `archiver::live`); from the archive alone once it is archived,
//! with a bounded in-memory cache of replay pages of archived rooms (they
//! never change, so a cached page is never stale). No HTTP here.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};

use archive::{ArchiveError, ArchiveStore, ArchivedMessage, ArchivedRoom, HistoryQuery, MAX_PAGE};
use lru::LruCache;
use proto::internal::v1::PullRequest;
use room_store::Room;

use crate::archiver::collect;
use crate::error::PushError;
use crate::pusher::RoomPusher;

/// Pages of the live log read at most for one replay request: the live log
/// is bounded (1,000 messages by default), so this reaches its end.
const LIVE_REPLAY_PAGES: usize = 20;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HistoryError {
    /// The push layer (live log) failed.
    #[error("{0}")]
    Live(#[from] PushError),
    /// The archive failed.
    #[error("{0}")]
    Archive(#[from] ArchiveError),
}

/// Where a room's messages are read from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// The live log: the room still has its live keys.
    Live(Room),
    /// The archive.
    Archive(ArchivedRoom),
}

impl Source {
    /// `live` or `archive`, for replies.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Live(_) => "live",
            Self::Archive(_) => "archive",
        }
    }

    fn origin_ms(&self) -> u64 {
        match self {
            Self::Live(room) => collect::origin_ms(room),
            Self::Archive(room) => room.origin_ms(),
        }
    }
}

/// A page of messages.
#[derive(Clone, Debug, Default)]
pub(crate) struct Page {
    /// Oldest first.
    pub(crate) messages: Arc<Vec<ArchivedMessage>>,
    /// The live log no longer reaches back as far as asked (older messages
    /// are in the archive once the room is archived).
    pub(crate) truncated: bool,
}

/// A replay request: room, `from_ms`, limit.
type ReplayKey = (String, i64, usize);
/// Replay pages of archived rooms, most recently used kept.
type ReplayCache = LruCache<ReplayKey, Arc<Vec<ArchivedMessage>>>;

/// Reads of the live log and of the archive (once attached), and the
/// cache of replay pages.
pub(crate) struct History {
    archive: OnceLock<Arc<dyn ArchiveStore>>,
    replays: Mutex<ReplayCache>,
}

impl History {
    /// Reads of the live log only until [`Self::attach`], caching up to
    /// `cache_pages` replay pages.
    pub(crate) fn new(cache_pages: usize) -> Self {
        Self {
            archive: OnceLock::new(),
            replays: Mutex::new(LruCache::new(
                NonZeroUsize::new(cache_pages).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Read archived rooms from `archive` too (once; later calls are ignored).
    pub(crate) fn attach(&self, archive: Arc<dyn ArchiveStore>) {
        let _ = self.archive.set(archive);
    }

    /// Where to read `room` from: the archive once it is complete there,
    /// the live log while the live store has the room (`live`), the archive
    /// otherwise (an archive in progress whose live keys are gone); `None`
    /// for a room neither knows.
    pub(crate) async fn locate(
        &self,
        id: &str,
        live: Option<Room>,
    ) -> Result<Option<Source>, ArchiveError> {
        let Some(archive) = self.archive.get() else {
            return Ok(live.map(Source::Live));
        };
        match live {
            Some(room) if room.state != room_store::RoomState::Ended => {
                Ok(Some(Source::Live(room)))
            }
            live => {
                let archived = archive.room(id).await?;
                Ok(match (archived, live) {
                    (Some(a), _) if a.archived_at_ms.is_some() => Some(Source::Archive(a)),
                    (_, Some(room)) => Some(Source::Live(room)),
                    (archived, None) => archived.map(Source::Archive),
                })
            }
        }
    }

    /// A page of history by seq (see [`HistoryQuery`]). A live room's
    /// messages older than its live log come from the archive (where its
    /// checkpoints put them), so a page across the boundary has no hole.
    pub(crate) async fn history(
        &self,
        pusher: &dyn RoomPusher,
        id: &str,
        source: &Source,
        query: HistoryQuery,
    ) -> Result<Page, HistoryError> {
        match (source, self.archive.get()) {
            (Source::Archive(_), Some(archive)) => Ok(Page {
                messages: Arc::new(archive.history(id, query).await?),
                truncated: false,
            }),
            (Source::Live(_), Some(archive)) => {
                let live = live_history(pusher, id, source.origin_ms(), query).await?;
                if !live.page.truncated {
                    return Ok(live.page);
                }
                fill_from_archive(&**archive, id, query, live).await
            }
            (_, None) => Ok(live_history(pusher, id, source.origin_ms(), query)
                .await?
                .page),
        }
    }

    /// Up to `limit` messages from `from_ms` after the room's start on. A
    /// live room's archived messages (its checkpoints) are read from the
    /// archive, the rest from the live log.
    pub(crate) async fn replay(
        &self,
        pusher: &dyn RoomPusher,
        id: &str,
        source: &Source,
        from_ms: i64,
        limit: usize,
    ) -> Result<Page, HistoryError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let archive = match (source, self.archive.get()) {
            (Source::Archive(_), Some(archive)) => archive,
            (Source::Live(_), Some(archive)) => {
                let archived_to = archive.last_seq(id).await?;
                let live = live_replay(pusher, id, source.origin_ms(), from_ms, limit, archived_to)
                    .await?;
                if archived_to == 0 {
                    return Ok(live);
                }
                let mut out = archive.replay(id, from_ms, limit).await?;
                out.extend(live.messages.iter().cloned());
                out.sort_by_key(|m| (m.offset_ms, m.seq));
                // A checkpoint may have copied some of the live part since
                // `archived_to` was read: the same message twice, adjacent.
                out.dedup_by_key(|m| m.seq);
                out.truncate(limit);
                return Ok(Page {
                    messages: Arc::new(out),
                    // The live log reached back to the archive's last seq.
                    truncated: live.truncated,
                });
            }
            (_, None) => {
                return live_replay(pusher, id, source.origin_ms(), from_ms, limit, 0).await;
            }
        };
        let key = (id.to_owned(), from_ms, limit);
        if let Some(page) = self.cached(&key) {
            return Ok(Page {
                messages: page,
                truncated: false,
            });
        }
        let page = Arc::new(archive.replay(id, from_ms, limit).await?);
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, page.clone());
        Ok(Page {
            messages: page,
            truncated: false,
        })
    }

    fn cached(&self, key: &ReplayKey) -> Option<Arc<Vec<ArchivedMessage>>> {
        // A cache operation is one map update: a poisoned lock still guards a
        // consistent cache.
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Replay pages cached.
    #[cfg(test)]
    pub(crate) fn cached_pages(&self) -> usize {
        self.replays.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

async fn pull(
    pusher: &dyn RoomPusher,
    room: &str,
    after_seq: u64,
    limit: usize,
) -> Result<proto::internal::v1::PullReply, PushError> {
    pusher
        .pull(PullRequest {
            room: room.to_owned(),
            after_seq,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        })
        .await
}

/// A page read from the live log, with the seq range it covers.
struct LivePage {
    page: Page,
    /// The page is the messages in `(after, end)`…
    after: u64,
    /// …below this seq.
    end: u64,
}

/// History from the live log: `after_seq` pages forward from it; otherwise
/// the newest `limit` below `before_seq` (or the head).
async fn live_history(
    pusher: &dyn RoomPusher,
    room: &str,
    origin_ms: u64,
    query: HistoryQuery,
) -> Result<LivePage, HistoryError> {
    let limit = query.page();
    let before = query.before_seq.unwrap_or(u64::MAX);
    let after = match query.after_seq {
        Some(after) => after,
        None => {
            let head = pull(pusher, room, 0, 0).await?.head_seq;
            let end = before.min(head.saturating_add(1));
            end.saturating_sub(1).saturating_sub(limit as u64)
        }
    };
    let reply = pull(pusher, room, after, limit).await?;
    let messages = reply
        .messages
        .iter()
        .filter(|m| m.seq < before)
        .map(|m| collect::message(m, origin_ms))
        .collect();
    Ok(LivePage {
        page: Page {
            messages: Arc::new(messages),
            truncated: reply.truncated,
        },
        after,
        end: before.min(reply.head_seq.saturating_add(1)),
    })
}

/// `live` did not reach back to its `after`: the messages between `after`
/// and its first one come from the archive, then `live`'s, oldest first,
/// `query.page()` at most. Still truncated if the archive lacks some of
/// them (they left the live log before a checkpoint copied them).
async fn fill_from_archive(
    archive: &dyn ArchiveStore,
    id: &str,
    query: HistoryQuery,
    live: LivePage,
) -> Result<Page, HistoryError> {
    let limit = query.page();
    let first_live = live.page.messages.first().map_or(live.end, |m| m.seq);
    let archived = archive
        .history(
            id,
            HistoryQuery {
                after_seq: Some(live.after),
                before_seq: Some(first_live),
                limit,
            },
        )
        .await?;
    let wanted = first_live.saturating_sub(live.after).saturating_sub(1);
    let complete = archived.len() as u64 >= wanted.min(limit as u64);
    let mut messages = archived;
    messages.extend(live.page.messages.iter().cloned());
    messages.truncate(limit);
    Ok(Page {
        messages: Arc::new(messages),
        truncated: !complete,
    })
}

/// Replay from the live log: its messages after seq `after_seq` (the
/// archive has the others) at or after `from_ms` past the origin, oldest
/// first.
async fn live_replay(
    pusher: &dyn RoomPusher,
    room: &str,
    origin_ms: u64,
    from_ms: i64,
    limit: usize,
    after_seq: u64,
) -> Result<Page, HistoryError> {
    let mut out = Vec::new();
    let mut after = after_seq;
    let mut truncated = false;
    for _ in 0..LIVE_REPLAY_PAGES {
        let reply = pull(pusher, room, after, MAX_PAGE).await?;
        truncated |= after == after_seq && reply.truncated;
        let Some(last) = reply.messages.last().map(|m| m.seq) else {
            break;
        };
        out.extend(
            reply
                .messages
                .iter()
                .map(|m| collect::message(m, origin_ms))
                .filter(|m| m.offset_ms >= from_ms),
        );
        if out.len() >= limit || last >= reply.head_seq {
            break;
        }
        after = last;
    }
    // The log is in seq order; replay is by offset, then seq.
    out.sort_by_key(|m| (m.offset_ms, m.seq));
    out.truncate(limit);
    Ok(Page {
        messages: Arc::new(out),
        truncated,
    })
}
