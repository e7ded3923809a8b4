//! A throwaway OTLP/gRPC trace receiver for benchmarks: counts the spans it
//! is sent and prints the count every 5 s (docs/benchmarks.md, "Tracing cost").
//!
//! `cargo run -p integration-tests --example otlp_sink` prints its endpoint
//! first; export `OTEL_EXPORTER_OTLP_ENDPOINT` to it.

use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let receiver = integration_tests::otlp::OtlpReceiver::start().await?;
    println!("{}", receiver.endpoint);
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        eprintln!("spans received: {}", receiver.spans().len());
    }
}
