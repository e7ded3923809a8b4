//! `roomcast room ...`: the room-biz HTTP API.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::Global;

/// Room commands.
#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a room and print its id alone on stdout.
    Create(CreateArgs),
}

/// `roomcast room create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Room title.
    #[arg(long)]
    pub title: String,
    /// Owner uid (gets the owner role).
    #[arg(long)]
    pub owner: Option<String>,
}

#[derive(Serialize)]
struct CreateRoom<'a> {
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
}

#[derive(Deserialize)]
struct Created {
    room_id: String,
}

/// Run a room command.
pub async fn run(global: &Global, command: RoomCommand) -> anyhow::Result<()> {
    match command {
        RoomCommand::Create(args) => {
            let room_id = create(
                &global.backend_url,
                &global.api_key,
                &args.title,
                args.owner.as_deref(),
            )
            .await?;
            println!("{room_id}");
            Ok(())
        }
    }
}

/// `POST {backend_url}/v1/rooms` with `api_key` → the new room id.
pub async fn create(
    backend_url: &str,
    api_key: &str,
    title: &str,
    owner: Option<&str>,
) -> anyhow::Result<String> {
    let url = format!("{}/v1/rooms", backend_url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(api_key)
        .json(&CreateRoom { title, owner })
        .send()
        .await
        .with_context(|| format!("cannot reach the room-biz backend API at {backend_url}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        bail!(
            "room-biz refused to create the room ({status}): {}",
            api_error_message(&body)
        );
    }
    let created: Created = serde_json::from_str(&body)
        .with_context(|| format!("room-biz answered without a room_id: {body}"))?;
    Ok(created.room_id)
}

/// The message of a room-biz error body (`{"error":{"code":..,"message":..}}`), else the
/// body itself.
fn api_error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| v["error"]["message"].as_str());
    match message {
        Some(message) => message.to_owned(),
        None if body.trim().is_empty() => "no details".to_owned(),
        None => body.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_extracted() {
        let body = r#"{"error":{"code":"bad_request","message":"missing field `title`"}}"#;
        assert_eq!(api_error_message(body), "missing field `title`");
        assert_eq!(api_error_message("plain text\n"), "plain text");
        assert_eq!(api_error_message(""), "no details");
    }

    #[test]
    fn owner_is_omitted_when_absent() {
        let json = serde_json::to_string(&CreateRoom {
            title: "t",
            owner: None,
        })
        .expect("json");
        assert_eq!(json, r#"{"title":"t"}"#);
        let json = serde_json::to_string(&CreateRoom {
            title: "t",
            owner: Some("u"),
        })
        .expect("json");
        assert_eq!(json, r#"{"title":"t","owner":"u"}"#);
    }
}
