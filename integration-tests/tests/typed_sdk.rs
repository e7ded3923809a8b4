//! The Rust SDK's typed layer against a real in-process system: typed actions drive a
//! stage story, and the room-state model fed by one client's events converges to what
//! `GET /v1/rooms/{id}/state` answers for that client.

use std::time::Duration;

use anyhow::{Context as _, bail};
use integration_tests::{Cluster, PATIENCE};
use roomcast_client::room_types::{Lifecycle, Mute, PollState, Role, RoomStateJson};
use roomcast_client::{Client, Code, Error, Events, RoomWatcher, Snapshot};
use tokio::sync::watch;
use tokio::time::Instant;

/// Feed `events` to a watcher of `room` until the client closes; the view comes back.
fn watch_room(client: &Client, mut events: Events, room: &str) -> watch::Receiver<Snapshot> {
    let mut watcher = RoomWatcher::new(client, room);
    let view = watcher.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => watcher.handle(&event).await,
                    None => break,
                },
                () = watcher.gap_timer() => {
                    if let Err(error) = watcher.resync().await {
                        tracing::warn!(%error, "resync failed");
                    }
                }
            }
        }
    });
    view
}

/// The parts of the state every event keeps exact (counters of likes and comments are
/// aggregated per window by the server and are compared separately).
fn stage(state: &RoomStateJson) -> RoomStateJson {
    RoomStateJson {
        likes: 0,
        comments: 0,
        reactions: Default::default(),
        // `members`/`listeners` are refreshed by presence events, best effort.
        members: 0,
        listeners: 0,
        // The caller's own votes are the vote replies' (see `RoomWatcher::voted`).
        you: state.you.clone().map(|mut you| {
            you.votes.clear();
            you
        }),
        ..state.clone()
    }
}

/// Wait until the watched view equals the server's state for this client.
async fn converge(
    client: &Client,
    room: &str,
    view: &watch::Receiver<Snapshot>,
) -> anyhow::Result<RoomStateJson> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let server = client.read_state(room).await?;
        let server = server.state.context("the server sent no state")?;
        let mine = view.borrow().state.clone();
        if let Some(mine) = &mine
            && stage(mine) == stage(&server)
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("the model did not converge:\n mine:   {mine:?}\n server: {server:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_actions_drive_a_room_model_that_converges_to_the_server_state() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("typed sdk").await?; // owned by "host"
    let (host, _host_events) = cluster.client("host").await?;
    let (bob, bob_events) = cluster.client("bob").await?;
    let view = watch_room(&bob, bob_events, &room);
    host.join(&room).await?;
    bob.join(&room).await?;
    let (on_host, on_bob) = (host.room(&room), bob.room(&room));

    // Hand, invite, accept: bob comes on stage muted.
    let raised = on_bob.raise_hand().await?;
    assert!(raised.changed);
    assert!(raised.user.hand_raised_at_ms.is_some());
    assert!(
        !on_bob.raise_hand().await?.changed,
        "a repeat is OK, unchanged"
    );
    let invited = on_host.invite_speaker("bob").await?;
    assert_eq!(invited.user.invited_by.as_deref(), Some("host"));
    let accepted = on_bob.accept_invite().await?;
    assert_eq!(
        (accepted.user.role, accepted.user.muted),
        (Role::Speaker, Some(Mute::SelfMuted))
    );
    // A moderator mute the speaker may not lift: a typed refusal.
    on_host.mute_user("bob").await?;
    match on_bob.unmute().await {
        Err(Error::Refused { code, .. }) => assert_eq!(code, Code::Forbidden),
        other => bail!("unmute after a moderator mute: {other:?}"),
    }
    // A listener may not open a poll.
    let (carol, _carol_events) = cluster.client("carol").await?;
    carol.join(&room).await?;
    match carol.room(&room).open_poll("Q?", ["a", "b"], None).await {
        Err(Error::Refused { code, .. }) => assert_eq!(code, Code::Forbidden),
        other => bail!("a listener's poll: {other:?}"),
    }
    // Poll, votes, close.
    let poll = on_host.open_poll("More jazz?", ["yes", "no"], None).await?;
    let vote = on_bob.vote(&poll.poll_id, 1).await?;
    assert_eq!(
        (vote.poll_id.as_str(), vote.option),
        (poll.poll_id.as_str(), 1)
    );
    carol.room(&room).vote(&poll.poll_id, 0).await?;
    let closed = on_host.close_poll(&poll.poll_id).await?;
    assert_eq!(closed.poll.state, PollState::Closed);
    assert_eq!(closed.poll.tallies, [1, 1]);
    // Audience actions and moderation.
    let comment = on_bob.comment("hello").await?;
    assert!(comment.seq > 0);
    assert_eq!(on_bob.like(3).await?.accepted, 3);
    on_bob.react("🔥").await?;
    on_bob.gift("rose", 2, Some(5)).await?;
    let removed = on_host.remove_comment(comment.seq).await?;
    assert_eq!(removed.removed, comment.seq);
    assert_eq!(on_host.slow_mode(5).await?.seconds, 5);
    on_host.promote_moderator("bob").await?;
    on_host.kick("carol").await?;

    let server = converge(&bob, &room, &view).await?;
    assert_eq!(server.moderators, ["bob"]);
    assert_eq!(server.muted.get("bob"), Some(&Mute::Moderator));
    // Two roses at the catalog's value (1 each): the client's claim of 5 is ignored.
    assert_eq!((server.gifts, server.gift_value), (2, 2));
    assert_eq!(server.polls.len(), 1);
    assert_eq!(
        view.borrow().role,
        Role::Moderator,
        "bob's own role followed"
    );

    // The end: the model shows it too.
    let ended = on_host.end_room().await?;
    assert_eq!(ended.summary.get("final"), Some(&serde_json::json!(true)));
    let deadline = Instant::now() + PATIENCE;
    while view.borrow().state.as_ref().map(|s| s.state) != Some(Lifecycle::Ended) {
        if Instant::now() > deadline {
            bail!("the model never showed the end: {:?}", view.borrow().state);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server agrees: the ended state while the room is live in the store,
    // or, once standalone's archiver took it (and its live keys went), not
    // found there and its history served from the archive.
    match bob.read_state(&room).await {
        Ok(snapshot) => {
            let server = snapshot.state.context("the server sent no state")?;
            assert_eq!(server.state, Lifecycle::Ended);
        }
        Err(Error::Refused {
            code: Code::RoomNotFound,
            ..
        }) => {
            let page = bob.history(&room, None, None, None).await?;
            assert_eq!(page.source, "archive");
        }
        Err(other) => bail!("reading the ended room: {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_state_of_an_unknown_room_is_a_typed_refusal() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (client, _events) = cluster.client("alice").await?;
    match client.read_state("no-such-room").await {
        Err(Error::Refused { code, .. }) => assert_eq!(code, Code::RoomNotFound),
        other => bail!("unknown room: {other:?}"),
    }
    // The legitimate read still works on the same client.
    let room = cluster.create_room("readable").await?;
    let snapshot = client.read_state(&room).await?;
    assert_eq!(snapshot.room, room);
    assert!(snapshot.state.is_some_and(|s| s.title == "readable"));
    Ok(())
}
