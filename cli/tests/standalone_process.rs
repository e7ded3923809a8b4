//! The real `roomcast standalone` process: it starts on free ports, serves a
//! client, and on SIGINT tells the client to go away and exits 0.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use proto::client::v1::{ServerFrame, server_frame};
use roomcast_client::{RawConnection, RawEvent};

/// Kills the child if the test fails half-way.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_sends_go_away_and_exits_cleanly() -> anyhow::Result<()> {
    let log = std::env::temp_dir().join(format!("roomcast-standalone-{}.log", std::process::id()));
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(["--secret", "process-test-secret", "standalone"])
            .args([
                "--router-port",
                "0",
                "--ws-port",
                "0",
                "--biz-port",
                "0",
                "--backend-port",
                "0",
                "--metrics-port",
                "0",
                "--quic-port",
                "0",
                "--admin-port",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()?,
    );
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (ws_url, biz_url) = tokio::task::spawn_blocking(move || {
        let (mut ws, mut biz) = (None, None);
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next() {
            let line = line?;
            let url = line
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string();
            if line.contains("websocket") && url.starts_with("ws://") {
                ws = Some(url);
            } else if line.contains("room API") && url.starts_with("http://") {
                biz = Some(url);
            }
            if let (Some(w), Some(b)) = (&ws, &biz) {
                let urls = (w.clone(), b.clone());
                // Keep draining stdout so the child never writes to a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return anyhow::Ok(urls);
            }
        }
        anyhow::bail!("standalone exited before printing its URLs")
    })
    .await??;

    let room: serde_json::Value = reqwest::Client::new()
        .post(format!("{biz_url}/v1/rooms"))
        .bearer_auth(roomcast::standalone::DEFAULT_DEV_API_KEY)
        .json(&serde_json::json!({ "title": "process" }))
        .send()
        .await?
        .json()
        .await?;
    let room = room["room_id"].as_str().unwrap_or_default().to_string();
    let mut raw = RawConnection::connect(&ws_url, Some(proto::PROTOBUF_SUBPROTOCOL)).await?;
    let token = common::auth::mint_hs256("process-test-secret", "p1", 60)?;
    raw.hello(&token, Duration::from_secs(10)).await?;
    let join = proto::client::v1::Join {
        r#ref: 1,
        room,
        resume: None,
    };
    raw.send_frame(&proto::client::v1::ClientFrame {
        frame: Some(proto::client::v1::client_frame::Frame::Join(join)),
    })
    .await?;
    loop {
        match raw.next_frame(Duration::from_secs(10)).await? {
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Joined(_)),
            }) => break,
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Ephemeral(_)),
            }) => {}
            other => anyhow::bail!("expected joined, got {other:?}"),
        }
    }

    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()?;
    assert!(status.success());
    loop {
        match raw.next_frame(Duration::from_secs(10)).await? {
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::GoAway(g)),
            }) => {
                assert_eq!(g.reason, "server shutting down");
                break;
            }
            // Presence side traffic (our own join) may come first.
            RawEvent::Frame(ServerFrame {
                frame: Some(server_frame::Frame::Ephemeral(_)),
            }) => {}
            other => {
                std::thread::sleep(Duration::from_millis(500));
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                anyhow::bail!("expected go-away, got {other:?}; log:\n{log}")
            }
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(exit) = child.0.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = tail
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                exit.success(),
                "standalone exited with {exit}; log tail:\n{tail}"
            );
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "standalone did not exit after SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
