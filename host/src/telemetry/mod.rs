//! Telemetry: Prometheus metrics ([`metrics`]) recorded by the engine, and the spans sagas
//! and steps run under (exported over OTLP when configured).

pub mod metrics;

pub use metrics::{Metrics, metrics};

/// A saga-type label value that keeps cardinality bounded: defined types as they are,
/// anything else as `adhoc`.
pub fn type_label<'a>(definitions: &crate::engine::Definitions, tx_type: &'a str) -> &'a str {
    if definitions.get(tx_type).is_some() {
        tx_type
    } else {
        crate::engine::ADHOC_TYPE
    }
}

/// The span one drive of a saga runs under; a child of the caller's trace when the saga
/// was started with a W3C `traceparent`.
pub fn saga_span(tx_id: &str, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        "saga",
        tx_id = %tx_id,
        tx_type = tracing::field::Empty,
        status = tracing::field::Empty,
        traceparent = tracing::field::Empty,
    );
    if let Some(tp) = traceparent {
        span.record("traceparent", tp);
    }
    span
}

/// The span of one step call (`phase` is `execute` or `compensate`); its `outcome` field
/// is recorded when the call returns.
pub fn step_span(
    tx_id: &str,
    tx_type: &str,
    step: &str,
    attempt: u32,
    phase: &'static str,
) -> tracing::Span {
    tracing::info_span!(
        "step",
        tx_id = %tx_id,
        tx_type = %tx_type,
        step = %step,
        attempt,
        phase,
        outcome = tracing::field::Empty,
    )
}

/// The W3C `traceparent` of the current span, when traces are exported.
pub fn current_traceparent() -> Option<String> {
    None
}
