//! `roomcast room ...`: the room-biz backend API (API key), over `http://` or
//! `https://` (`--ca-file` for a private CA).

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use roomcast_client::http::{Auth, HttpClient, HttpResponse, Method};
use serde::{Deserialize, Serialize};

use super::Global;
use super::api_client::{self, REQUEST_TIMEOUT};

/// Room commands.
#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a room and print its id alone on stdout.
    Create(CreateArgs),
    /// End a room and print its final summary (JSON).
    End {
        /// The room id (`roomcast room create` printed it).
        room_id: String,
    },
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
    let api = BackendApi::new(global)?;
    match command {
        RoomCommand::Create(args) => {
            let room_id = api.create(&args.title, args.owner.as_deref()).await?;
            println!("{room_id}");
        }
        RoomCommand::End { room_id } => {
            let ended = api.end(&room_id).await?;
            let text = serde_json::to_string_pretty(&ended).unwrap_or_else(|_| ended.to_string());
            println!("{text}");
        }
    }
    Ok(())
}

/// The room-biz backend API at one base URL, with one API key.
struct BackendApi {
    http: HttpClient,
    base: String,
    api_key: String,
}

impl BackendApi {
    fn new(global: &Global) -> anyhow::Result<Self> {
        Ok(Self {
            http: api_client::client(global.ca_file.as_deref())?,
            base: global.backend_url.clone(),
            api_key: global.api_key.clone(),
        })
    }

    /// `POST /v1/rooms` → the new room id.
    async fn create(&self, title: &str, owner: Option<&str>) -> anyhow::Result<String> {
        let body = CreateRoom { title, owner };
        let answer = self
            .send(Method::POST, "/v1/rooms", &[], Some(&body))
            .await?;
        if !answer.status.is_success() {
            bail!(
                "room-biz refused to create the room ({}): {}",
                answer.status,
                api_error_message(&answer.text())
            );
        }
        let created: Created = serde_json::from_slice(&answer.body)
            .with_context(|| format!("room-biz answered without a room_id: {}", answer.text()))?;
        Ok(created.room_id)
    }

    /// `POST /v1/rooms/{id}/end` → the answer (`room_id`, `state`, `summary`).
    async fn end(&self, room_id: &str) -> anyhow::Result<serde_json::Value> {
        let answer = self
            .send::<()>(Method::POST, "/v1/rooms", &[room_id, "end"], None)
            .await?;
        if !answer.status.is_success() {
            bail!(
                "room-biz refused to end room {room_id} ({}): {}",
                answer.status,
                api_error_message(&answer.text())
            );
        }
        serde_json::from_slice(&answer.body)
            .with_context(|| format!("room-biz sent an unreadable answer: {}", answer.text()))
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        segments: &[&str],
        body: Option<&B>,
    ) -> anyhow::Result<HttpResponse> {
        let url = api_client::url(&self.base, path, segments).context("bad --backend-url")?;
        self.http
            .request(
                method,
                &url,
                Auth::Bearer(&self.api_key),
                body,
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|failure| {
                api_client::unreachable("the room-biz backend API", &self.base, &failure)
            })
    }
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
