//! A throwaway PostgreSQL: `initdb` into a temp dir (trust auth), the server
//! on a free loopback port, stopped with `pg_ctl` on drop, restartable with
//! its data.
//!
//! PostgreSQL refuses to run as root: when the tests run as root (CI, the
//! dev containers), every PostgreSQL program runs as the `postgres` user
//! through `setpriv` (which execs, so the child we hold is the server
//! itself), and the temp dir is handed to that user.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::TestServerError;
use crate::process::{free_port, kill, spawn_command, wait_ready};

const BINARY: &str = "postgres";
const PACKAGE: &str = "postgresql";
/// Where Debian installs the server programs, one folder per major version.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";
/// The unprivileged user PostgreSQL runs as when the tests run as root.
const SERVICE_USER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One PostgreSQL server on a free loopback port, with a `postgres`
/// superuser and database (trust auth: no password).
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    dir: TempDir,
    run_as: Option<Ids>,
    child: Option<Child>,
}

/// uid and gid of [`SERVICE_USER`].
#[derive(Clone, Copy)]
struct Ids {
    uid: u32,
    gid: u32,
}

impl Postgres {
    /// `initdb` a fresh cluster and start it.
    pub fn start() -> Result<Self, TestServerError> {
        let bin = find_bin_dir()?;
        let run_as = if running_as_root()? {
            Some(service_ids()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("roomcast-postgres-")
            .tempdir()?;
        if let Some(ids) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(ids.uid), Some(ids.gid))?;
        }
        let mut server = Self {
            port: 0,
            bin,
            dir,
            run_as,
            child: None,
        };
        server.initdb()?;
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
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

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for PostgreSQL program `name`, as the service user if root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        match self.run_as {
            Some(ids) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={}", ids.uid))
                    .arg(format!("--regid={}", ids.gid))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn initdb(&self) -> Result<(), TestServerError> {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| missing_or_io(e, "initdb"))?;
        if !output.status.success() {
            return Err(TestServerError::NotReady {
                binary: "initdb",
                port: 0,
                detail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), TestServerError> {
        let mut cmd = self.command(BINARY);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            // The socket goes in the temp dir: /var/run/postgresql may not exist.
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            // A test database: no fsync (the machine does not crash, the OS
            // keeps the writes), but every commit is written before it is
            // acknowledged, so data survives `stop` + `start_again`.
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
        let log = self.log();
        let mut child = spawn_command(cmd, BINARY, PACKAGE, &log)?;
        let port = self.port;
        let ready = self.command("pg_isready");
        let ready_args = ["-h", "127.0.0.1", "-p", &port.to_string(), "-q"].map(String::from);
        wait_ready(BINARY, port, &mut child, &log, START_TIMEOUT, || {
            let mut probe = Command::new(ready.get_program());
            probe
                .args(ready.get_args())
                .args(&ready_args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            probe.status().is_ok_and(|s| s.success())
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stop the server at once (`pg_ctl stop -m immediate`, like a crash);
    /// its data stays for [`Postgres::start_again`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w", "-t", "10"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if stopped {
            let _ = child.wait();
        } else {
            kill(&mut child);
        }
    }

    /// Start the stopped server again on the same port with its data.
    pub fn start_again(&mut self) -> Result<(), TestServerError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn missing_or_io(e: std::io::Error, binary: &'static str) -> TestServerError {
    match e.kind() {
        std::io::ErrorKind::NotFound => TestServerError::MissingBinary {
            binary,
            package: PACKAGE,
        },
        _ => TestServerError::Io(e),
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` holding `initdb`, else the
/// folder of an `initdb` on PATH.
fn find_bin_dir() -> Result<PathBuf, TestServerError> {
    let missing = TestServerError::MissingBinary {
        binary: "initdb",
        package: PACKAGE,
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").ok_or(missing)?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists())
        .ok_or(TestServerError::MissingBinary {
            binary: "initdb",
            package: PACKAGE,
        })
}

/// Whether this process runs as root (`/proc/self` belongs to the effective uid).
fn running_as_root() -> Result<bool, TestServerError> {
    Ok(std::fs::metadata("/proc/self")?.uid() == 0)
}

fn service_ids() -> Result<Ids, TestServerError> {
    let field = |flag: &str| -> Result<u32, TestServerError> {
        let output = Command::new("id")
            .args([flag, SERVICE_USER])
            .output()
            .map_err(TestServerError::Io)?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| TestServerError::NotReady {
                binary: "initdb",
                port: 0,
                detail: format!(
                    "running as root needs a `{SERVICE_USER}` user to run PostgreSQL \
                     (the postgresql package creates it)"
                ),
            })
    };
    Ok(Ids {
        uid: field("-u")?,
        gid: field("-g")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(port: u16) -> bool {
        std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    #[test]
    fn postgres_starts_stops_and_starts_again_with_its_data() -> Result<(), TestServerError> {
        let mut pg = Postgres::start()?;
        let port = pg.port();
        assert!(accepts(port));
        assert!(pg.url().ends_with(&format!(":{port}/postgres")));
        assert!(pg.data().join("PG_VERSION").exists());
        pg.stop();
        assert!(!accepts(port), "stopped");
        pg.start_again()?;
        assert_eq!(pg.port(), port);
        assert!(accepts(port));
        Ok(())
    }
}
