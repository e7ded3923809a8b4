//! How a link opens its Attach stream to a push node: gRPC, or — for a push
//! node in the same process (standalone) — a call ([`crate::local`]), so each
//! notify costs no protobuf encoding, HTTP/2 frame and the two connection
//! tasks between.

use proto::internal::v1::ConnToPush;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::Ctx;
use crate::local::PushFrames;

/// Open the Attach stream to `node` (at `addr`) with `up` as its request.
pub(crate) async fn open(
    ctx: &Ctx,
    node: &str,
    addr: &str,
    up: mpsc::Receiver<ConnToPush>,
) -> Result<PushFrames, tonic::Status> {
    let up = ReceiverStream::new(up);
    if let Some(local) = ctx
        .local_push
        .as_ref()
        .filter(|local| local.node_id() == node)
    {
        return local.attach(up).await;
    }
    let mut client = match ctx.directory.client_for(node, addr) {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%node, %error, "Bad push node address.");
            return Err(tonic::Status::unavailable(error.to_string()));
        }
    };
    let response = client.attach(up).await?;
    Ok(Box::pin(response.into_inner()))
}
