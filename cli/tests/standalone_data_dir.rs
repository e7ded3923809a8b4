//! `roomcast standalone` flags, seen from outside the process:
//! `--data-dir D` keeps the archive of ended rooms in `D/archive.db` (a room
//! archived by one process is read back by the next), and
//! `--backend-write-rate` / `--backend-write-burst` set the backend key's
//! write quota.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Kills the child if the test fails half-way.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start standalone on free ports with `data_dir` (through the environment,
/// as a container would set it); the child and its room API URL.
async fn start(data_dir: &Path, log: &Path, extra: &[&str]) -> anyhow::Result<(Child, String)> {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(["standalone", "--no-quic", "--no-demo"])
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
                "--admin-port",
                "0",
            ])
            .args(extra)
            .env("ROOMCAST_DATA_DIR", data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log)?))
            .spawn()?,
    );
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let api = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next() {
            let line = line?;
            let url = line
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_owned();
            if line.contains("room API") && url.starts_with("http://") {
                // Keep draining stdout so the child never writes to a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return anyhow::Ok(url);
            }
        }
        anyhow::bail!("standalone exited before printing its URLs")
    })
    .await??;
    Ok((child, api))
}

/// SIGINT, then wait for a clean exit.
async fn stop(mut child: Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill failed");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(exit) = child.0.try_wait()? {
            anyhow::ensure!(exit.success(), "standalone exited with {exit}");
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "standalone did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(u16, Value)> {
    let res = http
        .get(url)
        .bearer_auth(roomcast::standalone::DEFAULT_DEV_API_KEY)
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    let res = http
        .post(url)
        .bearer_auth(roomcast::standalone::DEFAULT_DEV_API_KEY)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "POST {url}: {}", res.status());
    Ok(res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_survives_a_restart_in_the_data_dir() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let log = dir.path().join("standalone.log");
    let http = reqwest::Client::new();

    let (child, api) = start(&data, &log, &[]).await?;
    let room = post(&http, &format!("{api}/v1/rooms"), json!({"title": "Kept"})).await?;
    let id = room["room_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no room id: {room}"))?
        .to_owned();
    for i in 1..=3 {
        post(
            &http,
            &format!("{api}/v1/rooms/{id}/messages"),
            json!({"kind": "note", "body": {"i": i}}),
        )
        .await?;
    }
    post(&http, &format!("{api}/v1/rooms/{id}/end"), json!({})).await?;
    let history = format!("{api}/v1/rooms/{id}/history?after_seq=0&limit=10");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = get(&http, &history).await?;
        if status == 200 && page["source"] == "archive" {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the room was never archived: {status} {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(child).await?;
    assert!(data.join(roomcast::standalone::ARCHIVE_FILE).is_file());

    // A new process, the same folder: the archived room reads back.
    let (child, api) = start(&data, &log, &[]).await?;
    let (status, page) = get(
        &http,
        &format!("{api}/v1/rooms/{id}/history?after_seq=0&limit=10"),
    )
    .await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["source"], "archive");
    let kinds: Vec<&str> = page["messages"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["note", "note", "note", "room_ended"]);
    assert_eq!(page["messages"][2]["body"], json!({"i": 3}));
    let (status, page) = get(&http, &format!("{api}/v1/rooms/{id}/replay?from_ms=0")).await?;
    assert_eq!(
        (status, page["messages"].as_array().map(Vec::len)),
        (200, Some(4))
    );
    stop(child).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_write_quota_comes_from_the_flags() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("standalone.log");
    let http = reqwest::Client::new();
    // One write a second with a burst of three: the fourth at once is refused.
    let (child, api) = start(
        &dir.path().join("data"),
        &log,
        &["--backend-write-rate", "1", "--backend-write-burst", "3"],
    )
    .await?;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let res = http
            .post(format!("{api}/v1/rooms"))
            .bearer_auth(roomcast::standalone::DEFAULT_DEV_API_KEY)
            .json(&json!({ "title": format!("quota {i}") }))
            .send()
            .await?;
        statuses.push(res.status().as_u16());
    }
    anyhow::ensure!(statuses == [201, 201, 201, 429], "{statuses:?}");
    stop(child).await
}
