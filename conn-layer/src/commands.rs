//! What the upstream actor is told ([`UpstreamCmd`]): room interest and user
//! presence changes from feeds and sessions, link state from the links.
//! Below both its senders and the actor, so neither imports the other.

use std::sync::Arc;

use proto::internal::v1::ConnToPush;
use tokio::sync::mpsc;

/// Commands for the upstream actor.
#[derive(Debug)]
pub(crate) enum UpstreamCmd {
    /// A room's member count on this node changed (0 = gone).
    RoomChanged(Arc<str>),
    /// A user's first session opened here.
    UserOnline(Arc<str>),
    /// A user's last session closed here.
    UserOffline(Arc<str>),
    LinkUp {
        node: String,
        tx: mpsc::Sender<ConnToPush>,
        generation: u64,
    },
    LinkDown {
        node: String,
        generation: u64,
    },
    /// An attach to `node` failed (refused, timed out): its rooms and users
    /// go to the next push node in rendezvous order until it attaches again,
    /// instead of waiting for discovery to drop it (a lease TTL).
    LinkFailed {
        node: String,
    },
}
