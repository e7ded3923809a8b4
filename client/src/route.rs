//! Asking the router where to connect.

use serde::Deserialize;

use crate::error::Error;
use crate::http::HttpClient;
use crate::options::ConnectOptions;
use crate::transport::Transport;

/// The router's answer to `GET /v1/route`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Route {
    /// `long` (connect to an endpoint) or `short` (use HTTP polling).
    pub mode: String,
    /// The chosen conn node.
    #[serde(default)]
    pub node_id: String,
    /// Endpoints in preference order (QUIC first, WebSocket second).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The HTTP polling base URL.
    #[serde(default)]
    pub polling_url: Option<String>,
    /// The heartbeat the node expects.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// How long to wait before asking again (short mode, errors).
    #[serde(default)]
    pub retry_ms: Option<u64>,
    /// Hex SHA-256 of the QUIC endpoint's DER certificate, for pinning (development nodes
    /// use self-signed certificates).
    #[serde(default)]
    pub quic_cert_sha256: Option<String>,
}

/// One way to reach a conn node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Endpoint {
    /// `quic` or `ws`.
    pub transport: String,
    /// `quic://host:port`, or `ws://host:port/v1/ws` (`wss://` when TLS).
    pub url: String,
}

impl Route {
    /// The endpoints to try, in the router's order, that this SDK speaks and `allowed`
    /// lists; empty unless the mode is `long`.
    pub fn long_endpoints(&self, allowed: &[Transport]) -> Vec<(Transport, String)> {
        if self.mode != "long" {
            return Vec::new();
        }
        self.endpoints
            .iter()
            .filter_map(|e| {
                let transport = Transport::from_endpoint(&e.transport)?;
                let usable = match transport {
                    Transport::Ws => e.url.starts_with("ws://") || e.url.starts_with("wss://"),
                    // `quic://host:port`; older routers sent a bare `host:port`.
                    Transport::Quic => e.url.starts_with("quic://") || !e.url.contains("://"),
                    Transport::Polling => false,
                };
                (usable && allowed.contains(&transport)).then(|| (transport, e.url.clone()))
            })
            .collect()
    }

    /// The first endpoint this SDK can use (WebSocket), when the mode is `long`.
    pub fn websocket_url(&self) -> Option<&str> {
        if self.mode != "long" {
            return None;
        }
        self.endpoints
            .iter()
            .find(|e| {
                e.transport == proto::transport::WS
                    && (e.url.starts_with("ws://") || e.url.starts_with("wss://"))
            })
            .map(|e| e.url.as_str())
    }
}

/// `GET {router_url}/v1/route?uid=..&device_id=..&app_version=..&platform=..`.
pub(crate) async fn fetch(http: &HttpClient, opts: &ConnectOptions) -> Result<Route, Error> {
    let base = opts.router_url.trim_end_matches('/');
    let url = url::Url::parse_with_params(
        &format!("{base}/v1/route"),
        [
            ("uid", opts.uid.as_str()),
            ("device_id", opts.device_id.as_str()),
            ("app_version", opts.app_version.as_str()),
            ("platform", opts.platform.as_str()),
        ],
    )
    .map_err(|e| Error::Route(format!("bad router URL {base:?}: {e}")))?;
    let response = http
        .get(&url, None, opts.request_timeout)
        .await
        .map_err(|e| Error::Route(format!("cannot reach {base}: {e}")))?;
    let status = response.status;
    if !status.is_success() {
        return Err(Error::Route(format!(
            "{base} answered {status}: {}",
            response.text().trim()
        )));
    }
    serde_json::from_slice::<Route>(&response.body)
        .map_err(|e| Error::Route(format!("{base} sent an unreadable route: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_first_websocket_endpoint_and_skips_quic() {
        let route: Route = serde_json::from_str(
            r#"{"mode":"long","node_id":"conn-1","endpoints":[
                {"transport":"quic","url":"127.0.0.1:8603"},
                {"transport":"ws","url":"ws://127.0.0.1:8601/v1/ws"}],
                "polling_url":"http://127.0.0.1:8602","heartbeat_ms":30000,"retry_ms":1000}"#,
        )
        .expect("parses");
        assert_eq!(route.websocket_url(), Some("ws://127.0.0.1:8601/v1/ws"));
    }

    #[test]
    fn long_endpoints_keep_the_router_order_and_the_allowed_transports() {
        let route: Route = serde_json::from_str(
            r#"{"mode":"long","node_id":"conn-1","endpoints":[
                {"transport":"quic","url":"quic://127.0.0.1:8604"},
                {"transport":"ws","url":"ws://127.0.0.1:8601/v1/ws"},
                {"transport":"carrier-pigeon","url":"coo://"}],
                "quic_cert_sha256":"ab12","polling_url":"http://127.0.0.1:8602/v1/rooms"}"#,
        )
        .expect("parses");
        assert_eq!(route.quic_cert_sha256.as_deref(), Some("ab12"));
        assert_eq!(
            route.long_endpoints(&[Transport::Quic, Transport::Ws]),
            vec![
                (Transport::Quic, "quic://127.0.0.1:8604".to_owned()),
                (Transport::Ws, "ws://127.0.0.1:8601/v1/ws".to_owned()),
            ]
        );
        // The router's order wins over the options' order.
        assert_eq!(
            route.long_endpoints(&[Transport::Ws, Transport::Quic])[0].0,
            Transport::Quic
        );
        assert_eq!(
            route.long_endpoints(&[Transport::Ws]),
            vec![(Transport::Ws, "ws://127.0.0.1:8601/v1/ws".to_owned())]
        );
        let short = Route {
            mode: "short".into(),
            ..route
        };
        assert!(
            short
                .long_endpoints(&[Transport::Quic, Transport::Ws])
                .is_empty()
        );
    }

    #[test]
    fn short_mode_or_no_websocket_gives_no_url() {
        let short: Route =
            serde_json::from_str(r#"{"mode":"short","endpoints":[]}"#).expect("parses");
        assert_eq!(short.websocket_url(), None);
        let quic_only: Route = serde_json::from_str(
            r#"{"mode":"long","endpoints":[{"transport":"quic","url":"x:1"}]}"#,
        )
        .expect("parses");
        assert_eq!(quic_only.websocket_url(), None);
    }
}
