//! Join a room, keep its state model up to date, and print the stage on every change;
//! optionally raise your hand first.
//!
//! Against `roomcast standalone` on its defaults (router `http://127.0.0.1:8600`,
//! dev secret `roomcast-dev-secret`):
//!
//! ```sh
//! cargo run -p roomcast-client --example room_state -- "$ROOM" carol --raise-hand
//! ```
//!
//! `ROOMCAST_ROUTER_URL` and `ROOMCAST_SECRET` point it elsewhere. The token is minted
//! here from the shared HS256 secret, as the `roomcast` CLI does; a real app gets it
//! from its backend.

use roomcast_client::room_types::Snapshot;
use roomcast_client::{Client, ConnectOptions, RoomEvent, RoomWatcher, TypedEvent};

/// Lifetime of the dev token this example mints.
const TOKEN_TTL_SECS: i64 = 3600;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(room), Some(uid)) = (args.next(), args.next()) else {
        return Err("usage: room_state ROOM UID [--raise-hand]".into());
    };
    let raise_hand = args.next().as_deref() == Some("--raise-hand");
    let router_url = env_or("ROOMCAST_ROUTER_URL", "http://127.0.0.1:8600");
    let secret = env_or("ROOMCAST_SECRET", "roomcast-dev-secret");
    let token = common::auth::mint_hs256(&secret, &uid, TOKEN_TTL_SECS)?;

    let (client, mut events) =
        Client::connect(ConnectOptions::new(router_url, token).uid(&uid)).await?;
    let mut watcher = RoomWatcher::new(&client, &room);
    // UI code holds this receiver: the current view now, then every change.
    let mut view = watcher.subscribe();
    tokio::spawn(async move {
        while view.changed().await.is_ok() {
            print_stage(&view.borrow_and_update());
        }
    });

    client.join(&room).await?;
    if raise_hand {
        let reply = client.room(&room).raise_hand().await?;
        println!("hand raised (changed: {}, v {})", reply.changed, reply.v);
    }

    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                // Typed events for the app's own feed (comments, gifts, ...).
                if let Some(Ok(TypedEvent::Room(update))) = TypedEvent::from_event(&event) {
                    match &update.event {
                        RoomEvent::Comment(c) => println!("💬 {}: {}", c.uid, c.text),
                        RoomEvent::Gift(g) => println!("🎁 {} sent {} × {}", g.uid, g.count, g.gift_id),
                        _ => {}
                    }
                }
                watcher.handle(&event).await;
            }
            // A gap in the state version that did not close: read the state again.
            () = watcher.gap_timer() => watcher.resync().await?,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await;
    Ok(())
}

fn print_stage(view: &Snapshot) {
    let Some(state) = &view.state else { return };
    let hands: Vec<&str> = state.hands.iter().map(|h| h.uid.as_str()).collect();
    println!(
        "v{} {:?} | you: {:?} | moderators {:?} speakers {:?} hands {:?} muted {:?} | {} members, {} likes, {} polls",
        state.v,
        state.state,
        view.role,
        state.moderators,
        state.speakers,
        hands,
        state.muted,
        state.members,
        state.likes,
        state.polls.len(),
    );
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}
