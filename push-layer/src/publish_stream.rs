//! The `Publish` stream: PushRoom calls from one room-biz node on one
//! long-lived stream, each answered by id as it finishes.
//!
//! A unary PushRoom costs an HTTP/2 stream of its own (headers both ways,
//! trailers, a server task); on this stream a call is one message each way.
//! Calls are served concurrently, started in arrival order (so two calls for
//! one room reach its queue in the order they were sent). When the node
//! starts shutting down it reads no more calls, answers the ones in flight
//! and ends the stream; the caller opens a new one elsewhere.

use std::future::Future;
use std::pin::Pin;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt as _};
use proto::internal::v1::{
    PublishCall, PublishError, PublishResult, PushRoomReply, PushRoomRequest, publish_result,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument as _;

/// The results of one Publish stream, for its caller.
pub type PublishStream =
    Pin<Box<dyn Stream<Item = Result<PublishResult, Status>> + Send + 'static>>;

/// Results waiting for the stream to take them; a full buffer stops the
/// reading of calls until the caller reads again.
const RESULTS_BUFFER: usize = 1024;

/// Calls served at once on one stream; at the cap, the next call is read
/// when one finishes (the caller's stream backs up, then its own queue).
const MAX_IN_FLIGHT: usize = 4096;

/// The span name of one call: the same as a unary PushRoom's server span.
const CALL_SPAN: &str = "/roomcast.internal.v1.Push/PushRoom";

/// Serve the calls of one Publish stream, each with `push_room` (the unary
/// PushRoom's body), until the caller closes it or `stopping` is cancelled.
pub(crate) fn serve<S, F, Fut>(
    mut calls: S,
    stopping: CancellationToken,
    push_room: F,
) -> PublishStream
where
    S: Stream<Item = Result<PublishCall, Status>> + Send + Unpin + 'static,
    F: Fn(PushRoomRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<PushRoomReply, Status>> + Send + 'static,
{
    let (results, out) = mpsc::channel(RESULTS_BUFFER);
    tokio::spawn(async move {
        let mut in_flight = FuturesUnordered::new();
        let mut reading = true;
        loop {
            tokio::select! {
                call = calls.next(), if reading && in_flight.len() < MAX_IN_FLIGHT => match call {
                    Some(Ok(call)) => in_flight.push(serve_call(&push_room, call)),
                    Some(Err(status)) => {
                        tracing::debug!(%status, "Publish stream failed.");
                        reading = false;
                    }
                    None => reading = false,
                },
                Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                    if results.send(Ok(result)).await.is_err() {
                        // The caller is gone: nobody reads what is left.
                        break;
                    }
                }
                _ = stopping.cancelled(), if reading => reading = false,
                else => break,
            }
        }
    });
    Box::pin(ReceiverStream::new(out))
}

/// One call's outcome, under a span continuing the caller's trace.
async fn serve_call<F, Fut>(push_room: &F, call: PublishCall) -> PublishResult
where
    F: Fn(PushRoomRequest) -> Fut,
    Fut: Future<Output = Result<PushRoomReply, Status>>,
{
    let span = if call.traceparent.is_empty() {
        tracing::Span::none()
    } else {
        let span = common::span!(
            "grpc.server",
            otel.name = CALL_SPAN,
            otel.kind = "server",
            rpc.system = "grpc",
        );
        common::trace::follow(&span, &call.traceparent);
        span
    };
    let outcome = match call.request {
        Some(request) => push_room(request).instrument(span).await,
        None => Err(Status::invalid_argument("a publish call without a request")),
    };
    PublishResult {
        id: call.id,
        outcome: Some(match outcome {
            Ok(reply) => publish_result::Outcome::Reply(reply),
            Err(status) => publish_result::Outcome::Error(PublishError {
                code: status.code() as i32,
                message: status.message().to_owned(),
            }),
        }),
    }
}
