//! A [`TxStore`] decorator that counts the commits and reads passing through, so the
//! bench reports the durable writes a saga really makes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::engine::TxStatus;
use crate::store::{
    AdminReads, Commit, CreateOutcome, EventLog, HistoryEntry, HostRecord, HostRegistry,
    Housekeeping, IdempotencyKey, IdempotencyRecords, KvValue, OutboxMessage, Page, PluginKv,
    RecoveryScan, ReplyBody, ReplyOutcome, SagaStore, SharedEvent, StatusCount, StepRecord,
    StoreResult, TxFilter, TxRecord, TxStore, WaitRecord, WaitStore,
};

/// What went through a [`CountingStore`].
#[derive(Default)]
pub(super) struct Counts {
    /// Database transactions that wrote saga state (creates and commits).
    pub(super) commits: AtomicU64,
    /// Reads of saga state.
    pub(super) reads: AtomicU64,
    /// Sagas recorded.
    created: AtomicU64,
    /// Sagas whose first state change was committed.
    started: AtomicU64,
}

impl Counts {
    pub(super) fn reset(&self) {
        for c in [&self.commits, &self.reads, &self.created, &self.started] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Sagas recorded that have not yet started (taken their locks and announced their
    /// first call).
    pub(super) fn backlog(&self) -> u64 {
        let created = self.created.load(Ordering::Relaxed);
        created.saturating_sub(self.started.load(Ordering::Relaxed))
    }
}

/// A [`TxStore`] that counts the commits and reads passing through to the real one.
pub(super) struct CountingStore {
    inner: Arc<dyn TxStore>,
    pub(super) counts: Counts,
}

impl CountingStore {
    pub(super) fn new(inner: Arc<dyn TxStore>) -> Self {
        Self {
            inner,
            counts: Counts::default(),
        }
    }

    fn read(&self) {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl TxStore for CountingStore {
    fn summary(&self) -> String {
        self.inner.summary()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
}

#[async_trait]
impl SagaStore for CountingStore {
    async fn create(&self, tx: &TxRecord, steps: &[StepRecord]) -> StoreResult<CreateOutcome> {
        let out = self.inner.create(tx, steps).await?;
        if out == CreateOutcome::Created {
            self.counts.commits.fetch_add(1, Ordering::Relaxed);
            self.counts.created.fetch_add(1, Ordering::Relaxed);
            // A saga whose locks were free is created started (`LOCKED`).
            if tx.status != crate::engine::TxStatus::Created {
                self.counts.started.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(out)
    }

    async fn get(&self, tx_id: &str) -> StoreResult<Option<(TxRecord, Vec<StepRecord>)>> {
        self.read();
        self.inner.get(tx_id).await
    }

    async fn commit(&self, commit: &Commit<'_>) -> StoreResult<i64> {
        let version = self.inner.commit(commit).await?;
        self.counts.commits.fetch_add(1, Ordering::Relaxed);
        if commit.tx.version == 0 {
            self.counts.started.fetch_add(1, Ordering::Relaxed);
        }
        Ok(version)
    }
}

#[async_trait]
impl AdminReads for CountingStore {
    async fn list(&self, filter: &TxFilter) -> StoreResult<Page> {
        self.inner.list(filter).await
    }

    async fn stats(&self) -> StoreResult<Vec<StatusCount>> {
        self.inner.stats().await
    }

    async fn timeline(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, TxStatus, u64)>> {
        self.inner.timeline(since_ms, bucket_ms).await
    }

    async fn history(&self, tx_id: &str) -> StoreResult<Vec<HistoryEntry>> {
        self.read();
        self.inner.history(tx_id).await
    }
}

#[async_trait]
impl RecoveryScan for CountingStore {
    async fn find_stuck(&self, updated_before: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.inner.find_stuck(updated_before, limit).await
    }

    async fn append_history(&self, entry: &HistoryEntry) -> StoreResult<()> {
        self.counts.commits.fetch_add(1, Ordering::Relaxed);
        self.inner.append_history(entry).await
    }
}

#[async_trait]
impl Housekeeping for CountingStore {
    async fn purge_idempotency(&self, now_ms: i64, batch: u32) -> StoreResult<u64> {
        self.inner.purge_idempotency(now_ms, batch).await
    }

    async fn purge_finished(&self, before_ms: i64, batch: u32) -> StoreResult<u64> {
        self.inner.purge_finished(before_ms, batch).await
    }

    async fn purge_events(&self, before_ms: i64, batch: u32) -> StoreResult<u64> {
        self.inner.purge_events(before_ms, batch).await
    }
}

#[async_trait]
impl EventLog for CountingStore {
    async fn events_append(&self, origin: &str, events: &[(i64, String)]) -> StoreResult<()> {
        self.counts.commits.fetch_add(1, Ordering::Relaxed);
        self.inner.events_append(origin, events).await
    }

    async fn events_after(
        &self,
        after: i64,
        limit: u32,
        own: &str,
    ) -> StoreResult<Vec<SharedEvent>> {
        self.inner.events_after(after, limit, own).await
    }

    async fn events_latest(&self, limit: u32) -> StoreResult<Vec<SharedEvent>> {
        self.inner.events_latest(limit).await
    }
}

#[async_trait]
impl HostRegistry for CountingStore {
    async fn host_beat(&self, host: &HostRecord, forget_before: i64) -> StoreResult<()> {
        self.inner.host_beat(host, forget_before).await
    }

    async fn hosts(&self, seen_after: i64) -> StoreResult<Vec<HostRecord>> {
        self.inner.hosts(seen_after).await
    }
}

#[async_trait]
impl PluginKv for CountingStore {
    async fn kv_read(&self, namespace: &str, key: &str) -> StoreResult<Option<KvValue>> {
        self.read();
        self.inner.kv_read(namespace, key).await
    }
}

#[async_trait]
impl IdempotencyRecords for CountingStore {
    async fn idempotency_get(
        &self,
        key: &IdempotencyKey,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        self.read();
        self.inner.idempotency_get(key, now_ms).await
    }
}

#[async_trait]
impl WaitStore for CountingStore {
    async fn wait_get(&self, correlation_id: &str) -> StoreResult<Option<WaitRecord>> {
        self.inner.wait_get(correlation_id).await
    }

    async fn wait_of_step(&self, tx_id: &str, step_index: u32) -> StoreResult<Option<WaitRecord>> {
        self.inner.wait_of_step(tx_id, step_index).await
    }

    async fn waits_of(&self, tx_id: &str) -> StoreResult<Vec<WaitRecord>> {
        self.inner.waits_of(tx_id).await
    }

    async fn record_reply(
        &self,
        correlation_id: &str,
        reply: &ReplyBody,
        now_ms: i64,
    ) -> StoreResult<ReplyOutcome> {
        self.inner.record_reply(correlation_id, reply, now_ms).await
    }

    async fn waits_due(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.inner.waits_due(now_ms, limit).await
    }

    async fn waits_open(&self, limit: u32) -> StoreResult<Vec<WaitRecord>> {
        self.inner.waits_open(limit).await
    }

    async fn outbox_unsent(
        &self,
        created_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutboxMessage>> {
        self.inner.outbox_unsent(created_before, limit).await
    }

    async fn outbox_sent(&self, message_ids: &[String], now_ms: i64) -> StoreResult<()> {
        self.inner.outbox_sent(message_ids, now_ms).await
    }

    async fn outbox_of(&self, tx_id: &str) -> StoreResult<Vec<(OutboxMessage, Option<i64>)>> {
        self.inner.outbox_of(tx_id).await
    }
}
