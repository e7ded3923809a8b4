//! `GET {polling_url}/{room}/state` on the client listener with the client's token: the
//! room-state refetch of [`crate::room_state`] after a gap in `v`.

use std::time::Duration;

use crate::error::Error;
use crate::polling::{HttpError, http_error, room_url};
use crate::room_types::Snapshot;
use crate::route::chain;

/// Read a room's state as the token's uid (what a join answers).
pub(crate) async fn fetch(
    http: &reqwest::Client,
    base: &str,
    room: &str,
    token: &str,
    timeout: Duration,
) -> Result<Snapshot, Error> {
    let url = room_url(base, room, "state").map_err(Error::Protocol)?;
    let response = http
        .get(url)
        .bearer_auth(token)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| Error::Route(format!("state read failed: {}", chain(e.without_url()))))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::Route(format!("state reply: {}", chain(e))))?;
    if !status.is_success() {
        return Err(match http_error(status, &String::from_utf8_lossy(&body)) {
            HttpError::Refused { code, message } => Error::Refused { code, message },
            HttpError::Other(message) => Error::Protocol(message),
        });
    }
    serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("unreadable state: {e}")))
}
