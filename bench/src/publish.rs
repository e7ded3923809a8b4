//! Publishing through the push API (room-biz `POST /v1/rooms/{id}/messages`)
//! at a set rate, round robin over the rooms, each body stamped with its send
//! time in µs: `{"t": <µs since the epoch>}`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Publishes in flight at once.
const MAX_IN_FLIGHT: usize = 256;
/// Shortest publishing tick; higher rates send several messages per tick.
const MIN_TICK: Duration = Duration::from_millis(5);

/// What publishing achieved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Published {
    /// Messages accepted (a seq came back).
    pub messages: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Highest seq per room (the room's message count: rooms start empty).
    #[serde(skip)]
    pub max_seq: Vec<u64>,
    /// Seconds from the first to the last answer.
    pub seconds: f64,
    /// Request → answer time of the push API, ms (p50, p99, max).
    pub api_ms: [f64; 3],
}

/// Create `n` rooms, 32 requests at a time.
pub async fn create_rooms(
    http: &reqwest::Client,
    biz_url: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt as _;
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let body: serde_json::Value = http
                .post(format!("{biz_url}/v1/rooms"))
                .json(&serde_json::json!({ "title": format!("bench {i}") }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok(body["room_id"]
                .as_str()
                .context("no room_id in the answer")?
                .to_owned())
        })
        .buffered(32)
        .collect()
        .await;
    ids.into_iter().collect()
}

/// Publish `rate` messages of `kind` per second in total for `duration`,
/// spread evenly over time and round robin over `rooms`.
pub async fn run(
    http: &reqwest::Client,
    biz_url: &str,
    rooms: &[String],
    rate: f64,
    duration: Duration,
    (kind, priority): (&str, &str),
) -> Published {
    if rate <= 0.0 || rooms.is_empty() {
        return Published {
            max_seq: vec![0; rooms.len()],
            ..Published::default()
        };
    }
    let state = Arc::new(Mutex::new((
        Published {
            max_seq: vec![0; rooms.len()],
            ..Published::default()
        },
        crate::wire::histogram(),
    )));
    let gate = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let tick_every = Duration::from_secs_f64(1.0 / rate).max(MIN_TICK);
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate).floor() as u64 + 1).min(total);
        while sent < due {
            let room_index = (sent % rooms.len() as u64) as usize;
            sent += 1;
            let Ok(permit) = gate.clone().acquire_owned().await else {
                break;
            };
            let url = format!("{biz_url}/v1/rooms/{}/messages", rooms[room_index]);
            let body = format!(
                r#"{{"kind":"{kind}","body":{{"t":{}}},"priority":"{priority}","durable":true}}"#,
                common::time::now_us()
            );
            let (http, state) = (http.clone(), state.clone());
            tasks.spawn(async move {
                let asked = Instant::now();
                let outcome = post(&http, url, body).await;
                let took = asked.elapsed();
                drop(permit);
                let mut s = state.lock().expect("publish state");
                let (p, hist) = &mut *s;
                match outcome {
                    Ok(seq) => {
                        p.messages += 1;
                        p.max_seq[room_index] = p.max_seq[room_index].max(seq);
                        let _ = hist.record((took.as_micros() as u64).max(1));
                    }
                    Err(error) => {
                        p.errors += 1;
                        p.first_error.get_or_insert_with(|| format!("{error:#}"));
                    }
                }
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let mut s = state.lock().expect("publish state");
    let (p, hist) = &mut *s;
    p.seconds = seconds;
    let ms = |us: u64| us as f64 / 1000.0;
    p.api_ms = [
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.max()),
    ];
    std::mem::take(p)
}

impl Published {
    /// Two publishers' results over the same rooms as one: the counts add up,
    /// the highest seq per room wins, the slower push API figures are kept.
    pub fn merge(mut self, other: Published) -> Published {
        self.messages += other.messages;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        for (mine, theirs) in self.max_seq.iter_mut().zip(other.max_seq) {
            *mine = (*mine).max(theirs);
        }
        self.seconds = self.seconds.max(other.seconds);
        for (mine, theirs) in self.api_ms.iter_mut().zip(other.api_ms) {
            *mine = mine.max(theirs);
        }
        self
    }
}

async fn post(http: &reqwest::Client, url: String, body: String) -> anyhow::Result<u64> {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "{status}: {text}");
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["seq"]
        .as_u64()
        .with_context(|| format!("no seq in {text}"))
}
