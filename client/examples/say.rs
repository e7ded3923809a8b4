//! Join a room, post one comment, print the server's reply.
//!
//! Against `roomcast standalone` on its defaults (router `http://127.0.0.1:8600`,
//! dev secret `roomcast-dev-secret`), with `examples/listen.rs` running in the room:
//!
//! ```sh
//! cargo run -p roomcast-client --example say -- "$ROOM" alice hello everyone
//! ```
//!
//! `ROOMCAST_ROUTER_URL` and `ROOMCAST_SECRET` point it elsewhere. The token is minted
//! here from the shared HS256 secret, as the `roomcast` CLI does; a real app gets it
//! from its backend.

use roomcast_client::{Client, ConnectOptions, Error};

/// Lifetime of the dev token this example mints.
const TOKEN_TTL_SECS: i64 = 3600;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(room), Some(uid)) = (args.next(), args.next()) else {
        return Err("usage: say ROOM UID TEXT...".into());
    };
    let text = args.collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err("usage: say ROOM UID TEXT...".into());
    }
    let router_url = env_or("ROOMCAST_ROUTER_URL", "http://127.0.0.1:8600");
    let secret = env_or("ROOMCAST_SECRET", "roomcast-dev-secret");

    let token = common::auth::mint_hs256(&secret, &uid, TOKEN_TTL_SECS)?;
    let opts = ConnectOptions::new(router_url, token).uid(&uid);
    // Nobody reads the events here; the bounded event queue only fills if the room is
    // very busy, and the client is closed right after the reply.
    let (client, _events) = Client::connect(opts).await?;
    let result = async {
        // Only members can act in a room.
        client.join(&room).await?;
        client.comment(&room, &text).await
    }
    .await;
    client.close().await;
    match result {
        // The reply body is room-biz's answer, `{"seq":N}` for a comment.
        Ok(reply) => println!("{}", String::from_utf8_lossy(&reply.body)),
        // A refusal carries the server's code: rate limited, muted, not a member, ...
        Err(Error::Refused { code, message }) => {
            return Err(format!("refused: {code:?} {message}").into());
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}
