//! Distributed traces: W3C trace context across internal gRPC calls
//! (metadata) and inside the message envelope (a `traceparent` string that
//! travels publish → append → notify/broadcast → fan-out).
//!
//! Everything here is a no-op, without allocating, until
//! [`crate::telemetry`] installs an OpenTelemetry exporter: hot paths create
//! their spans with [`span!`](crate::span) and pass [`traceparent`] strings
//! that stay empty.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header (and metadata key) carrying a span's context.
pub const TRACEPARENT: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: false unless an OTLP endpoint is configured.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Called by [`crate::telemetry`] once the exporter is installed.
pub(crate) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// An INFO span when traces are exported, else [`tracing::Span::none`]
/// (nothing recorded, nothing allocated). Same arguments as
/// `tracing::info_span!`.
#[macro_export]
macro_rules! span {
    ($($arg:tt)*) => {
        if $crate::trace::enabled() {
            ::tracing::info_span!($($arg)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// The `traceparent` of `span` when it is part of a sampled trace, else an
/// empty string (the envelope field's "no trace").
pub fn traceparent(span: &Span) -> String {
    if !enabled() || span.is_none() {
        return String::new();
    }
    let cx = span.context();
    if !cx.span().span_context().is_sampled() {
        return String::new();
    }
    let mut carrier = One(None);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.0.unwrap_or_default()
}

/// Make `span` a child of the remote span `traceparent` names (an envelope
/// field, or a metadata value). Empty or malformed: nothing changes.
pub fn follow(span: &Span, traceparent: &str) {
    if traceparent.is_empty() || span.is_none() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&One(Some(traceparent.to_owned())));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Put the current span's context into an outgoing gRPC request, so the
/// callee's spans join the trace.
pub fn inject<T>(request: &mut tonic::Request<T>) {
    if !enabled() {
        return;
    }
    let value = traceparent(&Span::current());
    if value.is_empty() {
        return;
    }
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_str()) {
        request.metadata_mut().insert(TRACEPARENT, value);
    }
}

/// `message` as a request carrying the current span's context.
pub fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    inject(&mut request);
    request
}

/// The span of one incoming gRPC call (for `Server::builder().trace_fn`):
/// a child of the caller's span when the call carries a sampled
/// `traceparent`, else no span at all (untraced calls and the long-lived
/// attach streams cost nothing).
pub fn grpc_server_span<B>(request: &tonic::codegen::http::Request<B>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let Some(parent) = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    else {
        return Span::none();
    };
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %request.uri().path(),
        otel.kind = "server",
        rpc.system = "grpc",
    );
    follow(&span, parent);
    span
}

/// A carrier holding one `traceparent` value.
struct One(Option<String>);

impl Injector for One {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

impl Extractor for One {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0.as_deref()).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_tracing_makes_no_spans_and_empty_contexts() {
        // The exporter is never installed in unit tests.
        let span = crate::span!("test.span");
        assert!(span.is_none());
        assert_eq!(traceparent(&span), "");
        follow(
            &span,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        let mut request = tonic::Request::new(());
        inject(&mut request);
        assert!(request.metadata().get(TRACEPARENT).is_none());
        let http = tonic::codegen::http::Request::builder()
            .header(
                TRACEPARENT,
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(())
            .expect("request");
        assert!(grpc_server_span(&http).is_none());
    }
}
