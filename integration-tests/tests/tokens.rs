//! Tokens on a running system: the rules of a hello (nbf, aud, iss, lifetime,
//! answers that leak nothing), sessions closed when their token expires
//! unrenewed and kept when renewed by `Refresh` (raw frames and the SDK's
//! token provider), revocation by the app backend, and sessions per uid.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use integration_tests::{Cluster, PATIENCE, SECRET, next_frame, ping, raw_join};
use proto::client::v1::{ClientFrame, Code, Refresh, client_frame, server_frame};
use roomcast_client::{ConnectOptions, Event, RawConnection, RawEvent, TokenProvider};
use serde_json::json;

fn now_secs() -> u64 {
    common::time::now_ms() / 1000
}

/// An HS256 token with exactly these claims.
fn token(claims: serde_json::Value) -> String {
    common::auth::mint_hs256_claims(SECRET, &claims).unwrap_or_default()
}

/// A token for `uid` issued now, valid `secs`.
fn short_token(uid: &str, secs: u64) -> String {
    let now = now_secs();
    token(json!({"sub": uid, "iat": now, "exp": now + secs}))
}

/// The hello's refusal: its code and message.
async fn refused_hello(cluster: &Cluster, token: &str) -> anyhow::Result<(Code, String)> {
    let mut raw = cluster.raw().await?;
    match raw.hello(token, PATIENCE).await {
        Err(roomcast_client::Error::Auth { code, message })
        | Err(roomcast_client::Error::Refused { code, message }) => Ok((code, message)),
        other => anyhow::bail!("expected a refused hello, got {other:?}"),
    }
}

/// The error frame, then the close frame, ending a connection (deliveries,
/// pongs and ephemeral events in between are skipped).
async fn closed_with(raw: &mut RawConnection, code: Code) -> anyhow::Result<(u16, String)> {
    let mut seen_error = false;
    loop {
        match raw.next_frame(PATIENCE).await? {
            RawEvent::Frame(f) => match f.frame {
                Some(server_frame::Frame::Error(e)) => {
                    anyhow::ensure!(e.code == code as i32, "error frame {e:?}");
                    seen_error = true;
                }
                Some(
                    server_frame::Frame::Pong(_)
                    | server_frame::Frame::Ephemeral(_)
                    | server_frame::Frame::Delivery(_)
                    | server_frame::Frame::TokenExpiring(_),
                ) => {}
                other => anyhow::bail!("expected the error and close, got {other:?}"),
            },
            RawEvent::Close {
                code: close,
                reason,
            } => {
                anyhow::ensure!(
                    seen_error,
                    "closed ({close} {reason}) without an error frame"
                );
                return Ok((close, reason));
            }
            RawEvent::Text(t) => anyhow::bail!("unexpected text {t}"),
        }
    }
}

async fn refresh(raw: &mut RawConnection, r#ref: u32, token: String) -> anyhow::Result<()> {
    raw.send_frame(&ClientFrame {
        frame: Some(client_frame::Frame::Refresh(Refresh { r#ref, token })),
    })
    .await?;
    Ok(())
}

/// Fast ticks (the token deadline is checked on the heartbeat tick) and no
/// idle close for raw connections that do not ping.
fn fast_ticks(cfg: &mut roomcast::standalone::StandaloneConfig) {
    cfg.conn.heartbeat_ms = 200;
    cfg.conn.idle_heartbeats = 1000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hellos_follow_the_token_rules_and_refusals_leak_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| {
        for (audience, issuer, lifetime) in [
            (
                &mut cfg.conn.token_audience,
                &mut cfg.conn.token_issuer,
                &mut cfg.conn.token_max_lifetime_secs,
            ),
            (
                &mut cfg.biz.token_audience,
                &mut cfg.biz.token_issuer,
                &mut cfg.biz.token_max_lifetime_secs,
            ),
        ] {
            *audience = Some("roomcast".into());
            *issuer = Some("https://app.example".into());
            *lifetime = 3600;
        }
    })
    .await?;
    let now = now_secs();
    let good = json!({"sub": "alice", "iat": now, "exp": now + 600,
        "aud": "roomcast", "iss": "https://app.example"});
    let mut raw = cluster.raw().await?;
    let welcome = raw.hello(&token(good.clone()), PATIENCE).await?;
    assert_eq!(welcome.uid, "alice");

    let with = |changes: serde_json::Value| {
        let mut claims = good.clone();
        if let (Some(c), Some(changes)) = (claims.as_object_mut(), changes.as_object()) {
            for (k, v) in changes {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        token(claims)
    };
    let cases = [
        (
            with(json!({"nbf": now + 600})),
            Code::Unauthenticated,
            "token not valid yet",
        ),
        (
            with(json!({"aud": null})),
            Code::Unauthenticated,
            "token audience not accepted",
        ),
        (
            with(json!({"aud": "billing"})),
            Code::Unauthenticated,
            "token audience not accepted",
        ),
        (
            with(json!({"iss": "https://evil.example"})),
            Code::Unauthenticated,
            "token issuer not accepted",
        ),
        (
            with(json!({"exp": now + 7200})),
            Code::Unauthenticated,
            "token lifetime too long",
        ),
        (
            with(json!({"sub": "ali\u{202E}ce"})),
            Code::Unauthenticated,
            "invalid token",
        ),
        (
            with(json!({"exp": now - 600, "iat": now - 700})),
            Code::TokenExpired,
            "token expired",
        ),
        // alg none and an algorithm the server has no key for: no names in the answer.
        (
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.".into(),
            Code::Unauthenticated,
            "invalid token",
        ),
        (
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2ln".into(),
            Code::Unauthenticated,
            "invalid token",
        ),
        ("not-a-jwt".into(), Code::Unauthenticated, "invalid token"),
    ];
    for (bad, code, message) in cases {
        assert_eq!(
            refused_hello(&cluster, &bad).await?,
            (code, message.to_string()),
            "{bad}"
        );
    }
    // Polling applies the same rules.
    let room = cluster.create_room("rules").await?;
    let poll = |token: String| {
        let url = format!("{}/v1/rooms/{room}/messages", cluster.sys.biz_url);
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await?;
            anyhow::Ok(resp.status().as_u16())
        }
    };
    assert_eq!(poll(with(json!({"aud": "billing"}))).await?, 401);
    assert_eq!(poll(token(good)).await?, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_close_and_refreshed_ones_stay() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(fast_ticks).await?;
    let room = cluster.create_room("expiry").await?;

    // Both sessions' tokens expire in 4 s; they are warned halfway (the
    // warning lead, 60 s, is longer than what is left).
    let mut lapsing = cluster.raw().await?;
    lapsing.hello(&short_token("lapsing", 4), PATIENCE).await?;
    let mut renewed = cluster.raw().await?;
    let first = short_token("renewed", 4);
    renewed.hello(&first, PATIENCE).await?;
    for raw in [&mut lapsing, &mut renewed] {
        match next_frame(raw).await? {
            server_frame::Frame::TokenExpiring(w) => {
                let left = w.expires_at_ms.saturating_sub(common::time::now_ms());
                assert!(left <= 4_000, "expires within the token's 4 s: {left} ms");
            }
            other => anyhow::bail!("expected TokenExpiring, got {other:?}"),
        }
    }
    raw_join(&mut renewed, &room, None).await?;

    // Refusals keep the session and its current token.
    refresh(&mut renewed, 5, cluster.token("someone-else")).await?;
    match next_frame(&mut renewed).await? {
        server_frame::Frame::Error(e) => {
            assert_eq!((e.code, e.r#ref), (Code::Forbidden as i32, 5), "{e:?}");
        }
        other => anyhow::bail!("expected an error, got {other:?}"),
    }
    refresh(&mut renewed, 6, "garbage".into()).await?;
    match next_frame(&mut renewed).await? {
        server_frame::Frame::Error(e) => {
            assert_eq!(
                (e.code, e.r#ref, e.message.as_str()),
                (Code::Unauthenticated as i32, 6, "invalid token")
            );
        }
        other => anyhow::bail!("expected an error, got {other:?}"),
    }
    let now = now_secs();
    let later = token(json!({"sub": "renewed", "iat": now, "exp": now + 600}));
    refresh(&mut renewed, 7, later).await?;
    match next_frame(&mut renewed).await? {
        server_frame::Frame::Refreshed(r) => {
            assert_eq!((r.r#ref, r.expires_at_ms), (7, (now + 600) * 1000));
        }
        other => anyhow::bail!("expected Refreshed, got {other:?}"),
    }

    // The unrenewed session is closed once its token expired...
    let (close, reason) = closed_with(&mut lapsing, Code::TokenExpired).await?;
    assert_eq!((close, reason.as_str()), (1008, "token expired"));
    // ...past the first token's expiry too, the renewed one still works.
    ping(&mut renewed).await?;
    cluster.publish(&room, "still here").await?;
    match next_frame(&mut renewed).await? {
        server_frame::Frame::Delivery(d) => assert_eq!(d.messages.len(), 1),
        other => anyhow::bail!("expected a delivery, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_renews_its_token_through_the_provider() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(fast_ticks).await?;
    let room = cluster.create_room("sdk").await?;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let provider = TokenProvider::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let fresh = short_token("sdk-user", 600);
        async move { Ok(fresh) }
    });
    let opts = ConnectOptions::new(cluster.sys.router_url.clone(), short_token("sdk-user", 4))
        .uid("sdk-user")
        .transports([roomcast_client::Transport::Ws])
        .token_provider(provider);
    let (client, mut events) = roomcast_client::Client::connect(opts).await?;
    client.join(room.as_str()).await?;
    // A raw session whose token expires at least a second after the SDK's
    // first one: when it is closed, the SDK's first token is long gone.
    let mut clock = cluster.raw().await?;
    clock.hello(&short_token("clock", 5), PATIENCE).await?;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.next()).await?;
        match event {
            Some(Event::TokenExpiring { .. }) => break,
            Some(Event::Disconnected { reason }) => anyhow::bail!("disconnected: {reason}"),
            Some(_) => {}
            None => anyhow::bail!("events ended"),
        }
    }
    closed_with(&mut clock, Code::TokenExpired).await?;
    assert!(calls.load(Ordering::SeqCst) >= 1, "the provider was asked");
    // The SDK's session outlived its first token: it still publishes on it,
    // and it never dropped.
    client.comment(room.as_str(), "renewed").await?;
    while let Some(Some(event)) = futures::FutureExt::now_or_never(events.next()) {
        assert!(
            !matches!(
                event,
                Event::Disconnected { .. } | Event::Reconnecting { .. }
            ),
            "{event:?}"
        );
    }

    // A token for another uid is refused; the session keeps its own.
    let err = client
        .set_token(short_token("mallory", 600))
        .await
        .expect_err("another uid");
    assert!(
        matches!(
            err,
            roomcast_client::Error::Refused {
                code: Code::Forbidden,
                ..
            }
        ),
        "{err:?}"
    );
    client.set_token(short_token("sdk-user", 600)).await?;
    client.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_revokes_a_uid_and_its_sessions_close() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let room = cluster.create_room("revoke").await?;
    let old = cluster.token("alice");
    let mut alice = cluster.raw().await?;
    alice.hello(&old, PATIENCE).await?;
    raw_join(&mut alice, &room, None).await?;
    let mut bob = cluster.raw_authed("bob").await?;
    raw_join(&mut bob, &room, None).await?;
    // A conn node alice never used: it is not told, room-biz still refuses.
    let other = cluster.add_conn_node("conn-other", |_| {}).await?;

    let resp = cluster
        .backend()
        .post(format!("{}/v1/users/alice/revoke", cluster.sys.backend_url))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["online"], true, "{body}");
    let before = body["revoked_before_secs"].as_u64().unwrap_or_default();

    let (close, reason) = closed_with(&mut alice, Code::TokenRevoked).await?;
    assert_eq!((close, reason.as_str()), (1008, "token revoked"));
    // The node that closed her remembers: the old token cannot say hello.
    assert_eq!(
        refused_hello(&cluster, &old).await?,
        (Code::TokenRevoked, "token revoked".into())
    );
    // The other node lets the hello through but nothing can be joined.
    let mut elsewhere =
        RawConnection::connect(&other.ws_url, Some(proto::PROTOBUF_SUBPROTOCOL)).await?;
    elsewhere.hello(&old, PATIENCE).await?;
    let err = raw_join(&mut elsewhere, &room, None)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("TokenRevoked") || err.to_string().contains("revoked"),
        "{err}"
    );

    // Bob noticed nothing; a token issued after the revocation works.
    ping(&mut bob).await?;
    let fresh = token(json!({"sub": "alice", "iat": before, "exp": before + 600}));
    let mut again = cluster.raw().await?;
    again.hello(&fresh, PATIENCE).await?;
    raw_join(&mut again, &room, None).await?;
    other.shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_uid_are_capped() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|cfg| cfg.conn.max_sessions_per_uid = 2).await?;
    let first = cluster.raw_authed("many").await?;
    let _second = cluster.raw_authed("many").await?;
    let mut third = cluster.raw().await?;
    third
        .send_frame(&ClientFrame {
            frame: Some(client_frame::Frame::Hello(proto::client::v1::Hello {
                token: cluster.token("many"),
                ..Default::default()
            })),
        })
        .await?;
    let (close, reason) = closed_with(&mut third, Code::TooManySessions).await?;
    assert_eq!((close, reason.as_str()), (1008, "too many sessions"));
    let _other_uid = cluster.raw_authed("someone").await?;

    // Once one closes, the uid may connect again.
    first.close().await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut raw = cluster.raw().await?;
        match raw.hello(&cluster.token("many"), PATIENCE).await {
            Ok(_) => break,
            Err(roomcast_client::Error::Refused {
                code: Code::TooManySessions,
                ..
            }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => anyhow::bail!("hello after a close: {e}"),
        }
    }
    Ok(())
}
