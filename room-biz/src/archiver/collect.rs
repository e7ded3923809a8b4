//! What a room leaves to the archive, from its live state: pure conversions
//! from the room store's and the message log's types to the archive's rows.

use archive::{
    ArchivedGift, ArchivedMessage, ArchivedPoll, ArchivedRoom, CounterMinute, MemberSession,
    Participation, RoomAccess,
};
use proto::client::v1::RoomMessage;
use room_store::domain::state::RoomRead;
use room_store::{MemberEntry, Room, RoomAnalytics, RoomLists};
use serde::Deserialize;

use crate::rooms::events;

/// The room row, with its final summary and the entry rule's `lists`.
pub(crate) fn room_row(read: &RoomRead, lists: &RoomLists) -> ArchivedRoom {
    let room = &read.room;
    let end = room.ended_at_ms.unwrap_or(room.created_at_ms);
    ArchivedRoom {
        id: room.id.clone(),
        title: room.title.clone(),
        owner: room.owner.clone(),
        kind: if room.private { "private" } else { "public" }.into(),
        created_at_ms: room.created_at_ms,
        started_at_ms: room.started_at_ms,
        ended_at_ms: room.ended_at_ms,
        summary: read.summary_json(end),
        archived_at_ms: None,
        access: RoomAccess {
            invited: sorted(&lists.invited),
            kicked: sorted(&lists.kicked),
        },
    }
}

fn sorted(uids: &[String]) -> Vec<String> {
    let mut out = uids.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

/// Where offsets count from: the start, else the creation.
pub(crate) fn origin_ms(room: &Room) -> u64 {
    room.started_at_ms.unwrap_or(room.created_at_ms)
}

/// A log message as archived, its offset counted from `origin_ms`.
pub(crate) fn message(m: &RoomMessage, origin_ms: u64) -> ArchivedMessage {
    ArchivedMessage {
        seq: m.seq,
        kind: m.kind.clone(),
        priority: m.priority,
        sender: m.sender.clone(),
        payload: m.body.to_vec(),
        sent_at_ms: m.ts_ms,
        offset_ms: offset(m.ts_ms, origin_ms),
    }
}

/// `at - origin` in ms, negative before the origin.
pub(crate) fn offset(at_ms: u64, origin_ms: u64) -> i64 {
    let diff = i128::from(at_ms) - i128::from(origin_ms);
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}

/// The body of a `gift` event (see `actions::gift`).
#[derive(Deserialize)]
struct GiftBody {
    uid: String,
    gift_id: String,
    count: u64,
    total_value: u64,
}

/// The gift a `gift` message records; `None` for other kinds, or a gift
/// body this build does not understand (the message itself is archived).
pub(crate) fn gift(m: &RoomMessage) -> Option<ArchivedGift> {
    if m.kind != events::GIFT {
        return None;
    }
    let body: GiftBody = serde_json::from_slice(&m.body).ok()?;
    Some(ArchivedGift {
        seq: m.seq,
        uid: body.uid,
        gift_id: body.gift_id,
        count: body.count,
        value: body.total_value,
        sent_at_ms: m.ts_ms,
    })
}

/// Members still in at the end, with their role; they leave with the room.
pub(crate) fn participation(read: &RoomRead, members: &[MemberEntry]) -> Vec<Participation> {
    members
        .iter()
        .map(|m| Participation {
            uid: m.uid.clone(),
            role: match read.roles.get(&m.uid) {
                Some(stage) => stage.as_str(),
                None => read.room.base_role_of(&m.uid).as_str(),
            }
            .to_owned(),
            joined_at_ms: m.joined_at_ms,
            left_at_ms: read.room.ended_at_ms,
        })
        .collect()
}

/// Every session's stay; sessions still in leave with the room (its end,
/// else `now_ms`).
pub(crate) fn sessions(
    read: &RoomRead,
    analytics: &RoomAnalytics,
    now_ms: u64,
) -> Vec<MemberSession> {
    let end = read.room.ended_at_ms.unwrap_or(now_ms);
    analytics
        .stays
        .iter()
        .map(|s| MemberSession {
            uid: s.uid.clone(),
            session: s.session.clone(),
            joined_at_ms: s.joined_at_ms,
            left_at_ms: s.left_at_ms.unwrap_or(end).max(s.joined_at_ms),
        })
        .collect()
}

/// Likes and reactions per minute, numbered from the room's start.
pub(crate) fn minutes(read: &RoomRead, analytics: &RoomAnalytics) -> Vec<CounterMinute> {
    let origin = origin_ms(&read.room);
    analytics
        .minutes
        .iter()
        .map(|m| CounterMinute {
            minute_ms: m.minute_ms,
            minute: offset(m.minute_ms, room_store::counter::minute_of(origin)) / 60_000,
            name: m.name.clone(),
            value: m.count,
        })
        .collect()
}

/// Every poll with its final tally.
pub(crate) fn polls(read: &RoomRead) -> Vec<ArchivedPoll> {
    read.polls
        .iter()
        .map(|p| ArchivedPoll {
            poll_id: p.def.id.clone(),
            question: p.def.question.clone(),
            options: p.def.options.clone(),
            tallies: p.tallies.clone(),
            opened_by: p.def.opened_by.clone(),
            opened_at_ms: p.def.opened_at_ms,
            closed_at_ms: p.closed_at_ms,
        })
        .collect()
}

/// Counter totals by name (`likes`, `comments`, `gifts`, `gift_value`,
/// `peak`, `r:<emoji>`).
pub(crate) fn counters(read: &RoomRead) -> Vec<(String, u64)> {
    let c = &read.counters;
    let mut out = vec![
        ("likes".to_owned(), c.likes),
        ("comments".to_owned(), c.comments),
        ("gifts".to_owned(), c.gifts),
        ("gift_value".to_owned(), c.gift_value),
        ("peak".to_owned(), c.peak),
        ("unique_listeners".to_owned(), read.unique_listeners),
    ];
    out.extend(
        c.reactions
            .iter()
            .map(|(emoji, n)| (room_store::counter::reaction(emoji), *n)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, kind: &str, body: &str, ts_ms: u64) -> RoomMessage {
        RoomMessage {
            seq,
            kind: kind.into(),
            body: body.as_bytes().to_vec().into(),
            sender: "u1".into(),
            ts_ms,
            priority: 1,
        }
    }

    #[test]
    fn messages_keep_their_bytes_and_get_an_offset() {
        let m = message(&msg(7, "comment", "hi", 10_500), 10_000);
        assert_eq!(
            (m.seq, m.offset_ms, m.payload.as_slice()),
            (7, 500, &b"hi"[..])
        );
        assert_eq!(offset(900, 1000), -100, "before the start");
        assert_eq!(offset(u64::MAX, 0), i64::MAX, "saturates");
    }

    #[test]
    fn gifts_come_from_gift_events_only() {
        let body =
            r#"{"uid":"u1","gift_id":"rose","name":"Rose","count":3,"value":10,"total_value":30}"#;
        let g = gift(&msg(4, "gift", body, 5)).expect("a gift");
        assert_eq!((g.seq, g.uid.as_str(), g.count, g.value), (4, "u1", 3, 30));
        assert_eq!(gift(&msg(5, "comment", body, 5)), None);
        assert_eq!(
            gift(&msg(6, "gift", "not json", 5)),
            None,
            "kept as a message only"
        );
    }
}
