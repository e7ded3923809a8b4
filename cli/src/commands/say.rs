//! `roomcast say`: join a room, post one comment, print the reply.

use anyhow::Context as _;
use clap::Args;

use super::Global;

/// `roomcast say --room ID --uid U TEXT...`.
#[derive(Debug, Clone, Args)]
pub struct SayArgs {
    /// Room id.
    #[arg(long)]
    pub room: String,
    /// Who speaks (a dev token is minted for this uid).
    #[arg(long)]
    pub uid: String,
    /// The comment; several words are joined with spaces.
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
}

/// Connect, join, comment, print the reply body (`{"seq":N}`).
pub async fn run(global: &Global, args: SayArgs) -> anyhow::Result<()> {
    let text = args.text.join(" ");
    let (client, _events) = super::connect(global, &args.uid).await?;
    let result = async {
        client
            .join(&args.room)
            .await
            .with_context(|| format!("cannot join room {}", args.room))?;
        client
            .comment(&args.room, &text)
            .await
            .context("comment refused")
    }
    .await;
    client.close().await;
    let reply = result?;
    let body = String::from_utf8_lossy(&reply.body);
    println!(
        "{}",
        if body.trim().is_empty() {
            "{}"
        } else {
            body.trim()
        }
    );
    Ok(())
}
