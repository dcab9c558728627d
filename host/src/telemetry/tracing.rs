//! Logs and traces through one `tracing` subscriber: log lines (text or JSON, filtered by
//! `RUST_LOG`) and, when an OTLP endpoint is configured, spans exported over OTLP/HTTP.
//!
//! The exporter follows the standard `OTEL_*` variables: `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` turn it on; `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` name the service (`rte` by default); `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*` tune it;
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.

use std::collections::HashMap;
use std::io::IsTerminal;

use opentelemetry::Value;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::{Level, Metadata, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{self, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The log filter when `RUST_LOG` is unset.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,cranelift=warn,wasmtime=warn";
/// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` gives one.
const DEFAULT_SERVICE_NAME: &str = "rte";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, prefixed with the spans they are in.
    #[default]
    Text,
    /// One JSON object per line, with the event's fields at the top level and the fields
    /// of every enclosing span under `spans`.
    Json,
}

/// Keeps the trace exporter alive; dropping it exports buffered spans and shuts it down.
#[must_use = "dropping the guard stops exporting traces"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        let shutdown = move || {
            if let Err(e) = provider.shutdown() {
                eprintln!("trace exporter shutdown: {e}");
            }
        };
        // The batch exporter is a task on the runtime: shutting down waits for it, so the
        // worker this runs on must hand its other tasks over first. A current-thread
        // runtime cannot run the task while blocked here, so its last spans are dropped.
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(shutdown),
            Ok(_) => {}
            Err(_) => shutdown(),
        }
    }
}

/// Install the process's `tracing` subscriber: logs in `format` filtered by `RUST_LOG`, plus
/// span export over OTLP/HTTP when an OTLP endpoint is configured. Call it once, inside a
/// Tokio runtime (the exporter is a task on it), and keep the guard for the process's life.
/// Does nothing if a subscriber is already installed.
pub fn init(format: LogFormat) -> TelemetryGuard {
    let env =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // The host's own spans stay enabled whatever `RUST_LOG` says, so every line logged inside
    // a saga carries its tx id and step even when only warnings are shown.
    let logs_filter = env.or(filter::filter_fn(host_span).with_max_level_hint(LevelFilter::INFO));
    let fmt = tracing_subscriber::fmt::layer();
    let logs = match format {
        LogFormat::Text => fmt.with_ansi(std::io::stdout().is_terminal()).boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    }
    .with_filter(logs_filter);

    let (provider, error) = if exporter_configured() {
        match tracer_provider() {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("rte"))
            // The span names and fields say where a span comes from: no code, thread or
            // target attributes, and no busy/idle timings.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(trace_filter())
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if let Some(e) = error {
        tracing::warn!(error = %e, "OTLP trace export is configured but cannot start; continuing without it");
    } else if installed && provider.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    TelemetryGuard { provider }
}

/// A span of the host's own (saga, step, plugin call, lock, store) at info level or above.
fn host_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.target().starts_with("rte_host") && *meta.level() <= Level::INFO
}

/// Spans at info level and above, with their events; never the exporter's own, so
/// exporting cannot feed itself.
fn trace_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF)
}

/// Whether the environment asks for span export.
fn exporter_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| {
        std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// An OTLP/HTTP exporter behind a batch processor running on the current Tokio runtime.
fn tracer_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource())
        .build())
}

/// The resource from `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, named `rte` unless
/// those name the service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    let builder = Resource::builder();
    let builder = if named {
        builder
    } else {
        builder.with_service_name(DEFAULT_SERVICE_NAME)
    };
    let version = opentelemetry::Key::from_static_str("service.version");
    if detected.get(&version).is_some() {
        builder.build()
    } else {
        builder
            .with_attribute(opentelemetry::KeyValue::new(
                version,
                Value::from(env!("CARGO_PKG_VERSION")),
            ))
            .build()
    }
}

/// Make the W3C `traceparent` the OTel parent of `span` (which must not have started yet).
/// An invalid `traceparent`, or no OTel layer, leaves the span as it is.
pub(crate) fn set_remote_parent(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The W3C `traceparent` of `span`, when it is exported.
pub(crate) fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}
