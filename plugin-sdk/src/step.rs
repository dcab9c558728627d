//! The trait a step implements, and what it tells the host about itself.

use std::time::Duration;

use crate::{StepContext, StepError};

/// One saga step: an action and, usually, the action that undoes it.
///
/// [`export_steps!`](crate::export_steps) creates a fresh value with [`Default`] for every call,
/// and the host may run each call in a fresh instance of the component: only what the step
/// stores with [`kv`](crate::kv) reliably survives between calls.
///
/// Steps run at least once: a retry, or a host that restarts, may call `execute` again for the
/// same saga. Make effects idempotent (check a marker in `kv` first), or return an
/// [`idempotency_key`](Step::idempotency_key).
pub trait Step {
    /// The name and properties of this step. Depend on nothing but the type: the host reads it
    /// when it loads the plugin, and calls are routed by its name.
    fn info() -> StepInfo;

    /// Do the step's work. Outputs set with [`StepContext::set_output`] are passed on to later
    /// steps; `kv` writes are kept only if this returns `Ok`.
    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError>;

    /// Undo what `execute` did, when a later step fails. The default does nothing.
    ///
    /// The host calls this only after execute started, possibly more than once, and with
    /// [`ExecuteOutcome::Unknown`](crate::ExecuteOutcome::Unknown) when it cannot tell whether
    /// execute took effect: a compensation must succeed when there is nothing to undo.
    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let _ = ctx;
        Ok(())
    }

    /// Make the effect of execute final, once every step of the saga has executed: the
    /// "confirm" of try-confirm-cancel (turn a held seat into a booking). The host calls it
    /// only for steps whose [`StepInfo`] declares [`confirm`](StepInfo::confirm), in step
    /// order, and retries it until it succeeds (so it must be idempotent); a saga whose
    /// confirms began is never compensated. `kv` writes commit with the confirm's result,
    /// and a confirm that committed is not called again, even after a host crash. The
    /// default does nothing.
    fn confirm(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let _ = ctx;
        Ok(())
    }

    /// Finish a call that ended waiting for a reply (see
    /// [`StepContext::wait_for_reply`]): `ctx` is the call that waited (same phase and
    /// attempt, fresh outputs), `reply` what came back. Outputs it sets become the step's,
    /// as execute's would; it may wait again (with a new correlation id), or fail: a
    /// retryable error runs the step again by its retry policy. The default fails
    /// permanently (a step that never waits is never called here).
    fn on_reply(&self, ctx: &mut StepContext, reply: &crate::Reply) -> Result<(), StepError> {
        let _ = reply;
        Err(StepError::permanent(format!(
            "step `{}` does not wait for replies",
            ctx.step_name()
        )))
    }

    /// A key naming this execution's effect, such as `debit:{tx_id}:{account}`. The default,
    /// `None`, always runs.
    ///
    /// What a key means, exactly:
    /// - It counts only for this step of this plugin. The host looks it up among the records
    ///   of the same step name of the same plugin (the `.wasm` file's stem), so two steps may
    ///   return the same text (say, the saga id, or a client's booking reference) and each
    ///   runs.
    /// - When an execute with a key completes, the host stores its outputs under the key, in
    ///   the same commit as the step's result and its `kv` writes. A later execute of this
    ///   step with the same key, in any saga on any host, does not run: the stored outputs
    ///   are reused, and nothing is written.
    /// - When the step is compensated, its record is removed in the compensation's own
    ///   commit: the effect was undone, so a later execute with the same key runs again.
    /// - Records expire after the host's `idempotency_ttl` (24 hours by default).
    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        let _ = ctx;
        None
    }
}

/// What a plugin says about one of its steps, built with [`StepInfo::new`] and chained setters.
///
/// ```
/// use std::time::Duration;
/// use rte_plugin_sdk::{StepInfo, StepPolicy};
///
/// let info = StepInfo::new("debit")
///     .version("1.2.0")
///     .service("accounts")
///     .compensation(true)
///     .idempotency(true)
///     .description("take money from an account")
///     .policy(StepPolicy::new().retries(5).timeout(Duration::from_secs(2)).idempotent(true));
/// assert_eq!(info.service, "accounts");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// Step name used in saga definitions; unique across the plugins a host loads.
    pub name: String,
    /// Version of the step's code (default `0.1.0`).
    pub version: String,
    /// Downstream service the step calls, which names its circuit breaker (default empty: the
    /// host uses the step name).
    pub service: String,
    /// Whether [`Step::compensate`] undoes [`Step::execute`] (default `false`).
    pub supports_compensation: bool,
    /// Whether [`Step::idempotency_key`] returns keys (default `false`).
    pub supports_idempotency: bool,
    /// Whether [`Step::confirm`] makes the step final (default `false`).
    pub supports_confirm: bool,
    /// One line for operators (default empty).
    pub description: String,
    /// How the host should run the step (default: the host's defaults).
    pub policy: Option<StepPolicy>,
}

/// How the host runs a step: retries, their backoff, a call's deadline, and whether the
/// step is idempotent. Each setting left unset takes the host's default; the saga
/// definition (`sagas.toml`) and then the operator (`rte.toml`) may override each one.
///
/// A plugin that declares a timeout of zero or above the host's ceiling for one call (24
/// hours) is refused at load, with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepPolicy {
    /// Retries after a retryable failure (default: the saga's `max_retries`).
    pub max_retries: Option<u32>,
    /// Delay before the first retry; later ones double, with jitter (default: the host's
    /// `retry_interval`).
    pub retry_interval: Option<Duration>,
    /// Longest delay between retries (default: the host's `retry_max_interval`).
    pub retry_max_interval: Option<Duration>,
    /// Deadline of one call (default: the plugin's, `step_timeout`).
    pub timeout: Option<Duration>,
    /// Whether running execute twice has the effect of running it once. `Some(false)`:
    /// a failure whose effect is unknown (a timeout, a trap, a lost call) is not retried.
    pub idempotent: Option<bool>,
}

impl StepPolicy {
    /// A policy that leaves every setting to the host.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retry a retryable failure at most `retries` times.
    pub fn retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Wait `first` before the first retry, doubling up to `max` (jittered).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_interval = Some(first);
        self.retry_max_interval = Some(max);
        self
    }

    /// Stop a call that runs longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Declare whether execute may safely run twice.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }
}

impl StepInfo {
    /// Info for the step `name`, with the defaults listed on each field.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: "0.1.0".to_owned(),
            service: String::new(),
            supports_compensation: false,
            supports_idempotency: false,
            supports_confirm: false,
            description: String::new(),
            policy: None,
        }
    }

    /// Set the version of the step's code.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Set the downstream service, which names the step's circuit breaker.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Declare whether [`Step::compensate`] undoes the step.
    pub fn compensation(mut self, supported: bool) -> Self {
        self.supports_compensation = supported;
        self
    }

    /// Declare whether [`Step::idempotency_key`] returns keys.
    pub fn idempotency(mut self, supported: bool) -> Self {
        self.supports_idempotency = supported;
        self
    }

    /// Declare whether [`Step::confirm`] makes the step's effect final (TCC).
    pub fn confirm(mut self, supported: bool) -> Self {
        self.supports_confirm = supported;
        self
    }

    /// Set the one-line description shown to operators.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Declare how the host should run the step (see [`StepPolicy`]).
    pub fn policy(mut self, policy: StepPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
}
