//! Telemetry: Prometheus metrics ([`metrics`]) recorded by the engine, the spans sagas and
//! steps run under, and the subscriber ([`init`]) that logs them and exports them over OTLP
//! when configured.

pub mod metrics;
mod tracing;

pub use self::tracing::{LogFormat, TelemetryGuard, init};
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
/// was started with a W3C `traceparent`. The engine records `tx_type` and `status` on it.
pub fn saga_span(tx_id: &str, traceparent: Option<&str>) -> ::tracing::Span {
    let span = ::tracing::info_span!(
        "saga",
        tx_id = %tx_id,
        tx_type = ::tracing::field::Empty,
        status = ::tracing::field::Empty,
    );
    if let Some(traceparent) = traceparent {
        self::tracing::set_remote_parent(&span, traceparent);
    }
    span
}

/// The span of one step call (`phase` is `execute` or `compensate`), a child of the saga's;
/// its `outcome` field is recorded when the call returns.
pub fn step_span(
    tx_id: &str,
    tx_type: &str,
    step: &str,
    attempt: u32,
    phase: &'static str,
) -> ::tracing::Span {
    ::tracing::info_span!(
        "step",
        tx_id = %tx_id,
        tx_type = %tx_type,
        step = %step,
        // Signed, so the exported attribute is an integer (unsigned ones become strings).
        attempt = i64::from(attempt),
        phase,
        outcome = ::tracing::field::Empty,
    )
}

/// The W3C `traceparent` of the current span, when traces are exported (`None` otherwise).
pub fn current_traceparent() -> Option<String> {
    self::tracing::traceparent_of(&::tracing::Span::current())
}

/// The seed's `StartTransaction`, for callers who run their own spans around a saga: a
/// span named `saga` with the transaction's id and type (enter it, or instrument a future).
pub fn start_transaction(tx_id: &str, tx_type: &str) -> ::tracing::Span {
    let span = saga_span(tx_id, None);
    span.record("tx_type", tx_type);
    span
}

/// The seed's `StartStep`: a span named `step`, a child of the current span, for step `name`
/// at `step_index` of saga `tx_id`.
pub fn start_step(tx_id: &str, name: &str, step_index: u32) -> ::tracing::Span {
    ::tracing::info_span!("step", tx_id = %tx_id, step = %name, step_index, outcome = ::tracing::field::Empty)
}
