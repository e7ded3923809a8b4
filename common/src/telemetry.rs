//! Logs and traces shared by every binary.
//!
//! Logs go to stderr (stdout stays free for command output), as text or as
//! one JSON object per line (`--log-format json` / `ROOMCAST_LOG_FORMAT`),
//! filtered by `RUST_LOG`. Colours only when stderr is a terminal.
//!
//! Traces are exported over OTLP/gRPC when the standard OpenTelemetry
//! variables ask for it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set and `OTEL_SDK_DISABLED` not
//! `true`. `OTEL_SERVICE_NAME` names the service (default: the binary),
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` choose the sampler (the
//! SDK default is `parentbased_always_on`). Without an endpoint nothing is
//! set up and [`crate::trace::enabled`] stays false.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Environment variable choosing the log format of every binary.
pub const LOG_FORMAT_ENV: &str = "ROOMCAST_LOG_FORMAT";

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Where traces go, read from the standard `OTEL_*` variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSettings {
    /// The OTLP/gRPC endpoint (`http://collector:4317`).
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

impl TraceSettings {
    /// The settings `lookup` (an environment) asks for, or `None` when traces
    /// are off: no endpoint, `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`.
    pub fn from_env(
        default_service: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Option<Self> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return None;
        }
        if set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none")) {
            return None;
        }
        let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
        let service_name = set("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned());
        Some(Self {
            endpoint,
            service_name,
        })
    }
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] (or drop) sends
/// what is buffered. Call it while the Tokio runtime still runs.
#[must_use = "dropping it stops the trace exporter"]
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn traces_on(&self) -> bool {
        self.provider.is_some()
    }

    /// Flush buffered spans and stop the exporter.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            crate::trace::set_enabled(false);
            if let Err(error) = provider.shutdown() {
                eprintln!("warning: cannot flush traces: {error}");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Install logging on stderr in text format (tests, simple tools). Safe to
/// call more than once: later calls are ignored.
pub fn init(default_filter: &str) {
    let _ = tracing_subscriber::registry()
        .with(log_layer(LogFormat::Text, default_filter))
        .try_init();
}

/// Install logging in `format` and, when the `OTEL_*` variables ask for it,
/// trace export as `service` (the default `service.name`). Must run inside a
/// Tokio runtime (the gRPC exporter needs one). A failing exporter is a
/// warning, not a reason to stop the service.
pub fn init_service(service: &str, default_filter: &str, format: LogFormat) -> Telemetry {
    let settings = TraceSettings::from_env(service, |name| std::env::var(name).ok());
    let mut problem = None;
    let provider = match settings.as_ref().map(build_provider) {
        Some(Ok(provider)) => Some(provider),
        Some(Err(error)) => {
            problem = Some(error);
            None
        }
        None => None,
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("roomcast"))
            .with_filter(LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry()
        .with(log_layer(format, default_filter))
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(error) = problem {
        tracing::warn!(%error, "Cannot set up trace export; running without traces.");
    }
    match (installed, provider, settings) {
        (true, Some(provider), Some(settings)) => {
            crate::trace::set_enabled(true);
            tracing::info!(
                endpoint = %settings.endpoint,
                service = %settings.service_name,
                "Exporting traces over OTLP/gRPC."
            );
            Telemetry {
                provider: Some(provider),
            }
        }
        (_, Some(provider), _) => {
            let _ = provider.shutdown();
            Telemetry::default()
        }
        _ => Telemetry::default(),
    }
}

type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

fn log_layer(format: LogFormat, default_filter: &str) -> BoxedLayer {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt
            .with_ansi(stderr_is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    }
}

fn build_provider(settings: &TraceSettings) -> Result<SdkTracerProvider, String> {
    if let Ok(protocol) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")
        && !protocol.trim().is_empty()
        && protocol.trim() != "grpc"
    {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: Roomcast exports OTLP over gRPC"
        ));
    }
    // The endpoint, timeout and headers come from the OTEL_EXPORTER_OTLP_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    // The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Whether stderr is a terminal (and so may show ANSI colours).
pub fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn traces_are_off_without_an_endpoint_or_when_disabled() {
        assert_eq!(TraceSettings::from_env("roomcast-push", env(&[])), None);
        assert_eq!(
            TraceSettings::from_env("roomcast-push", env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])),
            None
        );
        assert_eq!(
            TraceSettings::from_env(
                "roomcast-push",
                env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                    ("OTEL_SDK_DISABLED", "TRUE"),
                ])
            ),
            None
        );
        assert_eq!(
            TraceSettings::from_env(
                "roomcast-push",
                env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                    ("OTEL_TRACES_EXPORTER", "none"),
                ])
            ),
            None
        );
    }

    #[test]
    fn an_endpoint_turns_traces_on_with_the_service_name() {
        let on = TraceSettings::from_env(
            "roomcast-push",
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("OTEL_SDK_DISABLED", "false"),
            ]),
        );
        assert_eq!(
            on,
            Some(TraceSettings {
                endpoint: "http://127.0.0.1:4317".into(),
                service_name: "roomcast-push".into(),
            })
        );
        let named = TraceSettings::from_env(
            "roomcast-push",
            env(&[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://10.0.0.1:4317"),
                ("OTEL_SERVICE_NAME", "push-eu"),
            ]),
        )
        .expect("on");
        assert_eq!(named.endpoint, "http://10.0.0.1:4317");
        assert_eq!(named.service_name, "push-eu");
    }
}
