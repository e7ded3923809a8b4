//! `GET {polling_url}/{room}/state` on the client listener with the client's token: the
//! room-state refetch of [`crate::room_state`] after a gap in `v`.

use std::time::Duration;

use crate::error::Error;
use crate::http::HttpClient;
use crate::polling::{HttpError, http_error, room_url};
use crate::room_types::Snapshot;

/// Read a room's state as the token's uid (what a join answers).
pub(crate) async fn fetch(
    http: &HttpClient,
    base: &str,
    room: &str,
    token: &str,
    timeout: Duration,
) -> Result<Snapshot, Error> {
    let url = room_url(base, room, "state").map_err(Error::Protocol)?;
    let response = http
        .get(&url, Some(token), timeout)
        .await
        .map_err(|e| Error::Route(format!("state read failed: {e}")))?;
    let (status, body) = (response.status, response.body);
    if !status.is_success() {
        return Err(match http_error(status, &String::from_utf8_lossy(&body)) {
            HttpError::Refused { code, message } => Error::Refused { code, message },
            HttpError::Other(message) => Error::Protocol(message),
        });
    }
    serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("unreadable state: {e}")))
}
