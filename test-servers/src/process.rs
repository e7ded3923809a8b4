//! Spawning server processes and waiting for them.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestServerError;

/// Ports handed to servers come from below the kernel's ephemeral range, so a
/// server stopped and started again on the same port (a simulated outage) does
/// not find it taken by some client's outgoing connection meanwhile.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A port that was free a moment ago, outside the ephemeral range. The server
/// binds it right after; if another process wins the race, startup fails and
/// the caller retries with a new port. Outside the ephemeral range, no
/// outgoing connection (tests open thousands) and no `:0` bind can take it
/// in between, so the race is only with another caller of this function.
pub fn free_port() -> Result<u16, TestServerError> {
    use std::time::{SystemTime, UNIX_EPOCH};
    // A cheap per-call spread; uniqueness is checked by binding.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    for i in 0..200u32 {
        let offset = seed.wrapping_add(i.wrapping_mul(7919)) % span;
        let port = PORT_RANGE.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Spawn `binary` with `args`, logging to `log`.
pub(crate) fn spawn(
    binary: &'static str,
    package: &'static str,
    args: &[String],
    log: &Path,
) -> Result<Child, TestServerError> {
    let mut cmd = Command::new(binary);
    cmd.args(args);
    spawn_command(cmd, binary, package, log)
}

/// Spawn `cmd` (program `binary`, from `package`), logging to `log`.
pub(crate) fn spawn_command(
    mut cmd: Command,
    binary: &'static str,
    package: &'static str,
    log: &Path,
) -> Result<Child, TestServerError> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TestServerError::MissingBinary { binary, package },
            _ => TestServerError::Io(e),
        })
}

/// Poll `ready` until it returns true, the child exits, or `timeout` passes.
pub(crate) fn wait_ready(
    binary: &'static str,
    port: u16,
    child: &mut Child,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), TestServerError> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(TestServerError::NotReady {
                binary,
                port,
                detail: format!("exited with {status}: {}", tail(log)),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestServerError::NotReady {
                binary,
                port,
                detail: format!("timed out: {}", tail(log)),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `request` to 127.0.0.1:`port` and return what comes back (short reads).
pub(crate) fn exchange(port: u16, request: &[u8]) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(request).ok()?;
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (servers
/// that speak only TLS, which [`exchange`] cannot talk to).
pub(crate) fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Kill and reap.
pub(crate) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
