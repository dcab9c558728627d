//! Every `rte_*` Prometheus metric, recorded by the engine itself. Labels are bounded:
//! saga type (defined types, else `adhoc`), step name, service, plugin file — never ids.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metric names, as the seed defines them (and a few a host needs).
pub mod names {
    /// Sagas started.
    pub const TX_STARTED: &str = "rte_tx_started_total";
    /// Sagas completed.
    pub const TX_COMPLETED: &str = "rte_tx_completed_total";
    /// Sagas failed (whether or not compensation followed).
    pub const TX_FAILED: &str = "rte_tx_failed_total";
    /// Sagas whose completed steps were all compensated.
    pub const TX_COMPENSATED: &str = "rte_tx_compensated_total";
    /// Saga duration from creation to its terminal status.
    pub const TX_DURATION: &str = "rte_tx_duration_seconds";
    /// Sagas being driven by this host.
    pub const TX_IN_FLIGHT: &str = "rte_tx_in_flight";
    /// Branches of parallel groups whose execute runs on this host now.
    pub const PARALLEL_BRANCHES_RUNNING: &str = "rte_parallel_branches_running";
    /// Parallel groups that ended, by outcome (`completed`, `failed`).
    pub const PARALLEL_GROUPS: &str = "rte_parallel_groups_total";
    /// Step calls that ended waiting for a reply, by step.
    pub const WAITS_STARTED: &str = "rte_waits_started_total";
    /// Replies that reached the host, by source (`broker`, `http`, `deadline`) and outcome
    /// (`recorded`, `duplicate`, `late`, `unknown`).
    pub const REPLIES: &str = "rte_replies_total";
    /// Messages the outbox sent to the broker, and sends that failed (to be retried).
    pub const OUTBOX_SENT: &str = "rte_outbox_sent_total";
    /// Outbox sends that failed (retried by the relay).
    pub const OUTBOX_SEND_ERRORS: &str = "rte_outbox_send_errors_total";
    /// Step executions started.
    pub const STEP_STARTED: &str = "rte_step_started_total";
    /// Step executions completed.
    pub const STEP_COMPLETED: &str = "rte_step_completed_total";
    /// Step calls failed.
    pub const STEP_FAILED: &str = "rte_step_failed_total";
    /// Step call duration.
    pub const STEP_DURATION: &str = "rte_step_duration_seconds";
    /// Circuit breaker state: 0 closed, 1 open, 2 half-open.
    pub const CIRCUIT_STATE: &str = "rte_circuit_breaker_state";
    /// Lock sets acquired.
    pub const LOCK_ACQUIRED: &str = "rte_lock_acquired_total";
    /// Time to acquire a saga's locks.
    pub const LOCK_ACQUIRE_DURATION: &str = "rte_lock_acquire_duration_seconds";
    /// Lock extensions that failed (the saga lost its locks).
    pub const LOCK_LOST: &str = "rte_lock_lost_total";
    /// Step results refused because a plugin key they read changed before the commit.
    pub const KV_CONFLICTS: &str = "rte_kv_conflicts_total";
    /// Stuck sagas found by recovery scans.
    pub const RECOVERY_SCANNED: &str = "rte_recovery_scanned_total";
    /// Sagas resumed by recovery.
    pub const RECOVERY_PROCESSED: &str = "rte_recovery_processed_total";
    /// Store commit latency.
    pub const STORE_COMMIT_DURATION: &str = "rte_store_commit_duration_seconds";
    /// Plugin files that failed to load.
    pub const PLUGIN_LOAD_ERRORS: &str = "rte_plugin_load_errors_total";
    /// Plugin (re)loads published.
    pub const PLUGIN_RELOADS: &str = "rte_plugin_reloads_total";
    /// Plugin calls that trapped or ran out of time.
    pub const PLUGIN_TRAPS: &str = "rte_plugin_traps_total";
    /// Plugin calls stopped by a resource limit.
    pub const PLUGIN_LIMIT_HITS: &str = "rte_plugin_limit_hits_total";
    /// Plugin log bytes dropped over a call's log limit.
    pub const PLUGIN_LOG_DROPPED: &str = "rte_plugin_log_dropped_bytes_total";
    /// Plugin call duration, instantiation included.
    pub const PLUGIN_CALL_DURATION: &str = "rte_plugin_call_duration_seconds";
}

/// The host's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// Sagas started, by type.
    pub tx_started: IntCounterVec,
    /// Sagas completed, by type.
    pub tx_completed: IntCounterVec,
    /// Sagas failed, by type.
    pub tx_failed: IntCounterVec,
    /// Sagas compensated, by type.
    pub tx_compensated: IntCounterVec,
    /// Saga duration, by type and final status.
    pub tx_duration: HistogramVec,
    /// Sagas in flight here.
    pub tx_in_flight: IntGauge,
    /// Branches of parallel groups running here.
    pub parallel_branches_running: IntGauge,
    /// Parallel groups ended, by outcome.
    pub parallel_groups: IntCounterVec,
    /// Calls that ended waiting for a reply, by step.
    pub waits_started: IntCounterVec,
    /// Replies received, by source and outcome.
    pub replies: IntCounterVec,
    /// Outbox messages sent.
    pub outbox_sent: IntCounter,
    /// Outbox sends that failed.
    pub outbox_send_errors: IntCounter,
    /// Step executions started, by step.
    pub step_started: IntCounterVec,
    /// Step executions completed, by step.
    pub step_completed: IntCounterVec,
    /// Step calls failed, by step, phase and kind.
    pub step_failed: IntCounterVec,
    /// Step call duration, by step and phase.
    pub step_duration: HistogramVec,
    /// Breaker state, by service.
    pub circuit_state: IntGaugeVec,
    /// Lock sets acquired.
    pub lock_acquired: IntCounter,
    /// Lock acquisition time.
    pub lock_acquire_duration: Histogram,
    /// Locks lost.
    pub lock_lost: IntCounter,
    /// Step results refused for a changed plugin key, by step and phase.
    pub kv_conflicts: IntCounterVec,
    /// Recovery: stuck sagas found.
    pub recovery_scanned: IntCounter,
    /// Recovery: sagas resumed.
    pub recovery_processed: IntCounter,
    /// Store commit latency.
    pub store_commit_duration: Histogram,
    /// Plugin load errors, by file.
    pub plugin_load_errors: IntCounterVec,
    /// Plugin loads published, by file.
    pub plugin_reloads: IntCounterVec,
    /// Plugin traps and timeouts, by plugin.
    pub plugin_traps: IntCounterVec,
    /// Plugin call duration, by plugin and call.
    pub plugin_call_duration: HistogramVec,
    /// Calls stopped by a resource limit, by plugin and limit.
    pub plugin_limit_hits: IntCounterVec,
    /// Log bytes dropped over the per-call limit, by plugin.
    pub plugin_log_dropped: IntCounterVec,
}

const FAST: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SLOW: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let plain = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let single = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        use names::*;
        let tx_in_flight =
            IntGauge::new(TX_IN_FLIGHT, "Sagas being driven by this host").expect("valid metric");
        registry
            .register(Box::new(tx_in_flight.clone()))
            .expect("unique metric");
        let parallel_branches_running = IntGauge::new(
            PARALLEL_BRANCHES_RUNNING,
            "Branches of parallel groups whose execute runs on this host",
        )
        .expect("valid metric");
        registry
            .register(Box::new(parallel_branches_running.clone()))
            .expect("unique metric");
        let circuit_state = IntGaugeVec::new(
            Opts::new(
                CIRCUIT_STATE,
                "Circuit breaker state (0 closed, 1 open, 2 half-open)",
            ),
            &["service"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(circuit_state.clone()))
            .expect("unique metric");
        Self {
            tx_started: counter(TX_STARTED, "Sagas started", &["tx_type"]),
            tx_completed: counter(TX_COMPLETED, "Sagas completed", &["tx_type"]),
            tx_failed: counter(TX_FAILED, "Sagas failed", &["tx_type"]),
            tx_compensated: counter(TX_COMPENSATED, "Sagas compensated", &["tx_type"]),
            tx_duration: histogram(
                TX_DURATION,
                "Saga duration to its terminal status",
                &["tx_type", "status"],
                SLOW,
            ),
            tx_in_flight,
            parallel_branches_running,
            parallel_groups: counter(
                PARALLEL_GROUPS,
                "Parallel groups that ended, by outcome",
                &["outcome"],
            ),
            waits_started: counter(
                WAITS_STARTED,
                "Step calls that ended waiting for a reply",
                &["step"],
            ),
            replies: counter(
                REPLIES,
                "Replies received, by source and outcome",
                &["source", "outcome"],
            ),
            outbox_sent: plain(OUTBOX_SENT, "Outbox messages sent to the broker"),
            outbox_send_errors: plain(
                OUTBOX_SEND_ERRORS,
                "Outbox sends that failed and will be retried",
            ),
            step_started: counter(STEP_STARTED, "Step executions started", &["step"]),
            step_completed: counter(STEP_COMPLETED, "Step executions completed", &["step"]),
            step_failed: counter(STEP_FAILED, "Step calls failed", &["step", "phase", "kind"]),
            step_duration: histogram(
                STEP_DURATION,
                "Step call duration",
                &["step", "phase"],
                FAST,
            ),
            circuit_state,
            lock_acquired: plain(LOCK_ACQUIRED, "Saga lock sets acquired"),
            lock_acquire_duration: single(
                LOCK_ACQUIRE_DURATION,
                "Time to acquire a saga's locks",
                FAST,
            ),
            lock_lost: plain(LOCK_LOST, "Saga locks lost while running"),
            kv_conflicts: counter(
                KV_CONFLICTS,
                "Step results refused because a plugin key they read changed before the commit",
                &["step", "phase"],
            ),
            recovery_scanned: plain(RECOVERY_SCANNED, "Stuck sagas found by recovery"),
            recovery_processed: plain(RECOVERY_PROCESSED, "Sagas resumed by recovery"),
            store_commit_duration: single(STORE_COMMIT_DURATION, "Store commit latency", FAST),
            plugin_load_errors: counter(
                PLUGIN_LOAD_ERRORS,
                "Plugin files that failed to load",
                &["file"],
            ),
            plugin_reloads: counter(PLUGIN_RELOADS, "Plugin versions loaded", &["file"]),
            plugin_traps: counter(
                PLUGIN_TRAPS,
                "Plugin calls that trapped or timed out",
                &["plugin"],
            ),
            plugin_limit_hits: counter(
                PLUGIN_LIMIT_HITS,
                "Plugin calls stopped by a resource limit",
                &["plugin", "limit"],
            ),
            plugin_log_dropped: counter(
                PLUGIN_LOG_DROPPED,
                "Plugin log bytes dropped over the per-call limit",
                &["plugin"],
            ),
            plugin_call_duration: histogram(
                PLUGIN_CALL_DURATION,
                "Plugin call duration",
                &["plugin", "call"],
                FAST,
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
