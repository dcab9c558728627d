//! What a step call sees of its saga, and where it puts its outputs.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::StepError;

/// What the host knows about a step's execute when it asks for compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecuteOutcome {
    /// Execute returned successfully; its outputs are visible through
    /// [`StepContext::output_as`].
    Completed,
    /// The host stopped while execute ran: it may or may not have taken effect, so compensation
    /// must treat "nothing to undo" as success.
    Unknown,
    /// This call is an execute, not a compensation.
    NotApplicable,
}

/// Which of a step's calls is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// [`Step::execute`](crate::Step::execute).
    Execute,
    /// [`Step::compensate`](crate::Step::compensate).
    Compensate,
    /// [`Step::confirm`](crate::Step::confirm).
    Confirm,
}

/// One call of a step: the saga's identity, its input, the outputs of earlier steps, and the
/// outputs this call sets.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub(crate) tx_id: String,
    pub(crate) tx_type: String,
    pub(crate) step_name: String,
    pub(crate) step_index: u32,
    pub(crate) phase: Phase,
    pub(crate) attempt: u32,
    pub(crate) execute_outcome: ExecuteOutcome,
    pub(crate) input: Map<String, Value>,
    pub(crate) outputs: Map<String, Value>,
    pub(crate) set: Map<String, Value>,
    /// The reply this call ends waiting for: correlation id and timeout.
    pub(crate) wait: Option<(String, std::time::Duration)>,
}

impl StepContext {
    /// The saga id, stable across retries and hosts: the natural base for idempotency keys and
    /// per-saga records.
    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// The saga type (`fund_transfer`, or `adhoc` for a saga given in full).
    pub fn tx_type(&self) -> &str {
        &self.tx_type
    }

    /// The name of the step being called.
    pub fn step_name(&self) -> &str {
        &self.step_name
    }

    /// Zero-based position of the step in the saga.
    pub fn step_index(&self) -> u32 {
        self.step_index
    }

    /// Which call this is: execute, compensate or confirm.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// One-based attempt number of this call within its phase.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// For a compensation, whether execute is known to have completed;
    /// [`ExecuteOutcome::NotApplicable`] during execute.
    pub fn execute_outcome(&self) -> ExecuteOutcome {
        self.execute_outcome
    }

    /// The whole saga input.
    pub fn input_map(&self) -> &Map<String, Value> {
        &self.input
    }

    /// The outputs set by earlier steps (and, during compensation, by this step's execute).
    pub fn outputs(&self) -> &Map<String, Value> {
        &self.outputs
    }

    /// The whole saga input as `T`, for steps that take a struct.
    ///
    /// A mismatch is a [permanent](StepError::Permanent) error: the input will not change on a
    /// retry.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        T::deserialize(Value::Object(self.input.clone()))
            .map_err(|err| StepError::permanent(format!("invalid input: {err}")))
    }

    /// The input value under `key` as `T`.
    ///
    /// A missing key or a value of the wrong type is a [permanent](StepError::Permanent) error
    /// naming the key. Ask for an `Option<T>` to make the key optional: absent or `null` then
    /// reads as `None`.
    pub fn input_as<T: DeserializeOwned>(&self, key: &str) -> Result<T, StepError> {
        lookup("input", key, self.input.get(key))
    }

    /// An output under `key` as `T`: one set earlier in this call, else one set by an earlier
    /// step (or, during compensation, by this step's execute).
    ///
    /// Errors and optional keys work as for [`input_as`](Self::input_as).
    pub fn output_as<T: DeserializeOwned>(&self, key: &str) -> Result<T, StepError> {
        lookup(
            "output",
            key,
            self.set.get(key).or_else(|| self.outputs.get(key)),
        )
    }

    /// Set an output of this call; the host merges it into the saga's outputs, where later
    /// steps read it with [`output_as`](Self::output_as).
    ///
    /// Only an execute's outputs are kept: what a compensation sets is discarded. Fails only if
    /// `value` cannot be represented as JSON (a map with non-string keys, say).
    pub fn set_output(
        &mut self,
        key: impl Into<String>,
        value: impl Serialize,
    ) -> Result<(), StepError> {
        let value = serde_json::to_value(value)?;
        self.set.insert(key.into(), value);
        Ok(())
    }

    /// The outputs this call has set so far.
    pub fn outputs_set(&self) -> &Map<String, Value> {
        &self.set
    }

    /// End this call waiting for the reply that carries `correlation_id`, for at most
    /// `timeout`, instead of finishing: return `Ok(())` after calling this. The host
    /// commits the call (its outputs so far, `kv` writes and published messages), holds
    /// the wait durably, and calls [`Step::on_reply`](crate::Step::on_reply) in a fresh
    /// instance when the reply comes, or with [`ReplyBody::TimedOut`](crate::ReplyBody)
    /// at the deadline (for execute, never later than the saga's deadline). Use a new id
    /// for every wait, such as `{tx_id}:{step}:{attempt}`.
    pub fn wait_for_reply(
        &mut self,
        correlation_id: impl Into<String>,
        timeout: std::time::Duration,
    ) {
        self.wait = Some((correlation_id.into(), timeout));
    }

    /// The reply this call ends waiting for, if [`wait_for_reply`](Self::wait_for_reply)
    /// was called: its correlation id and timeout.
    pub fn waiting_for(&self) -> Option<(&str, std::time::Duration)> {
        self.wait.as_ref().map(|(id, t)| (id.as_str(), *t))
    }
}

/// For tests: the host builds the contexts of real calls; [`testing`](crate::testing) builds
/// them for unit tests.
impl StepContext {
    /// This context turned into one for `phase`, with `outcome` as what is known of
    /// execute (for tests: the host builds the contexts of real calls).
    pub fn for_phase(mut self, phase: Phase, outcome: ExecuteOutcome) -> Self {
        self.phase = phase;
        self.execute_outcome = outcome;
        self
    }

    /// This context at attempt `attempt` (one-based; for tests).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }
}

/// Shared by input and output lookups.
fn lookup<T: DeserializeOwned>(
    what: &str,
    key: &str,
    value: Option<&Value>,
) -> Result<T, StepError> {
    match value {
        Some(value) => T::deserialize(value)
            .map_err(|err| StepError::permanent(format!("{what} `{key}`: {err}"))),
        // An absent key still reads as `None` when `T` is an `Option`.
        None => T::deserialize(&Value::Null)
            .map_err(|_| StepError::permanent(format!("missing {what} `{key}`"))),
    }
}
