//! `redis-server` processes: one standalone server, or a local Cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::TestServerError;
use crate::process::{accepts, exchange, free_port, kill, spawn, wait_ready};
use crate::tls::TestCa;

const BINARY: &str = "redis-server";
const PACKAGE: &str = "redis-server";
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One `redis-server` on a free loopback port, persisting nothing.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    cluster: bool,
    secure: Option<Secure>,
}

/// What a TLS server was started with.
#[derive(Clone)]
struct Secure {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    password: String,
}

impl RedisServer {
    /// Start a standalone server.
    pub fn start() -> Result<Self, TestServerError> {
        Self::start_mode(false, None)
    }

    /// Start a standalone server speaking only TLS (certificate from `ca`, for
    /// `localhost` and `127.0.0.1`; clients need no certificate) and requiring
    /// `password` (`AUTH`).
    pub fn start_tls(ca: &TestCa, password: &str) -> Result<Self, TestServerError> {
        let issued = ca.issue("redis", &["localhost", "127.0.0.1"])?;
        Self::start_mode(
            false,
            Some(Secure {
                cert: issued.cert_path,
                key: issued.key_path,
                ca: ca.ca_path().to_path_buf(),
                password: password.to_owned(),
            }),
        )
    }

    fn start_mode(cluster: bool, secure: Option<Secure>) -> Result<Self, TestServerError> {
        let mut dir = tempfile::Builder::new()
            .prefix("roomcast-redis-")
            .tempdir()?;
        let mut last = None;
        for _ in 0..5 {
            let mut server = Self {
                port: free_port()?,
                dir,
                child: None,
                cluster,
                secure: secure.clone(),
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e @ TestServerError::MissingBinary { .. }) => return Err(e),
                Err(e) => {
                    last = Some(e);
                    dir = server.take_dir()?;
                }
            }
        }
        Err(last.unwrap_or(TestServerError::NotReady {
            binary: BINARY,
            port: 0,
            detail: "no attempt".into(),
        }))
    }

    fn take_dir(self) -> Result<TempDir, TestServerError> {
        // A fresh dir for the next attempt; the old one is removed on drop.
        Ok(tempfile::Builder::new()
            .prefix("roomcast-redis-")
            .tempdir()?)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) -> Result<(), TestServerError> {
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
        ];
        if self.cluster {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
            ]);
        }
        if let Some(secure) = &self.secure {
            // Plain port off, TLS on the chosen one.
            args[1] = "0".into();
            args.extend([
                "--tls-port".into(),
                self.port.to_string(),
                "--tls-cert-file".into(),
                secure.cert.display().to_string(),
                "--tls-key-file".into(),
                secure.key.display().to_string(),
                "--tls-ca-cert-file".into(),
                secure.ca.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                secure.password.clone(),
            ]);
        }
        let log = self.log();
        let mut child = spawn(BINARY, PACKAGE, &args, &log)?;
        let port = self.port;
        let tls = self.secure.is_some();
        wait_ready(BINARY, port, &mut child, &log, START_TIMEOUT, || {
            if tls {
                accepts(port)
            } else {
                exchange(port, b"PING\r\n").is_some_and(|r| r.starts_with("+PONG"))
            }
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// `redis://127.0.0.1:PORT`, or for a TLS server
    /// `rediss://:PASSWORD@localhost:PORT`.
    pub fn url(&self) -> String {
        match &self.secure {
            Some(secure) => format!("rediss://:{}@localhost:{}", secure.password, self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `kill -9` the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Kill it and start an empty one on the same port (a Redis that lost its data).
    pub fn restart_empty(&mut self) -> Result<(), TestServerError> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of masters on loopback, slots spread by `redis-cli --cluster create`.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start `masters` (at least 3) cluster-enabled servers and join them.
    pub fn start(masters: usize) -> Result<Self, TestServerError> {
        let nodes = (0..masters.max(3))
            .map(|_| RedisServer::start_mode(true, None))
            .collect::<Result<Vec<_>, _>>()?;
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend([
            "--cluster-replicas".into(),
            "0".into(),
            "--cluster-yes".into(),
        ]);
        let output = Command::new("redis-cli")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TestServerError::MissingBinary {
                    binary: "redis-cli",
                    package: "redis-tools",
                },
                _ => TestServerError::Io(e),
            })?;
        let port = nodes[0].port;
        if !output.status.success() {
            return Err(TestServerError::NotReady {
                binary: "redis-cli",
                port,
                detail: String::from_utf8_lossy(&output.stdout).into_owned(),
            });
        }
        // The cluster is usable once every node reports cluster_state:ok.
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        for node in &nodes {
            loop {
                let info = exchange(node.port, b"CLUSTER INFO\r\n").unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(TestServerError::NotReady {
                        binary: BINARY,
                        port: node.port,
                        detail: info,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(Self { nodes })
    }

    /// Seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_restarts_empty_on_the_same_port() -> Result<(), TestServerError> {
        let mut redis = RedisServer::start()?;
        let port = redis.port();
        assert!(exchange(port, b"SET k v\r\n").is_some_and(|r| r.starts_with("+OK")));
        redis.restart_empty()?;
        assert_eq!(redis.port(), port);
        assert!(
            exchange(port, b"GET k\r\n").is_some_and(|r| r.starts_with("$-1")),
            "empty after restart"
        );
        Ok(())
    }

    #[test]
    fn cluster_forms() -> Result<(), TestServerError> {
        let cluster = RedisCluster::start(3)?;
        assert_eq!(cluster.urls().len(), 3);
        Ok(())
    }
}
