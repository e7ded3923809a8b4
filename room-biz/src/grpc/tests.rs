//! The `Biz` service over a real socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proto::internal::v1::biz_client::BizClient;
use proto::internal::v1::{
    PullReply, PullRequest, PushRoomReply, PushRoomRequest, PushUsersReply, PushUsersRequest,
};
use room_store::NewRoom;
use tokio::sync::{Semaphore, mpsc};

use super::*;
use crate::Config;
use crate::error::PushError;
use crate::pusher::RoomPusher;
use crate::test_util::{RecordingPusher, bind, shared};

const PATIENCE: Duration = Duration::from_secs(5);

/// Serve `shared` on 127.0.0.1:0 until `drain` is cancelled.
async fn serve(
    shared: Arc<Shared>,
    drain: CancellationToken,
) -> BizClient<common::grpc::InternalChannel> {
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr").to_string();
    let server = tonic::transport::Server::builder()
        .add_service(BizService::server(shared, drain.clone()))
        .serve_with_incoming_shutdown(common::grpc::incoming(listener), drain.cancelled_owned());
    tokio::spawn(server);
    BizClient::new(
        common::grpc::lazy_channel(&addr, &common::grpc::InternalAuth::default()).expect("channel"),
    )
}

async fn new_room(shared: &Shared, owner: Option<&str>) -> String {
    let new = NewRoom {
        owner: owner.map(Into::into),
        ..NewRoom::titled("Jazz", None)
    };
    shared
        .backends
        .store
        .create_room(new)
        .await
        .expect("create")
        .id
}

fn join(room: &str, uid: &str, session_id: &str) -> JoinRequest {
    JoinRequest {
        uid: uid.into(),
        room: room.into(),
        node_id: "conn-1".into(),
        session_id: session_id.into(),
        purpose: JoinPurpose::Join as i32,
        token_iat: common::time::now_ms() / 1000,
    }
}

/// The refusal a decision carries (it must not be a grant).
fn refusal(decision: JoinDecision) -> (Code, String) {
    assert!(decision.snapshot.is_none(), "a refusal has no snapshot");
    let code = Code::try_from(decision.code).expect("a known code");
    assert_ne!(code, Code::Ok, "refused");
    (code, decision.message)
}

#[tokio::test]
async fn joining_an_unknown_room_is_not_found() {
    let mut client = serve(
        shared(Config::default(), RecordingPusher::new()),
        CancellationToken::new(),
    )
    .await;
    let decision = client
        .authorize_join(join("rNope", "bob", "s1"))
        .await
        .expect("a refusal is an answer")
        .into_inner();
    assert_eq!(
        refusal(decision),
        (Code::RoomNotFound, "room rNope not found".to_owned())
    );
}

#[tokio::test]
async fn joins_return_a_snapshot_and_leaves_are_counted() {
    let shared = shared(Config::default(), RecordingPusher::new());
    let room = new_room(&shared, Some("alice")).await;
    let mut client = serve(shared.clone(), CancellationToken::new()).await;

    let host = client
        .authorize_join(join(&room, "alice", "s1"))
        .await
        .expect("host")
        .into_inner();
    assert_eq!(host.code, Code::Ok as i32);
    let snap = host.snapshot.expect("snapshot");
    assert_eq!(
        (snap.room.as_str(), snap.title.as_str()),
        (room.as_str(), "Jazz")
    );
    assert_eq!((snap.role.as_str(), snap.members), ("host", 1));

    let guest = client
        .authorize_join(join(&room, "bob", "s2"))
        .await
        .expect("guest");
    let snap = guest.into_inner().snapshot.expect("snapshot");
    assert_eq!((snap.role.as_str(), snap.members), ("listener", 2));
    let state: serde_json::Value = serde_json::from_slice(&snap.state).expect("state is JSON");
    assert_eq!(state["members"], 2);
    assert_eq!(state["owner"], "alice");
    assert_eq!(state["title"], "Jazz");

    let leave = LeaveNotice {
        uid: "bob".into(),
        room: room.clone(),
        session_id: "s2".into(),
    };
    client.member_left(leave.clone()).await.expect("leave");
    client
        .member_left(leave)
        .await
        .expect("leaving twice is fine");
    assert_eq!(
        shared
            .backends
            .store
            .member_count(&room)
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn a_uid_with_many_sessions_is_announced_once() {
    let pusher = RecordingPusher::new();
    let shared = shared(Config::default(), pusher.clone());
    let room = new_room(&shared, Some("alice")).await;
    let mut client = serve(shared.clone(), CancellationToken::new()).await;
    let background = shared.clone();
    let background = tokio::spawn(async move { background.backends.rooms.run().await });
    let joined_uids = |pusher: &RecordingPusher| -> Vec<String> {
        pusher
            .ephemerals(&room)
            .into_iter()
            .filter(|(kind, _)| kind == "member_joined")
            .filter_map(|(_, body)| body["uid"].as_str().map(str::to_owned))
            .collect()
    };
    // bob opens five tabs: five sessions, one member.
    for n in 1..=5 {
        let decision = client
            .authorize_join(join(&room, "bob", &format!("s{n}")))
            .await
            .expect("join")
            .into_inner();
        assert_eq!(decision.code, Code::Ok as i32);
        assert_eq!(decision.snapshot.expect("snapshot").members, 1);
    }
    // Notices leave in order: once carol is announced, every announcement
    // of bob's sessions would be out too.
    client
        .authorize_join(join(&room, "carol", "c1"))
        .await
        .expect("join");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !joined_uids(&pusher).contains(&"carol".to_owned()) {
        assert!(tokio::time::Instant::now() < deadline, "carol announced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        joined_uids(&pusher),
        vec!["bob".to_owned(), "carol".to_owned()],
        "one member_joined per distinct member, not per session"
    );

    // bob closes his tabs: only the last one is a member leaving.
    let left_uids = |pusher: &RecordingPusher| -> Vec<String> {
        pusher
            .ephemerals(&room)
            .into_iter()
            .filter(|(kind, _)| kind == "member_left")
            .filter_map(|(_, body)| body["uid"].as_str().map(str::to_owned))
            .collect()
    };
    for (uid, session) in [
        ("bob", "s1"),
        ("bob", "s2"),
        ("bob", "s3"),
        ("bob", "s4"),
        ("bob", "s5"),
        ("bob", "s5"),
        ("carol", "c1"),
    ] {
        let leave = LeaveNotice {
            uid: uid.into(),
            room: room.clone(),
            session_id: session.into(),
        };
        client.member_left(leave).await.expect("leave");
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !left_uids(&pusher).contains(&"carol".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "carol's leave announced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        left_uids(&pusher),
        vec!["bob".to_owned(), "carol".to_owned()],
        "one member_left per distinct member: the last session, and not the repeated leave"
    );
    background.abort();
}

#[tokio::test]
async fn a_resync_rereads_the_snapshot_without_a_join() {
    let pusher = RecordingPusher::new();
    let shared = shared(Config::default(), pusher.clone());
    let room = new_room(&shared, Some("alice")).await;
    let mut client = serve(shared.clone(), CancellationToken::new()).await;
    // Presence notices are pushed by the background work.
    let background = shared.clone();
    let background = tokio::spawn(async move { background.backends.rooms.run().await });
    let joined_uids = |pusher: &RecordingPusher| -> Vec<String> {
        pusher
            .ephemerals(&room)
            .into_iter()
            .filter(|(kind, _)| kind == "member_joined")
            .filter_map(|(_, body)| body["uid"].as_str().map(str::to_owned))
            .collect()
    };
    client
        .authorize_join(join(&room, "bob", "s1"))
        .await
        .expect("join");

    // bob's conn node saw the room's stream reset: it re-reads the snapshot.
    let resync = JoinRequest {
        purpose: JoinPurpose::Resync as i32,
        ..join(&room, "bob", "s1")
    };
    let decision = client
        .authorize_join(resync)
        .await
        .expect("resync")
        .into_inner();
    assert_eq!(decision.code, Code::Ok as i32);
    let snap = decision.snapshot.expect("a fresh snapshot");
    assert_eq!((snap.role.as_str(), snap.members), ("listener", 1));
    let state: serde_json::Value = serde_json::from_slice(&snap.state).expect("state is JSON");
    assert_eq!(state["you"]["member"], true);

    // Presence notices leave in order within a room: once carol's join is
    // announced, anything the resync had announced would be out too.
    client
        .authorize_join(join(&room, "carol", "s2"))
        .await
        .expect("join");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !joined_uids(&pusher).contains(&"carol".to_owned()) {
        assert!(tokio::time::Instant::now() < deadline, "carol announced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        joined_uids(&pusher),
        vec!["bob".to_owned(), "carol".to_owned()],
        "one member_joined per join, none for the resync"
    );
    assert_eq!(
        shared
            .backends
            .store
            .member_count(&room)
            .await
            .expect("count"),
        2
    );
    let joins = |label: &str| shared.metrics.joins.with_label_values(&[label]).get();
    assert_eq!((joins("ok"), joins("resync")), (2, 1));

    // The rule still holds on a resync: a kicked member is refused.
    let kick = room_store::domain::rules::kick("alice", "bob", 1);
    shared
        .backends
        .rooms
        .apply(&room, &kick)
        .await
        .expect("kick");
    let resync = JoinRequest {
        purpose: JoinPurpose::Resync as i32,
        ..join(&room, "bob", "s1")
    };
    let decision = client
        .authorize_join(resync)
        .await
        .expect("an answer")
        .into_inner();
    assert_eq!(refusal(decision).0, Code::Forbidden);
    background.abort();
}

#[tokio::test]
async fn joining_an_ended_room_is_a_failed_precondition() {
    let shared = shared(Config::default(), RecordingPusher::new());
    let room = new_room(&shared, None).await;
    shared.backends.store.end_room(&room).await.expect("end");
    let mut client = serve(shared, CancellationToken::new()).await;
    let decision = client
        .authorize_join(join(&room, "bob", "s1"))
        .await
        .expect("a refusal is an answer")
        .into_inner();
    assert_eq!(refusal(decision).0, Code::RoomEnded);
}

/// Holds pushes whose body mentions "wait" until the test opens the gate.
struct GatedPusher {
    gate: Semaphore,
    seq: AtomicU64,
}

impl GatedPusher {
    fn closed() -> Arc<Self> {
        Arc::new(Self {
            gate: Semaphore::new(0),
            seq: AtomicU64::new(0),
        })
    }
}

#[async_trait::async_trait]
impl RoomPusher for GatedPusher {
    async fn push_room(&self, req: PushRoomRequest) -> Result<PushRoomReply, PushError> {
        if req.body.windows(4).any(|w| w == b"wait") {
            let _permit = self.gate.acquire().await.expect("gate open");
        }
        Ok(PushRoomReply {
            epoch: 1,
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
        })
    }

    async fn pull(&self, _req: PullRequest) -> Result<PullReply, PushError> {
        // These tests never poll; the head is all there is to tell.
        Ok(PullReply {
            epoch: 1,
            head_seq: self.seq.load(Ordering::SeqCst),
            ..PullReply::default()
        })
    }

    async fn push_users(&self, _req: PushUsersRequest) -> Result<PushUsersReply, PushError> {
        Ok(PushUsersReply { online: 0 })
    }
}

fn action(id: u64, room: &str, action: &str, payload: &str) -> ActionRequest {
    ActionRequest {
        id,
        uid: "bob".into(),
        room: room.into(),
        action: action.into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        session_id: "s1".into(),
        ..ActionRequest::default()
    }
}

#[tokio::test]
async fn a_slow_action_does_not_stall_the_stream() {
    let pusher = GatedPusher::closed();
    let shared = shared(Config::default(), pusher.clone());
    let room = new_room(&shared, None).await;
    let mut client = serve(shared, CancellationToken::new()).await;

    let (req_tx, req_rx) = mpsc::channel(8);
    let mut replies = client
        .actions(ReceiverStream::new(req_rx))
        .await
        .expect("stream")
        .into_inner();
    req_tx
        .send(action(1, &room, "comment", r#"{"text":"wait for me"}"#))
        .await
        .expect("send");
    req_tx
        .send(action(2, &room, "comment", r#"{"text":"hi"}"#))
        .await
        .expect("send");
    req_tx
        .send(action(3, &room, "dance", "{}"))
        .await
        .expect("send");

    let mut early = Vec::new();
    for _ in 0..2 {
        let reply = tokio::time::timeout(PATIENCE, replies.message())
            .await
            .expect("in time");
        early.push(reply.expect("ok").expect("a reply"));
    }
    early.sort_by_key(|r| r.id);
    assert_eq!(early[0].id, 2);
    assert_eq!(early[0].code, Code::Ok as i32);
    assert_eq!(&early[0].body[..], br#"{"seq":1}"#);
    assert_eq!(early[1].id, 3);
    assert_eq!(early[1].code, Code::BadRequest as i32);
    assert_eq!(early[1].message, "unknown action dance");

    pusher.gate.add_permits(1);
    let last = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .expect("in time");
    let last = last.expect("ok").expect("a reply");
    assert_eq!((last.id, last.code), (1, Code::Ok as i32));
    assert_eq!(&last.body[..], br#"{"seq":2}"#);
}

#[tokio::test]
async fn draining_ends_action_streams_after_their_replies() {
    let drain = CancellationToken::new();
    let shared = shared(Config::default(), RecordingPusher::new());
    let room = new_room(&shared, None).await;
    let mut client = serve(shared, drain.clone()).await;

    let (req_tx, req_rx) = mpsc::channel(8);
    let mut replies = client
        .actions(ReceiverStream::new(req_rx))
        .await
        .expect("stream")
        .into_inner();
    req_tx
        .send(action(1, &room, "comment", r#"{"text":"hi"}"#))
        .await
        .expect("send");
    let reply = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .expect("in time");
    assert_eq!(reply.expect("ok").expect("a reply").id, 1);

    drain.cancel();
    // The conn node keeps its request stream open; the server still ends it.
    let end = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .expect("stream ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn joins_still_work_after_redis_restarted_empty() {
    let mut redis = test_servers::RedisServer::start().expect("start redis-server");
    let store = room_store::RedisRoomStore::connect(&[redis.url()], "test:")
        .await
        .expect("connect");
    let shared =
        crate::test_util::shared_on(Arc::new(store), Config::default(), RecordingPusher::new());
    let room = new_room(&shared, Some("alice")).await;
    let mut client = serve(shared.clone(), CancellationToken::new()).await;
    client
        .authorize_join(join(&room, "bob", "s1"))
        .await
        .expect("join before the loss");

    redis.restart_empty().expect("restart empty");

    // UNAVAILABLE while the connection manager reconnects, then granted from
    // the room metadata the store kept.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let snapshot = loop {
        let decision = client
            .authorize_join(join(&room, "carol", "s2"))
            .await
            .expect("an answer")
            .into_inner();
        match Code::try_from(decision.code) {
            Ok(Code::Ok) => break decision.snapshot.expect("snapshot"),
            Ok(Code::Unavailable) => {
                assert!(tokio::time::Instant::now() < deadline, "{decision:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => panic!("join after the loss: {decision:?}"),
        }
    };
    assert_eq!(snapshot.title, "Jazz");
    let state: serde_json::Value = serde_json::from_slice(&snapshot.state).expect("state is JSON");
    assert_eq!(state["owner"], "alice");
    // Members were lost with the data: carol is the first to count again.
    assert_eq!(snapshot.members, 1);
    let back = shared.backends.store.get_room(&room).await.expect("get");
    assert_eq!(back.map(|r| r.title).as_deref(), Some("Jazz"));
}

#[tokio::test]
async fn joins_with_a_revoked_token_are_refused_and_newer_tokens_join() {
    let pusher = RecordingPusher::new();
    let shared = shared(Config::default(), pusher.clone());
    let room = new_room(&shared, None).await;
    let mut client = serve(shared.clone(), CancellationToken::new()).await;
    let revoked = crate::revoke::revoke(
        shared.backends.store.as_ref(),
        shared.backends.pusher.as_ref(),
        "bob",
        3600,
    )
    .await
    .expect("revoke");

    // A conn node that never heard of the revocation still cannot join bob
    // with his old token (join() carries an iat of now, before the mark).
    let decision = client
        .authorize_join(join(&room, "bob", "s1"))
        .await
        .expect("an answer")
        .into_inner();
    assert_eq!(
        refusal(decision),
        (Code::TokenRevoked, "token revoked".into())
    );
    let resync = JoinRequest {
        purpose: JoinPurpose::Resync as i32,
        ..join(&room, "bob", "s1")
    };
    let decision = client.authorize_join(resync).await.expect("an answer");
    assert_eq!(refusal(decision.into_inner()).0, Code::TokenRevoked);
    assert_eq!(
        shared
            .backends
            .store
            .member_count(&room)
            .await
            .expect("count"),
        0
    );

    // A token issued after the revocation joins; so does another uid.
    let fresh = JoinRequest {
        token_iat: revoked.revoked_before_secs,
        ..join(&room, "bob", "s2")
    };
    let decision = client
        .authorize_join(fresh)
        .await
        .expect("join")
        .into_inner();
    assert_eq!(decision.code, Code::Ok as i32, "{}", decision.message);
    let decision = client
        .authorize_join(join(&room, "carol", "s3"))
        .await
        .expect("join")
        .into_inner();
    assert_eq!(decision.code, Code::Ok as i32);
}

#[tokio::test]
async fn joins_and_leaves_ride_the_action_stream() {
    let shared = shared(Config::default(), RecordingPusher::new());
    let room = new_room(&shared, Some("alice")).await;
    let mut client = serve(shared.clone(), CancellationToken::new()).await;
    let (req_tx, req_rx) = mpsc::channel(8);
    let mut replies = client
        .actions(ReceiverStream::new(req_rx))
        .await
        .expect("stream")
        .into_inner();
    let mut next_reply = async || {
        tokio::time::timeout(PATIENCE, replies.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("a reply")
    };

    let joining = |id, room: &str, uid: &str, session: &str| ActionRequest {
        id,
        join: Some(join(room, uid, session)),
        ..ActionRequest::default()
    };
    req_tx
        .send(joining(1, &room, "alice", "s1"))
        .await
        .expect("send");
    let host = next_reply().await;
    assert_eq!((host.id, host.code), (1, Code::Ok as i32));
    let snap = host
        .decision
        .expect("a join is answered with a decision")
        .snapshot
        .expect("snapshot");
    assert_eq!((snap.role.as_str(), snap.members), ("host", 1));

    req_tx
        .send(joining(2, &room, "bob", "s2"))
        .await
        .expect("send");
    let guest = next_reply().await;
    let snap = guest
        .decision
        .expect("decision")
        .snapshot
        .expect("snapshot");
    assert_eq!((snap.role.as_str(), snap.members), ("listener", 2));

    // A refusal is a decision too, with the same code on the reply.
    req_tx
        .send(joining(3, "rNope", "bob", "s3"))
        .await
        .expect("send");
    let refused = next_reply().await;
    assert_eq!(refused.id, 3);
    assert_eq!(refused.code, Code::RoomNotFound as i32);
    let (code, _) = refusal(refused.decision.expect("decision"));
    assert_eq!(code, Code::RoomNotFound);

    let leaving = |id, uid: &str, session: &str| ActionRequest {
        id,
        leave: Some(LeaveNotice {
            uid: uid.into(),
            room: room.clone(),
            session_id: session.into(),
        }),
        ..ActionRequest::default()
    };
    req_tx.send(leaving(4, "bob", "s2")).await.expect("send");
    let left = next_reply().await;
    assert_eq!(
        (left.id, left.code, left.leave_done),
        (4, Code::Ok as i32, true)
    );
    assert_eq!(
        shared
            .backends
            .store
            .member_count(&room)
            .await
            .expect("count"),
        1
    );
    // A notice without a uid is refused with a clear message, the stream stays.
    req_tx.send(leaving(5, "", "s9")).await.expect("send");
    let bad = next_reply().await;
    assert_eq!(
        (bad.id, bad.code, bad.leave_done),
        (5, Code::BadRequest as i32, true)
    );
    assert!(bad.message.contains("required"), "{}", bad.message);
}
