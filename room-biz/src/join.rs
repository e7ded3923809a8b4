//! Join authorization: may a uid enter a room, and the state it starts from.
//!
//! Refused: unknown rooms (and a live room found empty past its auto-end
//! time: it ends now), then whoever the entry rule bars ([`entry::check`]:
//! ended rooms, uids the host blocked, kicked uids, strangers to a private
//! room). Kicks and the invite list are checked again atomically by the
//! store's join, so a kick racing the join wins.

use room_store::StoreError;
use room_store::domain::entry::{self, Standing};
use room_store::domain::room::{Role, Room};
use room_store::domain::state::RoomRead;
use serde_json::Value;

use crate::error::JoinError;
use crate::rooms::Rooms;

/// A granted join.
#[derive(Clone, Debug)]
pub(crate) struct JoinGrant {
    /// The room joined.
    pub(crate) room: Room,
    /// The joiner's role.
    pub(crate) role: Role,
    /// Distinct members, this join included.
    pub(crate) members: u32,
    /// The room state clients start from (the snapshot JSON).
    pub(crate) state: Value,
}

impl JoinGrant {
    /// The room state clients start from, as UTF-8 JSON.
    pub(crate) fn state_json(&self) -> String {
        self.state.to_string()
    }
}

/// Why a conn node asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A client joins: counted and announced (`member_joined`).
    Join,
    /// The room's stream reset on the conn node: it re-reads the snapshot for
    /// a member already in. The rule is checked again and the session kept
    /// registered (idempotent), but nothing is announced.
    Resync,
}

/// Admit `uid` (on `session_id`, held by conn node `node_id`) to `room` and
/// count it as a member.
pub(crate) async fn authorize(
    rooms: &Rooms,
    room: &str,
    uid: &str,
    session_id: &str,
    node_id: &str,
    entry: Entry,
) -> Result<JoinGrant, JoinError> {
    if room.is_empty() {
        return Err(JoinError::Missing("room"));
    }
    if uid.is_empty() {
        return Err(JoinError::Missing("uid"));
    }
    let mut read = read(rooms, room, uid).await?;
    if read.room.empty_expired(common::time::now_ms()) && rooms.auto_end(room).await {
        return Err(JoinError::Ended(room.into()));
    }
    let Some(viewer) = read.viewer.as_mut() else {
        return Err(JoinError::Store(StoreError::Corrupt(format!(
            "room {room}: read without the viewer"
        ))));
    };
    // A join is exact: the block list is read from the store, not from a cache.
    let blocked = match &read.room.owner {
        Some(host) if host != uid => rooms.store.is_blocked(host, uid).await?,
        _ => false,
    };
    let standing = Standing {
        kicked: viewer.stage.kicked,
        blocked,
        may_enter: viewer.may_enter,
    };
    entry::check(read.room.state, standing).map_err(|barred| JoinError::barred(room, barred))?;
    let members = rooms
        .store
        .member_joined(room, uid, session_id, node_id)
        .await?;
    // The read was taken just before the join: count the joiner in.
    let role = viewer.stage.role;
    let already_member = viewer.stage.member;
    if !already_member && role.on_stage() {
        read.stage_present += 1;
    }
    viewer.stage.member = true;
    read.members = members;
    // Presence is per distinct member: a uid's 2nd..Nth session (another
    // tab, a reconnect that overlaps the old socket) joins nobody new, and
    // announcing each to every session would cost O(sessions²) frames.
    if entry == Entry::Join && !already_member {
        rooms.joined(room, uid, role, members);
    }
    Ok(JoinGrant {
        state: read.snapshot_json(rooms.settings.polls_max),
        room: read.room,
        role,
        members,
    })
}

async fn read(rooms: &Rooms, room: &str, uid: &str) -> Result<RoomRead, JoinError> {
    rooms
        .store
        .read(room, Some(uid), rooms.settings.hands_max)
        .await?
        .ok_or_else(|| JoinError::NotFound(room.into()))
}

impl JoinError {
    /// The `result` label of `roomcast_biz_joins_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Missing(_) => "invalid",
            Self::NotFound(_) => "not_found",
            Self::Ended(_) => "ended",
            Self::Forbidden(_) => "forbidden",
            Self::Store(_) => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use room_store::NewRoom;

    use super::*;
    use crate::test_util::{RecordingPusher, backends};

    #[tokio::test]
    async fn owners_host_and_others_listen() {
        let b = backends(RecordingPusher::new());
        let room = b
            .store
            .create_room(NewRoom::titled("Jazz", Some("alice")))
            .await
            .expect("create");

        let host = authorize(&b.rooms, &room.id, "alice", "s1", "conn-1", Entry::Join)
            .await
            .expect("host joins");
        assert_eq!((host.role, host.members), (Role::Host, 1));
        let guest = authorize(&b.rooms, &room.id, "bob", "s2", "conn-1", Entry::Join)
            .await
            .expect("guest joins");
        assert_eq!((guest.role, guest.members), (Role::Listener, 2));

        let state: serde_json::Value = serde_json::from_str(&guest.state_json()).expect("json");
        assert_eq!(state["title"], "Jazz");
        assert_eq!(state["owner"], "alice");
        assert_eq!(state["members"], 2);
        assert_eq!(state["listeners"], 1, "alice is on stage");
        assert_eq!(state["created_at_ms"], room.created_at_ms);
        assert_eq!(state["you"]["uid"], "bob");
        assert_eq!(state["you"]["member"], true);
    }

    #[tokio::test]
    async fn unknown_ended_and_incomplete_joins_are_refused() {
        let b = backends(RecordingPusher::new());
        let err = authorize(&b.rooms, "r-missing", "bob", "s1", "conn-1", Entry::Join)
            .await
            .expect_err("unknown");
        assert!(
            matches!(err, JoinError::NotFound(ref r) if r == "r-missing"),
            "{err}"
        );
        let err = authorize(&b.rooms, "", "bob", "s1", "conn-1", Entry::Join)
            .await
            .expect_err("no room");
        assert_eq!(err.to_string(), "room is required");

        let room = b.store.create_room(NewRoom::titled("t", None)).await;
        let room = room.expect("create").id;
        b.store.end_room(&room).await.expect("end");
        let err = authorize(&b.rooms, &room, "bob", "s1", "conn-1", Entry::Join)
            .await
            .expect_err("ended");
        assert!(matches!(err, JoinError::Ended(_)), "{err}");
        assert_eq!(
            b.store.member_count(&room).await.expect("count"),
            0,
            "refused joins do not count"
        );
    }

    #[tokio::test]
    async fn kicked_blocked_and_uninvited_users_are_forbidden() {
        let b = backends(RecordingPusher::new());
        let private = NewRoom {
            private: true,
            invited: vec!["carol".into()],
            ..NewRoom::titled("Secret", Some("alice"))
        };
        let private = b.store.create_room(private).await.expect("create").id;
        let forbidden = |r: Result<JoinGrant, JoinError>| matches!(r, Err(JoinError::Forbidden(_)));
        assert!(forbidden(
            authorize(&b.rooms, &private, "bob", "s1", "c", Entry::Join).await
        ));
        authorize(&b.rooms, &private, "carol", "s1", "c", Entry::Join)
            .await
            .expect("invited");
        authorize(&b.rooms, &private, "alice", "s1", "c", Entry::Join)
            .await
            .expect("owner");

        let other = b
            .store
            .create_room(NewRoom::titled("Open", Some("alice")))
            .await
            .expect("create")
            .id;
        b.store
            .set_blocked("alice", "mallory", true)
            .await
            .expect("block");
        assert!(forbidden(
            authorize(&b.rooms, &other, "mallory", "s1", "c", Entry::Join).await
        ));
        let kick = room_store::domain::rules::kick("alice", "dave", 1);
        b.rooms.apply(&other, &kick).await.expect("kick");
        assert!(forbidden(
            authorize(&b.rooms, &other, "dave", "s1", "c", Entry::Join).await
        ));
        assert_eq!(b.store.member_count(&other).await.expect("count"), 0);
    }
}
