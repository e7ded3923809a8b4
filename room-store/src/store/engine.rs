//! The [`RoomStore`] engine trait every room store implements, and the types
//! of its methods.

pub use crate::domain::room::{NewRoom, Role, Room, RoomState};
use std::sync::Arc;

use super::ledger::Ledger;
use crate::domain::state::{Counters, RoomRead};
use crate::domain::transition::{Applied, Transition};
use crate::error::StoreError;

/// One numbered batch of counter deltas from one writer (a biz node's
/// aggregator): the store applies each number once, so retrying a write whose
/// reply was lost cannot count it twice. Numbers grow per writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterBatch<'a> {
    /// Unique per writer process (a random id).
    pub writer: &'a str,
    /// Greater than every earlier batch of this writer.
    pub seq: u64,
}

/// Counter names of [`RoomStore::add_counters`].
pub mod counter {
    /// Likes.
    pub const LIKES: &str = "likes";
    /// Comments posted.
    pub const COMMENTS: &str = "comments";
    /// Gifts (pieces).
    pub const GIFTS: &str = "gifts";
    /// Gift value.
    pub const GIFT_VALUE: &str = "gift_value";
    /// Prefix of per-emoji reaction counters (`r:<emoji>`).
    pub const REACTION_PREFIX: &str = "r:";

    /// The counter of reaction `emoji`.
    pub fn reaction(emoji: &str) -> String {
        format!("{REACTION_PREFIX}{emoji}")
    }

    /// Whether counter `name` is also counted per minute (likes and
    /// reactions: the analytics' "reactions and likes per minute").
    pub fn per_minute(name: &str) -> bool {
        name == LIKES || name.starts_with(REACTION_PREFIX)
    }

    /// The start of the minute `at_ms` falls in (Unix ms).
    pub fn minute_of(at_ms: u64) -> u64 {
        at_ms - at_ms % 60_000
    }
}

/// Session stays kept per room at most (the oldest go first): a room with
/// more joins and leaves than this archives the newest.
pub const MAX_STAYS: usize = 100_000;

/// One session of a member in a room: from its join to its leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStay {
    /// Who.
    pub uid: String,
    /// Which of their sessions.
    pub session: String,
    /// Joined, Unix ms.
    pub joined_at_ms: u64,
    /// Left, Unix ms; `None` while the session is in.
    pub left_at_ms: Option<u64>,
}

/// A counter's additions in one minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteCount {
    /// The minute's start, Unix ms.
    pub minute_ms: u64,
    /// The counter (see [`counter::per_minute`]).
    pub name: String,
    /// Added during that minute.
    pub count: u64,
}

/// What the archive's analytics need beyond the room's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomAnalytics {
    /// Sessions that left (oldest first), then those still in.
    pub stays: Vec<SessionStay>,
    /// Likes and reactions per minute, by minute then name.
    pub minutes: Vec<MinuteCount>,
}

/// Which members [`RoomStore::members_page`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberFilter {
    /// Everyone in the room.
    All,
    /// Members not on stage (no stored role, not the owner).
    Listeners,
}

/// Which uid set [`RoomStore::audience_page`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudienceSet {
    /// Interested in a scheduled room.
    Interested,
    /// On the invite list.
    Invited,
}

/// A member and when they joined (Unix ms); pages continue after the last
/// one's `(joined_at_ms, uid)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberEntry {
    /// First join of the current stay.
    pub joined_at_ms: u64,
    /// Who.
    pub uid: String,
}

/// The per-room lists a biz node caches to check hot actions without a
/// store round trip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomLists {
    /// Kicked uids.
    pub kicked: Vec<String>,
    /// The invite list (read for private rooms only; empty otherwise).
    pub invited: Vec<String>,
    /// Moderators (exempt from slow mode).
    pub moderators: Vec<String>,
}

/// Room state storage.
///
/// Member counts are of distinct uids: a uid joined from two sessions (two
/// devices) counts once, and stops counting when its last session leaves. A
/// session is identified by `(uid, session_id)` and held by one conn node.
/// What [`RoomStore::member_session_left`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLeft {
    /// Distinct members of the room now.
    pub members: u32,
    /// The session was the uid's last in the room: the uid is no longer a
    /// member (presence is per distinct member, not per session).
    pub member_gone: bool,
}

#[async_trait::async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Create a room with a fresh id: live, or scheduled when
    /// `new.scheduled_at_ms` is set; `new.invited` start the invite list.
    async fn create_room(&self, new: NewRoom) -> Result<Room, StoreError>;
    /// The room, or `None` if it does not exist.
    async fn get_room(&self, id: &str) -> Result<Option<Room>, StoreError>;
    /// Mark the room ended (now); returns it, or `None` if it does not exist.
    /// Idempotent: an ended room keeps its first end time.
    async fn end_room(&self, id: &str) -> Result<Option<Room>, StoreError>;
    /// Forget room `id` and all its state (after it was archived); true if
    /// it existed. Idempotent. Block lists and token revocations span rooms
    /// and stay.
    async fn delete_room(&self, id: &str) -> Result<bool, StoreError>;
    /// Record that `uid` joined `room` from `session_id`, a session held by conn
    /// node `node_id`; returns the member count.
    ///
    /// Joining again on the same session is idempotent; if `node_id` differs,
    /// the session moves to the new node. An empty `node_id` ties the session
    /// to no node (it is then only ever removed by [`Self::member_left`]).
    ///
    /// Also records `uid` as a unique listener, raises the peak count, and
    /// clears the room's empty-since mark.
    ///
    /// Fails with [`StoreError::RoomNotFound`] for an unknown room,
    /// [`StoreError::Kicked`] for a kicked uid and [`StoreError::NotInvited`]
    /// for a private room's stranger, checked atomically with the join.
    async fn member_joined(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
        node_id: &str,
    ) -> Result<u32, StoreError>;
    /// Record that `session_id` of `uid` left `room`; returns the member count.
    ///
    /// Idempotent: leaving twice, or leaving an unknown room, is not an error.
    /// The last member leaving a live room marks it empty since now.
    async fn member_left(&self, room: &str, uid: &str, session_id: &str)
    -> Result<u32, StoreError>;
    /// [`Self::member_left`], also saying whether that session was the uid's
    /// last in the room. Leaving twice, or a session never joined, is no
    /// member gone. An engine that cannot tell says every leave is.
    async fn member_session_left(
        &self,
        room: &str,
        uid: &str,
        session_id: &str,
    ) -> Result<SessionLeft, StoreError> {
        let members = self.member_left(room, uid, session_id).await?;
        Ok(SessionLeft {
            members,
            member_gone: true,
        })
    }
    /// Distinct members of `room` (0 for an unknown room).
    async fn member_count(&self, room: &str) -> Result<u32, StoreError>;
    /// Drop every session held by conn node `node_id` (it died or left), as if
    /// each had left; returns each room that lost a session with its new
    /// member count, in no particular order.
    ///
    /// Idempotent, and safe to run from several biz nodes at once: a session
    /// that rejoined through another node meanwhile is kept. `""` removes nothing.
    async fn remove_node(&self, node_id: &str) -> Result<Vec<(String, u32)>, StoreError>;

    /// Apply `t` atomically: check its guards in order and, if all hold,
    /// apply its effects (see [`crate::domain::transition`]).
    ///
    /// Fails with [`StoreError::RoomNotFound`] for an unknown room.
    async fn apply(&self, room: &str, t: &Transition) -> Result<Applied, StoreError>;
    /// Everything clients see of `room` in one atomic read, with at most
    /// `hands_max` hands (oldest first) and, with `viewer`, that user's own
    /// state; `None` for an unknown room.
    async fn read(
        &self,
        room: &str,
        viewer: Option<&str>,
        hands_max: usize,
    ) -> Result<Option<RoomRead>, StoreError>;
    /// Add `deltas` to named counters (see [`counter`]) in one step and return
    /// every counter after; `None` for an unknown room (nothing is written).
    /// With a `batch`, a batch numbered no higher than the last one applied
    /// from the same writer to this room changes nothing (it was written
    /// already: a retry whose first reply was lost) and returns the totals.
    async fn add_counters(
        &self,
        room: &str,
        deltas: &[(String, u64)],
        batch: Option<CounterBatch<'_>>,
    ) -> Result<Option<Counters>, StoreError>;
    /// The room's session stays and per-minute counts (for its archive);
    /// empty for an unknown room. An engine that keeps none says so with
    /// empty lists.
    async fn analytics(&self, room: &str) -> Result<RoomAnalytics, StoreError> {
        let _ = room;
        Ok(RoomAnalytics::default())
    }
    /// Slow mode: if `uid` last commented at least `secs` ago (or never),
    /// record a comment now and return `None`; else how many ms they must wait.
    async fn slow_comment(
        &self,
        room: &str,
        uid: &str,
        secs: u32,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// Up to `limit` members by join time (oldest first), after `after`.
    async fn members_page(
        &self,
        room: &str,
        filter: MemberFilter,
        after: Option<&MemberEntry>,
        limit: usize,
    ) -> Result<Vec<MemberEntry>, StoreError>;
    /// A page of `set` from `cursor` (0 first; the returned cursor is 0 at the
    /// end). Pages may repeat a uid; callers tolerate that.
    async fn audience_page(
        &self,
        room: &str,
        set: AudienceSet,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError>;
    /// The kicked, moderator and (for private rooms) invited uids of `room`.
    async fn room_lists(&self, room: &str) -> Result<RoomLists, StoreError>;
    /// Add `uid` to (or with `blocked` false remove it from) `host`'s block list.
    async fn set_blocked(&self, host: &str, uid: &str, blocked: bool) -> Result<(), StoreError>;
    /// Whether `host` blocked `uid`.
    async fn is_blocked(&self, host: &str, uid: &str) -> Result<bool, StoreError>;
    /// Everyone `host` blocked.
    async fn blocked_by(&self, host: &str) -> Result<Vec<String>, StoreError>;
    /// Record that `uid`'s tokens issued before `before_secs` (Unix seconds)
    /// are revoked, for `ttl_secs` (the longest token lifetime: after it every
    /// such token has expired anyway). The mark only moves forward: an older
    /// revocation arriving late does not undo a newer one.
    async fn revoke_tokens(
        &self,
        uid: &str,
        before_secs: u64,
        ttl_secs: u64,
    ) -> Result<(), StoreError>;
    /// Tokens of `uid` issued before this (Unix seconds) are revoked; `None`
    /// when there is no live revocation.
    async fn tokens_revoked_before(&self, uid: &str) -> Result<Option<u64>, StoreError>;

    /// The engine's [`Ledger`] (due jobs, inboxes, idempotency keys), on the
    /// same backend as the rooms.
    fn ledger(&self) -> Arc<dyn Ledger>;
}
