//! Operator actions with clear rules: force-complete, force-cancel and retry. Each is an
//! event of the transition table ([`crate::lifecycle`]) applied through the engine's one
//! writer, fenced by the version it read (a host driving the saga at the same moment stops
//! at its next write), and recorded in the saga's history with who acted and why.

use std::time::Duration;

use super::saga::needs_undo;
use super::{Engine, StepStatus, TxStatus};
use super::{Patience, With};
use crate::error::{Error, Result};
use crate::events::{Event, kinds};
use crate::lifecycle::{Actor, AttemptOutcome, FailureKind, HistoryKind, Phase, TxEvent, Undo};
use crate::store::{Attempt, HistoryEntry, StepRecord, TxRecord};

/// How long an operator's change waits for an unreachable store before it is refused.
const OPERATOR_PATIENCE: Duration = Duration::from_secs(3);

impl Engine {
    /// Mark a saga `COMPLETED` by hand (a failed, timed-out or stuck saga whose effects
    /// the operator has settled outside RTE). Refused with a conflict while a host is
    /// driving the saga (a step call may be running: wait for the saga to settle, or
    /// force-cancel it), and for sagas that completed, were compensated or cancelled, or
    /// are compensating. A step whose call was cut off by a stopped host is marked
    /// `FAILED` (`lost`), never left `EXECUTING` inside a finished saga.
    pub async fn force_complete(&self, tx_id: &str, reason: &str) -> Result<TxRecord> {
        let (mut tx, mut steps) = self.get(tx_id).await?;
        tx.status.on(TxEvent::ForceComplete)?;
        if self.is_live(&tx, &steps) {
            return Err(Error::Conflict(format!(
                "saga {tx_id} is running (status {}, updated {} ms ago); wait for it to settle, \
                 or force-cancel it",
                tx.status,
                self.now_ms() - tx.updated_at
            )));
        }
        let from = tx.status;
        let actor = Actor::Operator {
            reason: reason.to_string(),
        };
        // A step waiting for a reply stops waiting, its wait closed with the change: a reply
        // that comes later is not applied.
        let waiting = steps.iter().find(|s| s.status == StepStatus::Waiting);
        let open_wait = match waiting {
            Some(s) => self
                .inner
                .store
                .wait_of_step(tx_id, s.step_index)
                .await?
                .map(|w| w.correlation_id),
            None => None,
        };
        let mut changed = skip_pending(&mut steps);
        let confirm = self.confirm_in_flight(from, &steps);
        changed.extend(cut_off_calls(
            &mut steps,
            confirm,
            &self.inner.host_id,
            self.now_ms(),
        ));
        tx.last_error = None;
        self.operator_apply(
            &mut tx,
            TxEvent::ForceComplete,
            &steps,
            &changed,
            HistoryKind::ForceComplete,
            actor,
            format!("{from} → COMPLETED"),
            open_wait.as_deref(),
        )
        .await?;
        self.inner.events.publish(
            Event::new(kinds::TX_COMPLETED)
                .tx(&tx.tx_id, &tx.tx_type)
                .with("forced", true)
                .with("reason", reason),
        );
        self.after_change(tx_id).await
    }

    /// Cancel a saga: compensate what may have taken effect (in reverse order), then
    /// `CANCELLED`. Refused for sagas that completed, were compensated or cancelled, are
    /// compensating, or are confirming (confirms are never followed by compensation).
    pub async fn force_cancel(&self, tx_id: &str, reason: &str) -> Result<TxRecord> {
        let (mut tx, mut steps) = self.get(tx_id).await?;
        let from = tx.status;
        let mut changed = skip_pending(&mut steps);
        for (i, s) in steps.iter_mut().enumerate() {
            if s.status == StepStatus::CompensationFailed {
                s.compensation_attempts = 0;
                changed.push(i);
            }
        }
        let undo = steps.iter().any(needs_undo);
        // Checked before anything is written: the table decides.
        tx.status.on(TxEvent::ForceCancel { undo })?;
        if undo {
            tx.current_step = tx.total_steps.saturating_sub(1);
            tx.completed_at = None;
            tx.undo = Some(Undo::Cancel);
        }
        tx.last_error = Some(format!("cancelled by an operator: {reason}"));
        let actor = Actor::Operator {
            reason: reason.to_string(),
        };
        self.operator_apply(
            &mut tx,
            TxEvent::ForceCancel { undo },
            &steps,
            &changed,
            HistoryKind::ForceCancel,
            actor,
            format!(
                "{from} → {}",
                if undo { "COMPENSATING" } else { "CANCELLED" }
            ),
            None,
        )
        .await?;
        if undo {
            self.spawn(tx_id.to_string(), None);
        } else {
            self.inner.events.publish(
                Event::new(kinds::TX_CANCELLED)
                    .tx(&tx.tx_id, &tx.tx_type)
                    .with("reason", reason),
            );
        }
        self.after_change(tx_id).await
    }

    /// Retry a saga: a `FAILED` or `TIMEOUT` saga runs again from its failed step (or
    /// from `from_step`, keeping the outputs of the steps before it), with a fresh deadline
    /// and fresh step retries; a `COMPENSATION_FAILED` saga resumes its compensation.
    /// A step once compensated is never executed again, so `from_step` may not reach back
    /// past a compensated step.
    pub async fn retry(
        &self,
        tx_id: &str,
        from_step: Option<u32>,
        reason: &str,
    ) -> Result<TxRecord> {
        let actor = Actor::Operator {
            reason: reason.to_string(),
        };
        self.retry_as(tx_id, from_step, actor).await
    }

    /// [`Engine::retry`] on behalf of `actor` (an operator, or recovery's retry policy).
    pub(crate) async fn retry_as(
        &self,
        tx_id: &str,
        from_step: Option<u32>,
        actor: Actor,
    ) -> Result<TxRecord> {
        let (mut tx, mut steps) = self.get(tx_id).await?;
        let from = tx.status;
        let mut changed = Vec::new();
        let event = match tx.status {
            TxStatus::Failed | TxStatus::Timeout => {
                let first_open = steps
                    .iter()
                    .position(|s| s.status != StepStatus::Completed)
                    .unwrap_or(steps.len());
                let start = from_step.map_or(first_open, |n| n as usize);
                // A group runs again as a whole (its completed branches replay their
                // idempotency keys).
                let start = match steps.get(start).and_then(|s| s.group) {
                    Some(g) => g.first as usize,
                    None => start,
                };
                if start >= steps.len() || start > first_open {
                    return Err(Error::Conflict(format!(
                        "from_step must be between 0 and {} (the first step that did not complete)",
                        first_open.min(steps.len().saturating_sub(1))
                    )));
                }
                if let Some(s) = steps[start..].iter().find(|s| {
                    matches!(
                        s.status,
                        StepStatus::Compensated
                            | StepStatus::Compensating
                            | StepStatus::CompensationFailed
                    )
                }) {
                    return Err(Error::Conflict(format!(
                        "step {} (`{}`) was compensated; a compensated step never runs again",
                        s.step_index, s.step_name
                    )));
                }
                for (i, s) in steps.iter_mut().enumerate().skip(start) {
                    // The step starts over; its attempts so far stay in its log.
                    *s = StepRecord {
                        plugin_digest: s.plugin_digest.take(),
                        attempt_log: std::mem::take(&mut s.attempt_log),
                        group: s.group,
                        ..StepRecord::pending(&s.tx_id, s.step_index, &s.step_name)
                    };
                    changed.push(i);
                }
                tx.outputs = steps[..start]
                    .iter()
                    .filter_map(|s| s.output.clone())
                    .flatten()
                    .collect();
                tx.current_step = start as u32;
                tx.deadline_at = self.now_ms() + tx.timeout_ms as i64;
                tx.undo = None;
                TxEvent::Retry
            }
            TxStatus::CompensationFailed => {
                for (i, s) in steps.iter_mut().enumerate() {
                    if s.status == StepStatus::CompensationFailed {
                        s.compensation_attempts = 0;
                        changed.push(i);
                    }
                }
                tx.current_step = tx.total_steps.saturating_sub(1);
                TxEvent::RetryCompensation
            }
            _ => return Err(tx.status.on(TxEvent::Retry).unwrap_err().into()),
        };
        tx.retry_count += 1;
        tx.completed_at = None;
        tx.last_error = None;
        let step_note = from_step
            .map(|n| format!(" from step {n}"))
            .unwrap_or_default();
        let to = tx.status.on(event)?;
        self.operator_apply(
            &mut tx,
            event,
            &steps,
            &changed,
            HistoryKind::Retry,
            actor,
            format!("{from} → {to}{step_note}"),
            None,
        )
        .await?;
        self.spawn(tx_id.to_string(), None);
        self.after_change(tx_id).await
    }

    /// Whether a host may be driving the saga now (this one, or another that wrote it
    /// within the stuck threshold). A saga waiting for a reply is driven by nobody.
    fn is_live(&self, tx: &TxRecord, steps: &[StepRecord]) -> bool {
        !tx.status.is_terminal()
            && (self.is_driving(&tx.tx_id)
                || (self.now_ms() - tx.updated_at
                    < self.inner.config.stuck_threshold.as_millis() as i64
                    && !steps.iter().any(|s| s.status == StepStatus::Waiting)))
    }

    /// Apply an operator's (or recovery's) event with its history line.
    #[allow(clippy::too_many_arguments)]
    async fn operator_apply(
        &self,
        tx: &mut TxRecord,
        event: TxEvent,
        steps: &[StepRecord],
        changed: &[usize],
        kind: HistoryKind,
        actor: Actor,
        message: String,
        close_wait: Option<&str>,
    ) -> Result<()> {
        let history = [HistoryEntry {
            tx_id: tx.tx_id.clone(),
            at: self.now_ms(),
            kind,
            message: format!("{message} by {actor}"),
            actor: Some(actor),
        }];
        let steps: Vec<&StepRecord> = changed.iter().map(|&i| &steps[i]).collect();
        let with = With {
            history: &history,
            waits: crate::store::WaitChanges {
                open: None,
                close: close_wait,
            },
            ..With::default()
        };
        self.apply(
            tx,
            event,
            &steps,
            with,
            Patience::Bounded(OPERATOR_PATIENCE),
        )
        .await?;
        tracing::info!(tx_id = %tx.tx_id, action = %kind, status = %tx.status, "operator action applied");
        Ok(())
    }

    async fn after_change(&self, tx_id: &str) -> Result<TxRecord> {
        Ok(self.get(tx_id).await?.0)
    }
}

/// Steps that never ran become `SKIPPED`; returns their indexes.
fn skip_pending(steps: &mut [StepRecord]) -> Vec<usize> {
    let mut changed = Vec::new();
    for (i, s) in steps.iter_mut().enumerate() {
        if s.status == StepStatus::Pending {
            s.status = StepStatus::Skipped;
            changed.push(i);
        }
    }
    changed
}

/// Steps whose call a stopped host cut off (`EXECUTING`), and steps waiting for a reply
/// (whose waits the caller closes), become `FAILED` with kind `lost`, a cut-off call's
/// attempt logged; returns their indexes.
fn cut_off_calls(
    steps: &mut [StepRecord],
    confirm: Option<usize>,
    noted_by: &str,
    now: i64,
) -> Vec<usize> {
    let mut changed = note_lost_calls(steps, confirm, noted_by, now);
    // A step waiting for a reply stops waiting (the caller closes its wait).
    for (i, s) in steps.iter_mut().enumerate() {
        if s.status == StepStatus::Waiting {
            s.status = StepStatus::Failed;
            s.failure_kind = Some(FailureKind::Lost);
            s.error =
                Some("an operator completed the saga while the step waited for a reply".into());
            s.finished_at = Some(now);
            changed.push(i);
        }
    }
    for &i in &changed {
        let s = &mut steps[i];
        if s.status == StepStatus::Executing {
            s.status = StepStatus::Failed;
            s.failure_kind = Some(FailureKind::Lost);
            s.error = s.attempt_log.last().and_then(|a| a.message.clone());
            s.finished_at = Some(now);
        }
    }
    changed
}

/// A call under way when its host stopped answered nobody: log it as a lost attempt of
/// its step (counted), which runs again; returns the steps changed. `confirm` is the step
/// whose confirm may have been under way (see [`Engine::confirm_in_flight`]).
pub(crate) fn note_lost_calls(
    steps: &mut [StepRecord],
    confirm: Option<usize>,
    host: &str,
    now: i64,
) -> Vec<usize> {
    let mut changed = Vec::new();
    for (i, s) in steps.iter_mut().enumerate() {
        let (phase, attempt) = match s.status {
            StepStatus::Completed if confirm == Some(i) => {
                let last = s
                    .attempt_log
                    .iter()
                    .rev()
                    .find(|a| a.phase == Phase::Confirm)
                    .map_or(0, |a| a.attempt);
                (Phase::Confirm, last + 1)
            }
            StepStatus::Executing if s.started_at.is_some() => {
                s.attempts += 1;
                (Phase::Execute, s.attempts)
            }
            StepStatus::Compensating => {
                s.compensation_attempts += 1;
                (Phase::Compensate, s.compensation_attempts)
            }
            _ => continue,
        };
        let started_at = s
            .attempt_log
            .last()
            .map_or(s.started_at.unwrap_or(now), |a| a.ended_at);
        s.log_attempt(Attempt {
            phase,
            attempt,
            started_at,
            ended_at: now,
            outcome: AttemptOutcome::Failed,
            failure_kind: Some(FailureKind::Lost),
            message: Some("the host making the call stopped before it answered".into()),
            host: host.to_string(),
            plugin_digest: s.plugin_digest.clone(),
        });
        changed.push(i);
    }
    changed
}

/// The seed's `Admin`: what an operator does, in the library — the REST API calls the same.
#[derive(Clone)]
pub struct Admin {
    engine: Engine,
}

/// A saga with its steps and history.
#[derive(Debug, Clone)]
pub struct TxDetail {
    /// The saga.
    pub transaction: TxRecord,
    /// Its steps in order.
    pub steps: Vec<StepRecord>,
    /// Operator actions and recoveries.
    pub history: Vec<HistoryEntry>,
}

impl Admin {
    /// Sagas matching `filter`, newest first, with the total.
    pub async fn list(&self, filter: &crate::store::TxFilter) -> Result<crate::store::Page> {
        Ok(self.engine.inner.store.list(filter).await?)
    }

    /// One saga with its steps and history.
    pub async fn get(&self, tx_id: &str) -> Result<TxDetail> {
        let (transaction, steps) = self.engine.get(tx_id).await?;
        let history = self.engine.inner.store.history(tx_id).await?;
        Ok(TxDetail {
            transaction,
            steps,
            history,
        })
    }

    /// Counts by status and type.
    pub async fn stats(&self) -> Result<Vec<crate::store::StatusCount>> {
        Ok(self.engine.inner.store.stats().await?)
    }

    /// See [`Engine::force_complete`].
    pub async fn force_complete(&self, tx_id: &str, reason: &str) -> Result<TxRecord> {
        self.engine.force_complete(tx_id, reason).await
    }

    /// See [`Engine::force_cancel`].
    pub async fn force_cancel(&self, tx_id: &str, reason: &str) -> Result<TxRecord> {
        self.engine.force_cancel(tx_id, reason).await
    }

    /// See [`Engine::retry`].
    pub async fn retry_transaction(
        &self,
        tx_id: &str,
        from_step: Option<u32>,
        reason: &str,
    ) -> Result<TxRecord> {
        self.engine.retry(tx_id, from_step, reason).await
    }
}

impl Engine {
    /// The operator's view of this engine.
    pub fn admin(&self) -> Admin {
        Admin {
            engine: self.clone(),
        }
    }
}
