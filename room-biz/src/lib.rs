//! Room business: rooms, join authorization, client actions, and the HTTP API
//! app backends call.
//!
//! Conn nodes call the `Biz` gRPC service (may this user join, a member left,
//! a stream of client actions); room-biz validates, updates room state through
//! a [`RoomStore`] and publishes through the push API of the room's push owner.
//!
//! Room state (the domain rules and the [`RoomStore`] engines) lives in the
//! `room-store` crate; this crate is the service around it.
//!
//! # Layout
//! Top to bottom: each module uses only the ones listed after it (and
//! `room_store`), never one above.
//! - [`process`]: the `roomcast-biz` process: configuration, discovery,
//!   store, [`run`].
//! - `grpc`: the `Biz` service, proto ↔ domain.
//! - `http`: everything HTTP: the JSON API (rooms, messages), long polling
//!   and actions of clients without a long connection, errors and client
//!   tokens; merged with `/metrics`, `/livez`, `/readyz`.
//! - `healing`: drops the room sessions of conn and biz nodes that left
//!   discovery.
//! - `shared`: the state every handler shares, and the one path of actions.
//! - `schedules`: scheduled rooms start themselves (a due index in the
//!   store, polled by every node) and remind their audience.
//! - `history`: history and replay reads, live log or archive, with the
//!   replay-page cache; no HTTP.
//! - [`archiver`]: the worker moving ended rooms to the archive, then
//!   deleting their live keys; `archiver::collect` turns live state into
//!   archive rows.
//! - `longpoll`: the per-node long-poll cache of polled rooms and reply
//!   coverage; no HTTP.
//! - `join`: join authorization and the snapshot a member starts from.
//! - `actions`: the action table; one handler per action.
//! - `rooms`: the room service: checks (the entry rule on the node's room
//!   views), atomic changes, events, lifecycle (start, end, auto-end),
//!   like/reaction aggregation, poll (voting) tallies, timers, presence
//!   (join/leave events).
//! - `revoke`: revoking a uid's tokens (store mark + push to its sessions)
//!   and the check of a token against it.
//! - `pusher`: the push API behind a small trait, so handlers test without gRPC.
//! - `local`: the conn nodes' action stream in process ([`LocalBiz`], standalone).
//! - `idempotency`: idempotency keys (push API, gifts) over the store's ledger.
//! - `webhooks`: events for the app backend: the event log and signed,
//!   retried webhook deliveries.
//! - [`archive_jobs`]: the queue of ended rooms waiting for the archiver
//!   ([`ArchiveQueue`]: a Redis Stream consumer group, or in process).
//! - `key_quota`: backend writes per API key.
//! - `metrics`: the crate's series.
//! - [`config`]: [`Config`] and its `DEFAULT_*` values.
//! - [`error`]: the crate's error types.

pub mod archive_jobs;
pub mod archiver;
pub mod config;
pub mod error;
pub mod process;

mod actions;
mod grpc;
mod healing;
mod history;
mod http;
mod idempotency;
mod join;
mod key_quota;
mod local;
mod longpoll;
mod metrics;
mod publish_links;
mod pusher;
mod revoke;
mod rooms;
mod schedules;
mod shared;
#[cfg(test)]
mod test_util;
mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use common::api_keys::Keyring;
use common::discovery::{Discovery, NodeInfo, ServiceKind};
use common::live_config::{LiveConfig, keys};
use common::ops::Readiness;
use common::push_directory::PushDirectory;
pub use room_store::{
    DEFAULT_KEY_PREFIX, MemoryRoomStore, NewRoom, RedisRoomStore, Role, Room, RoomState, RoomStore,
    StoreError,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::archive_jobs::{ArchiveQueue, MemoryQueue, RedisQueue};
use crate::archiver::live::{LiveArchiveSettings, LiveArchiving};
pub use crate::archiver::{Archiver, ArchiverSettings};
pub use crate::config::Config;
pub use crate::error::{Error, PushError};
pub use crate::local::{ActionReplies, LocalBiz, LocalBizSlot};
use crate::pusher::DirectoryPusher;
pub use crate::pusher::RoomPusher;
use crate::shared::Shared;

/// The sockets room-biz serves, bound by the caller (port 0 in tests).
pub struct Listeners {
    /// The client HTTP routes: long polling, actions, reads under the read
    /// rule (client tokens). The router hands its URL to clients.
    pub http: TcpListener,
    /// The backend HTTP API (API keys); need not be public.
    pub backend: TcpListener,
    /// The internal `Biz` gRPC service (TCP, or in process for standalone).
    pub grpc: common::grpc::GrpcListener,
    /// `/metrics`, `/livez`, `/readyz` (`None`: the caller serves them, as
    /// standalone does for all its services).
    pub ops: Option<TcpListener>,
}

/// What room-biz runs on.
pub struct Deps {
    /// Node registry: room-biz registers itself and finds push nodes.
    pub discovery: Arc<dyn Discovery>,
    /// Where metrics are registered.
    pub registry: prometheus::Registry,
    /// Room state.
    pub store: Arc<dyn RoomStore>,
    /// Where the API keys of app backends are kept (watched).
    pub live_config: Arc<dyn LiveConfig>,
    /// The archive of ended rooms; `None`: rooms are not archived.
    pub archiving: Option<Archiving>,
    /// How messages reach the push layer; `None`: gRPC to the room's push
    /// node, found in discovery. Standalone calls its push node in process.
    pub pusher: Option<Arc<dyn RoomPusher>>,
    /// Filled with this node's in-process calls (standalone's conn node
    /// takes its action stream from it); `None`: gRPC only.
    pub local: Option<LocalBizSlot>,
}

/// What archiving runs on: ended rooms are queued, moved from the message
/// log and the room store to the archive, then deleted from both.
pub struct Archiving {
    /// The archive.
    pub archive: Arc<dyn archive::ArchiveStore>,
    /// Ended rooms waiting for an archiver.
    pub queue: Arc<dyn ArchiveQueue>,
    /// The message log the push layer appends to (read, then deleted).
    pub log: Arc<dyn message_log::MessageLog>,
}

/// Keep `shared.api_keys` equal to the keyring in live configuration. A
/// stored keyring that cannot be read is logged and the last good one stays.
async fn follow_api_keys(live: &dyn LiveConfig, shared: &Shared) {
    let mut stored = live.watch(keys::API_KEYS);
    loop {
        let text = stored.borrow_and_update().clone();
        match Keyring::from_stored(text.as_deref()) {
            Ok(ring) => {
                tracing::info!(keys = ring.records().count(), "API keys loaded.");
                shared.api_keys.send_replace(Arc::new(ring));
            }
            Err(error) => {
                tracing::error!(%error, "Ignoring an unreadable API keyring; the previous keys stay.");
            }
        }
        if stored.changed().await.is_err() {
            // The live configuration is gone (shutting down): keep the last keys.
            return std::future::pending().await;
        }
    }
}

/// Serve gRPC and HTTP on `listeners` until `shutdown` is cancelled.
///
/// While serving, it also watches conn nodes in discovery and removes the room
/// sessions of those that leave (see `healing`).
///
/// On shutdown the node first leaves discovery (so no new work is routed
/// here), then stops accepting, lets action streams finish what they hold, and
/// returns once both servers stopped or `shutdown_grace_ms` passed.
pub async fn run(
    cfg: Config,
    deps: Deps,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    cfg.validate()?;
    let internal_auth = common::grpc::InternalAuth::new(&cfg.internal_token)
        .map_err(|e| Error::Config(e.to_string()))?;
    let grpc_addr = listeners
        .grpc
        .advertised(&cfg.advertise_host)
        .map_err(|source| Error::LocalAddr {
            listener: "grpc",
            source,
        })?;
    let http_addr = local_addr(&listeners.http, "http")?;
    let backend_addr = local_addr(&listeners.backend, "backend http")?;
    let pusher: Arc<dyn RoomPusher> = match deps.pusher.clone() {
        Some(pusher) => pusher,
        None => Arc::new(DirectoryPusher::new(
            PushDirectory::new(&*deps.discovery, internal_auth.clone()),
            Duration::from_millis(cfg.push_timeout_ms),
        )),
    };
    // With an archive, long rooms are checkpointed into it while live.
    let live_archiving = deps.archiving.as_ref().map(|archiving| {
        Arc::new(LiveArchiving::new(
            pusher.clone(),
            archiving.queue.clone(),
            LiveArchiveSettings {
                every: cfg.archive_live_every,
                interval: Duration::from_millis(cfg.archive_live_interval_ms),
            },
        ))
    });
    let pusher = match &live_archiving {
        Some(live) => live.clone() as Arc<dyn RoomPusher>,
        None => pusher,
    };
    let shared = Arc::new(Shared::new(cfg, deps.store, pusher, &deps.registry)?);
    let cfg = &shared.cfg;
    let archiver = deps.archiving.map(|archiving| {
        shared.history.attach(archiving.archive.clone());
        let _ = shared
            .backends
            .rooms
            .archive_queue
            .set(archiving.queue.clone());
        Archiver::new(
            shared.backends.store.clone(),
            archiving.log,
            archiving.archive,
            archiving.queue,
            ArchiverSettings {
                consumer: cfg.node_id.clone(),
                batch: cfg.archive_batch,
                claim_idle: Duration::from_millis(cfg.archive_claim_idle_ms),
                poll: Duration::from_millis(cfg.archive_poll_ms),
            },
            &deps.registry,
        )
    });
    let readiness = Readiness::default();
    // Cancelled only after deregistering, so peers stop sending before we stop serving.
    let drain = CancellationToken::new();
    if let Some(slot) = &deps.local {
        let _ = slot.set(LocalBiz::new(shared.clone(), drain.clone()));
    }

    let grpc = tonic::transport::Server::builder()
        .trace_fn(common::trace::grpc_server_span)
        .layer(tonic::service::InterceptorLayer::new(internal_auth.check()))
        .add_service(grpc::BizService::server(shared.clone(), drain.clone()))
        .serve_with_incoming_shutdown(
            common::grpc::incoming(listeners.grpc),
            drain.clone().cancelled_owned(),
        );
    let tls = common::tls::ServerTls::start(&cfg.tls).map_err(|e| Error::Config(e.to_string()))?;
    let http_scheme = common::advertise::scheme(tls.is_some(), "http", "https");
    let backend_tls = tls.clone().filter(|_| cfg.backend_tls);
    let http = common::http::serve_http_tls(
        listeners.http,
        http::client_app(shared.clone()),
        "biz_http",
        &cfg.http,
        tls,
        &deps.registry,
        drain.clone(),
    );
    let backend = common::http::serve_http_tls(
        listeners.backend,
        http::backend_app(shared.clone()),
        "biz_backend_http",
        &cfg.http,
        backend_tls,
        &deps.registry,
        drain.clone(),
    );
    let ops = async {
        match listeners.ops {
            Some(listener) => {
                let app = common::ops::router(deps.registry.clone(), readiness.clone());
                let limits = common::http::HttpLimits::ops();
                common::http::serve_http(
                    listener,
                    app,
                    "ops",
                    &limits,
                    &deps.registry,
                    drain.clone(),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let mut serving = pin!(async {
        tokio::try_join!(
            async { grpc.await.map_err(Error::Grpc) },
            async { http.await.map_err(Error::Http) },
            async { backend.await.map_err(Error::Http) },
            async { ops.await.map_err(Error::Http) },
        )
    });

    let host = &cfg.advertise_host;
    let node = NodeInfo {
        id: cfg.node_id.clone(),
        grpc_addr: Some(grpc_addr.clone()),
        endpoints: BTreeMap::from([(
            "http".to_owned(),
            common::advertise::listener_url(
                cfg.public_http_url.as_deref(),
                http_scheme,
                http_addr,
                host,
                "",
            ),
        )]),
        ..NodeInfo::default()
    };
    deps.discovery.register(ServiceKind::Biz, node).await?;
    readiness.set(true);
    tracing::info!(node = %cfg.node_id, %grpc_addr, %http_addr, %backend_addr, "Room-biz serving.");

    let stopped_early = tokio::select! {
        result = &mut serving => Some(result),
        () = shutdown.cancelled() => None,
        () = housekeeping(&shared) => None,
        () = shared.backends.rooms.run() => None,
        () = shared.schedules.run(&shared.backends.rooms) => None,
        () = shared.backends.rooms.webhooks.run(shared.backends.store.ledger(), &cfg.node_id) => None,
        () = healing::heal(&*deps.discovery, &shared) => None,
        () = follow_api_keys(&*deps.live_config, &shared) => None,
        () = async {
            match (&archiver, &live_archiving) {
                (Some(archiver), Some(live)) => {
                    tokio::join!(archiver.run(), live.run());
                }
                _ => std::future::pending().await,
            }
        } => None,
    };
    readiness.set(false);
    if let Err(error) = deps
        .discovery
        .deregister(ServiceKind::Biz, &cfg.node_id)
        .await
    {
        tracing::warn!(%error, "Cannot deregister from discovery; the entry will expire.");
    }
    drain.cancel();
    // Waiting long-polls answer now instead of holding the HTTP server's drain.
    shared.longpoll.close();
    if let Some(result) = stopped_early {
        return result.map(drop);
    }
    let grace = Duration::from_millis(cfg.shutdown_grace_ms);
    let stopped = async {
        let result = serving.await;
        shared.longpoll.closed().await;
        result
    };
    match tokio::time::timeout(grace, stopped).await {
        Ok(result) => result.map(drop),
        Err(_) => {
            tracing::warn!(
                ?grace,
                "Requests still running after the grace period; dropping them."
            );
            Ok(())
        }
    }
}

/// Let action handlers drop idle per-user state, forever.
async fn housekeeping(shared: &Shared) {
    let mut tick = tokio::time::interval(Duration::from_millis(shared.cfg.housekeeping_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.actions.housekeep();
        shared.backends.rooms.housekeep();
        shared.key_quota.shrink();
    }
}

fn local_addr(listener: &TcpListener, name: &'static str) -> Result<SocketAddr, Error> {
    listener.local_addr().map_err(|source| Error::LocalAddr {
        listener: name,
        source,
    })
}

#[cfg(test)]
mod tests;
