//! The coordinator's side of the worker processes: start them (this binary,
//! re-executed with `worker`), send them commands, gather their events.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::proc::{self, ProcSample};
use crate::wire::{Cmd, Event, WorkerSpec};

/// Events (other than progress) a worker may have queued: a handful per run.
const EVENT_QUEUE: usize = 64;

/// One worker process.
struct WorkerProc {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Event>,
    covered: Arc<AtomicU64>,
    pid: u32,
}

/// The running workers.
pub struct Fleet {
    workers: Vec<WorkerProc>,
}

impl Fleet {
    /// Start one worker per spec and wait until each has read its spec.
    pub async fn start(specs: Vec<WorkerSpec>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the bench binary")?;
        let mut workers = Vec::new();
        for spec in specs {
            let mut child = tokio::process::Command::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a worker process")?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let mut line = serde_json::to_string(&spec)?;
            line.push('\n');
            stdin.write_all(line.as_bytes()).await?;
            let (tx, events) = mpsc::channel(EVENT_QUEUE);
            let covered = Arc::new(AtomicU64::new(0));
            let progress = covered.clone();
            let index = spec.index;
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Event>(&line) {
                        Ok(Event::Progress { covered, .. }) => {
                            progress.store(covered, Ordering::Relaxed)
                        }
                        Ok(event) => {
                            let _ = tx.send(event).await;
                        }
                        Err(error) => eprintln!("worker {index}: bad event line ({error}): {line}"),
                    }
                }
            });
            workers.push(WorkerProc {
                pid: child.id().unwrap_or(0),
                child,
                stdin,
                events,
                covered,
            });
        }
        let mut fleet = Self { workers };
        fleet
            .expect("ready", Duration::from_secs(60), |e| match e {
                Event::Ready { pid } => Some(pid),
                _ => None,
            })
            .await?;
        Ok(fleet)
    }

    /// Send a command to every worker.
    pub async fn send(&mut self, cmd: Cmd) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(&cmd)?;
        line.push('\n');
        for w in &mut self.workers {
            w.stdin
                .write_all(line.as_bytes())
                .await
                .with_context(|| format!("worker {} is gone", w.pid))?;
            w.stdin.flush().await?;
        }
        Ok(())
    }

    /// Wait for one event `pick` accepts from every worker.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        pick: impl Fn(Event) -> Option<T>,
    ) -> anyhow::Result<Vec<T>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        for (i, w) in self.workers.iter_mut().enumerate() {
            loop {
                let event = tokio::time::timeout_at(deadline, w.events.recv())
                    .await
                    .with_context(|| format!("worker {i} sent no {what} within {timeout:?}"))?;
                let Some(event) = event else {
                    let status = w.child.try_wait().ok().flatten();
                    bail!("worker {i} exited before {what} ({status:?})");
                };
                if let Some(v) = pick(event) {
                    out.push(v);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Holder seqs the workers reported covered so far (received, or
    /// sampled out by the server).
    pub fn covered(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.covered.load(Ordering::Relaxed))
            .sum()
    }

    /// CPU and RSS of the worker processes now.
    pub fn sample(&self) -> ProcSample {
        ProcSample::sum(self.workers.iter().map(|w| proc::sample(Some(w.pid))))
    }

    /// Worker pids.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    /// Wait for every worker to exit (after `Finish`), killing stragglers.
    pub async fn wait(self) {
        for mut w in self.workers {
            if tokio::time::timeout(Duration::from_secs(30), w.child.wait())
                .await
                .is_err()
            {
                let _ = w.child.kill().await;
            }
        }
    }
}
