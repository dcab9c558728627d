//! The coordinator: drives one saga from whatever status it is stored in, forward through
//! its steps, or backward through compensations, writing every change before the next
//! action and stopping the moment another writer (or a lost lock) fences it out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument;

use super::{Engine, StepStatus, TxStatus, backoff};
use crate::error::{Error, Result};
use crate::events::{Event, kinds};
use crate::lock;
use crate::plugin::{CallFailure, FailureKind, KeyLookup, Keyed, LoadedPlugin, StepCall};
use crate::store::{
    Commit, HistoryEntry, IdempotencyChange, IdempotencyKey, IdempotencyRecord, KvChanges,
    StepRecord, StoreError, TxRecord, now_ms,
};
use crate::telemetry;

/// Whether a step's execute may have had an effect that compensation must undo. A step
/// that failed by trapping or timing out may have acted before it stopped.
pub(crate) fn needs_undo(step: &StepRecord) -> bool {
    step.status.needs_compensation()
        || (step.status == StepStatus::Failed
            && step
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("trap:") || e.starts_with("timeout:")))
}

impl Engine {
    /// Drive `tx_id` until it ends or this host must stop advancing it, starting from
    /// `known` (the stored state, when the caller just wrote it) instead of reading it.
    /// Returns the saga's state when this driver stopped, if it ran it.
    pub(crate) async fn drive_from(
        &self,
        tx_id: &str,
        traceparent: Option<String>,
        mut known: Option<(TxRecord, Vec<StepRecord>)>,
    ) -> Option<TxRecord> {
        {
            let mut active = self.inner.active.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(kicked) = active.get_mut(tx_id) {
                // Already driven here: have that driver look again when it stops (an
                // operator action fenced it out and wants the saga moving).
                *kicked = true;
                return None;
            }
            active.insert(tx_id.to_string(), false);
        }
        let m = telemetry::metrics();
        m.tx_in_flight.inc();
        loop {
            let span = telemetry::saga_span(tx_id, traceparent.as_deref());
            let result = self
                .run(tx_id, traceparent.clone(), known.take())
                .instrument(span)
                .await;
            let last = match result {
                Ok(tx) => tx,
                Err(Error::Store(StoreError::VersionConflict { .. })) => {
                    tracing::info!(%tx_id, "saga changed elsewhere; this driver stops");
                    None
                }
                Err(e) => {
                    tracing::warn!(%tx_id, error = %e, "saga paused; recovery will resume it");
                    None
                }
            };
            let mut active = self.inner.active.lock().unwrap_or_else(|p| p.into_inner());
            if active.get(tx_id) == Some(&true) {
                active.insert(tx_id.to_string(), false);
                continue;
            }
            active.remove(tx_id);
            m.tx_in_flight.dec();
            return last;
        }
    }

    /// One pass over the saga; returns its state when the pass ended.
    async fn run(
        &self,
        tx_id: &str,
        traceparent: Option<String>,
        known: Option<(TxRecord, Vec<StepRecord>)>,
    ) -> Result<Option<TxRecord>> {
        let (tx, steps) = match known {
            Some(state) => state,
            None => self.get(tx_id).await?,
        };
        if tx.status.is_terminal() {
            return Ok(Some(tx));
        }
        let token = format!("{}/{}", self.inner.host_id, tx.tx_id);
        let mut run = SagaRun {
            engine: self.clone(),
            tx,
            steps,
            traceparent,
            lost: Arc::new(AtomicBool::new(false)),
            ended: false,
            store_waits: 0,
        };
        tracing::Span::current().record("tx_type", run.tx.tx_type.as_str());
        let keys = match run.take_locks(&token).await? {
            Some(keys) => keys,
            None => return Ok(Some(run.tx)),
        };
        let extender = (!keys.is_empty()).then(|| run.extend_locks(keys.clone(), token.clone()));
        let result = run.advance().await;
        tracing::Span::current().record("status", run.tx.status.as_str());
        if let Some(handle) = extender {
            handle.abort();
        }
        lock::release_all(&self.inner.locks, &keys, &token).await;
        result.map(|()| Some(run.tx))
    }
}

/// One saga being driven: its state as last committed.
struct SagaRun {
    engine: Engine,
    tx: TxRecord,
    steps: Vec<StepRecord>,
    traceparent: Option<String>,
    lost: Arc<AtomicBool>,
    /// Whether this run already recorded the saga's end in the metrics.
    ended: bool,
    /// Step calls in a row that found the store unreachable.
    store_waits: u32,
}

impl SagaRun {
    async fn advance(&mut self) -> Result<()> {
        loop {
            match self.tx.status {
                TxStatus::Created | TxStatus::Locked => self.start().await?,
                TxStatus::Executing | TxStatus::Confirming => self.forward().await?,
                TxStatus::Compensating => self.backward().await?,
                _ => return Ok(()),
            }
        }
    }

    fn events(&self) -> &crate::events::EventBus {
        &self.engine.inner.events
    }

    fn event(&self, kind: &str) -> Event {
        Event::new(kind).tx(&self.tx.tx_id, &self.tx.tx_type)
    }

    /// Write the saga row and the steps at `changed` (plus what the step call produced).
    async fn commit(
        &mut self,
        changed: &[usize],
        kv: Option<&KvChanges>,
        idem: Option<IdempotencyChange<'_>>,
        history: &[HistoryEntry],
    ) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Conflict(format!(
                "saga {} lost its locks",
                self.tx.tx_id
            )));
        }
        self.tx.updated_at = now_ms();
        let steps: Vec<&StepRecord> = changed.iter().map(|&i| &self.steps[i]).collect();
        let commit = Commit {
            tx: &self.tx,
            steps: &steps,
            kv,
            idempotency: idem,
            history,
        };
        let store = &self.engine.inner.store;
        let mut pause = Duration::from_millis(50);
        let mut retried = false;
        loop {
            let started = std::time::Instant::now();
            let result = store
                .commit(&commit)
                .instrument(tracing::info_span!("store.commit"))
                .await;
            telemetry::metrics()
                .store_commit_duration
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(version) => {
                    self.tx.version = version;
                    self.record_end();
                    return Ok(());
                }
                // The database is unreachable: hold the saga where it is and try again, so
                // it continues as soon as the connection is back. The locks keep extending.
                Err(e) if e.is_retryable() && !self.lost.load(Ordering::SeqCst) => {
                    if !retried {
                        tracing::warn!(tx_id = %self.tx.tx_id, error = %e, "store unavailable; saga paused until it returns");
                    }
                    retried = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                // A retried commit may have landed before its answer was lost: the stored
                // row then carries exactly this write.
                Err(StoreError::VersionConflict { .. }) if retried => {
                    let stored = store.get(&self.tx.tx_id).await?.map(|(tx, _)| tx);
                    match stored {
                        Some(tx)
                            if tx.version == self.tx.version + 1
                                && tx.updated_at == self.tx.updated_at =>
                        {
                            self.tx.version = tx.version;
                            self.record_end();
                            return Ok(());
                        }
                        _ => {
                            return Err(StoreError::VersionConflict {
                                tx_id: self.tx.tx_id.clone(),
                                expected: self.tx.version,
                            }
                            .into());
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Count the saga's end once it is durable.
    fn record_end(&mut self) {
        if self.ended || !self.tx.status.is_terminal() {
            return;
        }
        self.ended = true;
        let m = telemetry::metrics();
        let label = telemetry::type_label(&self.engine.inner.definitions, &self.tx.tx_type);
        match self.tx.status {
            TxStatus::Completed => m.tx_completed.with_label_values(&[label]).inc(),
            TxStatus::Compensated | TxStatus::Cancelled => {
                m.tx_compensated.with_label_values(&[label]).inc()
            }
            _ => {}
        }
        let secs = (self.tx.completed_at.unwrap_or_else(now_ms) - self.tx.created_at).max(0) as f64
            / 1000.0;
        m.tx_duration
            .with_label_values(&[label, self.tx.status.as_str()])
            .observe(secs);
    }

    async fn start(&mut self) -> Result<()> {
        let now = now_ms();
        self.tx.status = TxStatus::Executing;
        let first = self.tx.current_step as usize;
        self.steps[first].status = StepStatus::Executing;
        self.steps[first].started_at.get_or_insert(now);
        self.commit(&[first], None, None, &[]).await
    }

    /// A saga that could not even start (its locks stayed taken) fails with nothing to undo.
    /// Take the saga's locks. A saga that has not started waits its turn (showing it is alive
    /// after every `lock_wait`, so recovery leaves it alone) until its deadline, then times
    /// out with nothing to undo; `None` then. A saga already under way whose locks are
    /// taken is paused for recovery (an error).
    async fn take_locks(&mut self, token: &str) -> Result<Option<Vec<String>>> {
        let inner = self.engine.inner.clone();
        let cfg = &inner.config;
        let started = std::time::Instant::now();
        loop {
            let acquired = lock::acquire_all(
                &inner.locks,
                &self.tx.lock_keys,
                token,
                cfg.lock_ttl,
                cfg.lock_wait,
            )
            .instrument(tracing::info_span!(
                "lock.acquire",
                keys = self.tx.lock_keys.len()
            ))
            .await;
            match acquired {
                Ok(keys) => {
                    if !keys.is_empty() {
                        let m = telemetry::metrics();
                        m.lock_acquired.inc();
                        m.lock_acquire_duration
                            .observe(started.elapsed().as_secs_f64());
                    }
                    return Ok(Some(keys));
                }
                Err(e @ lock::LockError::Busy { .. })
                    if matches!(self.tx.status, TxStatus::Created | TxStatus::Locked) =>
                {
                    if now_ms() >= self.tx.deadline_at {
                        self.fail_before_start(
                            TxStatus::Timeout,
                            format!("timed out waiting for locks: {e}"),
                        )
                        .await?;
                        return Ok(None);
                    }
                    self.commit(&[], None, None, &[]).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn fail_before_start(&mut self, status: TxStatus, message: String) -> Result<()> {
        self.tx.status = status;
        self.tx.last_error = Some(message.clone());
        self.tx.completed_at = Some(now_ms());
        for s in &mut self.steps {
            s.status = StepStatus::Skipped;
        }
        let all: Vec<usize> = (0..self.steps.len()).collect();
        self.commit(&all, None, None, &[]).await?;
        let kind = if status == TxStatus::Timeout {
            kinds::TX_TIMEOUT
        } else {
            kinds::TX_FAILED
        };
        self.events().publish(self.event(kind).error(message));
        Ok(())
    }

    fn call_for(&self, i: usize, attempt: u32, execute_completed: Option<bool>) -> StepCall {
        let step = &self.steps[i];
        StepCall {
            tx_id: self.tx.tx_id.clone(),
            tx_type: self.tx.tx_type.clone(),
            step_name: step.step_name.clone(),
            step_index: step.step_index,
            attempt,
            input: self.tx.input.to_string(),
            outputs: serde_json::to_string(&self.tx.outputs).unwrap_or_else(|_| "{}".into()),
            execute_completed,
            // The step's own trace context, so a plugin's outgoing calls join the saga's trace.
            traceparent: telemetry::current_traceparent().or_else(|| self.traceparent.clone()),
        }
    }

    fn plugin(&self, i: usize) -> std::result::Result<Arc<LoadedPlugin>, CallFailure> {
        let name = &self.steps[i].step_name;
        self.engine.inner.plugins.plugin_for(name).ok_or_else(|| {
            CallFailure::new(
                FailureKind::Unavailable,
                format!("no loaded plugin provides step `{name}`"),
            )
        })
    }

    /// Run steps forward from the current one.
    async fn forward(&mut self) -> Result<()> {
        let inner = self.engine.inner.clone();
        while self.tx.status == TxStatus::Executing {
            let i = self.tx.current_step as usize;
            if now_ms() >= self.tx.deadline_at {
                let f = CallFailure::new(
                    FailureKind::Timeout,
                    "saga passed its deadline before the step ran",
                );
                return self.fail(i, f, TxStatus::Timeout, None).await;
            }
            let attempt = self.steps[i].attempts + 1;
            let plugin = match self.plugin(i) {
                Ok(p) => p,
                Err(f) => {
                    self.retry_or_fail(i, attempt, f).await?;
                    continue;
                }
            };
            let name = self.steps[i].step_name.clone();
            let desc = plugin
                .step(&name)
                .cloned()
                .expect("plugin_for returns the plugin with the step");
            if !inner.breakers.allow(&desc.service).await {
                let f = CallFailure::new(
                    FailureKind::Retryable,
                    format!("circuit breaker for service `{}` is open", desc.service),
                );
                self.retry_or_fail(i, attempt, f).await?;
                continue;
            }
            let span =
                telemetry::step_span(&self.tx.tx_id, &self.tx.tx_type, &name, attempt, "execute");
            let call = span.in_scope(|| self.call_for(i, attempt, None));
            self.steps[i].plugin_digest = Some(plugin.digest.clone());
            let deadline = self.deadline();
            let started = std::time::Instant::now();
            let outcome = tokio::select! {
                out = self.call_execute(&plugin, &call, desc.supports_idempotency).instrument(span.clone()) => out,
                _ = tokio::time::sleep_until(deadline) => Err(CallFailure::new(FailureKind::Timeout, "saga passed its deadline while the step ran")),
            };
            let m = telemetry::metrics();
            m.step_duration
                .with_label_values(&[name.as_str(), "execute"])
                .observe(started.elapsed().as_secs_f64());
            match &outcome {
                Ok(_) => {
                    span.record("outcome", "completed");
                    m.step_completed.with_label_values(&[name.as_str()]).inc();
                }
                Err(f) => {
                    span.record("outcome", failure_label(f.kind));
                    m.step_failed
                        .with_label_values(&[name.as_str(), "execute", failure_label(f.kind)])
                        .inc();
                }
            }
            match outcome {
                Err(f) if f.kind == FailureKind::StoreUnavailable => self.wait_for_store(&f).await,
                Ok(done) => {
                    self.store_waits = 0;
                    inner.breakers.record(&desc.service, true).await;
                    self.complete_step(i, attempt, &plugin, done).await?;
                }
                Err(f) => {
                    if f.kind != FailureKind::Permanent {
                        inner.breakers.record(&desc.service, false).await;
                    }
                    if now_ms() >= self.tx.deadline_at {
                        return self.fail(i, f, TxStatus::Timeout, Some(attempt)).await;
                    }
                    self.retry_or_fail(i, attempt, f).await?;
                }
            }
        }
        Ok(())
    }

    fn deadline(&self) -> tokio::time::Instant {
        let left = (self.tx.deadline_at - now_ms()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_millis(left)
    }

    /// Execute, unless the step's idempotency key already completed: then reuse its output.
    async fn call_execute(
        &self,
        plugin: &LoadedPlugin,
        call: &StepCall,
        supports_idempotency: bool,
    ) -> std::result::Result<Executed, CallFailure> {
        let inner = &self.engine.inner;
        let store = inner.store.clone();
        let started = {
            let (events, event, step) = (
                inner.events.clone(),
                self.event(kinds::STEP_STARTED)
                    .step(&call.step_name)
                    .with("attempt", call.attempt),
                call.step_name.clone(),
            );
            move || {
                events.publish(event);
                telemetry::metrics()
                    .step_started
                    .with_label_values(&[step.as_str()])
                    .inc();
            }
        };
        if !supports_idempotency {
            started();
            let out = inner.plugins.execute(plugin, call, store).await?;
            return Ok(Executed {
                outputs: out.value,
                kv: out.kv,
                key: None,
                replayed: false,
            });
        }
        // Key, look-up and execute in one instance; a key this step of this plugin already
        // completed replays its stored output without running execute.
        let lookup = idempotency_lookup(
            store.clone(),
            plugin.namespace.clone(),
            call.step_name.clone(),
        );
        let out = inner
            .plugins
            .execute_keyed(plugin, call, store, lookup, Box::new(started))
            .await?;
        Ok(match out.value {
            Keyed::Replayed { key, outputs } => Executed {
                outputs,
                kv: out.kv,
                key: Some(key),
                replayed: true,
            },
            Keyed::Ran { key, outputs } => Executed {
                outputs,
                kv: out.kv,
                key,
                replayed: false,
            },
        })
    }

    async fn complete_step(
        &mut self,
        i: usize,
        attempt: u32,
        plugin: &LoadedPlugin,
        done: Executed,
    ) -> Result<()> {
        let now = now_ms();
        let idem = done
            .key
            .as_ref()
            .filter(|_| !done.replayed)
            .map(|k| IdempotencyRecord {
                key: IdempotencyKey {
                    plugin: plugin.namespace.clone(),
                    step_name: self.steps[i].step_name.clone(),
                    key: k.clone(),
                },
                tx_id: self.tx.tx_id.clone(),
                output: Value::Object(done.outputs.clone()).to_string(),
                expires_at: now + self.engine.inner.config.idempotency_ttl.as_millis() as i64,
            });
        // Only a call that wrote plugin state can be refused: keep what to go back to.
        let before = done
            .kv
            .has_writes()
            .then(|| (self.tx.clone(), self.steps.clone()));
        let step = &mut self.steps[i];
        step.status = StepStatus::Completed;
        step.attempts = attempt;
        step.error = None;
        step.idempotency_key = done.key;
        step.finished_at = Some(now);
        step.output = Some(done.outputs.clone());
        self.tx.outputs.extend(done.outputs);
        let mut changed = vec![i];
        if i + 1 < self.steps.len() {
            let next = &mut self.steps[i + 1];
            next.status = StepStatus::Executing;
            next.started_at.get_or_insert(now);
            self.tx.current_step = (i + 1) as u32;
            changed.push(i + 1);
        } else {
            self.tx.status = TxStatus::Completed;
            self.tx.completed_at = Some(now);
        }
        let committed = self
            .commit(
                &changed,
                Some(&done.kv),
                idem.as_ref().map(IdempotencyChange::Remember),
                &[],
            )
            .await;
        if let Err(Error::Store(StoreError::KvConflict { key, .. })) = &committed
            && let Some((tx, steps)) = before
        {
            // Nothing was written: run the step again on fresh state.
            let f = self.kv_conflict(i, "execute", key);
            (self.tx, self.steps) = (tx, steps);
            return self.retry_or_fail(i, attempt, f).await;
        }
        committed?;
        let mut event = self
            .event(kinds::STEP_COMPLETED)
            .step(&self.steps[i].step_name)
            .with("attempt", attempt);
        if done.replayed {
            event = event.with("idempotent_replay", true);
        }
        self.events().publish(event);
        if self.tx.status == TxStatus::Completed {
            self.events().publish(self.event(kinds::TX_COMPLETED));
        }
        Ok(())
    }

    /// Count and log a step result refused because a plugin key it read changed before
    /// its commit; the failure to retry the step with.
    fn kv_conflict(&self, i: usize, phase: &'static str, key: &str) -> CallFailure {
        let name = self.steps[i].step_name.as_str();
        telemetry::metrics()
            .kv_conflicts
            .with_label_values(&[name, phase])
            .inc();
        tracing::warn!(tx_id = %self.tx.tx_id, step = name, phase, %key, "plugin key changed since the step read it; its writes are discarded and the step runs again");
        CallFailure::new(
            FailureKind::Retryable,
            format!(
                "plugin key `{key}` changed since the step read it; the step runs again on fresh state"
            ),
        )
    }

    /// A step call found the store unreachable: hold the saga where it is (the attempt is
    /// not counted) and call again after a pause that grows to two seconds, as a commit
    /// does; the saga's deadline still applies.
    async fn wait_for_store(&mut self, f: &CallFailure) {
        if self.store_waits == 0 {
            tracing::warn!(tx_id = %self.tx.tx_id, error = %f, "store unavailable during a step call; saga paused until it returns");
        }
        let pause = Duration::from_millis(50)
            .saturating_mul(1 << self.store_waits.min(6))
            .min(Duration::from_secs(2));
        self.store_waits += 1;
        tokio::time::sleep(pause).await;
    }

    /// After a failed attempt: wait and retry if the error allows and retries remain,
    /// else fail the saga.
    async fn retry_or_fail(&mut self, i: usize, attempt: u32, f: CallFailure) -> Result<()> {
        let cfg = &self.engine.inner.config;
        let retries_left = attempt <= self.tx.max_retries;
        if !(f.is_retryable() && retries_left) {
            return self.fail(i, f, TxStatus::Failed, Some(attempt)).await;
        }
        let delay = backoff(cfg.retry_interval, cfg.retry_max_interval, attempt);
        let step = &mut self.steps[i];
        step.attempts = attempt;
        step.error = Some(step_error(&f));
        self.commit(&[i], None, None, &[]).await?;
        self.events().publish(
            self.event(kinds::STEP_FAILED)
                .step(&self.steps[i].step_name)
                .error(f.message.clone())
                .with("attempt", attempt)
                .with("will_retry", true)
                .with("retry_in_ms", delay.as_millis() as u64),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tokio::time::sleep_until(self.deadline()) => {}
        }
        Ok(())
    }

    /// Fail the saga at step `i`; compensation follows if anything may need undoing.
    async fn fail(
        &mut self,
        i: usize,
        f: CallFailure,
        status: TxStatus,
        attempt: Option<u32>,
    ) -> Result<()> {
        let now = now_ms();
        let name = self.steps[i].step_name.clone();
        {
            let step = &mut self.steps[i];
            if let Some(attempt) = attempt {
                step.attempts = attempt;
            }
            step.status = StepStatus::Failed;
            step.error = Some(step_error(&f));
            step.finished_at = Some(now);
        }
        let mut changed = vec![i];
        for (j, s) in self.steps.iter_mut().enumerate().skip(i + 1) {
            if s.status == StepStatus::Pending {
                s.status = StepStatus::Skipped;
                changed.push(j);
            }
        }
        let message = match status {
            TxStatus::Timeout => format!("saga timed out at step `{name}`: {}", f.message),
            _ => format!("step `{name}` failed: {}", f.message),
        };
        self.tx.last_error = Some(truncate(message.clone()));
        let undo = self.steps[..=i].iter().any(needs_undo);
        if undo {
            self.tx.status = TxStatus::Compensating;
            self.tx.current_step = i as u32;
        } else {
            self.tx.status = status;
            self.tx.completed_at = Some(now);
        }
        self.commit(&changed, None, None, &[]).await?;
        self.events().publish(
            self.event(kinds::STEP_FAILED)
                .step(&name)
                .error(f.message.clone())
                .with("kind", serde_json::to_value(f.kind).unwrap_or_default()),
        );
        let label = telemetry::type_label(&self.engine.inner.definitions, &self.tx.tx_type);
        telemetry::metrics()
            .tx_failed
            .with_label_values(&[label])
            .inc();
        let kind = if status == TxStatus::Timeout {
            kinds::TX_TIMEOUT
        } else {
            kinds::TX_FAILED
        };
        self.events().publish(
            self.event(kind)
                .step(&name)
                .error(message)
                .with("compensating", undo),
        );
        Ok(())
    }

    /// Compensate steps backward from the current one, in reverse order.
    async fn backward(&mut self) -> Result<()> {
        let inner = self.engine.inner.clone();
        while self.tx.status == TxStatus::Compensating {
            let top = (self.tx.current_step as usize).min(self.steps.len() - 1);
            let Some(j) = (0..=top).rev().find(|&j| needs_undo(&self.steps[j])) else {
                return self.finish_compensation().await;
            };
            self.tx.current_step = j as u32;
            let plugin = match self.plugin(j) {
                Ok(p) => p,
                Err(f) => {
                    self.compensation_failed_attempt(j, f).await?;
                    continue;
                }
            };
            let name = self.steps[j].step_name.clone();
            let supports = plugin.step(&name).is_some_and(|d| d.supports_compensation);
            let execute_completed = self.steps[j].output.is_some();
            if !supports {
                // Nothing the step can undo: record that and move on, keeping the error of
                // a step that failed (its trap message is what an operator needs).
                let step = &mut self.steps[j];
                step.status = StepStatus::Compensated;
                step.error
                    .get_or_insert_with(|| "step declares no compensation".into());
                step.finished_at = Some(now_ms());
                self.commit(&[j], None, None, &[]).await?;
                continue;
            }
            if self.steps[j].status != StepStatus::Compensating {
                // The barrier: the intent is durable before the plugin is asked to undo.
                self.steps[j].status = StepStatus::Compensating;
                self.commit(&[j], None, None, &[]).await?;
            }
            let attempt = self.steps[j].compensation_attempts + 1;
            let span = telemetry::step_span(
                &self.tx.tx_id,
                &self.tx.tx_type,
                &name,
                attempt,
                "compensate",
            );
            let call = span.in_scope(|| self.call_for(j, attempt, Some(execute_completed)));
            let started = std::time::Instant::now();
            let outcome = inner
                .plugins
                .compensate(&plugin, &call, inner.store.clone())
                .instrument(span.clone())
                .await;
            let m = telemetry::metrics();
            m.step_duration
                .with_label_values(&[name.as_str(), "compensate"])
                .observe(started.elapsed().as_secs_f64());
            match &outcome {
                Ok(_) => span.record("outcome", "compensated"),
                Err(f) => {
                    m.step_failed
                        .with_label_values(&[name.as_str(), "compensate", failure_label(f.kind)])
                        .inc();
                    span.record("outcome", failure_label(f.kind))
                }
            };
            match outcome {
                Ok(out) => {
                    self.store_waits = 0;
                    // An undone step's idempotency record goes with the undo, so a later
                    // run with the same key executes again.
                    let forget = self.steps[j]
                        .idempotency_key
                        .clone()
                        .map(|key| IdempotencyKey {
                            plugin: plugin.namespace.clone(),
                            step_name: name.clone(),
                            key,
                        });
                    let before = out.kv.has_writes().then(|| self.steps[j].clone());
                    let step = &mut self.steps[j];
                    step.status = StepStatus::Compensated;
                    step.compensation_attempts = attempt;
                    step.finished_at = Some(now_ms());
                    let committed = self
                        .commit(
                            &[j],
                            Some(&out.kv),
                            forget.as_ref().map(IdempotencyChange::Forget),
                            &[],
                        )
                        .await;
                    if let Err(Error::Store(StoreError::KvConflict { key, .. })) = &committed
                        && let Some(step) = before
                    {
                        let f = self.kv_conflict(j, "compensate", key);
                        self.steps[j] = step;
                        self.compensation_failed_attempt(j, f).await?;
                        continue;
                    }
                    committed?;
                    self.events().publish(
                        self.event(kinds::STEP_COMPENSATED)
                            .step(&name)
                            .with("attempt", attempt)
                            .with(
                                "execute_outcome",
                                if execute_completed {
                                    "completed"
                                } else {
                                    "unknown"
                                },
                            ),
                    );
                }
                Err(f) if f.kind == FailureKind::StoreUnavailable => self.wait_for_store(&f).await,
                Err(f) => self.compensation_failed_attempt(j, f).await?,
            }
        }
        Ok(())
    }

    async fn compensation_failed_attempt(&mut self, j: usize, f: CallFailure) -> Result<()> {
        let (interval, max_interval) = (
            self.engine.inner.config.retry_interval,
            self.engine.inner.config.retry_max_interval,
        );
        let attempt = self.steps[j].compensation_attempts + 1;
        let name = self.steps[j].step_name.clone();
        self.steps[j].compensation_attempts = attempt;
        self.steps[j].error = Some(step_error(&f));
        if f.is_retryable() && attempt <= self.tx.max_retries {
            self.commit(&[j], None, None, &[]).await?;
            self.events().publish(
                self.event(kinds::STEP_FAILED)
                    .step(&name)
                    .error(f.message.clone())
                    .with("compensation", true)
                    .with("will_retry", true),
            );
            tokio::time::sleep(backoff(interval, max_interval, attempt)).await;
            return Ok(());
        }
        let message = format!(
            "compensation of step `{name}` failed after {attempt} attempts: {}",
            f.message
        );
        self.steps[j].status = StepStatus::CompensationFailed;
        self.steps[j].finished_at = Some(now_ms());
        self.tx.status = TxStatus::CompensationFailed;
        self.tx.last_error = Some(truncate(message.clone()));
        self.tx.completed_at = Some(now_ms());
        self.commit(&[j], None, None, &[]).await?;
        self.events().publish(
            self.event(kinds::TX_COMPENSATION_FAILED)
                .step(&name)
                .error(message.clone()),
        );
        self.events()
            .publish(self.event(kinds::ALERT_CRITICAL).step(&name).error(message));
        Ok(())
    }

    async fn finish_compensation(&mut self) -> Result<()> {
        // An operator's force-cancel ends the saga CANCELLED once everything is undone.
        let history = self.engine.inner.store.history(&self.tx.tx_id).await?;
        let cancelled = history
            .iter()
            .rev()
            .find(|h| h.kind.starts_with("force_") || h.kind == "retry")
            .is_some_and(|h| h.kind == "force_cancel");
        if cancelled {
            self.tx.status = TxStatus::Cancelled;
            self.tx.completed_at = Some(now_ms());
            self.commit(&[], None, None, &[]).await?;
            self.events().publish(self.event(kinds::TX_CANCELLED));
            return Ok(());
        }
        self.tx.status = TxStatus::Compensated;
        self.tx.completed_at = Some(now_ms());
        self.commit(&[], None, None, &[]).await?;
        self.events().publish(self.event(kinds::TX_COMPENSATED));
        Ok(())
    }

    /// Keep the saga's locks alive; on a failed extension, stop the saga at its next write.
    fn extend_locks(&self, keys: Vec<String>, token: String) -> tokio::task::JoinHandle<()> {
        let inner = self.engine.inner.clone();
        let lost = self.lost.clone();
        let (tx_id, tx_type) = (self.tx.tx_id.clone(), self.tx.tx_type.clone());
        tokio::spawn(async move {
            let period = inner.config.lock_extend_period;
            loop {
                tokio::time::sleep(period).await;
                for key in &keys {
                    let held = inner.locks.extend(key, &token, inner.config.lock_ttl).await;
                    if !matches!(held, Ok(true)) {
                        lost.store(true, Ordering::SeqCst);
                        telemetry::metrics().lock_lost.inc();
                        let why = match held {
                            Err(e) => e.to_string(),
                            _ => "held by another owner or expired".into(),
                        };
                        tracing::warn!(%tx_id, %key, %why, "lost a saga lock; stopping this saga here");
                        inner.events.publish(
                            Event::new(kinds::ALERT_WARNING)
                                .tx(&tx_id, &tx_type)
                                .error(format!("lost lock `{key}`: {why}")),
                        );
                        return;
                    }
                }
            }
        })
    }
}

/// What a successful execute (or a replay of its key's stored output) came to.
struct Executed {
    outputs: Map<String, Value>,
    kv: KvChanges,
    /// The idempotency key the step gave.
    key: Option<String>,
    /// Whether the outputs are a completed key's, execute not run.
    replayed: bool,
}

/// The engine's idempotency look-up for one step of one plugin: the outputs stored for a
/// key only that step of that plugin completed with.
fn idempotency_lookup(
    store: Arc<dyn crate::store::TxStore>,
    plugin: String,
    step_name: String,
) -> KeyLookup {
    Box::new(move |key| {
        Box::pin(async move {
            let scope = IdempotencyKey {
                plugin,
                step_name,
                key,
            };
            match store.idempotency_get(&scope, now_ms()).await {
                Ok(None) => Ok(None),
                Ok(Some(text)) => serde_json::from_str(&text).map(Some).map_err(|e| {
                    CallFailure::new(
                        FailureKind::Permanent,
                        format!(
                            "the stored output of idempotency key `{}` is unreadable: {e}",
                            scope.key
                        ),
                    )
                }),
                Err(e) => Err(CallFailure::new(
                    if e.is_retryable() {
                        FailureKind::StoreUnavailable
                    } else {
                        FailureKind::Unavailable
                    },
                    format!("cannot read the idempotency record: {e}"),
                )),
            }
        })
    })
}

/// A step's stored error: its kind first, so compensation can tell an effect-unknown
/// failure (trap, timeout) from a clean one.
fn step_error(f: &CallFailure) -> String {
    truncate(format!("{}: {}", failure_label(f.kind), f.message))
}

/// The stored and exported name of a failure kind.
fn failure_label(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Retryable => "retryable",
        FailureKind::Permanent => "permanent",
        FailureKind::Trap => "trap",
        FailureKind::Timeout => "timeout",
        FailureKind::Unavailable => "unavailable",
        FailureKind::StoreUnavailable => "store_unavailable",
    }
}

fn truncate(s: String) -> String {
    crate::error::truncate_text(s, crate::error::MAX_ERROR_LEN)
}
