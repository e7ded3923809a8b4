//! A scripted live-audio room session through real sockets: schedule, invite,
//! interest, start, join, raise hand, invite to speak, accept, mute, poll with
//! votes, gift, comments, likes, kick, end. After each step every client's view
//! (its join snapshot plus the durable events it received) equals the server's
//! room state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use integration_tests::Cluster;
use roomcast_client::{Client, Code, Event, Events};
use serde_json::{Value, json};

/// What a client knows of the room, rebuilt from its snapshot and events.
#[derive(Debug, Default, PartialEq)]
struct View {
    state: String,
    speakers: BTreeSet<String>,
    moderators: BTreeSet<String>,
    hands: BTreeSet<String>,
    muted: BTreeMap<String, String>,
    polls: BTreeMap<String, (String, Option<Vec<u64>>)>,
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl View {
    fn from_state(s: &Value) -> Self {
        let mut view = View {
            state: s["state"].as_str().unwrap_or_default().to_string(),
            speakers: strings(&s["speakers"]),
            moderators: strings(&s["moderators"]),
            hands: s["hands"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["uid"].as_str().map(str::to_string))
                .collect(),
            muted: s["muted"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|m| (k.clone(), m.to_string())))
                .collect(),
            polls: BTreeMap::new(),
        };
        for poll in s["polls"].as_array().into_iter().flatten() {
            view.apply_poll(poll);
        }
        view
    }

    fn apply_poll(&mut self, poll: &Value) {
        let id = poll["poll_id"].as_str().unwrap_or_default().to_string();
        let state = poll["state"].as_str().unwrap_or_default().to_string();
        let tallies = (state == "closed").then(|| {
            poll["tallies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect()
        });
        self.polls.insert(id, (state, tallies));
    }

    fn apply(&mut self, kind: &str, body: &Value) {
        match kind {
            "room_started" => self.state = "live".into(),
            "room_ended" => self.state = "ended".into(),
            "poll_opened" | "poll_closed" => self.apply_poll(&body["poll"]),
            _ => {}
        }
        let user = &body["user"];
        if let Some(uid) = user["uid"].as_str() {
            self.speakers.remove(uid);
            self.moderators.remove(uid);
            match user["role"].as_str() {
                Some("speaker") => {
                    self.speakers.insert(uid.to_string());
                }
                Some("moderator") => {
                    self.moderators.insert(uid.to_string());
                }
                _ => {}
            }
            if user["hand_raised_at_ms"].is_u64() {
                self.hands.insert(uid.to_string());
            } else {
                self.hands.remove(uid);
            }
            match user["muted"].as_str() {
                Some(m) => {
                    self.muted.insert(uid.to_string(), m.to_string());
                }
                None => {
                    self.muted.remove(uid);
                }
            }
        }
    }
}

struct Member {
    uid: String,
    client: Client,
    events: Events,
    view: Option<View>,
    user_pushes: Vec<String>,
    /// Removed from the room by the server (`Left`), with the reason.
    left: Option<String>,
}

impl Member {
    /// Apply what arrived, without waiting.
    async fn drain(&mut self, room: &str) -> anyhow::Result<()> {
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(1), self.events.next()).await
        {
            match event {
                Event::Joined(j) if j.room == room => {
                    let state: Value =
                        serde_json::from_slice(&j.snapshot.map(|s| s.state).unwrap_or_default())?;
                    self.view = Some(View::from_state(&state));
                }
                Event::Message {
                    room: r, message, ..
                } if r == room => {
                    let body: Value = serde_json::from_slice(&message.body).unwrap_or(Value::Null);
                    if let Some(view) = self.view.as_mut() {
                        view.apply(&message.kind, &body);
                    }
                }
                Event::Ephemeral { room: r, kind, .. } if r.is_empty() => {
                    self.user_pushes.push(kind)
                }
                Event::Left { room: r, reason } if r == room => self.left = Some(reason),
                _ => {}
            }
        }
        Ok(())
    }

    async fn act(
        &self,
        room: &str,
        action: &str,
        payload: Value,
    ) -> Result<Value, roomcast_client::Error> {
        let reply = self
            .client
            .publish(
                room,
                action,
                serde_json::to_vec(&payload).unwrap_or_default(),
            )
            .await?;
        Ok(serde_json::from_slice(&reply.body).unwrap_or(Value::Null))
    }
}

async fn server_view(http: &reqwest::Client, biz: &str, room: &str) -> anyhow::Result<View> {
    let snapshot: Value = http
        .get(format!("{biz}/v1/rooms/{room}/state"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(View::from_state(&snapshot["state"]))
}

/// Every member's view converges to the server's.
async fn converge(
    http: &reqwest::Client,
    biz: &str,
    room: &str,
    members: &mut [&mut Member],
    step: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let server = server_view(http, biz, room).await?;
        let mut all = true;
        for m in members.iter_mut() {
            m.drain(room).await?;
            if m.view.as_ref() != Some(&server) {
                all = false;
            }
        }
        if all {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let views: Vec<(&str, &Option<View>)> =
                members.iter().map(|m| (m.uid.as_str(), &m.view)).collect();
            anyhow::bail!(
                "after {step}: views differ from the server\nserver: {server:?}\nclients: {views:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn refused(result: Result<Value, roomcast_client::Error>, code: Code) -> anyhow::Result<()> {
    match result {
        Err(roomcast_client::Error::Refused { code: c, .. }) if c == code => Ok(()),
        other => anyhow::bail!("expected {code:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_room_session_through_real_sockets() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let http = cluster.backend();
    let biz = cluster.sys.backend_url.clone();
    let connect = async |uid: &str| -> anyhow::Result<Member> {
        let (client, events) = cluster.client(uid).await?;
        Ok(Member {
            uid: uid.into(),
            client,
            events,
            view: None,
            user_pushes: Vec::new(),
            left: None,
        })
    };
    let mut host = connect("host").await?;
    let mut alice = connect("alice").await?;
    let mut bob = connect("bob").await?;
    let mut carol = connect("carol").await?;
    // User pushes reach users the push layer knows to be online; presence
    // travels from the conn node asynchronously, so wait for it.
    cluster
        .wait_metric("roomcast_push_online_users", 4.0)
        .await?;

    // Schedule with an invite: alice is told.
    let scheduled_at = common::time::now_ms() + 3_600_000;
    let created: Value = http
        .post(format!("{biz}/v1/rooms"))
        .json(&json!({ "title": "Night talk", "owner": "host", "scheduled_at_ms": scheduled_at, "invite": ["alice"] }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let room = created["room_id"].as_str().unwrap_or_default().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !alice.user_pushes.iter().any(|k| k == "room_invite") {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "alice got no invite push"
        );
        alice.drain(&room).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Interest before the start; the host starts the room.
    bob.client.join(room.as_str()).await?;
    bob.act(&room, "interest", json!({})).await?;
    host.client.join(room.as_str()).await?;
    converge(&http, &biz, &room, &mut [&mut host, &mut bob], "schedule").await?;
    host.act(&room, "start_room", json!({})).await?;
    converge(&http, &biz, &room, &mut [&mut host, &mut bob], "start").await?;
    assert_eq!(host.view.as_ref().map(|v| v.state.as_str()), Some("live"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !bob.user_pushes.iter().any(|k| k == "room_started") {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the interested user got no start push"
        );
        bob.drain(&room).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    alice.client.join(room.as_str()).await?;
    carol.client.join(room.as_str()).await?;
    let mut everyone = [&mut host, &mut alice, &mut bob, &mut carol];
    converge(&http, &biz, &room, &mut everyone, "join").await?;

    // Stage: hand, invite to speak, accept, mute by a moderator.
    everyone[1].act(&room, "raise_hand", json!({})).await?;
    converge(&http, &biz, &room, &mut everyone, "raise hand").await?;
    everyone[0]
        .act(&room, "invite_speaker", json!({ "uid": "alice" }))
        .await?;
    converge(&http, &biz, &room, &mut everyone, "invite").await?;
    everyone[1].act(&room, "accept_invite", json!({})).await?;
    converge(&http, &biz, &room, &mut everyone, "accept").await?;
    assert!(
        everyone[2]
            .view
            .as_ref()
            .is_some_and(|v| v.speakers.contains("alice"))
    );
    everyone[0]
        .act(&room, "mute", json!({ "uid": "alice" }))
        .await?;
    converge(&http, &biz, &room, &mut everyone, "mute").await?;
    refused(
        everyone[1].act(&room, "unmute", json!({})).await,
        Code::Forbidden,
    )?;

    // Poll with votes; one vote per user.
    let opened = everyone[0]
        .act(
            &room,
            "poll_open",
            json!({ "question": "More jazz?", "options": ["yes", "no"] }),
        )
        .await?;
    let poll_id = opened["poll"]["poll_id"]
        .as_str()
        .or(opened["poll_id"].as_str())
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(!poll_id.is_empty(), "poll_open answered {opened}");
    everyone[1]
        .act(&room, "vote", json!({ "poll_id": poll_id, "option": 0 }))
        .await?;
    everyone[2]
        .act(&room, "vote", json!({ "poll_id": poll_id, "option": 1 }))
        .await?;
    everyone[3]
        .act(&room, "vote", json!({ "poll_id": poll_id, "option": 1 }))
        .await?;
    refused(
        everyone[2]
            .act(&room, "vote", json!({ "poll_id": poll_id, "option": 0 }))
            .await,
        Code::BadRequest,
    )?;
    everyone[0]
        .act(&room, "poll_close", json!({ "poll_id": poll_id }))
        .await?;
    converge(&http, &biz, &room, &mut everyone, "poll").await?;
    assert_eq!(
        everyone[3]
            .view
            .as_ref()
            .and_then(|v| v.polls.get(&poll_id))
            .cloned(),
        Some(("closed".to_string(), Some(vec![1, 2])))
    );

    // Gifts, comments, likes.
    everyone[2]
        .act(&room, "gift", json!({ "gift_id": "rose", "count": 2 }))
        .await?;
    everyone[3]
        .client
        .comment(room.as_str(), "hello stage")
        .await?;
    for _ in 0..3 {
        everyone[2]
            .act(&room, "like", json!({ "count": 50 }))
            .await?;
    }
    converge(&http, &biz, &room, &mut everyone, "gifts and comments").await?;

    // Kick: carol is out and cannot come back.
    everyone[0]
        .act(&room, "kick", json!({ "uid": "carol" }))
        .await?;
    let [host, alice, bob, carol] = everyone;
    converge(
        &http,
        &biz,
        &room,
        &mut [&mut *host, &mut *alice, &mut *bob],
        "kick",
    )
    .await?;

    // Her sockets stop receiving the room: the server removes her.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while carol.left.is_none() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the kicked user was not removed from the room"
        );
        carol.drain(&room).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(carol.user_pushes.iter().any(|k| k == "kicked"));
    // Whatever she sends to the room now is refused.
    match carol
        .act(&room, "comment", json!({ "text": "let me back" }))
        .await
    {
        Err(roomcast_client::Error::Refused {
            code: Code::NotJoined | Code::Forbidden,
            ..
        }) => {}
        other => anyhow::bail!("a kicked user could still comment: {other:?}"),
    }
    let (outsider, _outsider_events) = cluster.client("carol").await?;
    match outsider.join(room.as_str()).await {
        Err(roomcast_client::Error::Refused {
            code: Code::Forbidden,
            ..
        }) => {}
        other => anyhow::bail!("a kicked user rejoined: {other:?}"),
    }

    // Summary counts what happened; the end is final.
    let summary: Value = http
        .get(format!("{biz}/v1/rooms/{room}/summary"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert!(summary.to_string().contains("\"gifts\""), "{summary}");
    host.act(&room, "end_room", json!({})).await?;
    converge(
        &http,
        &biz,
        &room,
        &mut [&mut *host, &mut *alice, &mut *bob],
        "end",
    )
    .await?;
    assert_eq!(host.view.as_ref().map(|v| v.state.as_str()), Some("ended"));
    refused(
        bob.act(&room, "raise_hand", json!({})).await,
        Code::RoomEnded,
    )?;
    cluster.stop().await
}
