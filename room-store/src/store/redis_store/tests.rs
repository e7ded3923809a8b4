//! The Redis engine against real `redis-server` processes: the conformance
//! suite on a standalone server and on a 3-node Cluster, the key layout, start-up
//! failures, and rooms surviving a Redis that restarted empty.

use std::time::{Duration, Instant};

use common::redis_conn::redact;
use redis::aio::MultiplexedConnection;
use test_servers::{RedisCluster, RedisServer};

use super::*;
use crate::store::conformance;

const PREFIX: &str = "test:";
/// How long a test waits for the connection manager to reconnect.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(15);

fn redis_server() -> RedisServer {
    RedisServer::start().expect("start redis-server")
}

async fn store_on(redis: &RedisServer) -> RedisRoomStore {
    RedisRoomStore::connect(&[redis.url()], PREFIX)
        .await
        .expect("connect")
}

/// A plain connection for looking at keys behind the store's back.
async fn raw(redis: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

async fn new_room(store: &RedisRoomStore, owner: Option<&str>) -> Room {
    let new = NewRoom {
        owner: owner.map(Into::into),
        ..NewRoom::titled("Night talk", None)
    };
    store.create_room(new).await.expect("create")
}

/// Retry `get_room` while the store reconnects to a restarted server.
async fn get_room_eventually(store: &RedisRoomStore, id: &str) -> Option<Room> {
    let deadline = Instant::now() + RECONNECT_PATIENCE;
    loop {
        match store.get_room(id).await {
            Ok(room) => return room,
            Err(StoreError::Unavailable(error)) if Instant::now() < deadline => {
                tracing::debug!(%error, "Waiting for Redis to come back.");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("get_room after restart: {error}"),
        }
    }
}

#[tokio::test]
async fn standalone_redis_passes_the_store_conformance_suite() {
    let redis = redis_server();
    conformance::run_all(&store_on(&redis).await).await;
}

#[tokio::test]
async fn redis_cluster_passes_the_store_conformance_suite() {
    let cluster = RedisCluster::start(3).expect("start a 3-node cluster");
    let store = RedisRoomStore::connect(&cluster.urls(), PREFIX)
        .await
        .expect("connect to the cluster");
    assert!(
        matches!(store.conn, Conn::Cluster(_)),
        "several URLs are a Cluster"
    );
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn unreachable_redis_fails_fast_with_the_address() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let Err(err) = RedisRoomStore::connect(std::slice::from_ref(&url), PREFIX).await else {
        panic!("connected to nothing");
    };
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("cannot reach Redis at {url}: ")),
        "{err}"
    );

    let seeds = [url.clone(), format!("redis://127.0.0.1:{}", port)];
    let Err(err) = RedisRoomStore::connect(&seeds, PREFIX).await else {
        panic!("connected to no cluster");
    };
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("cannot reach Redis at"), "{err}");
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    for (urls, prefix) in [
        (vec![], PREFIX),
        (vec!["redis://127.0.0.1:1".to_owned()], "bad{prefix}:"),
        (vec!["not a url".to_owned()], PREFIX),
    ] {
        let Err(err) = RedisRoomStore::connect(&urls, prefix).await else {
            panic!("accepted {urls:?} {prefix}");
        };
        assert!(matches!(err, StoreError::InvalidConfig(_)), "{err}");
    }
    assert_eq!(
        redact("redis://user:secret@10.0.0.1:6379/0"),
        "redis://user:***@10.0.0.1:6379/0"
    );
    assert_eq!(redact("redis://10.0.0.1:6379"), "redis://10.0.0.1:6379");
}

#[tokio::test]
async fn keys_are_room_tagged_and_expire() {
    let redis = redis_server();
    let store = store_on(&redis).await;
    let mut raw = raw(&redis).await;
    let room = new_room(&store, Some("alice")).await;
    store
        .member_joined(&room.id, "bob", "s1", "conn-1")
        .await
        .expect("join");

    let base = format!("test:{{room:{}}}", room.id);
    let node_key = "test:node:conn-1:sessions".to_owned();
    for (key, kind) in [
        (format!("{base}:meta"), "hash"),
        (format!("{base}:members"), "zset"),
        (format!("{base}:sessions"), "hash"),
        (format!("{base}:refs"), "hash"),
        (node_key.clone(), "set"),
    ] {
        let found: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .expect("type");
        assert_eq!(found, kind, "{key}");
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .expect("ttl");
        let max = ROOM_TTL.as_secs() as i64;
        assert!(max - 60 < ttl && ttl <= max, "{key} ttl {ttl}");
    }
    let meta: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{base}:meta"))
        .query_async(&mut raw)
        .await
        .expect("meta");
    assert_eq!(meta.get("title").map(String::as_str), Some("Night talk"));
    assert_eq!(meta.get("owner").map(String::as_str), Some("alice"));
    assert_eq!(meta.get("state").map(String::as_str), Some("live"));
    let score: f64 = redis::cmd("ZSCORE")
        .arg(format!("{base}:members"))
        .arg("bob")
        .query_async(&mut raw)
        .await
        .expect("score");
    let age_ms = common::time::now_ms() as f64 - score;
    assert!(
        (0.0..60_000.0).contains(&age_ms),
        "scored by join time: {score}"
    );
    let entries: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&node_key)
        .query_async(&mut raw)
        .await
        .expect("index");
    assert_eq!(entries, vec![format!("{}\t3:bobs1", room.id)]);

    // Leaving drops the index entry too.
    store
        .member_left(&room.id, "bob", "s1")
        .await
        .expect("leave");
    let indexed: i64 = redis::cmd("SCARD")
        .arg(&node_key)
        .query_async(&mut raw)
        .await
        .expect("scard");
    assert_eq!(indexed, 0);
}

#[tokio::test]
async fn malformed_room_data_is_a_typed_error() {
    let redis = redis_server();
    let store = store_on(&redis).await;
    let mut raw = raw(&redis).await;
    redis::cmd("HSET")
        .arg("test:{room:rBroken}:meta")
        .arg("title")
        .arg("t")
        .arg("created_at_ms")
        .arg("yesterday")
        .arg("state")
        .arg("live")
        .query_async::<()>(&mut raw)
        .await
        .expect("hset");
    let err = store.get_room("rBroken").await.expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("created_at_ms"), "{err}");
}

#[tokio::test]
async fn rooms_survive_a_redis_that_restarted_empty() {
    let mut redis = redis_server();
    let store = store_on(&redis).await;
    let live = new_room(&store, Some("alice")).await;
    let ended = new_room(&store, None).await;
    store.end_room(&ended.id).await.expect("end");
    store
        .member_joined(&live.id, "bob", "s1", "conn-1")
        .await
        .expect("join");

    redis.restart_empty().expect("restart empty");

    let back = get_room_eventually(&store, &live.id).await;
    assert_eq!(back, Some(live.clone()), "metadata restored from the cache");
    let mut raw = raw(&redis).await;
    let meta: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("test:{{room:{}}}:meta", live.id))
        .query_async(&mut raw)
        .await
        .expect("meta");
    assert_eq!(
        meta.get("title").map(String::as_str),
        Some("Night talk"),
        "written back"
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("test:{{room:{}}}:meta", live.id))
        .query_async(&mut raw)
        .await
        .expect("ttl");
    assert!(ttl > 0, "restored meta expires too: {ttl}");

    // Members were lost with the data; they count again as they rejoin.
    assert_eq!(store.member_count(&live.id).await.expect("count"), 0);
    assert_eq!(
        store
            .member_joined(&live.id, "bob", "s1", "conn-1")
            .await
            .expect("rejoin"),
        1
    );
    // An ended room comes back ended, never live again.
    let state = store
        .get_room(&ended.id)
        .await
        .expect("get")
        .map(|r| r.state);
    assert_eq!(state, Some(RoomState::Ended));
    // Rooms this process never saw stay unknown.
    assert_eq!(store.get_room("rNeverSeen").await.expect("get"), None);
}

#[tokio::test]
async fn joins_and_ends_restore_a_lost_room_too() {
    let mut redis = redis_server();
    let store = store_on(&redis).await;
    let joined = new_room(&store, None).await;
    let ended = new_room(&store, None).await;
    redis.restart_empty().expect("restart empty");
    // Wait for the reconnect through an unrelated read.
    let _ = get_room_eventually(&store, "rUnrelated").await;

    assert_eq!(
        store
            .member_joined(&joined.id, "bob", "s1", "conn-1")
            .await
            .expect("join restores"),
        1
    );
    let after = store.end_room(&ended.id).await.expect("end restores");
    assert_eq!(after.map(|r| r.state), Some(RoomState::Ended));
    assert_eq!(
        store
            .get_room(&ended.id)
            .await
            .expect("get")
            .map(|r| r.state),
        Some(RoomState::Ended)
    );
}

#[tokio::test]
async fn an_outage_fails_requests_fast_and_heals() {
    let mut redis = redis_server();
    let store = store_on(&redis).await;
    let room = new_room(&store, None).await;
    redis.kill();
    // Requests do not queue behind reconnect attempts: callers get
    // UNAVAILABLE quickly and answer or retry on their own terms.
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.get_room(&room.id).await.expect_err("redis is down");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    redis.restart_empty().expect("restart");
    assert_eq!(get_room_eventually(&store, &room.id).await, Some(room));
}

/// The TTL of `key` in seconds.
async fn ttl_of(raw: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(raw)
        .await
        .expect("ttl")
}

#[tokio::test]
async fn a_room_scheduled_days_ahead_keeps_its_keys_until_after_its_start() {
    let redis = redis_server();
    let store = store_on(&redis).await;
    let mut raw = raw(&redis).await;
    let five_days = Duration::from_secs(5 * 24 * 3600);
    let at = common::time::now_ms() + five_days.as_millis() as u64;
    let room = store
        .create_room(NewRoom {
            scheduled_at_ms: Some(at),
            ..NewRoom::titled("Next week", Some("alice"))
        })
        .await
        .expect("create");
    assert_eq!(room.state, RoomState::Scheduled);
    // Whole seconds, rounded up: the keys outlive the start by at least 72 h.
    let covered = (five_days + ROOM_TTL).as_secs() as i64;
    let meta = format!("test:{{room:{}}}:meta", room.id);
    let ttl = ttl_of(&mut raw, &meta).await;
    assert!(
        covered - 60 < ttl && ttl <= covered + 1,
        "created: ttl {ttl}, want ~{covered}"
    );

    // Every later write keeps it covering the start.
    let interested = store
        .apply(
            &room.id,
            &crate::domain::rules::interest("bob").transition(),
        )
        .await
        .expect("interest");
    assert!(matches!(interested, Applied::Done { changed: true, .. }));
    for name in ["meta", "interest", "counters"] {
        let key = format!("test:{{room:{}}}:{name}", room.id);
        let ttl = ttl_of(&mut raw, &key).await;
        assert!(
            covered - 60 < ttl && ttl <= covered + 1,
            "{name}: ttl {ttl}"
        );
    }

    // Once started, the usual 72 h after the last write.
    let now = common::time::now_ms();
    let started = store
        .apply(
            &room.id,
            &crate::domain::rules::start_room(None, now).transition(),
        )
        .await
        .expect("start");
    assert!(matches!(started, Applied::Done { changed: true, .. }));
    let ttl = ttl_of(&mut raw, &meta).await;
    let max = ROOM_TTL.as_secs() as i64;
    assert!(max - 60 < ttl && ttl <= max, "started: ttl {ttl}");
}
