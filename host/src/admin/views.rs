//! JSON shapes of the API: snake_case, RFC 3339 times.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::{StepStatus, TxStatus};
use crate::lifecycle::{Actor, AttemptOutcome, FailureKind, HistoryKind, Phase};
use crate::store::{Attempt, HistoryEntry, StepRecord, TxRecord, WaitRecord};

/// Milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A transaction as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TxView {
    /// Id.
    pub tx_id: String,
    /// Type.
    pub tx_type: String,
    /// Status.
    pub status: TxStatus,
    /// Input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Outputs of completed steps.
    #[schema(value_type = Object)]
    pub output: Map<String, Value>,
    /// Lock keys.
    pub lock_keys: Vec<String>,
    /// Current step index.
    pub current_step: u32,
    /// Number of steps.
    pub total_steps: u32,
    /// Saga-level retries so far.
    pub retry_count: u32,
    /// Retries allowed.
    pub max_retries: u32,
    /// Timeout in milliseconds.
    pub timeout_ms: u64,
    /// Deadline.
    pub deadline_at: String,
    /// Latest error.
    pub error: Option<String>,
    /// Version (bumped by every change).
    pub version: i64,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Finished.
    pub completed_at: Option<String>,
    /// Steps (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
    /// Operator and recovery actions (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
    /// Every attempt of every step, in the order they started (detail only): the durable
    /// timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptView>>,
    /// The step whose failure ended or compensated the saga (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<u32>,
}

/// A step as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepView {
    /// Position.
    pub step_index: u32,
    /// Name.
    pub step_name: String,
    /// Status.
    pub status: StepStatus,
    /// Execute attempts.
    pub attempts: u32,
    /// Compensate attempts.
    pub compensation_attempts: u32,
    /// Output.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Map<String, Value>>,
    /// Latest error.
    pub error: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Digest of the plugin that ran it.
    pub plugin_digest: Option<String>,
    /// Started.
    pub started_at: Option<String>,
    /// Settled.
    pub finished_at: Option<String>,
    /// The kind of the latest failure.
    pub failure_kind: Option<FailureKind>,
    /// The parallel group the step is a branch of (absent for a step that runs alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::store::StepGroup>,
    /// Its place in the order the saga's steps completed (compensation runs in reverse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_order: Option<u32>,
    /// The reply a `WAITING` step waits for (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitView>,
}

/// A step's wait for a reply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitView {
    /// The id the reply must carry.
    pub correlation_id: String,
    /// The saga.
    pub tx_id: String,
    /// The waiting step's position.
    pub step_index: u32,
    /// The call that waits.
    pub phase: Phase,
    /// Its attempt.
    pub attempt: u32,
    /// When the wait began.
    pub started_at: String,
    /// When it times out.
    pub deadline_at: String,
    /// What came back, once recorded: `message`, `error` or `timed_out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

impl From<&WaitRecord> for WaitView {
    fn from(w: &WaitRecord) -> Self {
        Self {
            correlation_id: w.correlation_id.clone(),
            tx_id: w.tx_id.clone(),
            step_index: w.step_index,
            phase: w.phase,
            attempt: w.attempt,
            started_at: rfc3339(w.created_at),
            deadline_at: rfc3339(w.deadline_at),
            reply: w.reply.as_ref().map(|r| r.kind().to_string()),
        }
    }
}

/// One attempt of one step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// The step's position.
    pub step_index: u32,
    /// The step's name.
    pub step_name: String,
    /// Which call.
    pub phase: Phase,
    /// Its number within the phase.
    pub attempt: u32,
    /// Started.
    pub started_at: String,
    /// Settled.
    pub ended_at: String,
    /// Milliseconds from start to settlement.
    pub duration_ms: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why it failed.
    pub failure_kind: Option<FailureKind>,
    /// The failure's message.
    pub message: Option<String>,
    /// The host that made the call.
    pub host: String,
    /// Digest of the plugin that ran it.
    pub plugin_digest: Option<String>,
}

impl AttemptView {
    fn new(step: &StepRecord, a: &Attempt) -> Self {
        Self {
            step_index: step.step_index,
            step_name: step.step_name.clone(),
            phase: a.phase,
            attempt: a.attempt,
            started_at: rfc3339(a.started_at),
            ended_at: rfc3339(a.ended_at),
            duration_ms: (a.ended_at - a.started_at).max(0),
            outcome: a.outcome,
            failure_kind: a.failure_kind,
            message: a.message.clone(),
            host: a.host.clone(),
            plugin_digest: a.plugin_digest.clone(),
        }
    }
}

/// A history line: an operator's or recovery's action.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    /// When.
    pub at: String,
    /// Kind.
    pub kind: HistoryKind,
    /// Who acted.
    pub actor: Option<Actor>,
    /// What and why.
    pub message: String,
}

impl TxView {
    /// The summary view (no steps).
    pub fn summary(tx: &TxRecord) -> Self {
        Self {
            tx_id: tx.tx_id.clone(),
            tx_type: tx.tx_type.clone(),
            status: tx.status,
            input: tx.input.clone(),
            output: tx.outputs.clone(),
            lock_keys: tx.lock_keys.clone(),
            current_step: tx.current_step,
            total_steps: tx.total_steps,
            retry_count: tx.retry_count,
            max_retries: tx.max_retries,
            timeout_ms: tx.timeout_ms,
            deadline_at: rfc3339(tx.deadline_at),
            error: tx.last_error.clone(),
            version: tx.version,
            created_at: rfc3339(tx.created_at),
            updated_at: rfc3339(tx.updated_at),
            completed_at: tx.completed_at.map(rfc3339),
            steps: None,
            history: None,
            attempts: None,
            failed_step: None,
        }
    }

    /// The detail view with steps and history.
    pub fn detail(tx: &TxRecord, steps: &[StepRecord], history: &[HistoryEntry]) -> Self {
        let mut view = Self::summary(tx);
        view.steps = Some(steps.iter().map(StepView::from).collect());
        view.history = Some(
            history
                .iter()
                .map(|h| HistoryView {
                    at: rfc3339(h.at),
                    kind: h.kind,
                    actor: h.actor.clone(),
                    message: h.message.clone(),
                })
                .collect(),
        );
        // In time order; attempts that started in the same millisecond in the order the
        // saga makes them: executes and confirms in step order, then compensations in undo
        // order (the step that completed last first).
        let mut attempts: Vec<((i64, u8, i64), AttemptView)> = steps
            .iter()
            .flat_map(|s| {
                s.attempt_log.iter().map(move |a| {
                    let order = match a.phase {
                        Phase::Execute => (0, i64::from(s.step_index)),
                        Phase::Confirm => (1, i64::from(s.step_index)),
                        Phase::Compensate => (2, -i64::from(s.completed_order.unwrap_or(u32::MAX))),
                    };
                    ((a.started_at, order.0, order.1), AttemptView::new(s, a))
                })
            })
            .collect();
        attempts.sort_by_key(|(key, _)| *key);
        view.attempts = Some(attempts.into_iter().map(|(_, a)| a).collect());
        view.failed_step = steps
            .iter()
            .rev()
            .find(|s| {
                s.status == StepStatus::Failed
                    || (s.failure_kind.is_some() && s.output.is_none() && s.attempts > 0)
            })
            .map(|s| s.step_index);
        view
    }
}

impl From<&StepRecord> for StepView {
    fn from(s: &StepRecord) -> Self {
        Self {
            step_index: s.step_index,
            step_name: s.step_name.clone(),
            status: s.status,
            attempts: s.attempts,
            compensation_attempts: s.compensation_attempts,
            output: s.output.clone(),
            error: s.error.clone(),
            idempotency_key: s.idempotency_key.clone(),
            plugin_digest: s.plugin_digest.clone(),
            started_at: s.started_at.map(rfc3339),
            finished_at: s.finished_at.map(rfc3339),
            failure_kind: s.failure_kind,
            group: s.group,
            completed_order: s.completed_order,
            wait: None,
        }
    }
}
