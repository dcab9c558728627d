//! The coordinator: drives one saga from whatever status it is stored in, forward through
//! its steps, or backward through compensations, writing every change before the next
//! action and stopping the moment another writer (or a lost lock) fences it out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument;

use super::{Engine, Recorded, StepStatus, TxStatus, backoff};
use super::{Patience, With};
use crate::error::{Error, Result};
use crate::events::{Event, kinds};
use crate::lifecycle::{AttemptOutcome, Phase, TxEvent, Undo};
use crate::lock;
use crate::plugin::{
    CallFailure, FailureKind, KeyLookup, Keyed, LoadedPlugin, Published, StepCall, WaitRequest,
};
use crate::store::{
    Attempt, IdempotencyChange, IdempotencyKey, IdempotencyRecord, KvChanges, OutboxMessage,
    StepRecord, StoreError, TxRecord, WaitChanges, WaitRecord, now_ms,
};
use crate::telemetry;

mod group;
mod wait;

pub use wait::ReplySource;

/// Where a step comes in compensation, highest first: the reverse of the order in which
/// steps completed, with a step that never completed (its call failed, or was cut off,
/// after it may have acted) before every completed one, as it acted last.
fn undo_rank(step: &StepRecord) -> (bool, u32, u32) {
    (
        step.completed_order.is_none(),
        step.completed_order.unwrap_or(0),
        step.step_index,
    )
}

/// Whether a step's execute may have had an effect that compensation must undo. A step
/// that failed by trapping or timing out may have acted before it stopped.
pub(crate) fn needs_undo(step: &StepRecord) -> bool {
    step.status.needs_compensation()
        || (step.status == StepStatus::Failed
            && step.failure_kind.is_some_and(FailureKind::may_have_acted))
}

impl Engine {
    /// Drive `tx_id` until it ends or this host must stop advancing it, starting from
    /// `known` (the stored state, when the caller just wrote it) instead of reading it.
    /// Returns the saga's state (with its steps) when this driver stopped, if it ran it in
    /// one uninterrupted pass (no other writer fenced it out, so nothing but this driver
    /// changed the saga meanwhile, history included).
    pub(crate) async fn drive_from(
        &self,
        tx_id: &str,
        traceparent: Option<String>,
        mut known: Option<Recorded>,
    ) -> Option<(TxRecord, Vec<StepRecord>)> {
        let already = {
            let mut active = self.inner.active.lock().unwrap_or_else(|p| p.into_inner());
            match active.get_mut(tx_id) {
                // Already driven here: have that driver look again when it stops (an
                // operator action fenced it out and wants the saga moving).
                Some(kicked) => {
                    *kicked = true;
                    true
                }
                None => {
                    active.insert(tx_id.to_string(), false);
                    false
                }
            }
        };
        if already {
            if let Some(keys) = known.and_then(|k| k.locks) {
                lock::release_all(&self.inner.locks, &keys, &self.lock_token(tx_id)).await;
            }
            return None;
        }
        let m = telemetry::metrics();
        m.tx_in_flight.inc();
        let mut interrupted = false;
        loop {
            let span = match known.as_ref() {
                Some(first) => first.span.clone(),
                None => telemetry::saga_span(tx_id, traceparent.as_deref()),
            };
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
                interrupted = true;
                continue;
            }
            active.remove(tx_id);
            m.tx_in_flight.dec();
            return last.filter(|_| !interrupted);
        }
    }

    /// One pass over the saga; returns its state when the pass ended.
    async fn run(
        &self,
        tx_id: &str,
        traceparent: Option<String>,
        known: Option<Recorded>,
    ) -> Result<Option<(TxRecord, Vec<StepRecord>)>> {
        let (tx, steps, held) = match known {
            Some(r) => (r.tx, r.steps, r.locks),
            None => {
                let (tx, steps) = self.get(tx_id).await?;
                (tx, steps, None)
            }
        };
        if tx.status.is_terminal() {
            return Ok(Some((tx, steps)));
        }
        let token = self.lock_token(&tx.tx_id);
        let mut run = SagaRun {
            engine: self.clone(),
            tx,
            steps,
            traceparent,
            lost: Arc::new(AtomicBool::new(false)),
            ended: false,
            store_waits: 0,
            call_started: 0,
            outputs_len: None,
            holding: false,
            parked: false,
            closing: None,
            opening: None,
            outbox: Vec::new(),
        };
        tracing::Span::current().record("tx_type", run.tx.tx_type.as_str());
        let keys = match held {
            Some(keys) => keys,
            None => match run.take_locks(&token).await? {
                Some(keys) => keys,
                None => return Ok(Some((run.tx, run.steps))),
            },
        };
        let extender = (!keys.is_empty()).then(|| run.extend_locks(keys.clone(), token.clone()));
        let result = run.advance().await;
        tracing::Span::current().record("status", run.tx.status.as_str());
        if let Some(handle) = extender {
            handle.abort();
        }
        lock::release_all(&self.inner.locks, &keys, &token).await;
        result.map(|()| Some((run.tx, run.steps)))
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
    /// When the current attempt's call started (ms since epoch).
    call_started: i64,
    /// An upper bound of the JSON length of `tx.outputs`, kept up to date as steps
    /// complete (measured once, when the first step of this run completes).
    outputs_len: Option<u64>,
    /// A parallel group is failing: no further branch is announced.
    holding: bool,
    /// The saga waits for a reply: this pass ends, holding nothing.
    parked: bool,
    /// The wait the next commit closes (its reply was taken, or the step moved on).
    closing: Option<String>,
    /// The wait the next commit opens.
    opening: Option<WaitRecord>,
    /// Messages the next commit puts in the outbox (the committed call's publishes).
    outbox: Vec<OutboxMessage>,
}

impl SagaRun {
    /// The engine clock's time.
    fn now(&self) -> i64 {
        self.engine.inner.clock.now_ms()
    }

    async fn advance(&mut self) -> Result<()> {
        loop {
            if self.parked {
                return Ok(());
            }
            match self.tx.status {
                TxStatus::Created => self.start().await?,
                TxStatus::Locked | TxStatus::Executing => self.forward().await?,
                TxStatus::Confirming => self.confirm().await?,
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

    /// Move the saga by `event` and write the steps at `changed` (plus what the step call
    /// produced), through the engine's one writer.
    async fn commit(
        &mut self,
        event: TxEvent,
        changed: &[usize],
        kv: Option<&KvChanges>,
        idem: Option<IdempotencyChange<'_>>,
    ) -> Result<()> {
        let outbox = std::mem::take(&mut self.outbox);
        let steps: Vec<&StepRecord> = changed.iter().map(|&i| &self.steps[i]).collect();
        let with = With {
            kv,
            idempotency: idem,
            history: &[],
            waits: WaitChanges {
                open: self.opening.as_ref(),
                close: self.closing.as_deref(),
            },
            outbox: &outbox,
        };
        self.engine
            .apply(
                &mut self.tx,
                event,
                &steps,
                with,
                Patience::UntilBack(&self.lost),
            )
            .await?;
        self.closing = None;
        self.opening = None;
        self.engine.send_outbox(outbox);
        self.record_end();
        Ok(())
    }

    /// Record an attempt of step `i` that started at `started_at`, in the step's log
    /// (written with the step's next change).
    fn log_attempt(
        &mut self,
        i: usize,
        phase: Phase,
        attempt: u32,
        started_at: i64,
        outcome: AttemptOutcome,
        failure: Option<&CallFailure>,
    ) {
        let host = self.engine.inner.host_id.clone();
        let ended_at = self.now();
        let step = &mut self.steps[i];
        let entry = Attempt {
            phase,
            attempt,
            started_at,
            ended_at,
            outcome,
            failure_kind: failure.map(|f| f.kind),
            message: failure.map(|f| crate::error::truncate_text(f.message.clone(), 1024)),
            host,
            plugin_digest: step.plugin_digest.clone(),
        };
        step.log_attempt(entry);
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

    /// The locks are held: `LOCKED`, with the first step's call (or the first calls of a
    /// parallel group) announced in the same commit.
    async fn start(&mut self) -> Result<()> {
        let now = self.now();
        let first = self.tx.current_step as usize;
        let changed = self.announce(first, now);
        self.commit(TxEvent::LocksHeld, &changed, None, None).await
    }

    /// Announce the calls that start at step `i`: the step itself, or, when it begins a
    /// parallel group, as many of the group's branches as may run at once. Returns the
    /// steps changed.
    fn announce(&mut self, i: usize, now: i64) -> Vec<usize> {
        match self.steps[i].group {
            Some(g) => self.announce_branches(g.first as usize, now),
            None => {
                self.steps[i].status = StepStatus::Executing;
                self.steps[i].started_at.get_or_insert(now);
                vec![i]
            }
        }
    }

    /// Whether step `i` still has a confirm to run: it executed, and its plugin declares a
    /// confirm for it. While confirming, a step whose plugin is not loaded counts as due
    /// (the saga waits for the plugin rather than leave an effect unconfirmed).
    fn confirm_due(&self, i: usize) -> bool {
        let step = &self.steps[i];
        if step.status != StepStatus::Completed {
            return false;
        }
        self.engine
            .step_confirms(&step.step_name)
            .unwrap_or(self.tx.status == TxStatus::Confirming)
    }

    /// Every step executed: call each due confirm in step order, committing each with its
    /// plugin writes (a committed confirm is never called again), and retrying a failed one
    /// until it succeeds. The last confirm's commit completes the saga. The saga's
    /// deadline does not apply: confirms are never followed by compensation.
    async fn confirm(&mut self) -> Result<()> {
        let inner = self.engine.inner.clone();
        while self.tx.status == TxStatus::Confirming {
            let Some(i) = (0..self.steps.len()).find(|&i| self.confirm_due(i)) else {
                self.commit(TxEvent::Confirmed, &[], None, None).await?;
                self.events().publish(self.event(kinds::TX_COMPLETED));
                return Ok(());
            };
            let name = self.steps[i].step_name.clone();
            let attempt = self.steps[i]
                .attempt_log
                .iter()
                .rev()
                .find(|a| a.phase == Phase::Confirm)
                .map_or(1, |a| a.attempt + 1);
            self.call_started = self.now();
            let plugin = match self.plugin(i) {
                Ok(p) => p,
                Err(f) => {
                    self.confirm_failed_attempt(i, attempt, f).await?;
                    continue;
                }
            };
            let service = plugin
                .step(&name)
                .map(|d| d.service.clone())
                .unwrap_or_else(|| name.clone());
            if !inner.breakers.allow(&service).await {
                let f = CallFailure::new(
                    FailureKind::BreakerOpen,
                    format!("circuit breaker for service `{service}` is open"),
                );
                self.confirm_failed_attempt(i, attempt, f).await?;
                continue;
            }
            let span =
                telemetry::step_span(&self.tx.tx_id, &self.tx.tx_type, &name, attempt, "confirm");
            let call = span.in_scope(|| self.call_for(i, attempt, Some(true)));
            let started = std::time::Instant::now();
            let outcome = inner
                .plugins
                .confirm(&plugin, &call, inner.store.clone())
                .instrument(span.clone())
                .await;
            let m = telemetry::metrics();
            m.step_duration
                .with_label_values(&[name.as_str(), "confirm"])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(out) => {
                    span.record("outcome", "confirmed");
                    self.store_waits = 0;
                    inner.breakers.record(&service, true).await;
                    let before = out.kv.has_writes().then(|| self.steps[i].clone());
                    self.log_attempt(
                        i,
                        Phase::Confirm,
                        attempt,
                        self.call_started,
                        AttemptOutcome::Completed,
                        None,
                    );
                    let now = self.now();
                    let step = &mut self.steps[i];
                    step.status = StepStatus::Confirmed;
                    step.error = None;
                    step.failure_kind = None;
                    step.finished_at = Some(now);
                    let last = !(i + 1..self.steps.len()).any(|j| self.confirm_due(j));
                    let event = if last {
                        TxEvent::Confirmed
                    } else {
                        TxEvent::Progress
                    };
                    let committed = self.commit(event, &[i], Some(&out.kv), None).await;
                    if let Err(Error::Store(StoreError::KvConflict { key, .. })) = &committed
                        && let Some(step) = before
                    {
                        let f = self.kv_conflict(i, "confirm", key);
                        self.steps[i] = step;
                        self.confirm_failed_attempt(i, attempt, f).await?;
                        continue;
                    }
                    committed?;
                    tracing::info!(tx_id = %self.tx.tx_id, step = %name, attempt, "step confirmed");
                    self.events().publish(
                        self.event(kinds::STEP_CONFIRMED)
                            .step(&name)
                            .with("attempt", attempt),
                    );
                    if self.tx.status == TxStatus::Completed {
                        self.events().publish(self.event(kinds::TX_COMPLETED));
                    }
                }
                Err(f) if f.kind == FailureKind::StoreUnavailable => self.wait_for_store(&f).await,
                Err(f) => {
                    span.record("outcome", f.kind.as_str());
                    m.step_failed
                        .with_label_values(&[name.as_str(), "confirm", f.kind.as_str()])
                        .inc();
                    if f.kind != FailureKind::Permanent {
                        inner.breakers.record(&service, false).await;
                    }
                    self.confirm_failed_attempt(i, attempt, f).await?;
                }
            }
        }
        Ok(())
    }

    /// A confirm attempt failed: record it and try again after a backoff, whatever the
    /// failure (a confirm is retried until it succeeds). Once its retries are spent an
    /// operator is alerted, once; the saga keeps confirming.
    async fn confirm_failed_attempt(
        &mut self,
        i: usize,
        attempt: u32,
        f: CallFailure,
    ) -> Result<()> {
        let cfg = &self.engine.inner.config;
        let delay = backoff(cfg.retry_interval, cfg.retry_max_interval, attempt);
        let name = self.steps[i].step_name.clone();
        tracing::warn!(tx_id = %self.tx.tx_id, step = %name, attempt, kind = %f.kind, error = %f.message, "confirm attempt failed; retrying");
        self.log_attempt(
            i,
            Phase::Confirm,
            attempt,
            self.call_started,
            AttemptOutcome::Failed,
            Some(&f),
        );
        let step = &mut self.steps[i];
        step.error = Some(step_error(&f));
        step.failure_kind = Some(f.kind);
        self.commit(TxEvent::Progress, &[i], None, None).await?;
        self.events().publish(
            self.event(kinds::STEP_FAILED)
                .step(&name)
                .error(f.message.clone())
                .with("confirm", true)
                .with("attempt", attempt)
                .with("will_retry", true)
                .with("retry_in_ms", delay.as_millis() as u64),
        );
        if attempt == self.tx.max_retries + 1 {
            self.events()
                .publish(self.event(kinds::ALERT_CRITICAL).step(&name).error(format!(
                    "confirm of step `{name}` failed {attempt} times and is still retried: {}",
                    f.message
                )));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// A saga that could not even start (its locks stayed taken) fails with nothing to undo.
    /// Take the saga's locks. A saga that has not started waits its turn (showing it is alive
    /// after every `lock_wait`, so recovery leaves it alone) until its deadline, then times
    /// out with nothing to undo; `None` then. A saga already under way whose locks are
    /// taken is paused for recovery (an error).
    async fn take_locks(&mut self, token: &str) -> Result<Option<Vec<String>>> {
        let wait = self.engine.inner.config.lock_wait;
        let started = std::time::Instant::now();
        loop {
            let acquired = self
                .engine
                .acquire_locks(&self.tx.lock_keys, token, wait, started)
                .await;
            match acquired {
                Ok(keys) => return Ok(Some(keys)),
                Err(e @ lock::LockError::Busy { .. }) if self.tx.status == TxStatus::Created => {
                    if self.now() >= self.tx.deadline_at {
                        self.time_out_before_start(format!("timed out waiting for locks: {e}"))
                            .await?;
                        return Ok(None);
                    }
                    self.commit(TxEvent::Progress, &[], None, None).await?;
                }
                // A saga resuming after a wait released its locks meanwhile: it takes them
                // again however long others hold them, showing it is alive.
                Err(lock::LockError::Busy { .. })
                    if self.steps.iter().any(|s| s.status == StepStatus::Waiting) =>
                {
                    self.commit(TxEvent::Progress, &[], None, None).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The saga passed its deadline before it held its locks: `TIMEOUT`, nothing ran.
    async fn time_out_before_start(&mut self, message: String) -> Result<()> {
        tracing::warn!(tx_id = %self.tx.tx_id, %message, "saga timed out before it started");
        self.tx.last_error = Some(message.clone());
        let mut changed = Vec::new();
        for (i, s) in self.steps.iter_mut().enumerate() {
            if s.status == StepStatus::Pending {
                s.status = StepStatus::Skipped;
                changed.push(i);
            }
        }
        self.commit(
            TxEvent::DeadlinePassed { undo: false },
            &changed,
            None,
            None,
        )
        .await?;
        self.events()
            .publish(self.event(kinds::TX_TIMEOUT).error(message));
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
            timeout: Some(self.policy(i).timeout),
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
        while matches!(self.tx.status, TxStatus::Locked | TxStatus::Executing) && !self.parked {
            let i = self.tx.current_step as usize;
            if self.steps[i].status == StepStatus::Waiting {
                self.resume_wait(i).await?;
                continue;
            }
            if let Some(g) = self.steps[i].group {
                self.run_group(g.first as usize).await?;
                continue;
            }
            if self.now() >= self.tx.deadline_at {
                let f = CallFailure::new(
                    FailureKind::Timeout,
                    "saga passed its deadline before the step ran",
                );
                return self.fail(i, f, TxStatus::Timeout, None).await;
            }
            let attempt = self.steps[i].attempts + 1;
            self.call_started = self.now();
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
                    FailureKind::BreakerOpen,
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
                    span.record("outcome", f.kind.as_str());
                    m.step_failed
                        .with_label_values(&[name.as_str(), "execute", f.kind.as_str()])
                        .inc();
                }
            }
            match outcome {
                Err(f) if f.kind == FailureKind::StoreUnavailable => self.wait_for_store(&f).await,
                Ok(done) => {
                    self.store_waits = 0;
                    inner.breakers.record(&desc.service, true).await;
                    let failed = if done.wait.is_some() {
                        self.start_wait(i, Phase::Execute, attempt, done).await?
                    } else {
                        self.complete_step(i, attempt, &plugin, done).await?
                    };
                    if let Some(f) = failed {
                        self.retry_or_fail(i, attempt, f).await?;
                    }
                }
                Err(f) => {
                    if f.kind != FailureKind::Permanent {
                        inner.breakers.record(&desc.service, false).await;
                    }
                    if self.now() >= self.tx.deadline_at {
                        return self.fail(i, f, TxStatus::Timeout, Some(attempt)).await;
                    }
                    self.retry_or_fail(i, attempt, f).await?;
                }
            }
        }
        Ok(())
    }

    fn deadline(&self) -> tokio::time::Instant {
        let left = (self.tx.deadline_at - self.now()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_millis(left)
    }

    /// Execute, unless the step's idempotency key already completed: then reuse its output.
    async fn call_execute(
        &self,
        plugin: &LoadedPlugin,
        call: &StepCall,
        supports_idempotency: bool,
    ) -> std::result::Result<Executed, CallFailure> {
        call_execute(&self.engine, plugin, call, supports_idempotency, None).await
    }

    /// Commit step `i`'s successful call: the step completed, its outputs merged, its
    /// plugin writes and idempotency record written, and the next calls announced. A
    /// result the saga cannot take (an output another branch of its group set, outputs
    /// over the saga's cap, plugin state that changed under it) is not written: the failure
    /// to handle it with is returned instead.
    async fn complete_step(
        &mut self,
        i: usize,
        attempt: u32,
        plugin: &LoadedPlugin,
        done: Executed,
    ) -> Result<Option<CallFailure>> {
        if let Some(f) = self.output_conflict(i, &done.outputs) {
            return Ok(Some(f));
        }
        let max = self.engine.inner.config.max_outputs_bytes;
        // An upper bound (a key the step sets again counts twice), without building it.
        let base = match self.outputs_len {
            Some(len) => len,
            None => json_len(&self.tx.outputs),
        };
        let total = base.saturating_add(json_len(&done.outputs));
        if total > max {
            telemetry::metrics()
                .plugin_limit_hits
                .with_label_values(&[plugin.file.as_str(), "saga_outputs"])
                .inc();
            let f = CallFailure::new(
                FailureKind::ResourceLimit,
                format!(
                    "the saga's outputs would reach {total} bytes; the limit is {max} (saga_max_outputs_kb)"
                ),
            );
            return Ok(Some(f));
        }
        let now = self.now();
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
        let outcome = if done.replayed {
            AttemptOutcome::Replayed
        } else {
            AttemptOutcome::Completed
        };
        self.log_attempt(i, Phase::Execute, attempt, self.call_started, outcome, None);
        self.stage_messages(i, Phase::Execute, attempt, done.messages);
        let order = self.steps.iter().filter_map(|s| s.completed_order).max();
        let step = &mut self.steps[i];
        step.status = StepStatus::Completed;
        step.attempts = attempt;
        step.error = None;
        step.failure_kind = None;
        step.idempotency_key = done.key;
        step.finished_at = Some(now);
        step.output = Some(done.outputs.clone());
        step.completed_order = Some(order.unwrap_or(0) + 1);
        self.tx.outputs.extend(done.outputs);
        let mut changed = vec![i];
        let event = self.after_completion(i, now, &mut changed);
        let committed = self
            .commit(
                event,
                &changed,
                Some(&done.kv),
                idem.as_ref().map(IdempotencyChange::Remember),
            )
            .await;
        if let Err(Error::Store(StoreError::KvConflict { key, .. })) = &committed
            && let Some((tx, steps)) = before
        {
            // Nothing was written: run the step again on fresh state.
            let f = self.kv_conflict(i, "execute", key);
            (self.tx, self.steps) = (tx, steps);
            return Ok(Some(f));
        }
        committed?;
        self.outputs_len = Some(total);
        let mut event = self
            .event(kinds::STEP_COMPLETED)
            .step(&self.steps[i].step_name)
            .with("attempt", attempt);
        if let Some(g) = self.steps[i].group {
            event = event.with("group", g.first);
        }
        if done.replayed {
            event = event.with("idempotent_replay", true);
        }
        self.events().publish(event);
        if self.tx.status == TxStatus::Completed {
            self.events().publish(self.event(kinds::TX_COMPLETED));
        }
        if self.tx.status == TxStatus::Confirming {
            tracing::info!(tx_id = %self.tx.tx_id, "every step executed; confirming");
        }
        Ok(None)
    }

    /// Step `i` just completed: announce what runs next (adding the steps changed to
    /// `changed`) and say how the saga moves. A branch whose group still has branches to
    /// finish only makes room for the next one; the group's last branch, like a step that
    /// runs alone, hands over to the step after it, or ends the execution.
    fn after_completion(&mut self, i: usize, now: i64, changed: &mut Vec<usize>) -> TxEvent {
        let next = match self.steps[i].group {
            Some(g) => {
                let branches = self.group_range(g.first as usize);
                let end = branches.end;
                if branches
                    .clone()
                    .any(|k| self.steps[k].status != StepStatus::Completed)
                {
                    changed.extend(self.announce_branches(g.first as usize, now));
                    return TxEvent::StepCompleted;
                }
                end
            }
            None => i + 1,
        };
        if next < self.steps.len() {
            self.tx.current_step = next as u32;
            changed.extend(self.announce(next, now));
            TxEvent::StepCompleted
        } else {
            let confirm = (0..self.steps.len()).any(|j| self.confirm_due(j));
            TxEvent::AllExecuted { confirm }
        }
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
            FailureKind::KvConflict,
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
        if !self.may_retry(i, attempt, &f) {
            return self.fail(i, f, TxStatus::Failed, Some(attempt)).await;
        }
        let delay = self.note_retry(i, attempt, &f).await?;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tokio::time::sleep_until(self.deadline()) => {}
        }
        Ok(())
    }

    /// Whether attempt `attempt` of step `i`, failed with `f`, may be followed by another:
    /// by the step's effective policy.
    fn may_retry(&self, i: usize, attempt: u32, f: &CallFailure) -> bool {
        f.is_retryable() && self.policy(i).may_retry(attempt, f.kind.may_have_acted())
    }

    /// The policy step `i` runs by (see [`Engine::step_policy`]).
    fn policy(&self, i: usize) -> crate::policy::EffectivePolicy {
        self.engine.step_policy(
            &self.tx.tx_type,
            &self.steps[i].step_name,
            self.tx.max_retries,
        )
    }

    /// Record a failed attempt that will be retried; the pause before the next one.
    async fn note_retry(&mut self, i: usize, attempt: u32, f: &CallFailure) -> Result<Duration> {
        let policy = self.policy(i);
        let delay = backoff(policy.retry_interval, policy.retry_max_interval, attempt);
        tracing::info!(tx_id = %self.tx.tx_id, step = %self.steps[i].step_name, attempt, kind = %f.kind, error = %f.message, "step attempt failed; retrying");
        self.log_attempt(
            i,
            Phase::Execute,
            attempt,
            self.call_started,
            AttemptOutcome::Failed,
            Some(f),
        );
        let step = &mut self.steps[i];
        step.attempts = attempt;
        step.error = Some(step_error(f));
        step.failure_kind = Some(f.kind);
        self.commit(TxEvent::Progress, &[i], None, None).await?;
        let mut event = self
            .event(kinds::STEP_FAILED)
            .step(&self.steps[i].step_name)
            .error(f.message.clone())
            .with("attempt", attempt)
            .with("will_retry", true)
            .with("retry_in_ms", delay.as_millis() as u64);
        if let Some(g) = self.steps[i].group {
            event = event.with("group", g.first);
        }
        self.events().publish(event);
        Ok(delay)
    }

    /// Fail the saga at step `i`; compensation follows if anything may need undoing.
    async fn fail(
        &mut self,
        i: usize,
        f: CallFailure,
        status: TxStatus,
        attempt: Option<u32>,
    ) -> Result<()> {
        let now = self.now();
        let name = self.steps[i].step_name.clone();
        if let Some(attempt) = attempt {
            self.log_attempt(
                i,
                Phase::Execute,
                attempt,
                self.call_started,
                AttemptOutcome::Failed,
                Some(&f),
            );
        }
        // A step whose execute was never called (the deadline passed first) has nothing
        // to undo: it ends SKIPPED, and the saga's error says why.
        let called = self.steps[i]
            .attempt_log
            .iter()
            .any(|a| a.phase == Phase::Execute);
        {
            let step = &mut self.steps[i];
            if let Some(attempt) = attempt {
                step.attempts = attempt;
            }
            if called {
                step.status = StepStatus::Failed;
                step.error = Some(step_error(&f));
                step.failure_kind = Some(f.kind);
            } else {
                step.status = StepStatus::Skipped;
            }
            step.finished_at = Some(now);
        }
        let mut changed = vec![i];
        for (j, s) in self.steps.iter_mut().enumerate().skip(i + 1) {
            if s.status == StepStatus::Pending {
                s.status = StepStatus::Skipped;
                changed.push(j);
            }
        }
        let undo = self.steps[..=i].iter().any(needs_undo);
        let (message, event) = self.failing_at(i, &name, &f, status, undo);
        if undo {
            self.stage_next_undo(&mut changed);
        }
        self.commit(event, &changed, None, None).await?;
        tracing::warn!(tx_id = %self.tx.tx_id, step = %name, kind = %f.kind, error = %f.message, status = %self.tx.status, "step failed for good");
        self.events().publish(
            self.event(kinds::STEP_FAILED)
                .step(&name)
                .error(f.message.clone())
                .with("kind", serde_json::to_value(f.kind).unwrap_or_default()),
        );
        self.announce_failure(&name, message, status, undo, None);
        Ok(())
    }

    /// The saga fails at step `i` (`name`) for `f`: its error set, compensation set up from
    /// `i` when `undo`; the message and the event that moves it.
    fn failing_at(
        &mut self,
        i: usize,
        name: &str,
        f: &CallFailure,
        status: TxStatus,
        undo: bool,
    ) -> (String, TxEvent) {
        let message = match status {
            TxStatus::Timeout => format!("saga timed out at step `{name}`: {}", f.message),
            _ => format!("step `{name}` failed: {}", f.message),
        };
        self.tx.last_error = Some(truncate(message.clone()));
        if undo {
            self.tx.current_step = i as u32;
            self.tx.undo = Some(Undo::Failure);
        }
        let event = if status == TxStatus::Timeout {
            TxEvent::DeadlinePassed { undo }
        } else {
            TxEvent::StepFailed { undo }
        };
        (message, event)
    }

    /// Count the saga's failure at step `name` (or the group at `group`) and publish it.
    fn announce_failure(
        &self,
        name: &str,
        message: String,
        status: TxStatus,
        undo: bool,
        group: Option<u32>,
    ) {
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
        let mut event = self
            .event(kind)
            .step(name)
            .error(message)
            .with("compensating", undo);
        if let Some(first) = group {
            event = event.with("group", first);
        }
        self.events().publish(event);
    }

    /// The step compensation undoes next: the first in undo order of those that may
    /// need undoing.
    fn next_undo(&self) -> Option<usize> {
        (0..self.steps.len())
            .filter(|&j| needs_undo(&self.steps[j]))
            .max_by_key(|&j| undo_rank(&self.steps[j]))
    }

    /// For a commit that leaves the saga compensating: mark the step undone next
    /// `COMPENSATING` in that same commit, adding it to `changed`, so the intent is durable
    /// before its plugin is asked to undo without a commit of its own (a step whose
    /// plugin declares no compensation, or one cut off or waiting, is left for
    /// [`SagaRun::backward`]). Returns the event of a commit that ends compensation
    /// instead, when nothing is left to undo.
    fn stage_next_undo(&mut self, changed: &mut Vec<usize>) -> Option<TxEvent> {
        let Some(j) = self.next_undo() else {
            let cause = self.tx.undo.unwrap_or(Undo::Failure);
            return Some(TxEvent::Undone { cause });
        };
        let step = &self.steps[j];
        let undoable = matches!(step.status, StepStatus::Completed | StepStatus::Failed)
            && self
                .plugin(j)
                .ok()
                .and_then(|p| p.step(&step.step_name).map(|d| d.supports_compensation))
                .unwrap_or(false);
        if undoable {
            self.steps[j].status = StepStatus::Compensating;
            if !changed.contains(&j) {
                changed.push(j);
            }
        }
        None
    }

    /// Compensate steps backward from the current one, in reverse order.
    async fn backward(&mut self) -> Result<()> {
        let inner = self.engine.inner.clone();
        while self.tx.status == TxStatus::Compensating && !self.parked {
            let Some(j) = self.next_undo() else {
                return self.finish_compensation().await;
            };
            self.tx.current_step = j as u32;
            if self.steps[j].status == StepStatus::Waiting && self.resume_undo_wait(j).await? {
                continue;
            }
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
                // Nothing the step can undo: say so (not "compensated") and move on,
                // keeping the error of a step that failed (what an operator needs).
                let now = self.now();
                let attempt = self.steps[j].compensation_attempts + 1;
                self.log_attempt(
                    j,
                    Phase::Compensate,
                    attempt,
                    now,
                    AttemptOutcome::NothingToUndo,
                    None,
                );
                let step = &mut self.steps[j];
                step.status = StepStatus::Skipped;
                step.finished_at = Some(now);
                let mut changed = vec![j];
                let end = self.stage_next_undo(&mut changed);
                self.commit(end.unwrap_or(TxEvent::Progress), &changed, None, None)
                    .await?;
                tracing::info!(tx_id = %self.tx.tx_id, step = %name, "step declares no compensation; nothing to undo");
                if end.is_some() {
                    self.announce_compensated();
                }
                continue;
            }
            if self.steps[j].status != StepStatus::Compensating {
                // The barrier: the intent is durable before the plugin is asked to undo.
                self.steps[j].status = StepStatus::Compensating;
                self.commit(TxEvent::Progress, &[j], None, None).await?;
            }
            let attempt = self.steps[j].compensation_attempts + 1;
            self.call_started = self.now();
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
                        .with_label_values(&[name.as_str(), "compensate", f.kind.as_str()])
                        .inc();
                    span.record("outcome", f.kind.as_str())
                }
            };
            match outcome {
                Ok(out) if out.wait.is_some() => {
                    self.store_waits = 0;
                    let done = Executed {
                        outputs: Map::new(),
                        kv: out.kv,
                        key: None,
                        replayed: false,
                        messages: out.messages,
                        wait: out.wait,
                    };
                    if let Some(f) = self.start_wait(j, Phase::Compensate, attempt, done).await? {
                        self.compensation_failed_attempt(j, f).await?;
                    }
                }
                Ok(out) => {
                    self.store_waits = 0;
                    let execute_completed = self.steps[j].output.is_some();
                    self.undone(j, attempt, &plugin, out.kv, out.messages, execute_completed)
                        .await?;
                }
                Err(f) if f.kind == FailureKind::StoreUnavailable => self.wait_for_store(&f).await,
                Err(f) => self.compensation_failed_attempt(j, f).await?,
            }
        }
        Ok(())
    }

    /// Commit step `j`'s successful compensation (with its plugin writes and messages),
    /// forgetting its idempotency record so a later run with the same key executes again.
    async fn undone(
        &mut self,
        j: usize,
        attempt: u32,
        plugin: &LoadedPlugin,
        kv: KvChanges,
        messages: Vec<Published>,
        execute_completed: bool,
    ) -> Result<()> {
        let name = self.steps[j].step_name.clone();
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
        // What a conflicting key write restores: this step, and the next one this commit
        // marks for undoing.
        let before = kv.has_writes().then(|| self.steps.clone());
        self.log_attempt(
            j,
            Phase::Compensate,
            attempt,
            self.call_started,
            AttemptOutcome::Completed,
            None,
        );
        self.stage_messages(j, Phase::Compensate, attempt, messages);
        let now = self.now();
        let step = &mut self.steps[j];
        step.status = StepStatus::Compensated;
        step.compensation_attempts = attempt;
        step.finished_at = Some(now);
        let mut changed = vec![j];
        let end = self.stage_next_undo(&mut changed);
        let committed = self
            .commit(
                end.unwrap_or(TxEvent::Progress),
                &changed,
                Some(&kv),
                forget.as_ref().map(IdempotencyChange::Forget),
            )
            .await;
        if let Err(Error::Store(StoreError::KvConflict { key, .. })) = &committed
            && let Some(steps) = before
        {
            let f = self.kv_conflict(j, "compensate", key);
            self.steps = steps;
            self.compensation_failed_attempt(j, f).await?;
            return Ok(());
        }
        committed?;
        tracing::info!(tx_id = %self.tx.tx_id, step = %name, attempt, "step compensated");
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
        if end.is_some() {
            self.announce_compensated();
        }
        Ok(())
    }

    async fn compensation_failed_attempt(&mut self, j: usize, f: CallFailure) -> Result<()> {
        let policy = self.policy(j);
        let (interval, max_interval) = (policy.retry_interval, policy.retry_max_interval);
        let attempt = self.steps[j].compensation_attempts + 1;
        let name = self.steps[j].step_name.clone();
        self.log_attempt(
            j,
            Phase::Compensate,
            attempt,
            self.call_started,
            AttemptOutcome::Failed,
            Some(&f),
        );
        self.steps[j].compensation_attempts = attempt;
        self.steps[j].error = Some(step_error(&f));
        self.steps[j].failure_kind = Some(f.kind);
        if f.is_retryable() && attempt <= policy.max_retries {
            tracing::warn!(tx_id = %self.tx.tx_id, step = %name, attempt, kind = %f.kind, error = %f.message, "compensation attempt failed; retrying");
            self.commit(TxEvent::Progress, &[j], None, None).await?;
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
        self.steps[j].finished_at = Some(self.now());
        self.tx.last_error = Some(truncate(message.clone()));
        self.commit(TxEvent::CompensationGaveUp, &[j], None, None)
            .await?;
        tracing::error!(tx_id = %self.tx.tx_id, step = %name, error = %message, "compensation failed for good; the saga needs an operator");
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
        let cause = self.tx.undo.unwrap_or(Undo::Failure);
        self.commit(TxEvent::Undone { cause }, &[], None, None)
            .await?;
        self.announce_compensated();
        Ok(())
    }

    /// Log and publish the end of compensation, once it is durable.
    fn announce_compensated(&self) {
        tracing::info!(tx_id = %self.tx.tx_id, status = %self.tx.status, "saga compensated");
        let kind = match self.tx.undo.unwrap_or(Undo::Failure) {
            Undo::Cancel => kinds::TX_CANCELLED,
            Undo::Failure => kinds::TX_COMPENSATED,
        };
        self.events().publish(self.event(kind));
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
    /// Messages the call published.
    messages: Vec<Published>,
    /// The reply the call ended waiting for (then `outputs` are recorded meanwhile).
    wait: Option<WaitRequest>,
}

/// The engine's idempotency look-up for one step of one plugin: the outputs stored for a
/// key only that step of that plugin completed with.
fn idempotency_lookup(
    store: Arc<dyn crate::store::IdempotencyRecords>,
    clock: crate::clock::SharedClock,
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
            match store.idempotency_get(&scope, clock.now_ms()).await {
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

/// The length of `map` as JSON, counted without writing it out.
fn json_len(map: &Map<String, Value>) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, map) {
        Ok(()) => count.0,
        Err(_) => u64::MAX,
    }
}

/// A step's stored error: the failure's message (its kind has a column of its own).
fn step_error(f: &CallFailure) -> String {
    truncate(f.message.clone())
}

fn truncate(s: String) -> String {
    crate::error::truncate_text(s, crate::error::MAX_ERROR_LEN)
}

/// Execute a step, unless its idempotency key already completed: then reuse its output.
/// `group` names the parallel group of a branch, for the step's events.
async fn call_execute(
    engine: &Engine,
    plugin: &LoadedPlugin,
    call: &StepCall,
    supports_idempotency: bool,
    group: Option<u32>,
) -> std::result::Result<Executed, CallFailure> {
    let inner = &engine.inner;
    let store = inner.store.clone();
    let started = {
        let mut event = Event::new(kinds::STEP_STARTED)
            .tx(&call.tx_id, &call.tx_type)
            .step(&call.step_name)
            .with("attempt", call.attempt);
        if let Some(first) = group {
            event = event.with("group", first);
        }
        let (events, step) = (inner.events.clone(), call.step_name.clone());
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
        return in_group(
            group,
            Executed {
                outputs: out.value,
                kv: out.kv,
                key: None,
                replayed: false,
                messages: out.messages,
                wait: out.wait,
            },
        );
    }
    // Key, look-up and execute in one instance; a key this step of this plugin already
    // completed replays its stored output without running execute.
    let lookup = idempotency_lookup(
        store.clone(),
        inner.clock.clone(),
        plugin.namespace.clone(),
        call.step_name.clone(),
    );
    let out = inner
        .plugins
        .execute_keyed(plugin, call, store, lookup, Box::new(started))
        .await?;
    in_group(
        group,
        match out.value {
            Keyed::Replayed { key, outputs } => Executed {
                outputs,
                kv: out.kv,
                key: Some(key),
                replayed: true,
                messages: out.messages,
                wait: out.wait,
            },
            Keyed::Ran { key, outputs } => Executed {
                outputs,
                kv: out.kv,
                key,
                replayed: false,
                messages: out.messages,
                wait: out.wait,
            },
        },
    )
}

/// A branch of a parallel group runs in a task of its own, which a wait for a reply would
/// leave behind: a branch that asks to wait fails, plainly.
fn in_group(group: Option<u32>, done: Executed) -> std::result::Result<Executed, CallFailure> {
    match (&done.wait, group) {
        (Some(w), Some(_)) => Err(CallFailure::new(
            FailureKind::Permanent,
            format!(
                "the step asked to wait for reply `{}`, but a branch of a parallel group cannot wait for replies; run it outside the group",
                w.correlation_id
            ),
        )),
        _ => Ok(done),
    }
}
