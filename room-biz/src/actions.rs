//! Client actions: one handler per action name, dispatched from one table.
//!
//! Adding an action is adding a handler (a module, or a variant of a family
//! module such as `stage`) and one line in [`ActionTable::new`]. Handlers get
//! the room's backends and the raw payload, and answer with a JSON reply body
//! or a [`Refusal`] (a client-visible code). Who may do what is in
//! `domain::rules`; handlers parse, gate, apply and push.
//!
//! | module | actions |
//! |---|---|
//! | `stage` | raise/lower hand, invites, stage moves, moderators, mute, kick, block, interest |
//! | `moderation` | remove_comment, slow_mode |
//! | `comment` | comment |
//! | `reactions` | like, react |
//! | `gift` | gift |
//! | `polls` | poll_open, vote, poll_close |
//! | `lifecycle` | start_room, end_room |

mod comment;
mod gift;
mod lifecycle;
mod moderation;
mod polls;
mod reactions;
mod stage;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use proto::client::v1::Code;
use room_store::RoomStore;
use room_store::domain::catalog::{GiftCatalog, ReactionSet};
use room_store::domain::rules::Action;
use room_store::domain::rules::Refusal;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::pusher::RoomPusher;
use crate::rooms::Rooms;

/// Metric label for action names no handler knows: names come from clients, and
/// label values must stay a bounded set.
const UNKNOWN_ACTION_LABEL: &str = "unknown";
/// How much of an unknown action name is echoed back.
const ECHOED_NAME_CHARS: usize = 64;

/// What handlers act on.
pub(crate) struct Backends {
    /// Room state.
    pub(crate) store: Arc<dyn RoomStore>,
    /// The push API.
    pub(crate) pusher: Arc<dyn RoomPusher>,
    /// The room service (checks, changes, events, counters, timers).
    pub(crate) rooms: Arc<Rooms>,
}

impl Backends {
    /// Backends on `store` and `pusher` configured by `cfg`.
    pub(crate) fn new(
        cfg: &Config,
        store: Arc<dyn RoomStore>,
        pusher: Arc<dyn RoomPusher>,
        metrics: &Metrics,
    ) -> Self {
        let rooms = Arc::new(Rooms::new(cfg, store.clone(), pusher.clone(), metrics));
        Self {
            store,
            pusher,
            rooms,
        }
    }
}

/// One action request, as a handler sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ActionCall<'a> {
    /// The acting user (authenticated by the conn node).
    pub(crate) uid: &'a str,
    /// The room acted in.
    pub(crate) room: &'a str,
    /// The user's session, for per-connection state.
    #[allow(dead_code, reason = "no action needs it yet; kicking one device would")]
    pub(crate) session_id: &'a str,
    /// The action's payload; for built-in actions a UTF-8 JSON object.
    pub(crate) payload: &'a [u8],
}

/// One kind of action.
#[async_trait::async_trait]
pub(crate) trait ActionHandler: Send + Sync + 'static {
    /// Validate and perform `call`; `Ok` carries the reply body (UTF-8 JSON).
    async fn handle(&self, backends: &Backends, call: ActionCall<'_>) -> Result<Bytes, Refusal>;

    /// Drop idle per-user state (rate-limiter keys); called periodically.
    fn housekeep(&self) {}
}

/// A per-(room, uid) rate limit shared by several actions.
pub(crate) struct Limit {
    limiter: DefaultKeyedRateLimiter<(String, String)>,
    what: &'static str,
    per_sec: NonZeroU32,
}

impl Limit {
    fn new(what: &'static str, name: &str, per_sec: u32, burst: u32) -> Result<Arc<Self>, Error> {
        let positive = |field: String, value: u32| {
            NonZeroU32::new(value).ok_or_else(|| Error::Config(format!("{field} must be > 0")))
        };
        let per_sec = positive(format!("{name}_rate_per_sec"), per_sec)?;
        let burst = positive(format!("{name}_burst"), burst)?;
        Ok(Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst)),
            what,
            per_sec,
        }))
    }

    /// Take one token of `uid` in `room`, or refuse with `RATE_LIMITED`.
    pub(crate) fn check(&self, room: &str, uid: &str) -> Result<(), Refusal> {
        self.limiter
            .check_key(&(room.to_owned(), uid.to_owned()))
            .map_err(|_| {
                Refusal::new(
                    Code::RateLimited,
                    format!(
                        "too many {}: at most {} per second",
                        self.what, self.per_sec
                    ),
                )
            })
    }

    fn housekeep(&self) {
        // Keys whose bucket is full again carry no state worth keeping.
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Decode an action's JSON payload; an empty or `null` payload reads as `{}`.
pub(crate) fn payload<T: DeserializeOwned>(action: Action, payload: &[u8]) -> Result<T, Refusal> {
    let trimmed = payload.trim_ascii();
    let bytes: &[u8] = if trimmed.is_empty() || trimmed == b"null" {
        b"{}"
    } else {
        trimmed
    };
    serde_json::from_slice(bytes)
        .map_err(|e| Refusal::bad_request(format!("invalid {} payload: {e}", action.name())))
}

/// A JSON reply body.
pub(crate) fn reply(body: &serde_json::Value) -> Bytes {
    Bytes::from(body.to_string())
}

/// Every action, by name.
pub(crate) struct ActionTable {
    handlers: HashMap<&'static str, Box<dyn ActionHandler>>,
    limits: Vec<Arc<Limit>>,
}

impl ActionTable {
    /// The table of built-in actions, configured by `cfg`.
    pub(crate) fn new(cfg: &Config) -> Result<Self, Error> {
        let actions = Limit::new(
            "actions",
            "action",
            cfg.action_rate_per_sec,
            cfg.action_burst,
        )?;
        let likes = Limit::new("likes", "like", cfg.like_rate_per_sec, cfg.like_burst)?;
        let catalog =
            GiftCatalog::new(&cfg.gifts).map_err(|e| Error::Config(format!("gifts: {e}")))?;
        let reactions = ReactionSet::new(&cfg.reactions)
            .map_err(|e| Error::Config(format!("reactions: {e}")))?;
        let mut handlers: Vec<(Action, Box<dyn ActionHandler>)> = vec![
            (Action::Comment, Box::new(comment::Comment::new(cfg)?)),
            (Action::Like, Box::new(reactions::Like::new(likes.clone()))),
            (
                Action::React,
                Box::new(reactions::React::new(likes.clone(), reactions)),
            ),
            (
                Action::Gift,
                Box::new(gift::Gift::new(
                    actions.clone(),
                    catalog,
                    std::time::Duration::from_secs(cfg.idempotency_window_secs),
                )),
            ),
            (
                Action::RemoveComment,
                Box::new(moderation::RemoveComment::new(actions.clone())),
            ),
            (
                Action::SlowMode,
                Box::new(moderation::SlowMode::new(actions.clone())),
            ),
            (
                Action::PollOpen,
                Box::new(polls::PollOpen::new(actions.clone())),
            ),
            (Action::Vote, Box::new(polls::Vote::new(actions.clone()))),
            (
                Action::PollClose,
                Box::new(polls::PollClose::new(actions.clone())),
            ),
            (
                Action::StartRoom,
                Box::new(lifecycle::StartRoom::new(actions.clone())),
            ),
            (
                Action::EndRoom,
                Box::new(lifecycle::EndRoom::new(actions.clone())),
            ),
        ];
        for action in stage::ACTIONS {
            handlers.push((action, Box::new(stage::Stage::new(action, actions.clone()))));
        }
        let handlers: HashMap<&'static str, Box<dyn ActionHandler>> = handlers
            .into_iter()
            .map(|(action, handler)| (action.name(), handler))
            .collect();
        debug_assert_eq!(
            handlers.len(),
            Action::ALL.len(),
            "every action has a handler"
        );
        Ok(Self {
            handlers,
            limits: vec![actions, likes],
        })
    }

    /// The metric label for action `name`.
    pub(crate) fn label(&self, name: &str) -> &'static str {
        self.handlers
            .get_key_value(name)
            .map_or(UNKNOWN_ACTION_LABEL, |(known, _)| known)
    }

    /// Run action `name`.
    pub(crate) async fn dispatch(
        &self,
        backends: &Backends,
        name: &str,
        call: ActionCall<'_>,
    ) -> Result<Bytes, Refusal> {
        let Some(handler) = self.handlers.get(name) else {
            let shown: String = name.chars().take(ECHOED_NAME_CHARS).collect();
            return Err(Refusal::bad_request(format!("unknown action {shown}")));
        };
        if call.room.is_empty() {
            return Err(Refusal::bad_request("room is required"));
        }
        if call.uid.is_empty() {
            return Err(Refusal::bad_request("uid is required"));
        }
        handler.handle(backends, call).await
    }

    /// Let every handler drop idle state.
    pub(crate) fn housekeep(&self) {
        self.handlers.values().for_each(|h| h.housekeep());
        self.limits.iter().for_each(|l| l.housekeep());
    }
}
