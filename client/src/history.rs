//! `GET {polling_url}/{room}/history` and `/replay` on the client listener with the
//! client's token: pages of a room's durable messages by seq (late joiners, ended
//! rooms) and by offset from the room's start (danmaku over a recording). The server
//! answers from the live log while the room has it, from the archive after.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::http::HttpClient;
use crate::polling::{HttpError, http_error, room_url};

/// Which page to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageRequest {
    /// By seq: with `after_seq`, the oldest `limit` after it (below `before_seq` if
    /// set); otherwise the newest `limit` below `before_seq` (or the newest of all).
    History {
        /// Messages with a smaller seq.
        before_seq: Option<u64>,
        /// Messages with a larger seq.
        after_seq: Option<u64>,
        /// 1 to 1,000 (server default 100).
        limit: Option<usize>,
    },
    /// By offset from the room's start: messages at or after `from_ms`, by offset.
    Replay {
        /// Offset from the start, ms.
        from_ms: i64,
        /// 1 to 1,000 (server default 100).
        limit: Option<usize>,
    },
}

/// One message of a page.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HistoryMessage {
    /// Its seq in the room.
    pub seq: u64,
    /// Message kind (`comment`, `gift`, …).
    pub kind: String,
    /// Sender uid; empty for the app backend.
    pub sender: String,
    /// Publish time, Unix ms.
    pub ts_ms: u64,
    /// `ts_ms` minus the room's start (negative before it).
    pub offset_ms: i64,
    /// `high`, `normal` or `low`.
    pub priority: String,
    /// The body as JSON, or `{"base64": "…"}` for a body that is not JSON.
    pub body: serde_json::Value,
}

/// A page of history or replay.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HistoryPage {
    /// The room.
    pub room: String,
    /// `live` (the room's live log) or `archive`.
    pub source: String,
    /// Where offsets count from, Unix ms.
    pub started_at_ms: u64,
    /// Oldest first (history), or by offset (replay).
    pub messages: Vec<HistoryMessage>,
    /// The live log no longer reaches back as far as asked.
    pub truncated: bool,
}

/// The URL of `request` for `room` under the polling URL `base`.
pub(crate) fn page_url(base: &str, room: &str, request: PageRequest) -> Result<url::Url, String> {
    let (leaf, pairs) = match request {
        PageRequest::History {
            before_seq,
            after_seq,
            limit,
        } => (
            "history",
            [
                ("before_seq", before_seq.map(|v| v.to_string())),
                ("after_seq", after_seq.map(|v| v.to_string())),
                ("limit", limit.map(|v| v.to_string())),
            ],
        ),
        PageRequest::Replay { from_ms, limit } => (
            "replay",
            [
                ("from_ms", Some(from_ms.to_string())),
                ("limit", limit.map(|v| v.to_string())),
                ("", None),
            ],
        ),
    };
    let mut url = room_url(base, room, leaf)?;
    for (name, value) in pairs {
        if let Some(value) = value {
            url.query_pairs_mut().append_pair(name, &value);
        }
    }
    Ok(url)
}

/// Read one page as the token's uid.
pub(crate) async fn fetch(
    http: &HttpClient,
    base: &str,
    room: &str,
    request: PageRequest,
    token: &str,
    timeout: Duration,
) -> Result<HistoryPage, Error> {
    let url = page_url(base, room, request).map_err(Error::Protocol)?;
    let response = http
        .get(&url, Some(token), timeout)
        .await
        .map_err(|e| Error::Route(format!("history read failed: {e}")))?;
    let (status, body) = (response.status, response.body);
    if !status.is_success() {
        return Err(match http_error(status, &String::from_utf8_lossy(&body)) {
            HttpError::Refused { code, message } => Error::Refused { code, message },
            HttpError::Other(message) => Error::Protocol(message),
        });
    }
    serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("unreadable history: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_urls_carry_only_the_given_parameters() {
        let url = page_url(
            "http://h:1/v1/rooms",
            "r1",
            PageRequest::History {
                before_seq: Some(50),
                after_seq: None,
                limit: Some(10),
            },
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "http://h:1/v1/rooms/r1/history?before_seq=50&limit=10"
        );
        let url = page_url(
            "http://h:1/v1/rooms/",
            "r1",
            PageRequest::Replay {
                from_ms: -5,
                limit: None,
            },
        )
        .expect("url");
        assert_eq!(url.as_str(), "http://h:1/v1/rooms/r1/replay?from_ms=-5");
    }
}
