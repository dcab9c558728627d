//! The recovery worker: finds sagas no live host is advancing (not updated for
//! `stuck_threshold`) and resumes them from their recorded state. A resumed saga is first
//! claimed with a version-fenced write, so when several hosts scan the same database only
//! one of them takes each saga.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, TxStatus};
use crate::engine::{Patience, With};
use crate::events::{Event, kinds};
use crate::lifecycle::{Actor, FailureKind, HistoryKind, TxEvent};
use crate::store::{HistoryEntry, StepRecord, StoreError, TxFilter};

/// How many stuck sagas one scan takes at most.
const SCAN_BATCH: u32 = 200;

/// Recovery settings.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryConfig {
    /// Time between scans.
    pub interval: Duration,
    /// A saga not updated for this long is stuck.
    pub stuck_threshold: Duration,
    /// Recoveries of one saga before it is left to an operator with `alert.critical`.
    pub max_retries: u32,
}

/// What the worker has done, for `/api/recovery/stats`.
#[derive(Debug, Default)]
pub struct RecoveryStats {
    running: AtomicBool,
    scanned: AtomicU64,
    processed: AtomicU64,
    failed: AtomicU64,
    last_run_ms: AtomicU64,
    last_run_duration_ms: AtomicU64,
}

/// A snapshot of [`RecoveryStats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecoveryStatsView {
    /// Whether the worker runs.
    pub running: bool,
    /// Scan interval.
    pub interval_ms: u64,
    /// Stuck threshold.
    pub stuck_threshold_ms: u64,
    /// Stuck sagas found.
    pub scanned: u64,
    /// Sagas resumed.
    pub processed: u64,
    /// Sagas that could not be resumed (or were given up).
    pub failed: u64,
    /// When the last scan ran (RFC 3339).
    pub last_run_at: Option<String>,
    /// How long it took.
    pub last_run_duration_ms: u64,
}

/// Resumes stuck sagas every `interval` until stopped.
#[derive(Clone)]
pub struct RecoveryWorker {
    engine: Engine,
    config: RecoveryConfig,
    stats: Arc<RecoveryStats>,
}

impl RecoveryWorker {
    /// A worker over `engine`.
    pub fn new(engine: Engine, config: RecoveryConfig) -> Self {
        Self {
            engine,
            config,
            stats: Arc::default(),
        }
    }

    /// The figures so far.
    pub fn stats(&self) -> RecoveryStatsView {
        let s = &self.stats;
        let last = s.last_run_ms.load(Ordering::Relaxed);
        RecoveryStatsView {
            running: s.running.load(Ordering::Relaxed),
            interval_ms: self.config.interval.as_millis() as u64,
            stuck_threshold_ms: self.config.stuck_threshold.as_millis() as u64,
            scanned: s.scanned.load(Ordering::Relaxed),
            processed: s.processed.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            last_run_at: (last > 0).then(|| crate::admin::rfc3339(last as i64)),
            last_run_duration_ms: s.last_run_duration_ms.load(Ordering::Relaxed),
        }
    }

    /// Scan every `interval` until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        self.stats.running.store(true, Ordering::Relaxed);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
            if let Err(e) = self.scan_once().await {
                tracing::warn!(error = %e, "recovery scan failed; retrying next interval");
            }
        }
        self.stats.running.store(false, Ordering::Relaxed);
    }

    /// One scan: claim and resume every stuck saga found. Returns how many were resumed.
    pub async fn scan_once(&self) -> Result<u64, StoreError> {
        let started = Instant::now();
        let before = self.engine.now_ms() - self.config.stuck_threshold.as_millis() as i64;
        let ids = self.engine.store().find_stuck(before, SCAN_BATCH).await?;
        // Announced only when the scan found work, so an idle host's scans (thousands a
        // day) do not push what matters out of the event log.
        if !ids.is_empty() {
            self.engine
                .events()
                .publish(Event::new(kinds::RECOVERY_START).with("stuck", ids.len()));
        }
        self.stats
            .scanned
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        crate::telemetry::metrics()
            .recovery_scanned
            .inc_by(ids.len() as u64);
        let mut resumed = 0;
        for tx_id in ids {
            if self.engine.is_driving(&tx_id) {
                continue;
            }
            match self.claim(&tx_id).await {
                Ok(true) => {
                    resumed += 1;
                    self.stats.processed.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::metrics().recovery_processed.inc();
                    self.engine.spawn(tx_id, None);
                }
                Ok(false) => {}
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%tx_id, error = %e, "could not recover saga");
                }
            }
        }
        resumed += self.retry_failed(before).await?;
        self.stats
            .last_run_ms
            .store(self.engine.now_ms() as u64, Ordering::Relaxed);
        self.stats
            .last_run_duration_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Ok(resumed)
    }

    /// Retry by policy: a `FAILED` saga whose failure another attempt may fix (not a
    /// permanent error) runs again, at most `max_retries` times, once per stuck threshold.
    async fn retry_failed(&self, before: i64) -> Result<u64, StoreError> {
        let filter = TxFilter {
            statuses: vec![TxStatus::Failed],
            limit: SCAN_BATCH,
            ..TxFilter::default()
        };
        let failed = self.engine.store().list(&filter).await?.items;
        let mut retried = 0;
        for tx in failed {
            if tx.updated_at >= before
                || tx.retry_count >= tx.max_retries
                || self.engine.is_driving(&tx.tx_id)
            {
                continue;
            }
            let Some((_, steps)) = self.engine.store().get(&tx.tx_id).await? else {
                continue;
            };
            let fixable = steps.iter().any(|s| {
                s.status == crate::engine::StepStatus::Failed
                    && s.failure_kind.is_some_and(FailureKind::is_retryable)
            });
            if !fixable {
                continue;
            }
            let actor = Actor::Recovery {
                host: self.engine.host_id().to_string(),
            };
            match self.engine.retry_as(&tx.tx_id, None, actor).await {
                Ok(_) => {
                    retried += 1;
                    self.stats.processed.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::metrics().recovery_processed.inc();
                }
                // Another host retried it first, or its state moved on.
                Err(
                    crate::Error::Store(StoreError::VersionConflict { .. })
                    | crate::Error::Conflict(_)
                    | crate::Error::Refused(_),
                ) => {}
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tx_id = %tx.tx_id, error = %e, "could not retry failed saga");
                }
            }
        }
        Ok(retried)
    }

    /// Take a stuck saga over with a fenced write; `false` when another host got it first
    /// or it has been recovered too often (then it is left to an operator).
    async fn claim(&self, tx_id: &str) -> Result<bool, crate::Error> {
        let Some((mut tx, mut steps)) = self.engine.store().get(tx_id).await? else {
            return Ok(false);
        };
        if tx.status.is_terminal() {
            return Ok(false);
        }
        let host = self.engine.host_id().to_string();
        let history = self.engine.store().history(tx_id).await?;
        let recoveries = history
            .iter()
            .filter(|h| h.kind == HistoryKind::Recovery)
            .count() as u32;
        let now = self.engine.now_ms();
        if recoveries >= self.config.max_retries.max(1) * 4 {
            // Repeatedly stuck: stop resuming it and tell someone, once.
            if history
                .last()
                .is_none_or(|h| h.kind != HistoryKind::RecoveryGivenUp)
            {
                let entry = HistoryEntry {
                    tx_id: tx_id.into(),
                    at: now,
                    kind: HistoryKind::RecoveryGivenUp,
                    actor: Some(Actor::Recovery { host }),
                    message: format!(
                        "recovered {recoveries} times without finishing; needs an operator"
                    ),
                };
                self.engine.store().append_history(&entry).await?;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                self.engine.events().publish(
                    Event::new(kinds::ALERT_CRITICAL)
                        .tx(tx_id, &tx.tx_type)
                        .error(entry.message.clone()),
                );
            }
            return Ok(false);
        }
        let from = tx.status;
        let confirm = self.engine.confirm_in_flight(from, &steps);
        let changed = crate::engine::note_lost_calls(&mut steps, confirm, &host, now);
        let changed: Vec<&StepRecord> = changed.iter().map(|&i| &steps[i]).collect();
        let actor = Actor::Recovery { host };
        let entry = HistoryEntry {
            tx_id: tx_id.into(),
            at: now,
            kind: HistoryKind::Recovery,
            message: format!("resumed in {from} by {actor}"),
            actor: Some(actor),
        };
        let with = With {
            history: std::slice::from_ref(&entry),
            ..With::default()
        };
        let claimed = self
            .engine
            .apply(
                &mut tx,
                TxEvent::Progress,
                &changed,
                with,
                Patience::Bounded(Duration::ZERO),
            )
            .await;
        match claimed {
            Ok(()) => {
                tracing::info!(%tx_id, status = %from, "recovering stuck saga");
                Ok(true)
            }
            Err(crate::Error::Store(StoreError::VersionConflict { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
