//! The WebSocket dial of a bench client: a TCP socket bound to a chosen
//! loopback source address, then the WebSocket handshake with small buffers.
//! Below both [`crate::conn`] (which wraps it as a long connection) and
//! [`crate::client`] (which speaks frames over that connection).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A WebSocket client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Small socket buffers: thousands of clients share one worker process.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Open a WebSocket to `url` (resolved: `addr`) from `source` (bound before
/// connecting, so one process can use the ephemeral ports of several loopback
/// addresses).
pub async fn connect(url: &str, addr: SocketAddr, source: Ipv4Addr) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .with_context(|| format!("bind {source}"))?;
    let tcp = socket
        .connect(addr)
        .await
        .with_context(|| format!("connect {addr} from {source}"))?;
    tcp.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
        .await
        .context("websocket handshake")?;
    Ok(ws)
}
