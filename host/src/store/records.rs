//! The shapes the store reads and writes.

use serde::Serialize;
use serde_json::{Map, Value};

use super::InputMatch;
use super::waits::{OutboxMessage, WaitChanges};
use crate::engine::{StepStatus, TxStatus};
use crate::lifecycle::{Actor, AttemptOutcome, FailureKind, HistoryKind, Phase, Undo};

/// One saga as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxRecord {
    /// Unique id.
    pub tx_id: String,
    /// Saga type (`adhoc` for a saga given in full).
    pub tx_type: String,
    /// Current status.
    pub status: TxStatus,
    /// The input object every step sees.
    pub input: Value,
    /// Outputs set so far, merged across steps.
    pub outputs: Map<String, Value>,
    /// Lock keys taken before the first step.
    pub lock_keys: Vec<String>,
    /// Index of the step being run (forward) or compensated (backward).
    pub current_step: u32,
    /// Number of steps.
    pub total_steps: u32,
    /// How many times the saga was retried as a whole.
    pub retry_count: u32,
    /// Retries allowed per step, and for the saga by recovery.
    pub max_retries: u32,
    /// Saga timeout in milliseconds.
    pub timeout_ms: u64,
    /// Deadline (ms since epoch) after which the saga times out.
    pub deadline_at: i64,
    /// The latest error, if any.
    pub last_error: Option<String>,
    /// Optimistic concurrency version; bumped by every commit.
    pub version: i64,
    /// The `Idempotency-Key` of the request that created it.
    pub request_key: Option<String>,
    /// Creation time (ms since epoch).
    pub created_at: i64,
    /// Last change (ms since epoch).
    pub updated_at: i64,
    /// When it reached a terminal status (ms since epoch).
    pub completed_at: Option<i64>,
    /// While compensating: what for (a failure, or an operator's cancel).
    pub undo: Option<Undo>,
}

/// One step of a saga as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// Owning saga.
    pub tx_id: String,
    /// Zero-based position.
    pub step_index: u32,
    /// Step name (as plugins declare it).
    pub step_name: String,
    /// Current status.
    pub status: StepStatus,
    /// Execute attempts made.
    pub attempts: u32,
    /// Compensate attempts made.
    pub compensation_attempts: u32,
    /// Outputs execute returned.
    pub output: Option<Map<String, Value>>,
    /// The latest error.
    pub error: Option<String>,
    /// The idempotency key of the execution, if the step gave one.
    pub idempotency_key: Option<String>,
    /// Digest of the plugin that last ran this step.
    pub plugin_digest: Option<String>,
    /// When execute first started (ms since epoch).
    pub started_at: Option<i64>,
    /// When the step last settled (ms since epoch).
    pub finished_at: Option<i64>,
    /// The kind of the latest failure.
    pub failure_kind: Option<FailureKind>,
    /// Every attempt of every phase, oldest first (at most [`MAX_ATTEMPT_LOG`]: the first
    /// ones and the latest).
    pub attempt_log: Vec<Attempt>,
    /// The parallel group the step is a branch of, if any.
    pub group: Option<StepGroup>,
    /// The step's place in the order the saga's steps completed (1 for the first to
    /// complete): compensation runs in the reverse of this order.
    pub completed_order: Option<u32>,
}

/// A parallel group of steps: consecutive steps that run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StepGroup {
    /// The index of the group's first step (it names the group).
    pub first: u32,
    /// How many of its branches may run at once.
    pub max_concurrent: u32,
}

/// Attempts kept per step: the first half and the latest half of this many.
pub const MAX_ATTEMPT_LOG: usize = 64;

/// One call of a step: execute, compensate or confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// Which call.
    pub phase: Phase,
    /// Its number within the phase (1-based; a store outage does not count one).
    pub attempt: u32,
    /// When the call started (ms since epoch).
    pub started_at: i64,
    /// When its result was settled (ms since epoch).
    pub ended_at: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<FailureKind>,
    /// The failure's message (cut to 1 KiB; the step's `error` keeps 8 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The host that made the call.
    pub host: String,
    /// Digest of the plugin that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<String>,
}

impl StepRecord {
    /// Record an attempt, keeping the log bounded: past [`MAX_ATTEMPT_LOG`], the oldest of
    /// the latest half goes.
    pub fn log_attempt(&mut self, attempt: Attempt) {
        if self.attempt_log.len() >= MAX_ATTEMPT_LOG {
            self.attempt_log.remove(MAX_ATTEMPT_LOG / 2);
        }
        self.attempt_log.push(attempt);
    }
}

impl StepRecord {
    /// A step not yet run.
    pub fn pending(tx_id: &str, step_index: u32, step_name: &str) -> Self {
        Self {
            tx_id: tx_id.to_string(),
            step_index,
            step_name: step_name.to_string(),
            status: StepStatus::Pending,
            attempts: 0,
            compensation_attempts: 0,
            output: None,
            error: None,
            idempotency_key: None,
            plugin_digest: None,
            started_at: None,
            finished_at: None,
            failure_kind: None,
            attempt_log: Vec::new(),
            group: None,
            completed_order: None,
        }
    }
}

/// Whether `create` made a new saga or found the one created by an earlier request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Recorded now.
    Created,
    /// A saga with the same request key exists; its id.
    Existing(String),
}

/// A plugin key-value change made during a step call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvWrite {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes.
    pub value: Option<String>,
}

/// A stored plugin value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvValue {
    /// The value.
    pub value: String,
    /// The row's version: it changes with every write of the key.
    pub version: i64,
}

/// The version a key had when a step call first read it from the store; `0` when the key
/// did not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRead {
    /// The key.
    pub key: String,
    /// The version read (`0`: absent).
    pub version: i64,
}

/// What one step call did to its plugin's key-value namespace. The writes commit only if
/// every key read still has the version read (see [`StoreError::KvConflict`]).
///
/// [`StoreError::KvConflict`]: super::StoreError::KvConflict
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvChanges {
    /// The plugin's namespace.
    pub namespace: String,
    /// Keys read from the store, each once, with the version found.
    pub reads: Vec<KvRead>,
    /// Keys written, each once, in first-write order.
    pub writes: Vec<KvWrite>,
}

impl KvChanges {
    /// Whether the call wrote anything.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }
}

/// Where an idempotency key counts: one step of one plugin. A key is only ever matched
/// against records of the same step of the same plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// The plugin's identity (its key-value namespace).
    pub plugin: String,
    /// The step's name.
    pub step_name: String,
    /// The key the step gave.
    pub key: String,
}

/// A completed step's remembered output.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Plugin, step and key.
    pub key: IdempotencyKey,
    /// The saga that ran it.
    pub tx_id: String,
    /// Its output as JSON text.
    pub output: String,
    /// When it stops counting (ms since epoch).
    pub expires_at: i64,
}

/// What a commit does to an idempotency record.
#[derive(Debug, Clone, Copy)]
pub enum IdempotencyChange<'a> {
    /// Remember a completed step's output under its key.
    Remember(&'a IdempotencyRecord),
    /// Forget a key whose step was compensated, so a later run executes again.
    Forget(&'a IdempotencyKey),
}

/// A line of a saga's durable history besides step attempts: operator and recovery
/// actions, with who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The saga.
    pub tx_id: String,
    /// When (ms since epoch).
    pub at: i64,
    /// What kind of entry.
    pub kind: HistoryKind,
    /// Who acted (`None` on lines written before actors were recorded).
    pub actor: Option<Actor>,
    /// What happened, and why.
    pub message: String,
}

/// A host on the database, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    /// The host's id.
    pub host_id: String,
    /// When it started (ms since epoch).
    pub started_at: i64,
    /// When it last reported (ms since epoch).
    pub seen_at: i64,
    /// What it reported, as JSON.
    pub info: String,
}

/// An event as shared between hosts through the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedEvent {
    /// Position in the shared log (increasing, with possible gaps).
    pub id: i64,
    /// The host that published it.
    pub origin: String,
    /// When it was written (ms since epoch).
    pub at: i64,
    /// The event as JSON.
    pub payload: String,
}

/// Everything one state change writes, committed together.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The transaction's new state; its `version` is the one read (the fence).
    pub tx: &'a TxRecord,
    /// Steps whose state changed.
    pub steps: &'a [&'a StepRecord],
    /// Plugin key-value reads and writes of the step call this commit settles.
    pub kv: Option<&'a KvChanges>,
    /// An idempotency record to write or remove.
    pub idempotency: Option<IdempotencyChange<'a>>,
    /// History lines to append.
    pub history: &'a [HistoryEntry],
    /// A wait to open or close.
    pub waits: WaitChanges<'a>,
    /// Messages the step call published, to send once this commit is durable.
    pub outbox: &'a [OutboxMessage],
}

impl<'a> Commit<'a> {
    /// Whether the commit writes plugin state, idempotency records or history (anything
    /// beyond the saga row and its steps).
    pub fn writes_beyond_state(&self) -> bool {
        self.kv.is_some_and(KvChanges::has_writes)
            || self.idempotency.is_some()
            || !self.history.is_empty()
            || !self.waits.is_empty()
            || !self.outbox.is_empty()
    }

    /// A commit of the transaction row and these steps only.
    pub fn new(tx: &'a TxRecord, steps: &'a [&'a StepRecord]) -> Self {
        Self {
            tx,
            steps,
            kv: None,
            idempotency: None,
            history: &[],
            waits: WaitChanges::default(),
            outbox: &[],
        }
    }
}

/// Which transactions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxFilter {
    /// Any of these statuses (empty: all).
    pub statuses: Vec<TxStatus>,
    /// Only this type.
    pub tx_type: Option<String>,
    /// Created at or after (ms since epoch).
    pub created_after: Option<i64>,
    /// Created before (ms since epoch).
    pub created_before: Option<i64>,
    /// Ids holding this text anywhere.
    pub tx_id_contains: Option<String>,
    /// Sagas whose input matches every one of these.
    pub input: Vec<InputMatch>,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return.
    pub limit: u32,
}

/// A page of transactions and the total that match.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// This page, newest first.
    pub items: Vec<TxRecord>,
    /// All that match the filter.
    pub total: u64,
}

/// How many transactions have a status and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    /// Status.
    pub status: TxStatus,
    /// Type.
    pub tx_type: String,
    /// Count.
    pub count: u64,
}
