//! The room entry rule: whether a user may be in a room at all. Socket joins,
//! long polls, actions and HTTP reads by a user all ask [`check`]; nothing
//! else decides it.
//!
//! The facts come from wherever the caller reads them (a join from the store,
//! hot paths from a node's cached room view), but the decision and its order
//! are here. The stores re-check the kicked and private-room parts atomically
//! where a race matters: at join ([`crate::StoreError::Kicked`],
//! [`crate::StoreError::NotInvited`]) and as the first guards of every action
//! ([`Guard::NotKicked`](super::transition::Guard::NotKicked),
//! [`Guard::MayEnter`](super::transition::Guard::MayEnter)), with the same
//! answers ([`Barred`]).

use proto::client::v1::Code;

use super::room::RoomState;

/// What the entry rule needs to know about one user in one room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// Kicked from this room.
    pub kicked: bool,
    /// On the host's block list.
    pub blocked: bool,
    /// May enter: the room is public, or the user owns it or is invited.
    pub may_enter: bool,
}

/// Why a user may not be in a room. Variants are in the order [`check`]
/// tests them, so a user barred twice always hears the same reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Barred {
    /// The room has ended.
    #[error("the room has ended")]
    Ended,
    /// The host blocked the user (in every room of theirs).
    #[error("the host blocked you")]
    Blocked,
    /// The user was kicked from this room.
    #[error("you were removed from this room")]
    Kicked,
    /// The room is private and the user is not invited.
    #[error("this room is private: you are not invited")]
    NotInvited,
}

impl Barred {
    /// The client-visible code: `ROOM_ENDED` or `FORBIDDEN`.
    pub fn code(self) -> Code {
        match self {
            Self::Ended => Code::RoomEnded,
            Self::Blocked | Self::Kicked | Self::NotInvited => Code::Forbidden,
        }
    }
}

/// The entry rule: may a user with `standing` be in a room in `state`?
///
/// Ended rooms admit nobody; then blocks, kicks and private rooms, in that
/// order. Scheduled rooms admit (their audience gathers before the start).
pub fn check(state: RoomState, standing: Standing) -> Result<(), Barred> {
    if state == RoomState::Ended {
        return Err(Barred::Ended);
    }
    if standing.blocked {
        return Err(Barred::Blocked);
    }
    if standing.kicked {
        return Err(Barred::Kicked);
    }
    if !standing.may_enter {
        return Err(Barred::NotInvited);
    }
    Ok(())
}

/// The read rule: may a user with `standing` read a room in `state` (its
/// snapshot, members, summary, messages)? The entry rule, except that an
/// ended room stays readable by whoever could have been in it: a private
/// room stays private after its end.
pub fn check_read(state: RoomState, standing: Standing) -> Result<(), Barred> {
    match check(state, standing) {
        Err(Barred::Ended) => check(RoomState::Live, standing),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WELCOME: Standing = Standing {
        kicked: false,
        blocked: false,
        may_enter: true,
    };

    #[test]
    fn live_and_scheduled_rooms_admit_whoever_may_enter() {
        assert_eq!(check(RoomState::Live, WELCOME), Ok(()));
        assert_eq!(check(RoomState::Scheduled, WELCOME), Ok(()));
    }

    #[test]
    fn refusals_come_in_order() {
        let everything = Standing {
            kicked: true,
            blocked: true,
            may_enter: false,
        };
        assert_eq!(check(RoomState::Ended, everything), Err(Barred::Ended));
        assert_eq!(check(RoomState::Live, everything), Err(Barred::Blocked));
        let kicked_stranger = Standing {
            blocked: false,
            ..everything
        };
        assert_eq!(check(RoomState::Live, kicked_stranger), Err(Barred::Kicked));
        assert_eq!(
            check(RoomState::Scheduled, Standing::default()),
            Err(Barred::NotInvited)
        );
    }

    #[test]
    fn ended_rooms_stay_readable_by_those_who_could_enter_only() {
        assert_eq!(check_read(RoomState::Ended, WELCOME), Ok(()));
        assert_eq!(check_read(RoomState::Live, WELCOME), Ok(()));
        assert_eq!(
            check_read(RoomState::Ended, Standing::default()),
            Err(Barred::NotInvited),
            "a private room stays private after its end"
        );
        let kicked = Standing {
            kicked: true,
            ..WELCOME
        };
        assert_eq!(check_read(RoomState::Ended, kicked), Err(Barred::Kicked));
    }

    #[test]
    fn only_the_end_is_room_ended() {
        assert_eq!(Barred::Ended.code(), Code::RoomEnded);
        for barred in [Barred::Blocked, Barred::Kicked, Barred::NotInvited] {
            assert_eq!(barred.code(), Code::Forbidden, "{barred}");
        }
    }
}
