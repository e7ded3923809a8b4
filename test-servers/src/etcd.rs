//! An `etcd` process that can be stopped and started again with its data.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use tempfile::TempDir;

use crate::TestServerError;
use crate::process::{accepts, exchange, free_port, kill, spawn, wait_ready};
use crate::tls::TestCa;

const BINARY: &str = "etcd";
const PACKAGE: &str = "etcd-server";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One single-member etcd on free loopback ports.
pub struct Etcd {
    client_port: u16,
    peer_port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Certificate, key and client CA of a member serving clients over TLS.
    secure: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl Etcd {
    /// Start a fresh member.
    pub fn start() -> Result<Self, TestServerError> {
        Self::start_with(None)
    }

    /// Start a member serving clients over TLS only (certificate from `ca` for
    /// `localhost` and `127.0.0.1`) and requiring a client certificate `ca`
    /// signed (`--client-cert-auth`).
    pub fn start_tls(ca: &TestCa) -> Result<Self, TestServerError> {
        let issued = ca.issue("etcd", &["localhost", "127.0.0.1"])?;
        Self::start_with(Some((
            issued.cert_path,
            issued.key_path,
            ca.ca_path().to_path_buf(),
        )))
    }

    fn start_with(secure: Option<(PathBuf, PathBuf, PathBuf)>) -> Result<Self, TestServerError> {
        let mut last = None;
        for _ in 0..5 {
            let mut etcd = Self {
                client_port: free_port()?,
                peer_port: free_port()?,
                dir: tempfile::Builder::new()
                    .prefix("roomcast-etcd-")
                    .tempdir()?,
                child: None,
                secure: secure.clone(),
            };
            match etcd.spawn() {
                Ok(()) => return Ok(etcd),
                Err(e @ TestServerError::MissingBinary { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TestServerError::NotReady {
            binary: BINARY,
            port: 0,
            detail: "no attempt".into(),
        }))
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn(&mut self) -> Result<(), TestServerError> {
        let scheme = if self.secure.is_some() {
            "https"
        } else {
            "http"
        };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args: Vec<String> = vec![
            "--name".into(),
            "test".into(),
            "--data-dir".into(),
            self.dir.path().join("data").display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("test={peer}"),
            "--log-level".into(),
            "error".into(),
        ];
        if let Some((cert, key, ca)) = &self.secure {
            args.extend([
                "--cert-file".into(),
                cert.display().to_string(),
                "--key-file".into(),
                key.display().to_string(),
                "--trusted-ca-file".into(),
                ca.display().to_string(),
                "--client-cert-auth".into(),
            ]);
        }
        let log = self.log();
        let mut child = spawn(BINARY, PACKAGE, &args, &log)?;
        let port = self.client_port;
        let tls = self.secure.is_some();
        wait_ready(BINARY, port, &mut child, &log, START_TIMEOUT, || {
            if tls {
                return accepts(port);
            }
            exchange(
                port,
                b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .is_some_and(|r| r.contains("\"health\":\"true\""))
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// `127.0.0.1:PORT` for etcd clients.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Stop the member (kill -9); its data stays for [`Etcd::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Start the stopped member again on the same ports with its data.
    pub fn start_again(&mut self) -> Result<(), TestServerError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_starts_stops_and_starts_again() -> Result<(), TestServerError> {
        let mut etcd = Etcd::start()?;
        let port = etcd.client_port;
        etcd.stop();
        assert!(
            exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").is_none(),
            "stopped"
        );
        etcd.start_again()?;
        assert_eq!(etcd.client_port, port);
        Ok(())
    }
}
