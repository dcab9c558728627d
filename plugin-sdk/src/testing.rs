//! Unit-test steps with `cargo test` on the machine's own target, with no host and no
//! WebAssembly build.
//!
//! On any target but `wasm32`, [`kv`](crate::kv), [`log`](crate::log) and
//! [`config`](crate::config) talk to an in-memory stand-in of the host, one per test thread
//! (Rust runs each test on its own thread, so tests never see each other's data).
//! [`StepTest`] resets it, seeds it, builds [`StepContext`]s, and calls steps the way the host
//! does: a failed call's `kv` writes are discarded, a successful execute's outputs are passed
//! on to the steps called after it.
//!
//! ```
//! use rte_plugin_sdk::testing::StepTest;
//! use rte_plugin_sdk::{Step, StepContext, StepError, StepInfo, kv};
//! use serde_json::json;
//!
//! #[derive(Default)]
//! struct Count;
//!
//! impl Step for Count {
//!     fn info() -> StepInfo {
//!         StepInfo::new("count").compensation(true)
//!     }
//!
//!     fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
//!         let key: String = ctx.input_as("key")?;
//!         let n: u64 = kv::get_json(&key)?.unwrap_or(0) + 1;
//!         if n > 2 {
//!             return Err(StepError::permanent("too many"));
//!         }
//!         kv::set_json(&key, &n)?;
//!         ctx.set_output("count", n)
//!     }
//!
//!     fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
//!         let key: String = ctx.input_as("key")?;
//!         let n: u64 = kv::get_json(&key)?.unwrap_or(0);
//!         kv::set_json(&key, &n.saturating_sub(1))
//!     }
//! }
//!
//! let mut test = StepTest::new();
//! test.kv_set("k", "1");
//! let outputs = test.execute(&Count, json!({"key": "k"})).unwrap();
//! assert_eq!(outputs["count"], 2);
//! // Over the limit: a permanent error, and its writes are discarded.
//! let err = test.execute(&Count, json!({"key": "k"})).unwrap_err();
//! assert!(!err.is_retryable());
//! assert_eq!(test.kv_get("k").as_deref(), Some("2"));
//! test.compensate(&Count, json!({"key": "k"})).unwrap();
//! assert_eq!(test.kv_get("k").as_deref(), Some("1"));
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{ExecuteOutcome, Phase, Step, StepContext, StepError};

/// One line a step logged, as the host would have received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message.
    pub message: String,
}

/// What the host would hold for the plugin during a test: its kv namespace, the config the
/// operator granted, the lines it logged.
#[derive(Default)]
struct World {
    kv: BTreeMap<String, String>,
    config: HashMap<String, String>,
    logs: Vec<LogLine>,
    /// Messages published by calls that succeeded.
    published: Vec<crate::Message>,
    /// Messages published by the call running now.
    pending: Vec<crate::Message>,
    /// When set, every kv call fails with this message, as an unreachable store would.
    kv_failure: Option<String>,
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::default();
}

fn with<T>(f: impl FnOnce(&mut World) -> T) -> T {
    WORLD.with(|world| f(&mut world.borrow_mut()))
}

/// The stand-ins for the host imports, with the generated bindings' signatures.
pub(crate) mod fake {
    use super::{LogLine, with};

    pub(crate) mod kv {
        use super::with;

        pub(crate) fn get(key: &str) -> Result<Option<String>, String> {
            with(|w| match &w.kv_failure {
                Some(message) => Err(message.clone()),
                None => Ok(w.kv.get(key).cloned()),
            })
        }

        pub(crate) fn set(key: &str, value: &str) -> Result<(), String> {
            with(|w| match &w.kv_failure {
                Some(message) => Err(message.clone()),
                None => {
                    w.kv.insert(key.to_owned(), value.to_owned());
                    Ok(())
                }
            })
        }

        pub(crate) fn delete(key: &str) -> Result<(), String> {
            with(|w| match &w.kv_failure {
                Some(message) => Err(message.clone()),
                None => {
                    w.kv.remove(key);
                    Ok(())
                }
            })
        }
    }

    pub(crate) fn log(level: &'static str, message: &str) {
        with(|w| {
            w.logs.push(LogLine {
                level,
                message: message.to_owned(),
            })
        });
    }

    pub(crate) fn config_get(key: &str) -> Option<String> {
        with(|w| w.config.get(key).cloned())
    }

    pub(crate) fn publish(message: crate::Message) -> Result<(), String> {
        with(|w| w.pending.push(message));
        Ok(())
    }
}

/// A test of one or more steps against a fresh in-memory host: a saga (its id, type and
/// the outputs its steps set so far) and the plugin's kv, config and logs.
#[derive(Debug, Clone)]
pub struct StepTest {
    tx_id: String,
    tx_type: String,
    outputs: Map<String, Value>,
    next_index: u32,
}

impl Default for StepTest {
    fn default() -> Self {
        Self::new()
    }
}

impl StepTest {
    /// A fresh saga `tx-test` of type `test`, and an empty kv, config and log for this
    /// thread.
    pub fn new() -> Self {
        with(|w| *w = World::default());
        Self {
            tx_id: "tx-test".to_owned(),
            tx_type: "test".to_owned(),
            outputs: Map::new(),
            next_index: 0,
        }
    }

    /// Use `tx_id` as the saga id of later calls.
    pub fn tx_id(mut self, tx_id: impl Into<String>) -> Self {
        self.tx_id = tx_id.into();
        self
    }

    /// Use `tx_type` as the saga type of later calls.
    pub fn tx_type(mut self, tx_type: impl Into<String>) -> Self {
        self.tx_type = tx_type.into();
        self
    }

    /// Store `value` under `key` in the plugin's kv.
    pub fn kv_set(&self, key: &str, value: &str) {
        with(|w| w.kv.insert(key.to_owned(), value.to_owned()));
    }

    /// Store `value` under `key` as JSON.
    pub fn kv_set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) {
        let text = serde_json::to_string(value).expect("a value that serializes to JSON");
        self.kv_set(key, &text);
    }

    /// The value under `key`.
    pub fn kv_get(&self, key: &str) -> Option<String> {
        with(|w| w.kv.get(key).cloned())
    }

    /// The value under `key`, parsed from JSON; panics when it is not the JSON of a `T`.
    pub fn kv_get_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.kv_get(key).map(|text| {
            serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("kv `{key}` holds {text:?}, not a T: {err}"))
        })
    }

    /// Every key and value of the plugin's kv.
    pub fn kv(&self) -> BTreeMap<String, String> {
        with(|w| w.kv.clone())
    }

    /// Make every later kv call fail with `message`, as an unreachable store would
    /// (`None` heals it). The SDK turns such failures into retryable errors.
    pub fn kv_fail(&self, message: Option<&str>) {
        with(|w| w.kv_failure = message.map(str::to_owned));
    }

    /// Grant the config value `key`.
    pub fn config(&self, key: &str, value: &str) {
        with(|w| w.config.insert(key.to_owned(), value.to_owned()));
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<LogLine> {
        with(|w| w.logs.clone())
    }

    /// The outputs the saga's steps have set so far.
    pub fn outputs(&self) -> &Map<String, Value> {
        &self.outputs
    }

    /// A context for an execute of `step` with the saga `input` (a JSON object; `null`
    /// reads as `{}`) and the outputs so far: first attempt, next step index.
    pub fn context(&self, step: &str, input: Value) -> StepContext {
        let input = match input {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => panic!("a saga input is a JSON object, not {other}"),
        };
        StepContext {
            tx_id: self.tx_id.clone(),
            tx_type: self.tx_type.clone(),
            step_name: step.to_owned(),
            step_index: self.next_index,
            phase: Phase::Execute,
            attempt: 1,
            execute_outcome: ExecuteOutcome::NotApplicable,
            input,
            outputs: self.outputs.clone(),
            set: Map::new(),
            wait: None,
        }
    }

    /// Call `step`'s execute with `input`, as [`run_execute`](Self::run_execute) does with
    /// a fresh [`context`](Self::context).
    pub fn execute<S: Step>(
        &mut self,
        step: &S,
        input: Value,
    ) -> Result<Map<String, Value>, StepError> {
        let ctx = self.context(&S::info().name, input);
        self.run_execute(step, ctx)
    }

    /// Call `step`'s execute with `ctx`. On success its outputs are returned and merged
    /// into the saga's, and the next step index is taken; on failure its kv writes are
    /// discarded, as the host discards them.
    pub fn run_execute<S: Step>(
        &mut self,
        step: &S,
        mut ctx: StepContext,
    ) -> Result<Map<String, Value>, StepError> {
        atomically(|| step.execute(&mut ctx))?;
        self.outputs
            .extend(ctx.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.next_index = ctx.step_index + 1;
        Ok(ctx.set)
    }

    /// Call `step`'s compensate with `input` and the outputs so far, for an execute that
    /// completed. Its kv writes are discarded when it fails.
    pub fn compensate<S: Step>(&mut self, step: &S, input: Value) -> Result<(), StepError> {
        let ctx = self
            .context(&S::info().name, input)
            .for_phase(Phase::Compensate, ExecuteOutcome::Completed);
        self.run_compensate(step, ctx)
    }

    /// Call `step`'s compensate with `ctx` (build one with [`context`](Self::context) and
    /// [`StepContext::for_phase`], for example to compensate an execute whose outcome the
    /// host does not know).
    pub fn run_compensate<S: Step>(
        &mut self,
        step: &S,
        mut ctx: StepContext,
    ) -> Result<(), StepError> {
        atomically(|| step.compensate(&mut ctx))
    }

    /// Messages published by the calls that succeeded so far, in order.
    pub fn published(&self) -> Vec<crate::Message> {
        with(|w| w.published.clone())
    }

    /// Call `step`'s on-reply for a call `ctx` (as the call that waited saw it) with
    /// `reply`. On success its outputs are returned (and, for an execute, merged into the
    /// saga's); on failure its kv writes and messages are discarded.
    pub fn run_on_reply<S: Step>(
        &mut self,
        step: &S,
        mut ctx: StepContext,
        reply: &crate::Reply,
    ) -> Result<Map<String, Value>, StepError> {
        ctx.set.clear();
        ctx.wait = None;
        atomically(|| step.on_reply(&mut ctx, reply))?;
        if ctx.phase == Phase::Execute && ctx.wait.is_none() {
            self.outputs
                .extend(ctx.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(ctx.set)
    }

    /// Call `step`'s confirm with `input` and the outputs so far. Its kv writes are
    /// discarded when it fails.
    pub fn confirm<S: Step>(&mut self, step: &S, input: Value) -> Result<(), StepError> {
        let mut ctx = self
            .context(&S::info().name, input)
            .for_phase(Phase::Confirm, ExecuteOutcome::NotApplicable);
        atomically(|| step.confirm(&mut ctx))
    }
}

/// Run `call`, and put the kv back as it was if it fails; its published messages are
/// kept only if it succeeds, as the host's outbox keeps them.
fn atomically(call: impl FnOnce() -> Result<(), StepError>) -> Result<(), StepError> {
    let before = with(|w| {
        w.pending.clear();
        w.kv.clone()
    });
    let result = call();
    with(|w| {
        let pending = std::mem::take(&mut w.pending);
        if result.is_err() {
            w.kv = before;
        } else {
            w.published.extend(pending);
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{StepInfo, config, kv, log};

    #[derive(Default)]
    struct Probe;

    impl Step for Probe {
        fn info() -> StepInfo {
            StepInfo::new("probe")
        }

        fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
            kv::set("seen", ctx.tx_id())?;
            log::info(format!("attempt {}", ctx.attempt()));
            let region = config::get("region");
            ctx.set_output("region", region)?;
            if ctx.input_as::<Option<bool>>("fail")?.unwrap_or(false) {
                return Err(StepError::retryable("asked to fail"));
            }
            Ok(())
        }

        fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
            match ctx.execute_outcome() {
                ExecuteOutcome::Unknown => kv::delete("seen"),
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn a_step_sees_the_fake_host_and_failed_calls_write_nothing() {
        let mut test = StepTest::new().tx_id("tx-9");
        test.config("region", "eu");
        let outputs = test.execute(&Probe, json!({})).unwrap();
        assert_eq!(Value::Object(outputs), json!({"region": "eu"}));
        assert_eq!(test.kv_get("seen").as_deref(), Some("tx-9"));
        assert_eq!(test.logs()[0].message, "attempt 1");
        assert_eq!(test.outputs()["region"], "eu");

        let mut test = StepTest::new();
        test.kv_set("seen", "before");
        let err = test.execute(&Probe, json!({"fail": true})).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(test.kv_get("seen").as_deref(), Some("before"));

        let ctx = test
            .context("probe", json!({}))
            .for_phase(Phase::Compensate, ExecuteOutcome::Unknown)
            .with_attempt(3);
        test.run_compensate(&Probe, ctx).unwrap();
        assert_eq!(test.kv_get("seen"), None);
    }

    #[test]
    fn an_unreachable_store_is_a_retryable_error() {
        let mut test = StepTest::new();
        test.kv_fail(Some("connection refused"));
        let err = test.execute(&Probe, json!({})).unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(err.message().contains("connection refused"), "{err}");
        test.kv_fail(None);
        assert!(test.execute(&Probe, json!({})).is_ok());
    }
}
