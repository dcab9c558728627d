//! Parallel groups. The branches of a group run at once (at most its `max_concurrent` at a
//! time), each in an instance of its own, with its own retries, breaker and idempotency
//! key. Their results reach the saga's one writer one at a time, so a branch's commit
//! never overwrites a sibling's, and each is fenced by the saga's version like any step.
//!
//! A branch is called only once its `EXECUTING` status is durable (announced by the
//! commit that made room for it), so a host that stops mid-group leaves a record of
//! exactly the calls that may have run: the next driver calls again only the branches
//! that did not complete. When a branch fails for good, no further branch starts, the
//! running ones finish (or stop at the saga's deadline), and compensation undoes every
//! completed step in the reverse order of completion.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{Executed, SagaRun, call_execute, step_error};
use crate::engine::{StepStatus, TxStatus};
use crate::error::Result;
use crate::events::kinds;
use crate::lifecycle::{AttemptOutcome, Phase, TxEvent};
use crate::plugin::{CallFailure, FailureKind, LoadedPlugin, StepCall};
use crate::telemetry;

/// What one branch call came to.
struct BranchDone {
    /// The branch's step index.
    i: usize,
    attempt: u32,
    /// When the call started (engine clock, ms).
    started_at: i64,
    outcome: BranchOutcome,
}

enum BranchOutcome {
    /// The call was made, or refused before it (plugin missing, breaker open).
    Called {
        plugin: Option<Arc<LoadedPlugin>>,
        service: Option<String>,
        result: std::result::Result<Box<Executed>, CallFailure>,
    },
    /// The group failed while the branch waited to retry: it was not called again.
    NotCalled,
}

/// Counts a branch call in `rte_parallel_branches_running` while it lives (a call
/// abandoned with its saga's driver included).
struct Running(prometheus::IntGauge);

impl Running {
    fn new() -> Self {
        let gauge = telemetry::metrics().parallel_branches_running.clone();
        gauge.inc();
        Running(gauge)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The first branch of a group to fail for good, and how the saga ends for it.
struct GroupFailure {
    i: usize,
    failure: CallFailure,
    status: TxStatus,
}

impl SagaRun {
    /// The steps of the group whose first step is `first`.
    pub(super) fn group_range(&self, first: usize) -> Range<usize> {
        let end = (first..self.steps.len())
            .find(|&k| self.steps[k].group.map(|g| g.first as usize) != Some(first))
            .unwrap_or(self.steps.len());
        first..end
    }

    /// Announce pending branches of the group at `first` into its free slots (branches
    /// `EXECUTING` count as running); none while the group is failing. Returns the steps
    /// changed.
    pub(super) fn announce_branches(&mut self, first: usize, now: i64) -> Vec<usize> {
        if self.holding {
            return Vec::new();
        }
        let limit = self.steps[first]
            .group
            .map_or(1, |g| g.max_concurrent.max(1) as usize);
        let branches = self.group_range(first);
        let running = branches
            .clone()
            .filter(|&k| self.steps[k].status == StepStatus::Executing)
            .count();
        let mut changed = Vec::new();
        for k in branches {
            if running + changed.len() >= limit {
                break;
            }
            if self.steps[k].status == StepStatus::Pending {
                self.steps[k].status = StepStatus::Executing;
                self.steps[k].started_at.get_or_insert(now);
                changed.push(k);
            }
        }
        changed
    }

    /// The failure for a branch result that sets an output a completed sibling set.
    pub(super) fn output_conflict(
        &self,
        i: usize,
        outputs: &Map<String, Value>,
    ) -> Option<CallFailure> {
        let group = self.steps[i].group?;
        let (key, other) = self
            .group_range(group.first as usize)
            .filter(|&k| k != i && self.steps[k].status == StepStatus::Completed)
            .find_map(|k| {
                let theirs = self.steps[k].output.as_ref()?;
                let key = outputs.keys().find(|key| theirs.contains_key(*key))?;
                Some((key.clone(), &self.steps[k]))
            })?;
        Some(CallFailure::new(
            FailureKind::OutputConflict,
            format!(
                "output `{key}` was already set by step {} (`{}`) of the same parallel group; \
                 the branches of a group must set different outputs",
                other.step_index, other.step_name
            ),
        ))
    }

    /// The outputs a branch of the group at `first` sees: those of the steps before the
    /// group, merged in the order they completed (never a sibling's).
    fn outputs_before(&self, first: usize) -> Map<String, Value> {
        let mut done: Vec<_> = self.steps[..first]
            .iter()
            .filter(|s| s.output.is_some())
            .collect();
        done.sort_by_key(|s| (s.completed_order, s.step_index));
        let mut outputs = Map::new();
        for s in done {
            outputs.extend(s.output.clone().unwrap_or_default());
        }
        outputs
    }

    /// Run the group whose first step is `first` until every branch completed (the saga
    /// then moved past it) or one failed for good (the saga then failed, compensating
    /// what completed).
    pub(super) async fn run_group(&mut self, first: usize) -> Result<()> {
        let branches = self.group_range(first);
        let outputs = Value::Object(self.outputs_before(first)).to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let mut calls: JoinSet<BranchDone> = JoinSet::new();
        let mut in_flight: HashSet<usize> = HashSet::new();
        let mut pauses: HashMap<usize, Duration> = HashMap::new();
        // A branch that failed for good before this run (its host stopped after recording
        // it): the group is failing already.
        let mut failed = branches
            .clone()
            .find(|&k| self.steps[k].status == StepStatus::Failed)
            .map(|k| GroupFailure {
                i: k,
                failure: CallFailure::new(
                    self.steps[k].failure_kind.unwrap_or(FailureKind::Permanent),
                    self.steps[k].error.clone().unwrap_or_default(),
                ),
                status: TxStatus::Failed,
            });
        self.holding = failed.is_some();
        let result = loop {
            if failed.is_none() {
                let changed = self.announce_branches(first, self.now());
                if !changed.is_empty()
                    && let Err(e) = self.commit(TxEvent::Progress, &changed, None, None).await
                {
                    break Err(e);
                }
                for k in branches.clone() {
                    if self.steps[k].status == StepStatus::Executing && in_flight.insert(k) {
                        let pause = pauses.remove(&k).unwrap_or_default();
                        self.spawn_branch(&mut calls, k, pause, &outputs, &stop);
                    }
                }
            }
            let Some(joined) = calls.join_next().await else {
                break Ok(());
            };
            let done = match joined {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    break Err(crate::error::Error::Conflict(format!(
                        "a branch call stopped: {e}"
                    )));
                }
            };
            in_flight.remove(&done.i);
            if let Err(e) = self
                .settle_branch(done, &mut failed, &mut pauses, &stop)
                .await
            {
                break Err(e);
            }
        };
        self.holding = false;
        result?;
        // Nothing left to run yet the group is not done (a branch in a status no run
        // leaves, which only a hand-edited row could hold): fail the group rather than
        // come back to it for ever.
        if failed.is_none()
            && matches!(self.tx.status, TxStatus::Locked | TxStatus::Executing)
            && branches.contains(&(self.tx.current_step as usize))
            && let Some(k) = branches
                .clone()
                .find(|&k| self.steps[k].status != StepStatus::Completed)
        {
            failed = Some(GroupFailure {
                i: k,
                failure: CallFailure::new(
                    FailureKind::Permanent,
                    format!(
                        "branch {} (`{}`) is {} and cannot run",
                        k, self.steps[k].step_name, self.steps[k].status
                    ),
                ),
                status: TxStatus::Failed,
            });
        }
        let outcome = if failed.is_some() {
            "failed"
        } else {
            "completed"
        };
        telemetry::metrics()
            .parallel_groups
            .with_label_values(&[outcome])
            .inc();
        match failed {
            Some(f) => self.fail_group(first, f).await,
            None => Ok(()),
        }
    }

    /// Start a call of branch `i` after `pause` (a retry's backoff), in a task of its own.
    fn spawn_branch(
        &mut self,
        calls: &mut JoinSet<BranchDone>,
        i: usize,
        pause: Duration,
        outputs: &str,
        stop: &Arc<AtomicBool>,
    ) {
        let engine = self.engine.clone();
        let step = &self.steps[i];
        let attempt = step.attempts + 1;
        let group = step.group.map(|g| g.first);
        let span = telemetry::step_span(
            &self.tx.tx_id,
            &self.tx.tx_type,
            &step.step_name,
            attempt,
            "execute",
        );
        let call = StepCall {
            tx_id: self.tx.tx_id.clone(),
            tx_type: self.tx.tx_type.clone(),
            step_name: step.step_name.clone(),
            step_index: step.step_index,
            attempt,
            input: self.tx.input.to_string(),
            outputs: outputs.to_string(),
            execute_completed: None,
            traceparent: span
                .in_scope(telemetry::current_traceparent)
                .or_else(|| self.traceparent.clone()),
            timeout: Some(self.policy(i).timeout),
        };
        let deadline_at = self.tx.deadline_at;
        let deadline = self.deadline();
        let stop = stop.clone();
        let task = async move {
            let clock = engine.inner.clock.clone();
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            let started_at = clock.now_ms();
            let done = |outcome| BranchDone {
                i,
                attempt,
                started_at,
                outcome,
            };
            if stop.load(Ordering::SeqCst) {
                return done(BranchOutcome::NotCalled);
            }
            let refused = |kind, message: String| BranchOutcome::Called {
                plugin: None,
                service: None,
                result: Err(CallFailure::new(kind, message)),
            };
            if started_at >= deadline_at {
                return done(refused(
                    FailureKind::Timeout,
                    "saga passed its deadline before the step ran".into(),
                ));
            }
            let Some(plugin) = engine.inner.plugins.plugin_for(&call.step_name) else {
                return done(refused(
                    FailureKind::Unavailable,
                    format!("no loaded plugin provides step `{}`", call.step_name),
                ));
            };
            let desc = plugin
                .step(&call.step_name)
                .cloned()
                .expect("plugin_for returns the plugin with the step");
            if !engine.inner.breakers.allow(&desc.service).await {
                return done(BranchOutcome::Called {
                    plugin: Some(plugin),
                    service: None,
                    result: Err(CallFailure::new(
                        FailureKind::BreakerOpen,
                        format!("circuit breaker for service `{}` is open", desc.service),
                    )),
                });
            }
            let started = std::time::Instant::now();
            let running = Running::new();
            let result = tokio::select! {
                out = call_execute(&engine, &plugin, &call, desc.supports_idempotency, group) => out.map(Box::new),
                _ = tokio::time::sleep_until(deadline) => Err(CallFailure::new(FailureKind::Timeout, "saga passed its deadline while the step ran")),
            };
            drop(running);
            let m = telemetry::metrics();
            m.step_duration
                .with_label_values(&[call.step_name.as_str(), "execute"])
                .observe(started.elapsed().as_secs_f64());
            let outcome_label = match &result {
                Ok(_) => {
                    m.step_completed
                        .with_label_values(&[call.step_name.as_str()])
                        .inc();
                    "completed"
                }
                Err(f) => {
                    m.step_failed
                        .with_label_values(&[call.step_name.as_str(), "execute", f.kind.as_str()])
                        .inc();
                    f.kind.as_str()
                }
            };
            tracing::Span::current().record("outcome", outcome_label);
            done(BranchOutcome::Called {
                plugin: Some(plugin),
                service: Some(desc.service),
                result,
            })
        };
        calls.spawn(task.instrument(span));
    }

    /// Write what a branch call came to: its completion (making room for the next
    /// branch), a retry to come, or its failure for good (the group then fails).
    async fn settle_branch(
        &mut self,
        done: BranchDone,
        failed: &mut Option<GroupFailure>,
        pauses: &mut HashMap<usize, Duration>,
        stop: &Arc<AtomicBool>,
    ) -> Result<()> {
        let BranchDone {
            i,
            attempt,
            started_at,
            outcome,
        } = done;
        let BranchOutcome::Called {
            plugin,
            service,
            result,
        } = outcome
        else {
            // Waiting to retry when the group failed: it ends with its last failure.
            self.end_branch(i);
            return Ok(());
        };
        self.call_started = started_at;
        if let Some(p) = &plugin {
            self.steps[i].plugin_digest = Some(p.digest.clone());
        }
        let inner = self.engine.inner.clone();
        let breakers = &inner.breakers;
        let failure = match result {
            Err(f) if f.kind == FailureKind::StoreUnavailable => {
                if failed.is_some() {
                    self.end_branch(i);
                } else {
                    self.wait_for_store(&f).await;
                }
                return Ok(());
            }
            Ok(executed) => {
                let executed = *executed;
                self.store_waits = 0;
                if let Some(service) = &service {
                    breakers.record(service, true).await;
                }
                let plugin = plugin.expect("a completed call had its plugin");
                match self.complete_step(i, attempt, &plugin, executed).await? {
                    None => return Ok(()),
                    Some(f) => f,
                }
            }
            Err(f) => {
                if let Some(service) = &service
                    && f.kind != FailureKind::Permanent
                {
                    breakers.record(service, false).await;
                }
                f
            }
        };
        let status = if self.now() >= self.tx.deadline_at {
            TxStatus::Timeout
        } else {
            TxStatus::Failed
        };
        if failed.is_none() && status == TxStatus::Failed && self.may_retry(i, attempt, &failure) {
            let pause = self.note_retry(i, attempt, &failure).await?;
            pauses.insert(i, pause);
            return Ok(());
        }
        // For good: record it now, so a host that stops while siblings finish leaves the
        // group failing, not to be run again.
        self.log_attempt(
            i,
            Phase::Execute,
            attempt,
            self.call_started,
            AttemptOutcome::Failed,
            Some(&failure),
        );
        let now = self.now();
        let step = &mut self.steps[i];
        step.attempts = attempt;
        step.status = StepStatus::Failed;
        step.error = Some(step_error(&failure));
        step.failure_kind = Some(failure.kind);
        step.finished_at = Some(now);
        let name = step.step_name.clone();
        let group = step.group.map(|g| g.first);
        let mut changed = vec![i];
        if failed.is_none() {
            stop.store(true, Ordering::SeqCst);
            self.holding = true;
            for k in self.group_range(group.unwrap_or(i as u32) as usize) {
                if self.steps[k].status == StepStatus::Pending {
                    self.steps[k].status = StepStatus::Skipped;
                    changed.push(k);
                }
            }
            tracing::warn!(tx_id = %self.tx.tx_id, step = %name, kind = %failure.kind, error = %failure.message, "a branch of a parallel group failed for good; no further branch starts");
        }
        self.commit(TxEvent::Progress, &changed, None, None).await?;
        let mut event = self
            .event(kinds::STEP_FAILED)
            .step(&name)
            .error(failure.message.clone())
            .with("attempt", attempt)
            .with(
                "kind",
                serde_json::to_value(failure.kind).unwrap_or_default(),
            );
        if let Some(first) = group {
            event = event.with("group", first);
        }
        self.events().publish(event);
        if failed.is_none() {
            *failed = Some(GroupFailure { i, failure, status });
        }
        Ok(())
    }

    /// A branch that will not be called again while its group fails: `FAILED` with its
    /// last failure if it was called before, else `SKIPPED` (written with the group's end).
    fn end_branch(&mut self, i: usize) {
        let called = self.steps[i]
            .attempt_log
            .iter()
            .any(|a| a.phase == Phase::Execute);
        self.steps[i].status = if called {
            StepStatus::Failed
        } else {
            StepStatus::Skipped
        };
        self.steps[i].finished_at = Some(self.now());
    }

    /// Every branch of the failing group settled: fail the saga for `failure`, the steps
    /// not run `SKIPPED`, compensation next if anything may need undoing.
    async fn fail_group(&mut self, first: usize, failure: GroupFailure) -> Result<()> {
        let GroupFailure { i, failure, status } = failure;
        let now = self.now();
        let branches = self.group_range(first);
        let mut changed = Vec::new();
        for (k, s) in self.steps.iter_mut().enumerate() {
            let called = s.attempt_log.iter().any(|a| a.phase == Phase::Execute);
            match s.status {
                StepStatus::Pending => s.status = StepStatus::Skipped,
                // Called before this host took the saga over, and cut off.
                StepStatus::Executing if called => {
                    s.status = StepStatus::Failed;
                    s.failure_kind = Some(FailureKind::Lost);
                    s.error = Some("the call was cut off when its host stopped".into());
                }
                StepStatus::Executing => s.status = StepStatus::Skipped,
                // The group's branches that ended while it drained are written now.
                _ if branches.contains(&k) => {}
                _ => continue,
            }
            if matches!(s.status, StepStatus::Failed | StepStatus::Skipped) {
                s.finished_at.get_or_insert(now);
            }
            changed.push(k);
        }
        let name = self.steps[i].step_name.clone();
        let undo = self.steps.iter().any(super::needs_undo);
        let (message, event) = self.failing_at(i, &name, &failure, status, undo);
        self.commit(event, &changed, None, None).await?;
        tracing::warn!(tx_id = %self.tx.tx_id, step = %name, kind = %failure.kind, status = %self.tx.status, "parallel group failed");
        self.announce_failure(&name, message, status, undo, Some(first as u32));
        Ok(())
    }
}
