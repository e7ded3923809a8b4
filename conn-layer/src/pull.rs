//! Reading a room's stream from its owning push node.

use std::time::Duration;

use common::push_directory::PushDirectory;
use proto::client::v1::RoomMessage;
use proto::internal::v1::PullRequest;

use crate::cursor::ReadFacts;

/// Push nodes tried after the first when connections to them fail.
const MAX_REROUTES: usize = 2;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
    #[error("no push node: {0}")]
    NoOwner(#[from] common::push_directory::PushDirectoryError),
    #[error("push node refused the pull: {0}")]
    Status(#[from] tonic::Status),
    #[error("push node did not answer in time")]
    Timeout,
}

/// The outcome of reading a range.
#[derive(Debug, Default)]
pub(crate) struct Range {
    pub(crate) epoch: u64,
    pub(crate) head: u64,
    /// Contiguous from `after + 1` unless `truncated`.
    pub(crate) messages: Vec<RoomMessage>,
    pub(crate) truncated: bool,
}

impl Range {
    /// The positions the cursor decides on.
    pub(crate) fn facts(&self) -> ReadFacts {
        ReadFacts {
            epoch: self.epoch,
            head: self.head,
            truncated: self.truncated,
            last: self.messages.last().map(|m| m.seq),
        }
    }
}

/// One pull (`limit == 0` reads only the head).
pub(crate) async fn pull_once(
    directory: &PushDirectory,
    room: &str,
    after: u64,
    limit: u32,
    timeout: Duration,
) -> Result<Range, PullError> {
    let request = PullRequest {
        room: room.to_string(),
        after_seq: after,
        limit,
    };
    // A pull changes nothing: when the owner cannot be connected to (it died
    // and discovery does not know yet), ask the next node in rendezvous
    // order, which serves any room from the log.
    let mut reroutes = 0;
    let reply = loop {
        let mut owner = directory.route(room)?;
        let call = owner.client.pull(common::trace::request(request.clone()));
        match tokio::time::timeout(timeout, call).await {
            Err(_) => return Err(PullError::Timeout),
            Ok(Ok(reply)) => break reply.into_inner(),
            Ok(Err(status)) if common::grpc::never_sent(&status) && reroutes < MAX_REROUTES => {
                directory.suspect(&owner.node_id);
                reroutes += 1;
            }
            Ok(Err(status)) => return Err(status.into()),
        }
    };
    Ok(Range {
        epoch: reply.epoch,
        head: reply.head_seq,
        messages: reply.messages,
        truncated: reply.truncated,
    })
}

/// Everything after `after` up to the head (or `upto`), page after page: each
/// pull returns at most `batch` messages and the push node's byte budget
/// (`pull_bytes_max`, 1 MiB by default), so a history of large messages is
/// many small replies, never one too large to decode. Stops early if the
/// epoch changes between pages.
pub(crate) async fn pull_range(
    directory: &PushDirectory,
    room: &str,
    after: u64,
    upto: Option<u64>,
    batch: u32,
    timeout: Duration,
) -> Result<Range, PullError> {
    let mut out = pull_once(directory, room, after, batch.max(1), timeout).await?;
    if out.truncated || out.messages.is_empty() {
        return Ok(out);
    }
    loop {
        let cursor = out.messages.last().map(|m| m.seq).unwrap_or(after);
        let target = upto.unwrap_or(out.head).min(out.head);
        if cursor >= target {
            break;
        }
        let next = pull_once(directory, room, cursor, batch.max(1), timeout).await?;
        if next.epoch != out.epoch || next.truncated || next.messages.is_empty() {
            break;
        }
        out.head = next.head;
        out.messages.extend(next.messages);
    }
    if let Some(upto) = upto {
        out.messages.retain(|m| m.seq <= upto);
    }
    Ok(out)
}
