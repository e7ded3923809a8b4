//! `GET /v1/me/inbox` on the client listener with the client's token: notices
//! kept for the user while they were not connected (today `room_started` of
//! rooms they were invited to or interested in), newest first.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::http::HttpClient;
use crate::polling::{HttpError, http_error};

/// The user's inbox.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Inbox {
    /// Whose (the token's uid).
    pub uid: String,
    /// Items, newest first.
    pub items: Vec<InboxItem>,
}

/// One kept notice.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct InboxItem {
    /// The user push it repeats (`room_started`).
    pub kind: String,
    /// When it was kept (Unix ms): pass the newest seen as `after_ms` next time.
    pub at_ms: u64,
    /// The user push's body (`{"room","title","host","started_at_ms"}`).
    pub body: serde_json::Value,
}

/// The inbox URL beside the polling URL (`…/v1/rooms` → `…/v1/me/inbox`).
fn inbox_url(polling_base: &str, after_ms: u64) -> Result<url::Url, String> {
    let mut url = url::Url::parse(polling_base)
        .map_err(|e| format!("bad polling URL {polling_base:?}: {e}"))?;
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| format!("bad polling URL {polling_base:?}: cannot have a path"))?;
        path.pop_if_empty().pop().push("me").push("inbox");
    }
    url.query_pairs_mut()
        .append_pair("after_ms", &after_ms.to_string());
    Ok(url)
}

/// Read the inbox items newer than `after_ms` as the token's uid.
pub(crate) async fn fetch(
    http: &HttpClient,
    polling_base: &str,
    token: &str,
    after_ms: u64,
    timeout: Duration,
) -> Result<Inbox, Error> {
    let url = inbox_url(polling_base, after_ms).map_err(Error::Protocol)?;
    let response = http
        .get(&url, Some(token), timeout)
        .await
        .map_err(|e| Error::Route(format!("inbox read failed: {e}")))?;
    let (status, body) = (response.status, response.body);
    if !status.is_success() {
        return Err(match http_error(status, &String::from_utf8_lossy(&body)) {
            HttpError::Refused { code, message } => Error::Refused { code, message },
            HttpError::Other(message) => Error::Protocol(message),
        });
    }
    serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("unreadable inbox: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_is_beside_the_polling_url_and_parses() {
        assert_eq!(
            inbox_url("http://h:8602/v1/rooms", 17)
                .expect("url")
                .as_str(),
            "http://h:8602/v1/me/inbox?after_ms=17"
        );
        assert_eq!(
            inbox_url("https://edge/biz/v1/rooms/", 0)
                .expect("url")
                .as_str(),
            "https://edge/biz/v1/me/inbox?after_ms=0"
        );
        assert!(inbox_url("not a url", 0).is_err());
        let inbox: Inbox = serde_json::from_str(
            r#"{"uid":"bob","items":[{"kind":"room_started","at_ms":5,
                "body":{"room":"r1","title":"T","host":"alice","started_at_ms":5}}]}"#,
        )
        .expect("parses");
        assert_eq!(inbox.items[0].kind, "room_started");
        assert_eq!(inbox.items[0].body["room"], "r1");
    }
}
