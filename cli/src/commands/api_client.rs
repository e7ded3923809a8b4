//! What `roomcast room` and `roomcast ctl` share to call an HTTP API: the SDK's
//! HTTP client (`http://` and `https://`, rustls with ring) trusting the webpki
//! roots or the `--ca-file` CA, and one-line errors for a server that cannot be
//! reached.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use roomcast_client::TlsTrust;
use roomcast_client::http::{HttpClient, HttpFailure, Url};

/// Bound on each request of these commands.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client trusting the CA file when given, else the webpki roots.
pub fn client(ca_file: Option<&Path>) -> anyhow::Result<HttpClient> {
    let trust = TlsTrust::new(ca_file).context("cannot use --ca-file")?;
    Ok(HttpClient::new(&trust))
}

/// `base` (trailing slashes dropped) followed by `path`, with every `segments`
/// entry escaped as one path segment after it.
pub fn url(base: &str, path: &str, segments: &[&str]) -> anyhow::Result<Url> {
    let text = format!("{}{path}", base.trim_end_matches('/'));
    let mut url = Url::parse(&text).with_context(|| format!("bad URL {base:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("bad URL {base:?}: give an http:// or https:// URL");
    }
    if !segments.is_empty() {
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("bad URL {base:?}"))?
            .extend(segments);
    }
    Ok(url)
}

/// One line for a request that got no answer from `what` at `base`, with a
/// hint when a certificate was refused.
pub fn unreachable(what: &str, base: &str, failure: &HttpFailure) -> anyhow::Error {
    let text = failure.to_string();
    let hint = if text.contains("certificate") {
        " (a private CA? pass --ca-file or set ROOMCAST_CA_FILE)"
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        " (is it an http:// server?)"
    } else if text.contains("invalid HTTP version") {
        " (is it an https:// server?)"
    } else {
        ""
    };
    anyhow::anyhow!("cannot reach {what} at {base}: {text}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_joined_and_segments_escaped() {
        let url = url("https://h:1/", "/v1/rooms", &["a b/c", "end"]).expect("url");
        assert_eq!(url.as_str(), "https://h:1/v1/rooms/a%20b%2Fc/end");
        let error = url_error("ftp://h");
        assert!(error.contains("http:// or https://"), "{error}");
        let error = url_error("not a url");
        assert!(error.contains("bad URL"), "{error}");
    }

    fn url_error(base: &str) -> String {
        url(base, "/v1", &[]).expect_err("refused").to_string()
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let error = client(Some(Path::new("/nonexistent/ca.pem"))).expect_err("missing");
        let text = format!("{error:#}");
        assert!(
            text.contains("--ca-file") && text.contains("/nonexistent/ca.pem"),
            "{text}"
        );
    }
}
