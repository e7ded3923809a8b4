//! The archived rows. Times are Unix milliseconds; offsets are from the
//! room's start (its creation when it never started).

use serde::{Deserialize, Serialize};

/// One archived room: its record and final summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchivedRoom {
    /// Room id.
    pub id: String,
    /// Display title.
    pub title: String,
    /// The host uid, if any.
    pub owner: Option<String>,
    /// What kind of room: `public` or `private` today.
    pub kind: String,
    /// Created.
    pub created_at_ms: u64,
    /// Went live.
    pub started_at_ms: Option<u64>,
    /// Ended.
    pub ended_at_ms: Option<u64>,
    /// The final summary (comments, reactions, unique listeners, peak,
    /// duration…), as room-biz reports it.
    pub summary: serde_json::Value,
    /// When the archive became complete ([`crate::ArchiveStore::mark_archived`]);
    /// `None` while archiving.
    pub archived_at_ms: Option<u64>,
    /// The entry rule's lists at the end: who may read the archive.
    #[serde(default)]
    pub access: RoomAccess,
}

/// The lists of a room's entry rule, kept with its archive so that reading
/// an archived private room admits whom the live room admitted (the owner
/// and the invited, never the kicked).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAccess {
    /// The invite list (private rooms).
    #[serde(default)]
    pub invited: Vec<String>,
    /// Kicked uids.
    #[serde(default)]
    pub kicked: Vec<String>,
}

impl ArchivedRoom {
    /// Where offsets count from: the start, else the creation.
    pub fn origin_ms(&self) -> u64 {
        self.started_at_ms.unwrap_or(self.created_at_ms)
    }
}

/// One durable room message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedMessage {
    /// Its seq in the room (dense from 1).
    pub seq: u64,
    /// Message kind (`comment`, `gift`, `room_ended`, …).
    pub kind: String,
    /// Delivery priority (the wire enum's number).
    pub priority: i32,
    /// Sender uid; empty for the app backend or the system.
    pub sender: String,
    /// The body as published.
    pub payload: Vec<u8>,
    /// Publish time.
    pub sent_at_ms: u64,
    /// `sent_at_ms` minus the room's start (negative before the start).
    pub offset_ms: i64,
}

/// A member's stay in the room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participation {
    /// Who.
    pub uid: String,
    /// Their role at the end (`host`, `moderator`, `speaker`, `listener`).
    pub role: String,
    /// First join of their stay.
    pub joined_at_ms: u64,
    /// When they left (the room's end for those still in).
    pub left_at_ms: Option<u64>,
}

/// A poll and its final tally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedPoll {
    /// Poll id.
    pub poll_id: String,
    /// The question.
    pub question: String,
    /// The answers.
    pub options: Vec<String>,
    /// Votes per answer, in option order.
    pub tallies: Vec<u64>,
    /// Who opened it.
    pub opened_by: String,
    /// When.
    pub opened_at_ms: u64,
    /// When it closed.
    pub closed_at_ms: Option<u64>,
}

/// A gift, from its `gift` message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedGift {
    /// Seq of the gift's message.
    pub seq: u64,
    /// Who sent it.
    pub uid: String,
    /// Catalog id.
    pub gift_id: String,
    /// Pieces.
    pub count: u64,
    /// Total value (count × catalog value).
    pub value: u64,
    /// When.
    pub sent_at_ms: u64,
}

/// One member session's stay (analytics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSession {
    /// Who.
    pub uid: String,
    /// Which of their sessions (devices, reconnects).
    pub session: String,
    /// Joined.
    pub joined_at_ms: u64,
    /// Left (the room's end for sessions still in).
    pub left_at_ms: u64,
}

/// A counter's additions in one minute of the room (analytics: likes and
/// reactions per minute).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterMinute {
    /// The minute's start, Unix ms.
    pub minute_ms: u64,
    /// Its number from the room's start (negative before it).
    pub minute: i64,
    /// The counter (`likes`, `r:<emoji>`).
    pub name: String,
    /// Added during the minute.
    pub value: u64,
}

/// One idempotent write to the archive of `room`: every part may be empty,
/// and writing the same batch twice changes nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArchiveBatch {
    /// Room id.
    pub room: String,
    /// Messages (inserted unless already there).
    pub messages: Vec<ArchivedMessage>,
    /// Participation (upserted by uid).
    pub members: Vec<Participation>,
    /// Polls (upserted by poll id).
    pub polls: Vec<ArchivedPoll>,
    /// Gifts (inserted unless already there, by seq).
    pub gifts: Vec<ArchivedGift>,
    /// Counter totals by name (`likes`, `comments`, `r:<emoji>`…), upserted.
    pub counters: Vec<(String, u64)>,
    /// Session stays (upserted by uid, session and join time).
    pub sessions: Vec<MemberSession>,
    /// Per-minute counts (upserted by minute and name).
    pub minutes: Vec<CounterMinute>,
}

/// A stored access column (JSON text) as [`RoomAccess`].
pub(crate) fn access_of(text: &str) -> Result<RoomAccess, crate::ArchiveError> {
    serde_json::from_str(text).map_err(|e| crate::ArchiveError::Corrupt(format!("access: {e}")))
}
