//! `roomcast-send-floor`: what one TCP `send` of a small frame costs the
//! sending process on this machine, with nothing of Roomcast around it.
//!
//! A delivery over WebSocket is at least one `send` to the viewer's socket
//! when its messages come one at a time (small rooms at a few messages per
//! second), so the deliveries per server CPU-second any server can reach in
//! that shape are bounded by the sends per CPU-second measured here. Over
//! loopback the sender's `send` also runs the receiver's TCP input and wakes
//! the receiving thread, as it does for the bench's clients.
//!
//! One thread sends `--bytes` to each socket of a group of `--per-room` in
//! turn (a message fanned out to one room), `--rate` messages per second
//! spread over `--sockets / --per-room` groups; readers in a separate tokio
//! runtime (two workers, like the bench's clients) drain every socket. The
//! report is one JSON line: sends, the sending thread's CPU seconds (user and
//! system, from `/proc/thread-self/stat`) and sends per sender CPU-second.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use tokio::io::AsyncReadExt as _;

#[derive(Parser, Debug)]
#[command(about = "Cost of one small TCP send on this machine (the floor of a delivery)")]
struct Args {
    /// Connected sockets.
    #[arg(long, default_value_t = 5000)]
    sockets: usize,
    /// Sockets per group (a room's members).
    #[arg(long, default_value_t = 50)]
    per_room: usize,
    /// Messages per second over all groups (each is `per_room` sends).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Bytes per send (a delivery frame of a 100-byte message is ~110 bytes).
    #[arg(long, default_value_t = 110)]
    bytes: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

/// User and system CPU seconds of the calling thread.
fn thread_cpu_s() -> (f64, f64) {
    roomcast_bench::proc::cpu_times("/proc/thread-self/stat")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.per_room >= 1 && args.sockets >= args.per_room,
        "--sockets must hold at least one group of --per-room"
    );
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let addr = listener.local_addr()?;
    let readers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()?;
    let mut senders = Vec::with_capacity(args.sockets);
    for _ in 0..args.sockets {
        let client = readers.block_on(tokio::net::TcpStream::connect(addr))?;
        let (server, _) = listener.accept().context("accept")?;
        server.set_nodelay(true)?;
        readers.spawn(async move {
            let mut client = client;
            let mut buf = vec![0u8; 4096];
            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        senders.push(server);
    }
    let groups: Vec<&[TcpStream]> = senders.chunks(args.per_room).collect();
    let frame = vec![b'x'; args.bytes];
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let end = Instant::now() + Duration::from_secs(args.duration);
    let (user0, sys0) = thread_cpu_s();
    let started = Instant::now();
    let mut next = Instant::now();
    let mut sends = 0u64;
    let mut group = 0;
    while Instant::now() < end {
        for mut socket in groups[group] {
            socket.write_all(&frame).context("send")?;
            sends += 1;
        }
        group = (group + 1) % groups.len();
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (user1, sys1) = thread_cpu_s();
    let (user, sys) = (user1 - user0, sys1 - sys0);
    let report = serde_json::json!({
        "tool": "send-floor",
        "sockets": args.sockets,
        "per_room": args.per_room,
        "rate": args.rate,
        "bytes": args.bytes,
        "seconds": wall,
        "sends": sends,
        "sends_per_sec": sends as f64 / wall,
        "sender_cpu_user_s": user,
        "sender_cpu_sys_s": sys,
        "sends_per_sender_cpu_s": sends as f64 / (user + sys).max(0.01),
        "sender_us_per_send": (user + sys) * 1e6 / sends.max(1) as f64,
    });
    println!("{report}");
    Ok(())
}
