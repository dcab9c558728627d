//! One plugin call: a fresh `Store` and instance from the pre-linked component, a memory
//! cap, a wall-clock deadline enforced by epoch interruption (the guest yields to tokio
//! every tick, so a runaway loop never holds a worker thread), and a key-value overlay
//! whose writes the engine commits with the step's result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

use super::http_policy::HttpPolicy;
use super::messaging::{Published, WaitRequest};
use super::output::GuestOutput;
use super::state::{CallLimiter, CallState, KvOverlay, MemoryCapHit};
use super::stderr::StderrTail;
use super::{LoadedPlugin, PluginRuntime, StepDescriptor};
use crate::lifecycle::Phase;
use crate::store::ReplyBody;
use crate::store::{KvChanges, PluginKv};

/// How much of a guest's stderr (its last bytes) is kept for the step's error.
const STDERR_CAPTURE: usize = 16 << 10;
/// Grace beyond the deadline before a call blocked in a host import is abandoned.
const ABANDON_GRACE: Duration = Duration::from_millis(250);

/// The saga context one step call sees.
#[derive(Debug, Clone)]
pub struct StepCall {
    /// Saga id.
    pub tx_id: String,
    /// Saga type.
    pub tx_type: String,
    /// Step name.
    pub step_name: String,
    /// Step position.
    pub step_index: u32,
    /// One-based attempt.
    pub attempt: u32,
    /// The saga input, JSON text.
    pub input: String,
    /// Outputs so far, JSON object text.
    pub outputs: String,
    /// For compensate: whether execute is known to have completed (`None` for execute).
    pub execute_completed: Option<bool>,
    /// W3C trace context to pass on in outgoing HTTP.
    pub traceparent: Option<String>,
    /// The call's deadline from the step's effective policy (`None`: the plugin's limit).
    pub timeout: Option<std::time::Duration>,
}

pub use crate::lifecycle::FailureKind;

/// A failed call and its message (with the guest's stderr, when it wrote any).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What happened.
    pub message: String,
}

impl CallFailure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// What a call returned, with the key-value reads and writes it made.
#[derive(Debug)]
pub struct CallOutput<T> {
    /// The returned value (for a call that ends waiting, the outputs it records meanwhile).
    pub value: T,
    /// Reads and writes to commit with the step's result.
    pub kv: KvChanges,
    /// Messages published, to send once the result commits.
    pub messages: Vec<Published>,
    /// The reply the call ended waiting for, if it did not finish.
    pub wait: Option<WaitRequest>,
}

/// The engine's look-up of a step's idempotency key, made between the key call and
/// execute: the outputs stored for the key, if a run of the same step of the same plugin
/// completed with it.
pub type KeyLookup = Box<
    dyn FnOnce(
            String,
        ) -> futures::future::BoxFuture<
            'static,
            Result<Option<Map<String, Value>>, CallFailure>,
        > + Send,
>;

#[derive(Debug, Clone, Copy)]
pub(super) enum CallKind {
    Steps,
    Execute,
    /// The step's idempotency key, a look-up of that key's stored output, and execute
    /// only when there is none: all in one instance.
    KeyedExecute,
    Compensate,
    Confirm,
    /// `on-reply` of a call that ended waiting.
    OnReply,
}

impl CallKind {
    /// The metric label of the call.
    fn label(self) -> &'static str {
        match self {
            CallKind::Steps => "steps",
            CallKind::Execute | CallKind::KeyedExecute => "execute",
            CallKind::Compensate => "compensate",
            CallKind::Confirm => "confirm",
            CallKind::OnReply => "on_reply",
        }
    }
}

/// What one kind of call needs beyond its context.
enum Extra<'a> {
    None,
    /// A keyed execute: the key's look-up, and what to do just before execute runs.
    Keyed(KeyLookup, Box<dyn FnOnce() + Send>),
    /// An on-reply: the phase that waited, its correlation id, and what came back.
    Reply(Phase, &'a str, &'a ReplyBody),
}

pub(super) enum CallValue {
    Steps(Vec<StepDescriptor>),
    Outputs(Map<String, Value>),
    Keyed(Keyed),
    Unit,
}

/// What an execute guarded by the step's idempotency key came to.
#[derive(Debug)]
pub enum Keyed {
    /// The key had already completed: its stored output, execute not run.
    Replayed {
        /// The key.
        key: String,
        /// The output stored for it.
        outputs: Map<String, Value>,
    },
    /// Execute ran.
    Ran {
        /// The key the step gave, if any.
        key: Option<String>,
        /// The outputs it set.
        outputs: Map<String, Value>,
    },
}

impl PluginRuntime {
    /// Run `execute` of `call.step_name`; returns the outputs object it set.
    pub async fn execute(
        &self,
        plugin: &LoadedPlugin,
        call: &StepCall,
        store: Arc<dyn PluginKv>,
    ) -> Result<CallOutput<Map<String, Value>>, CallFailure> {
        let out = self
            .call(
                plugin,
                CallKind::Execute,
                &call.step_name,
                Some(call),
                Some(store),
            )
            .await?;
        Ok(outputs_of(out, "execute"))
    }

    /// Run `on-reply` of `call.step_name` for its `phase` call that waited on
    /// `correlation_id`, with what came back; returns the outputs it set (for execute).
    pub async fn on_reply(
        &self,
        plugin: &LoadedPlugin,
        call: &StepCall,
        store: Arc<dyn PluginKv>,
        reply: (Phase, &str, &ReplyBody),
    ) -> Result<CallOutput<Map<String, Value>>, CallFailure> {
        let out = self
            .call_with(
                plugin,
                CallKind::OnReply,
                &call.step_name,
                Some(call),
                Some(store),
                Extra::Reply(reply.0, reply.1, reply.2),
            )
            .await?;
        Ok(outputs_of(out, "on-reply"))
    }

    /// Ask `call.step_name` for its idempotency key and, unless `lookup` finds outputs
    /// stored for it (they come back, execute not run), run execute; one instance serves
    /// both calls. `on_execute` runs just before execute does.
    pub async fn execute_keyed(
        &self,
        plugin: &LoadedPlugin,
        call: &StepCall,
        store: Arc<dyn PluginKv>,
        lookup: KeyLookup,
        on_execute: Box<dyn FnOnce() + Send>,
    ) -> Result<CallOutput<Keyed>, CallFailure> {
        let out = self
            .call_with(
                plugin,
                CallKind::KeyedExecute,
                &call.step_name,
                Some(call),
                Some(store),
                Extra::Keyed(lookup, on_execute),
            )
            .await?;
        match out.value {
            CallValue::Keyed(keyed) => Ok(CallOutput {
                value: keyed,
                kv: out.kv,
                messages: out.messages,
                wait: out.wait,
            }),
            _ => unreachable!("a keyed execute returns a keyed outcome"),
        }
    }

    /// Run `compensate` of `call.step_name`.
    pub async fn compensate(
        &self,
        plugin: &LoadedPlugin,
        call: &StepCall,
        store: Arc<dyn PluginKv>,
    ) -> Result<CallOutput<()>, CallFailure> {
        self.call_for_unit(plugin, CallKind::Compensate, call, store)
            .await
    }

    /// Run `confirm` of `call.step_name`.
    pub async fn confirm(
        &self,
        plugin: &LoadedPlugin,
        call: &StepCall,
        store: Arc<dyn PluginKv>,
    ) -> Result<CallOutput<()>, CallFailure> {
        self.call_for_unit(plugin, CallKind::Confirm, call, store)
            .await
    }

    /// A call whose only result is its key-value changes.
    async fn call_for_unit(
        &self,
        plugin: &LoadedPlugin,
        kind: CallKind,
        call: &StepCall,
        store: Arc<dyn PluginKv>,
    ) -> Result<CallOutput<()>, CallFailure> {
        let out = self
            .call(plugin, kind, &call.step_name, Some(call), Some(store))
            .await?;
        Ok(CallOutput {
            value: (),
            kv: out.kv,
            messages: out.messages,
            wait: out.wait,
        })
    }

    pub(super) async fn call(
        &self,
        plugin: &LoadedPlugin,
        kind: CallKind,
        step: &str,
        call: Option<&StepCall>,
        store: Option<Arc<dyn PluginKv>>,
    ) -> Result<CallOutput<CallValue>, CallFailure> {
        self.call_with(plugin, kind, step, call, store, Extra::None)
            .await
    }

    async fn call_with(
        &self,
        plugin: &LoadedPlugin,
        kind: CallKind,
        step: &str,
        call: Option<&StepCall>,
        store: Option<Arc<dyn PluginKv>>,
        extra: Extra<'_>,
    ) -> Result<CallOutput<CallValue>, CallFailure> {
        let (mut keyed, mut reply) = (None, None);
        match extra {
            Extra::None => {}
            Extra::Keyed(lookup, announce) => keyed = Some((lookup, announce)),
            Extra::Reply(phase, id, body) => reply = Some((phase, id, body)),
        }
        let mut limits = plugin.limits;
        if let Some(timeout) = call.and_then(|c| c.timeout) {
            limits.timeout = timeout;
        }
        let stderr = StderrTail::new(STDERR_CAPTURE);
        let span = tracing::info_span!(
            "plugin",
            tx_id = call.map(|c| c.tx_id.as_str()).unwrap_or(""),
            step = step,
            plugin = %plugin.file
        );
        // stdout and stderr go to the log in the call's span; stderr's tail also goes into
        // the step's error when the call traps.
        let (guest_out, guest_err) = GuestOutput::pair(
            span.clone(),
            &plugin.file,
            self.output_rates.clone(),
            limits.max_log_bytes,
            stderr.clone(),
        );
        let wasi = WasiCtx::builder()
            .stdout(guest_out.clone())
            .stderr(guest_err.clone())
            .build();
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_policy: HttpPolicy::new(
                plugin.http_allow.clone(),
                call.and_then(|c| c.traceparent.clone()),
                limits.timeout,
            ),
            limits: CallLimiter::new(limits.memory_bytes),
            log_budget: limits.max_log_bytes,
            log_dropped: 0,
            deadline: Instant::now() + limits.timeout,
            kv: KvOverlay::bounded(
                store,
                &plugin.namespace,
                limits.max_kv_write_bytes,
                limits.max_kv_keys,
            ),
            config: plugin.config.clone(),
            log_span: span,
            messaging: self.messaging.load_full(),
            published: Vec::new(),
            published_bytes: 0,
            wait: None,
        };
        let mut wasm = Store::new(&self.engine, state);
        wasm.limiter(|s| &mut s.limits);
        wasm.set_epoch_deadline(1);
        wasm.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let run = async {
            let guest = plugin.pre.instantiate(&mut wasm).await?;
            let value = match kind {
                CallKind::Steps => Ok(CallValue::Steps(guest.steps(&mut wasm).await?)),
                CallKind::Execute => match guest.execute(&mut wasm, step, call.unwrap()).await? {
                    Ok(text) => parse_outputs(&text, limits.max_output_bytes),
                    Err(f) => Err(f),
                },
                CallKind::KeyedExecute => {
                    let call = call.unwrap();
                    let key = guest
                        .idempotency_key(&mut wasm, step, call)
                        .await?
                        .map(bounded_key);
                    let (lookup, announce) = keyed.expect("a keyed execute comes with its look-up");
                    let replayed = match &key {
                        Some(key) => match lookup(key.clone()).await {
                            Ok(found) => found.map(|outputs| (key.clone(), outputs)),
                            Err(failure) => return Ok(Err(failure)),
                        },
                        None => None,
                    };
                    match replayed {
                        Some((key, outputs)) => {
                            Ok(CallValue::Keyed(Keyed::Replayed { key, outputs }))
                        }
                        None => {
                            announce();
                            match guest.execute(&mut wasm, step, call).await? {
                                Ok(text) => match parse_outputs(&text, limits.max_output_bytes) {
                                    Ok(CallValue::Outputs(outputs)) => {
                                        Ok(CallValue::Keyed(Keyed::Ran { key, outputs }))
                                    }
                                    Ok(_) => unreachable!("outputs parse to outputs"),
                                    Err(f) => Err(f),
                                },
                                Err(f) => Err(f),
                            }
                        }
                    }
                }
                CallKind::Compensate => guest
                    .compensate(&mut wasm, step, call.unwrap())
                    .await?
                    .map(|()| CallValue::Unit),
                CallKind::Confirm => guest
                    .confirm(&mut wasm, step, call.unwrap())
                    .await?
                    .map(|()| CallValue::Unit),
                CallKind::OnReply => {
                    let (phase, correlation_id, body) =
                        reply.expect("an on-reply call comes with its reply");
                    match guest
                        .on_reply(&mut wasm, step, call.unwrap(), phase, correlation_id, body)
                        .await?
                    {
                        Ok(text) => parse_outputs(&text, limits.max_output_bytes),
                        Err(f) => Err(f),
                    }
                }
            };
            wasmtime::Result::Ok(value)
        };
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(limits.timeout + ABANDON_GRACE, run).await;
        let m = crate::telemetry::metrics();
        m.plugin_call_duration
            .with_label_values(&[plugin.file.as_str(), kind.label()])
            .observe(started.elapsed().as_secs_f64());
        if matches!(outcome, Err(_) | Ok(Err(_))) {
            m.plugin_traps
                .with_label_values(&[plugin.file.as_str()])
                .inc();
        }
        let dropped = wasm.data().log_dropped + GuestOutput::finish(&guest_out, &guest_err);
        if dropped > 0 {
            m.plugin_log_dropped
                .with_label_values(&[plugin.file.as_str()])
                .inc_by(dropped);
        }
        let guest_stderr = || stderr.text();
        // A call over its kv write limit fails as such, whatever it returned.
        if let Some(hit) = wasm.data().kv.limit_hit() {
            m.plugin_limit_hits
                .with_label_values(&[plugin.file.as_str(), "kv"])
                .inc();
            return Err(CallFailure::new(
                FailureKind::ResourceLimit,
                hit.to_string(),
            ));
        }
        // A call that could not read its state cannot have decided on it.
        if let Some(e) = wasm.data().kv.store_unavailable() {
            return Err(CallFailure::new(
                FailureKind::StoreUnavailable,
                format!("the step could not read its plugin state: {e}"),
            ));
        }
        let value = match outcome {
            Err(_) => {
                return Err(CallFailure::new(
                    FailureKind::Timeout,
                    format!(
                        "step call exceeded its deadline of {}",
                        humantime::format_duration(limits.timeout)
                    ),
                ));
            }
            Ok(Err(trap)) => return Err(trap_failure(&trap, limits, guest_stderr())),
            Ok(Ok(Err(failure))) => return Err(failure),
            Ok(Ok(Ok(value))) => value,
        };
        if let Some(w) = &wasm.data().wait
            && let Err(e) = w.check()
        {
            return Err(CallFailure::new(FailureKind::Permanent, e));
        }
        Ok(match &value {
            // Nothing ran whose writes could count.
            CallValue::Keyed(Keyed::Replayed { .. }) => CallOutput {
                value,
                kv: KvChanges::default(),
                messages: Vec::new(),
                wait: None,
            },
            _ => {
                let data = wasm.into_data();
                CallOutput {
                    value,
                    kv: data.kv.into_changes(),
                    messages: data.published,
                    wait: data.wait,
                }
            }
        })
    }
}

/// The outputs a call of `what` (execute, on-reply) returned, with what goes with them.
fn outputs_of(out: CallOutput<CallValue>, what: &str) -> CallOutput<Map<String, Value>> {
    let CallOutput {
        value,
        kv,
        messages,
        wait,
    } = out;
    match value {
        CallValue::Outputs(value) => CallOutput {
            value,
            kv,
            messages,
            wait,
        },
        _ => unreachable!("{what} returns outputs"),
    }
}

/// Execute's output must be a JSON object of bounded size.
fn parse_outputs(text: &str, max: u64) -> Result<CallValue, CallFailure> {
    if text.len() as u64 > max {
        return Err(CallFailure::new(
            FailureKind::Permanent,
            format!(
                "step output too large: {} bytes; the limit is {max}",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Ok(CallValue::Outputs(Map::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(CallValue::Outputs(map)),
        Ok(Value::Null) => Ok(CallValue::Outputs(Map::new())),
        Ok(_) => Err(CallFailure::new(
            FailureKind::Permanent,
            "step output is not a JSON object",
        )),
        Err(e) => Err(CallFailure::new(
            FailureKind::Permanent,
            format!("step output is not valid JSON: {e}"),
        )),
    }
}

/// Describe a trap plainly, with what the guest wrote to stderr (a panic message, a traceback).
fn trap_failure(err: &wasmtime::Error, limits: super::Limits, stderr: String) -> CallFailure {
    let chain = format!("{err:#}");
    if let Some(hit) = err.chain().find_map(|e| e.downcast_ref::<MemoryCapHit>()) {
        let what = hit.to_string();
        return if stderr.is_empty() {
            CallFailure::new(FailureKind::Memory, what)
        } else {
            CallFailure::new(
                FailureKind::Memory,
                format!("{what}; plugin stderr: {stderr}"),
            )
        };
    }
    let (kind, what) = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => (
            FailureKind::Timeout,
            format!("step call exceeded its deadline of {}", humantime::format_duration(limits.timeout)),
        ),
        Some(Trap::StackOverflow) => (FailureKind::Trap, "plugin trapped: stack overflow".to_string()),
        Some(Trap::MemoryOutOfBounds) => (
            FailureKind::Trap,
            "plugin trapped: out-of-bounds memory access (often a stack overflow from deep recursion)".to_string(),
        ),
        _ if chain.contains("forcing trap when growing memory") => (
            FailureKind::Memory,
            format!("plugin exceeded its memory limit of {} MiB", limits.memory_bytes >> 20),
        ),
        // What a Rust panic, a Python or JS uncaught exception and a C `abort()` all become;
        // the wasm-level name would only puzzle a step's author.
        Some(Trap::UnreachableCodeReached) => (
            FailureKind::Trap,
            "plugin aborted (a panic or an uncaught exception)".to_string(),
        ),
        Some(trap) => (FailureKind::Trap, format!("plugin trapped: {trap}")),
        // The full chain (with wasm frames and host internals) is for operators' logs; the
        // step's error says what went wrong, in the words of its innermost cause.
        None => {
            tracing::warn!(error = %chain, "plugin call failed");
            (
                FailureKind::Trap,
                format!("plugin call failed: {}", err.root_cause()),
            )
        }
    };
    if stderr.is_empty() {
        CallFailure::new(kind, what)
    } else {
        CallFailure::new(kind, format!("{what}; plugin stderr: {stderr}"))
    }
}

/// Longest idempotency key stored as the plugin gave it.
const MAX_KEY_LEN: usize = 128;

/// A plugin's idempotency key, fit for storage: a longer one is replaced by its SHA-256
/// (still one key per distinct value), so no plugin can overflow the key column.
fn bounded_key(key: String) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn long_idempotency_keys_are_hashed_short_ones_kept() {
        assert_eq!(bounded_key("transfer:42".into()), "transfer:42");
        let long = "k".repeat(10_000);
        let hashed = bounded_key(long.clone());
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 7 + 64,
            "{hashed}"
        );
        assert_eq!(
            hashed,
            bounded_key(long),
            "the same key maps to the same digest"
        );
        assert_ne!(hashed, bounded_key("k".repeat(10_001)));
    }
}
