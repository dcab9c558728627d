//! Operator actions with clear rules: force-complete, force-cancel and retry. Each checks
//! the saga's status, writes its change fenced by the version it read (a host driving the
//! saga at the same moment stops at its next write), and records who did what and why in
//! the saga's history.

use super::saga::needs_undo;
use super::{Engine, StepStatus, TxStatus};
use crate::error::{Error, Result};
use crate::events::{Event, kinds};
use crate::store::{Commit, HistoryEntry, StepRecord, TxRecord, now_ms};

/// Who asked, for the history.
const OPERATOR: &str = "operator";

impl Engine {
    /// Mark a saga `COMPLETED` by hand (a stuck or failed saga whose effects the operator
    /// has settled outside RTE). Refused for sagas that completed, were compensated or
    /// cancelled, or are compensating now.
    pub async fn force_complete(&self, tx_id: &str, reason: &str) -> Result<TxRecord> {
        let (mut tx, mut steps) = self.get(tx_id).await?;
        use TxStatus::*;
        if !matches!(
            tx.status,
            Created | Locked | Executing | Confirming | Failed | Timeout | CompensationFailed
        ) {
            return Err(refused("force-complete", &tx));
        }
        let from = tx.status;
        tx.status = Completed;
        tx.completed_at = Some(now_ms());
        tx.last_error = None;
        let changed = skip_pending(&mut steps);
        self.admin_commit(
            &tx,
            &steps,
            &changed,
            "force_complete",
            format!("{from} → COMPLETED by {OPERATOR}: {reason}"),
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

    /// Cancel a saga: compensate what completed (in reverse order), then `CANCELLED`.
    /// Refused for sagas that completed, were compensated or cancelled, or are compensating.
    pub async fn force_cancel(&self, tx_id: &str, reason: &str) -> Result<TxRecord> {
        let (mut tx, mut steps) = self.get(tx_id).await?;
        use TxStatus::*;
        if !matches!(
            tx.status,
            Created | Locked | Executing | Confirming | Failed | Timeout | CompensationFailed
        ) {
            return Err(refused("force-cancel", &tx));
        }
        let from = tx.status;
        let mut changed = skip_pending(&mut steps);
        for (i, s) in steps.iter_mut().enumerate() {
            if s.status == StepStatus::CompensationFailed {
                s.compensation_attempts = 0;
                changed.push(i);
            }
        }
        let undo = steps.iter().any(needs_undo);
        if undo {
            tx.status = Compensating;
            tx.current_step = tx.total_steps.saturating_sub(1);
            tx.completed_at = None;
        } else {
            tx.status = Cancelled;
            tx.completed_at = Some(now_ms());
        }
        tx.last_error = Some(format!("cancelled by {OPERATOR}: {reason}"));
        self.admin_commit(
            &tx,
            &steps,
            &changed,
            "force_cancel",
            format!("{from} → {} by {OPERATOR}: {reason}", tx.status),
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
        let (mut tx, mut steps) = self.get(tx_id).await?;
        let from = tx.status;
        let mut changed = Vec::new();
        match tx.status {
            TxStatus::Failed | TxStatus::Timeout => {
                let first_open = steps
                    .iter()
                    .position(|s| s.status != StepStatus::Completed)
                    .unwrap_or(steps.len());
                let start = from_step.map_or(first_open, |n| n as usize);
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
                    *s = StepRecord {
                        plugin_digest: s.plugin_digest.take(),
                        ..StepRecord::pending(&s.tx_id, s.step_index, &s.step_name)
                    };
                    changed.push(i);
                }
                tx.outputs = steps[..start]
                    .iter()
                    .filter_map(|s| s.output.clone())
                    .flatten()
                    .collect();
                tx.status = TxStatus::Created;
                tx.current_step = start as u32;
                tx.deadline_at = now_ms() + tx.timeout_ms as i64;
            }
            TxStatus::CompensationFailed => {
                for (i, s) in steps.iter_mut().enumerate() {
                    if s.status == StepStatus::CompensationFailed {
                        s.compensation_attempts = 0;
                        changed.push(i);
                    }
                }
                tx.status = TxStatus::Compensating;
                tx.current_step = tx.total_steps.saturating_sub(1);
            }
            _ => return Err(refused("retry", &tx)),
        }
        tx.retry_count += 1;
        tx.completed_at = None;
        tx.last_error = None;
        let step_note = from_step
            .map(|n| format!(" from step {n}"))
            .unwrap_or_default();
        self.admin_commit(
            &tx,
            &steps,
            &changed,
            "retry",
            format!("{from} → {}{step_note} by {OPERATOR}: {reason}", tx.status),
        )
        .await?;
        self.spawn(tx_id.to_string(), None);
        self.after_change(tx_id).await
    }

    async fn admin_commit(
        &self,
        tx: &TxRecord,
        steps: &[StepRecord],
        changed: &[usize],
        kind: &str,
        message: String,
    ) -> Result<()> {
        let mut tx = tx.clone();
        tx.updated_at = now_ms();
        let history = [HistoryEntry {
            tx_id: tx.tx_id.clone(),
            at: tx.updated_at,
            kind: kind.to_string(),
            message,
        }];
        let steps: Vec<&StepRecord> = changed.iter().map(|&i| &steps[i]).collect();
        let commit = Commit {
            tx: &tx,
            steps: &steps,
            kv: None,
            idempotency: None,
            history: &history,
        };
        self.inner.store.commit(&commit).await?;
        tracing::info!(tx_id = %tx.tx_id, action = kind, "operator action applied");
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

fn refused(action: &str, tx: &TxRecord) -> Error {
    Error::Conflict(format!(
        "cannot {action} transaction {} in status {}",
        tx.tx_id, tx.status
    ))
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
