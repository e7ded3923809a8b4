//! The real `roomcast` binary over TLS: `standalone --tls-cert/--tls-key`
//! serves wss/https (and QUIC with the same certificate, no pin) and prints
//! those URLs; `room create`, `room end`, `say` and `ctl` reach it with
//! `--ca-file`, and without it fail with a message naming the certificate
//! problem and the flag.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, bail};
use test_servers::TestCa;

/// Kills the child if the test fails half-way.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What standalone printed: each banner line's name and URL.
#[derive(Debug, Default)]
struct Banner {
    lines: Vec<(String, String)>,
    text: String,
}

impl Banner {
    fn url(&self, name: &str) -> anyhow::Result<&str> {
        self.lines
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, url)| url.as_str())
            .with_context(|| format!("no {name} line in:\n{}", self.text))
    }
}

/// Start `roomcast standalone` on free ports with `cert`/`key` (its demo
/// page trusting `ca`); read its banner up to the admin line.
fn standalone(cert: &Path, key: &Path, ca: &Path, log: &Path) -> anyhow::Result<(Child, Banner)> {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .env_remove("ROOMCAST_CA_FILE")
            .args(["--ca-file", &ca.display().to_string()])
            .arg("standalone")
            .args(["--tls-cert", &cert.display().to_string()])
            .args(["--tls-key", &key.display().to_string()])
            .args(["--router-port", "0", "--ws-port", "0", "--biz-port", "0"])
            .args(["--backend-port", "0", "--metrics-port", "0"])
            .args(["--quic-port", "0", "--admin-port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log)?))
            .spawn()?,
    );
    let stdout = child.0.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Banner::default();
    for line in lines.by_ref() {
        let line = line?;
        banner.text.push_str(&line);
        banner.text.push('\n');
        let Some(url) = line.split_whitespace().find(|word| word.contains("://")) else {
            continue;
        };
        let name = line.trim_start()[..line.trim_start().find(url).unwrap_or(0)]
            .trim()
            .to_owned();
        banner.lines.push((name.clone(), url.to_owned()));
        if name == "admin" {
            // Keep draining stdout so the child never writes to a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, banner));
        }
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    bail!(
        "standalone exited before printing its URLs:\n{}{log}",
        banner.text
    )
}

/// Run `roomcast ARGS` (no CA file from the environment).
fn roomcast(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .env_remove("ROOMCAST_CA_FILE")
        .args(args)
        .output()?)
}

/// `roomcast ARGS` must succeed; its stdout.
fn succeeds(args: &[&str]) -> anyhow::Result<String> {
    let out = roomcast(args)?;
    if !out.status.success() {
        bail!(
            "roomcast {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `roomcast ARGS` must fail; its stderr.
fn fails(args: &[&str]) -> anyhow::Result<String> {
    let out = roomcast(args)?;
    if out.status.success() {
        bail!(
            "roomcast {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8(out.stderr)?)
}

#[test]
fn room_ctl_and_say_speak_tls_to_a_tls_standalone_with_the_ca_file() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let issued = ca.issue("standalone", &["localhost", "127.0.0.1"])?;
    let log = std::env::temp_dir().join(format!("roomcast-tls-cli-{}.log", std::process::id()));
    let (_child, banner) = standalone(&issued.cert_path, &issued.key_path, ca.ca_path(), &log)?;

    // Every URL it prints says TLS; QUIC serves the certificate, no pin.
    let router = banner.url("router")?;
    let backend = banner.url("room API")?;
    let admin = banner.url("admin")?;
    assert!(router.starts_with("https://"), "{}", banner.text);
    assert!(banner.url("websocket")?.starts_with("wss://"));
    assert!(backend.starts_with("https://"), "{}", banner.text);
    assert!(banner.url("client API")?.starts_with("https://"));
    assert!(admin.starts_with("https://"), "{}", banner.text);
    assert!(banner.url("quic")?.starts_with("quic://"));
    assert!(!banner.text.contains("quic cert"), "{}", banner.text);
    assert!(banner.url("demo page")?.starts_with("https://"));

    // The demo page creates rooms through the backend API over https (it
    // trusts standalone's --ca-file).
    let created = demo_room(router, ca.ca_path())?;
    assert!(created["room_id"].is_string(), "{created}");

    let ca_file = ca.ca_path().display().to_string();
    let with_ca = |args: &[&'static str]| -> Vec<String> {
        let mut all = vec!["--ca-file".to_owned(), ca_file.clone()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    };

    // The room API over https with the CA file.
    let mut args = with_ca(&["room", "create", "--title", "Over TLS"]);
    args.splice(2..2, ["--backend-url".to_owned(), backend.to_owned()]);
    let room = succeeds(&strs(&args))?.trim().to_owned();
    assert!(!room.is_empty());

    // Without it: the certificate is refused, and the error says what to do.
    let error = fails(&["--backend-url", backend, "room", "create", "--title", "x"])?;
    assert!(
        error.contains("cannot reach the room-biz backend API")
            && error.contains("certificate")
            && error.contains("--ca-file"),
        "{error}"
    );
    // A CA file that is not one: named.
    let error = fails(&[
        "--ca-file",
        "/nonexistent/ca.pem",
        "--backend-url",
        backend,
        "room",
        "create",
        "--title",
        "x",
    ])?;
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    // Plain http:// to the TLS port: refused cleanly.
    let plain = backend.replacen("https://", "http://", 1);
    let error = fails(&["--backend-url", &plain, "room", "create", "--title", "x"])?;
    assert!(error.contains("cannot reach"), "{error}");

    // A comment over the routed long connection (QUIC or wss, verified
    // against the CA).
    let mut args = with_ca(&["say", "--room"]);
    args.splice(2..2, ["--router-url".to_owned(), router.to_owned()]);
    args.extend([room.clone(), "--uid".into(), "alice".into(), "hi".into()]);
    let reply = succeeds(&strs(&args))?;
    assert!(reply.contains("\"seq\""), "{reply}");

    // The admin API over https.
    let admin_args = |rest: &[&'static str]| {
        let mut args = with_ca(&["ctl"]);
        args.extend(["--admin-url".to_owned(), admin.to_owned()]);
        args.extend(rest.iter().map(|a| (*a).to_owned()));
        args
    };
    let nodes = succeeds(&strs(&admin_args(&["nodes"])))?;
    assert!(
        nodes.contains("conn") && nodes.contains("ws=wss://"),
        "{nodes}"
    );
    let made = succeeds(&strs(&admin_args(&[
        "api-key",
        "create",
        "--name",
        "tls-test",
        "--scope",
        "rooms:write",
    ])))?;
    let key = made.lines().next().context("the key")?.to_owned();
    assert!(key.starts_with("rck_"), "{made}");
    let listed = succeeds(&strs(&admin_args(&["api-key", "list"])))?;
    assert!(listed.contains("tls-test"), "{listed}");
    let shown = succeeds(&strs(&admin_args(&["rollout", "show"])))?;
    assert!(shown.contains("\"source\""), "{shown}");
    let error = fails(&["ctl", "--admin-url", admin, "nodes"])?;
    assert!(
        error.contains("cannot reach the router admin API")
            && error.contains("certificate")
            && error.contains("--ca-file"),
        "{error}"
    );

    // The new key ends the room over https; an unknown room is refused.
    let mut args = with_ca(&["room", "end"]);
    args.splice(
        2..2,
        [
            "--backend-url".to_owned(),
            backend.to_owned(),
            "--api-key".to_owned(),
            key.clone(),
        ],
    );
    args.push(room.clone());
    let ended: serde_json::Value = serde_json::from_str(&succeeds(&strs(&args))?)?;
    assert_eq!(ended["room_id"], room.as_str(), "{ended}");
    assert_eq!(ended["state"], "ended", "{ended}");
    let mut args = with_ca(&["--backend-url"]);
    args.extend([
        backend.to_owned(),
        "room".into(),
        "end".into(),
        "no-such-room".into(),
    ]);
    let error = fails(&strs(&args))?;
    assert!(
        error.contains("refused to end room no-such-room"),
        "{error}"
    );
    Ok(())
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `POST {router}/demo/api/rooms` over https, trusting `ca`.
fn demo_room(router: &str, ca: &Path) -> anyhow::Result<serde_json::Value> {
    use roomcast_client::http::{Auth, HttpClient, Method, Url};
    let http = HttpClient::new(&roomcast_client::TlsTrust::from_ca_file(ca)?);
    let url = Url::parse(&format!("{router}/demo/api/rooms"))?;
    let body = serde_json::json!({ "title": "demo over TLS", "owner": "alice" });
    let answer = tokio::runtime::Runtime::new()?.block_on(http.request(
        Method::POST,
        &url,
        Auth::None,
        Some(&body),
        std::time::Duration::from_secs(10),
    ))?;
    if !answer.status.is_success() {
        bail!(
            "demo room creation answered {}: {}",
            answer.status,
            answer.text()
        );
    }
    Ok(serde_json::from_slice(&answer.body)?)
}

#[test]
fn standalone_refuses_a_half_or_unreadable_certificate_pair() -> anyhow::Result<()> {
    let only_cert = fails(&["standalone", "--tls-cert", "/nonexistent/cert.pem"])?;
    assert!(only_cert.contains("--tls-key"), "{only_cert}");
    let unreadable = fails(&[
        "standalone",
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ])?;
    assert!(
        unreadable.contains("--tls-cert") && unreadable.contains("/nonexistent/cert.pem"),
        "{unreadable}"
    );
    Ok(())
}
