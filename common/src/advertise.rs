//! The addresses a node puts in discovery, formatted one way for every
//! service (IPv6 hosts in brackets).

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
}
