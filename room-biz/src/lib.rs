//! Room business: rooms, join authorization, client actions, and the HTTP API
//! app backends call.
//!
//! Conn nodes call the `Biz` gRPC service (may this user join, a member left,
//! a stream of client actions); room-biz validates, updates room state through
//! a [`RoomStore`] and publishes through the push API of the room's push owner.
//!
//! # Layout
//! - [`config`]: [`Config`] and its `DEFAULT_*` values.
//! - [`store`]: the [`RoomStore`] engine trait (rooms, members), [`MemoryRoomStore`]
//!   and [`RedisRoomStore`] (standalone or Cluster; key layout in its docs).
//! - [`domain`]: the business rules, pure and synchronous: roles, the
//!   permission matrix, guarded transitions, polls, rates, the snapshot JSON.
//! - `rooms`: the room service: checks, atomic changes, events, lifecycle
//!   (start, end, auto-end), like/reaction aggregation, poll tallies, timers,
//!   join/leave events.
//! - `join`: join authorization and the snapshot a member starts from.
//! - `actions`: the action table; one handler per action.
//! - `pusher`: the push API behind a small trait, so handlers test without gRPC.
//! - `grpc`: the `Biz` service, proto ↔ domain.
//! - `http`: the JSON HTTP API, merged with `/metrics`, `/livez`, `/readyz`.
//! - `poll`: HTTP for clients without a long connection: long polling through
//!   a per-node cache of polled rooms, and actions.
//! - `presence`: drops the room sessions of conn nodes that left discovery.
//! - `metrics`, `shared`, `ids`: series, per-process state, random ids.
//! - [`error`]: every error type.

pub mod config;
pub mod domain;
pub mod error;
pub mod store;

mod actions;
mod grpc;
mod http;
mod ids;
mod join;
mod metrics;
mod poll;
mod presence;
pub mod process;
mod pusher;
mod rooms;
mod shared;
#[cfg(test)]
mod test_util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use common::advertise::advertised;
use common::discovery::{Discovery, NodeInfo, ServiceKind};
use common::ops::Readiness;
use common::push_directory::PushDirectory;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::config::Config;
pub use crate::error::{Error, StoreError};
pub use crate::store::{
    DEFAULT_KEY_PREFIX, MemoryRoomStore, NewRoom, RedisRoomStore, Role, Room, RoomState, RoomStore,
};

use crate::pusher::DirectoryPusher;
use crate::shared::Shared;

/// The sockets room-biz serves, bound by the caller (port 0 in tests).
pub struct Listeners {
    /// The HTTP API and `/metrics`, `/livez`, `/readyz`.
    pub http: TcpListener,
    /// The internal `Biz` gRPC service.
    pub grpc: TcpListener,
}

/// What room-biz runs on.
pub struct Deps {
    /// Node registry: room-biz registers itself and finds push nodes.
    pub discovery: Arc<dyn Discovery>,
    /// Where metrics are registered.
    pub registry: prometheus::Registry,
    /// Room state.
    pub store: Arc<dyn RoomStore>,
}

/// Serve gRPC and HTTP on `listeners` until `shutdown` is cancelled.
///
/// While serving, it also watches conn nodes in discovery and removes the room
/// sessions of those that leave (see `presence`).
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
    let grpc_addr = local_addr(&listeners.grpc, "grpc")?;
    let http_addr = local_addr(&listeners.http, "http")?;
    let pusher = DirectoryPusher::new(
        PushDirectory::new(&*deps.discovery),
        Duration::from_millis(cfg.push_timeout_ms),
    );
    let shared = Arc::new(Shared::new(
        cfg,
        deps.store,
        Arc::new(pusher),
        &deps.registry,
    )?);
    let cfg = &shared.cfg;
    let readiness = Readiness::default();
    // Cancelled only after deregistering, so peers stop sending before we stop serving.
    let drain = CancellationToken::new();

    let grpc = tonic::transport::Server::builder()
        .add_service(grpc::BizService::server(shared.clone(), drain.clone()))
        .serve_with_incoming_shutdown(
            common::grpc::incoming(listeners.grpc),
            drain.clone().cancelled_owned(),
        );
    let app = http::app(
        shared.clone(),
        common::ops::router(deps.registry, readiness.clone()),
    );
    let http = common::ops::serve(listeners.http, app, drain.clone());
    let mut serving = pin!(async {
        tokio::try_join!(async { grpc.await.map_err(Error::Grpc) }, async {
            http.await.map_err(Error::Http)
        },)
    });

    let host = &cfg.advertise_host;
    let node = NodeInfo {
        id: cfg.node_id.clone(),
        grpc_addr: Some(advertised(grpc_addr, host)),
        endpoints: BTreeMap::from([(
            "http".to_owned(),
            format!("http://{}", advertised(http_addr, host)),
        )]),
        ..NodeInfo::default()
    };
    deps.discovery.register(ServiceKind::Biz, node).await?;
    readiness.set(true);
    tracing::info!(node = %cfg.node_id, %grpc_addr, %http_addr, "Room-biz serving.");

    let stopped_early = tokio::select! {
        result = &mut serving => Some(result),
        () = shutdown.cancelled() => None,
        () = housekeeping(&shared) => None,
        () = shared.backends.rooms.run() => None,
        () = presence::heal(&*deps.discovery, &shared) => None,
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
    shared.poll.close();
    if let Some(result) = stopped_early {
        return result.map(drop);
    }
    let grace = Duration::from_millis(cfg.shutdown_grace_ms);
    let stopped = async {
        let result = serving.await;
        shared.poll.closed().await;
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
