//! Join a room and print every event until Ctrl-C.
//!
//! Against `roomcast standalone` on its defaults (router `http://127.0.0.1:8600`,
//! dev secret `roomcast-dev-secret`):
//!
//! ```sh
//! cargo run --release -p roomcast -- standalone &
//! ROOM=$(cargo run -q --release -p roomcast -- room create --title demo)
//! cargo run -p roomcast-client --example listen -- "$ROOM" bob
//! ```
//!
//! `ROOMCAST_ROUTER_URL` and `ROOMCAST_SECRET` point it elsewhere. The token is minted
//! here from the shared HS256 secret, as the `roomcast` CLI does; a real app gets it
//! from its backend.

use roomcast_client::{Client, ConnectOptions, Event};

/// Lifetime of the dev token this example mints.
const TOKEN_TTL_SECS: i64 = 3600;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(room), uid) = (args.next(), args.next()) else {
        return Err("usage: listen ROOM [UID]".into());
    };
    let uid = uid.unwrap_or_else(|| "example-listener".to_owned());
    let router_url = env_or("ROOMCAST_ROUTER_URL", "http://127.0.0.1:8600");
    let secret = env_or("ROOMCAST_SECRET", "roomcast-dev-secret");

    let token = common::auth::mint_hs256(&secret, &uid, TOKEN_TTL_SECS)?;
    let opts = ConnectOptions::new(router_url, token).uid(&uid);
    // Route, then connect: QUIC or WebSocket as the router offers, HTTP polling if both
    // fail. The first event names the transport.
    let (client, mut events) = Client::connect(opts).await?;
    let joined = client.join(&room).await?;
    println!(
        "joined {} as {uid}: epoch {}, live after seq {}",
        joined.room, joined.epoch, joined.start_seq
    );

    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.next() => event,
        };
        // `None`: the client stopped for good (closed, or the token was refused).
        let Some(event) = event else { break };
        match event {
            // Once each, in seq order per room, across reconnects and transport switches.
            Event::Message { room, message, .. } => println!(
                "{room} #{} {} from {}: {}",
                message.seq,
                message.kind,
                message.sender,
                String::from_utf8_lossy(&message.body)
            ),
            Event::TransportChanged { transport } => println!("transport: {transport}"),
            Event::Connected { node_id, .. } => println!("connected to {node_id}"),
            // Every join completes with one: this program's own join above, and the
            // re-joins with resume{epoch, last_seq} the SDK makes after each reconnect.
            Event::Joined(joined) => {
                println!("joined {} (recovered: {})", joined.room, joined.recovered)
            }
            // Best effort, no seq: presence changes, reaction totals, typing.
            Event::Ephemeral {
                room, kind, body, ..
            } => println!("{room} ~{kind}: {}", String::from_utf8_lossy(&body)),
            Event::Disconnected { reason } => println!("disconnected: {reason}"),
            Event::Left { room, reason } => {
                println!("removed from {room}: {reason}");
                break;
            }
            other => println!("{other:?}"),
        }
    }
    client.close().await;
    Ok(())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}
