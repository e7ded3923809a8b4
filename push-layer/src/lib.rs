//! The push layer: room subscriptions of conn nodes, dense per-room seqs through
//! the message log, and fan-out to conn nodes by notify/pull (small rooms) or
//! in-stream broadcast (large rooms).
//!
//! # Layout
//! - [`config`]: settings and defaults.
//! - `hub`: shared state: rooms, their subscribers, user → node map.
//! - `room`: one room: ring of recent messages, subscribers, mode, publisher
//!   task (given the log and the conn nodes, never the hub).
//! - `conn_nodes`: the attached conn nodes and the non-blocking send to them.
//! - `ring`: the ring buffer of recent messages.
//! - `grpc`: the `Push` gRPC service (proto ↔ hub only).
//! - [`local`]: the same calls in process (standalone).
//! - [`process`]: the `roomcast-push` binary: config, engines, listeners.
//! - `metrics`: Prometheus series.
//! - [`error`]: typed errors.

pub mod config;
mod conn_nodes;
pub mod error;
mod grpc;
mod hub;
pub mod local;
mod metrics;
pub mod process;
mod publish_stream;
mod ring;
mod room;

use std::sync::Arc;
use std::time::Duration;

use common::discovery::{Discovery, NodeInfo, ServiceKind};
use common::push_directory::PushDirectory;
use message_log::MessageLog;
use proto::internal::v1::push_server::PushServer;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::Error;
pub use local::{LocalPush, LocalPushSlot};

/// What a push node needs from its environment.
pub struct Deps {
    /// Node registry.
    pub discovery: Arc<dyn Discovery>,
    /// Message log engine.
    pub log: Arc<dyn MessageLog>,
    /// Where metrics are registered.
    pub registry: prometheus::Registry,
    /// Filled with the node's in-process calls (standalone); `None`: gRPC only.
    pub local: Option<LocalPushSlot>,
}

/// How often the node refreshes its load in discovery.
const LOAD_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Run a push node on `listener` (TCP, or in process for standalone) until
/// `shutdown` is cancelled.
pub async fn run(
    cfg: Config,
    deps: Deps,
    listener: impl Into<common::grpc::GrpcListener>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let listener = listener.into();
    let grpc_addr = listener
        .advertised(&cfg.advertise_host)
        .map_err(Error::Bind)?;
    let metrics = metrics::Metrics::new(&deps.registry);
    let auth = common::grpc::InternalAuth::new(&cfg.internal_token)
        .map_err(|e| Error::Config(e.to_string()))?;
    let directory = PushDirectory::new(deps.discovery.as_ref(), auth.clone());
    let hub = hub::Hub::new(cfg.clone(), deps.log, directory, metrics, shutdown.clone());
    let service = Arc::new(grpc::PushService::new(hub.clone()));
    if let Some(slot) = &deps.local {
        let _ = slot.set(LocalPush::new(service.clone()));
    }

    let node = NodeInfo {
        id: cfg.node_id.clone(),
        grpc_addr: Some(grpc_addr.clone()),
        ..NodeInfo::default()
    };
    deps.discovery
        .register(ServiceKind::Push, node.clone())
        .await?;
    tracing::info!(node_id = %cfg.node_id, %grpc_addr, "Push node serving.");

    let reporter = tokio::spawn(report_load(
        hub.clone(),
        deps.discovery.clone(),
        node,
        shutdown.clone(),
    ));
    let sweeper = tokio::spawn(hub::sweep_idle_rooms(hub.clone(), shutdown.clone()));

    let service = PushServer::from_arc(service).max_decoding_message_size(16 * 1024 * 1024);
    let served = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .trace_fn(common::trace::grpc_server_span)
        .layer(tonic::service::InterceptorLayer::new(auth.check()))
        .add_service(service)
        .serve_with_incoming_shutdown(common::grpc::incoming(listener), shutdown.cancelled_owned())
        .await;

    if let Err(error) = deps
        .discovery
        .deregister(ServiceKind::Push, &cfg.node_id)
        .await
    {
        tracing::warn!(%error, "Could not deregister push node.");
    }
    hub.close();
    let _ = reporter.await;
    let _ = sweeper.await;
    served.map_err(Error::Serve)
}

async fn report_load(
    hub: Arc<hub::Hub>,
    discovery: Arc<dyn Discovery>,
    mut node: NodeInfo,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(LOAD_REPORT_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        node.rooms = hub.room_count() as u64;
        if let Err(error) = discovery.register(ServiceKind::Push, node.clone()).await {
            tracing::warn!(%error, "Could not report push node load.");
        }
    }
}
