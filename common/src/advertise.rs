//! The addresses a node puts in discovery, formatted one way for every
//! service (IPv6 hosts in brackets), and the URLs it advertises to clients:
//! a configured public URL (a node behind a TLS-terminating load balancer
//! advertises `wss://lb.example/v1/ws`), else its own listener with the
//! scheme it speaks (`wss`/`https` when it serves TLS itself).

use std::net::{IpAddr, SocketAddr};

/// `addr` as peers should dial it: an unspecified IP (`0.0.0.0`, `::`) is
/// replaced by `host`; a specific IP is what peers can reach, so it is kept.
/// An IPv6 `host` is bracketed (`[fd00::5]:8602`).
pub fn advertised(addr: SocketAddr, host: &str) -> String {
    if addr.ip().is_unspecified() {
        host_port(host, addr.port())
    } else {
        addr.to_string()
    }
}

/// `host:port`, with an IPv6 literal `host` bracketed (already bracketed
/// hosts and names are used as they are).
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// The URL clients are handed for a listener bound to `addr`: `public` when
/// configured, else `{scheme}://{host:port}{path}` (see [`advertised`]).
pub fn listener_url(
    public: Option<&str>,
    scheme: &str,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> String {
    match public {
        Some(url) => url.to_owned(),
        None => format!("{scheme}://{}{path}", advertised(addr, host)),
    }
}

/// The scheme of a listener: `secure` when it serves TLS itself.
pub fn scheme(tls: bool, plain: &'static str, secure: &'static str) -> &'static str {
    if tls { secure } else { plain }
}

/// Why a configured public URL cannot be advertised: it must be absolute,
/// with one of `schemes` and a host.
pub fn check_public_url(setting: &str, url: &str, schemes: &[&str]) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{setting} = {url:?} {why} (expected {}://host[:port][/path])",
            schemes.join("|")
        ))
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("is not an absolute URL");
    };
    if !schemes.contains(&scheme) {
        return bad("has an unsupported scheme");
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return bad("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_take_the_host_and_ipv6_is_bracketed() {
        let any: SocketAddr = "0.0.0.0:8602".parse().expect("addr");
        let any6: SocketAddr = "[::]:8602".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        let local6: SocketAddr = "[::1]:9000".parse().expect("addr");
        assert_eq!(advertised(any, "10.0.0.5"), "10.0.0.5:8602");
        assert_eq!(advertised(any6, "fd00::5"), "[fd00::5]:8602");
        assert_eq!(advertised(any, "[fd00::5]"), "[fd00::5]:8602");
        assert_eq!(advertised(any, "conn-1.example"), "conn-1.example:8602");
        assert_eq!(advertised(local, "10.0.0.5"), "127.0.0.1:9000");
        assert_eq!(advertised(local6, "10.0.0.5"), "[::1]:9000");
        assert_eq!(host_port("::1", 443), "[::1]:443");
        assert_eq!(host_port("127.0.0.1", 443), "127.0.0.1:443");
    }

    #[test]
    fn public_urls_win_and_otherwise_the_scheme_follows_tls() {
        let any: SocketAddr = "0.0.0.0:8601".parse().expect("addr");
        assert_eq!(
            listener_url(None, scheme(true, "ws", "wss"), any, "conn-1", "/v1/ws"),
            "wss://conn-1:8601/v1/ws"
        );
        assert_eq!(
            listener_url(None, scheme(false, "ws", "wss"), any, "conn-1", "/v1/ws"),
            "ws://conn-1:8601/v1/ws"
        );
        let lb = "wss://lb.example/conn-1/v1/ws";
        assert_eq!(listener_url(Some(lb), "ws", any, "conn-1", "/v1/ws"), lb);
        check_public_url("public_ws_url", lb, &["ws", "wss"]).expect("good");
        for bad in [
            "lb.example/v1/ws",
            "https://lb.example/v1/ws",
            "wss:///v1/ws",
        ] {
            let error = check_public_url("public_ws_url", bad, &["ws", "wss"]).expect_err(bad);
            assert!(error.contains("public_ws_url"), "{error}");
        }
    }
}
