//! `export_steps!` and the dispatch it expands to.
//!
//! The macro only builds a table of steps and hands it to the functions here, so the logic
//! lives in ordinary, testable code rather than in macro text compiled into every plugin.

use serde_json::{Map, Value};

use crate::wit::rte::saga::types as wit;
use crate::{ExecuteOutcome, Phase, Reply, ReplyBody, Step, StepContext, StepError, StepInfo};

/// Export the listed [`Step`] types as the plugin's `rte:saga/step` interface.
///
/// Invoke it once, at the top level of a `cdylib` crate. On targets other than `wasm32` it
/// exports nothing, so the crate still builds and tests natively (see
/// [`testing`](crate::testing)). Each type must implement [`Step`] and
/// [`Default`]; the host addresses a step by the name in its [`StepInfo`].
///
/// ```ignore
/// rte_plugin_sdk::export_steps!(Debit, Transfer, Credit);
/// ```
#[macro_export]
macro_rules! export_steps {
    ($($step:ty),+ $(,)?) => {
        const _: () = {
            const STEPS: &[$crate::__private::Entry] = &[$($crate::__private::Entry::of::<$step>()),+];

            struct __RteSteps;

            impl $crate::wit::exports::rte::saga::step::Guest for __RteSteps {
                fn steps() -> ::std::vec::Vec<$crate::wit::rte::saga::types::StepInfo> {
                    $crate::__private::steps(STEPS)
                }

                fn execute(
                    step: ::std::string::String,
                    ctx: $crate::wit::rte::saga::types::StepContext,
                ) -> ::std::result::Result<
                    $crate::wit::rte::saga::types::ExecuteResult,
                    $crate::wit::rte::saga::types::StepError,
                > {
                    $crate::__private::execute(STEPS, &step, ctx)
                }

                fn compensate(
                    step: ::std::string::String,
                    ctx: $crate::wit::rte::saga::types::StepContext,
                ) -> ::std::result::Result<
                    $crate::wit::rte::saga::types::CompensateResult,
                    $crate::wit::rte::saga::types::StepError,
                > {
                    $crate::__private::compensate(STEPS, &step, ctx)
                }

                fn confirm(
                    step: ::std::string::String,
                    ctx: $crate::wit::rte::saga::types::StepContext,
                ) -> ::std::result::Result<(), $crate::wit::rte::saga::types::StepError> {
                    $crate::__private::confirm(STEPS, &step, ctx)
                }

                fn on_reply(
                    step: ::std::string::String,
                    ctx: $crate::wit::rte::saga::types::StepContext,
                    reply: $crate::wit::rte::saga::types::Reply,
                ) -> ::std::result::Result<
                    $crate::wit::rte::saga::types::ExecuteResult,
                    $crate::wit::rte::saga::types::StepError,
                > {
                    $crate::__private::on_reply(STEPS, &step, ctx, reply)
                }

                fn idempotency_key(
                    step: ::std::string::String,
                    ctx: $crate::wit::rte::saga::types::StepContext,
                ) -> ::std::option::Option<::std::string::String> {
                    $crate::__private::idempotency_key(STEPS, &step, ctx)
                }
            }

            // Only a WebAssembly build exports the interface: on the machine's own target
            // (`cargo test`), the component's export names are not valid native symbols.
            #[cfg(target_arch = "wasm32")]
            $crate::wit::export!(__RteSteps with_types_in $crate::wit);
        };
    };
}

/// One exported step, as plain function pointers so a `const` table can hold any mix of types.
pub struct Entry {
    info: fn() -> StepInfo,
    execute: fn(&mut StepContext) -> Result<(), StepError>,
    compensate: fn(&mut StepContext) -> Result<(), StepError>,
    confirm: fn(&mut StepContext) -> Result<(), StepError>,
    on_reply: fn(&mut StepContext, &Reply) -> Result<(), StepError>,
    idempotency_key: fn(&StepContext) -> Option<String>,
}

impl Entry {
    /// The entry for step type `S`.
    pub const fn of<S: Step + Default>() -> Self {
        Self {
            info: S::info,
            execute: |ctx| S::default().execute(ctx),
            compensate: |ctx| S::default().compensate(ctx),
            confirm: |ctx| S::default().confirm(ctx),
            on_reply: |ctx, reply| S::default().on_reply(ctx, reply),
            idempotency_key: |ctx| S::default().idempotency_key(ctx),
        }
    }
}

/// `steps`: the info of every exported step.
pub fn steps(table: &[Entry]) -> Vec<wit::StepInfo> {
    table
        .iter()
        .map(|entry| {
            let info = (entry.info)();
            wit::StepInfo {
                name: info.name,
                version: info.version,
                service: info.service,
                supports_compensation: info.supports_compensation,
                supports_idempotency: info.supports_idempotency,
                supports_confirm: info.supports_confirm,
                description: info.description,
                policy: info.policy.map(|p| wit::StepPolicy {
                    max_retries: p.max_retries,
                    retry_interval_ms: p.retry_interval.map(millis),
                    retry_max_interval_ms: p.retry_max_interval.map(millis),
                    timeout_ms: p.timeout.map(millis),
                    idempotent: p.idempotent,
                }),
            }
        })
        .collect()
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `execute`: run the named step; its outputs as JSON object text, or the reply it waits
/// for.
pub fn execute(
    table: &[Entry],
    step: &str,
    ctx: wit::StepContext,
) -> Result<wit::ExecuteResult, wit::StepError> {
    let run = || {
        let entry = find(table, step)?;
        let mut ctx = context(ctx)?;
        (entry.execute)(&mut ctx)?;
        finished(ctx)
    };
    run().map_err(wit_error)
}

/// `compensate`: undo the named step, or say which reply the undo waits for.
pub fn compensate(
    table: &[Entry],
    step: &str,
    ctx: wit::StepContext,
) -> Result<wit::CompensateResult, wit::StepError> {
    let run = || {
        let entry = find(table, step)?;
        let mut ctx = context(ctx)?;
        (entry.compensate)(&mut ctx)?;
        Ok(match ctx.wait.take() {
            Some((correlation_id, timeout)) => wit::CompensateResult::Wait(wit::WaitForReply {
                correlation_id,
                timeout_ms: timeout.as_millis().min(u128::from(u64::MAX)) as u64,
                outputs: String::new(),
            }),
            None => wit::CompensateResult::Done,
        })
    };
    run().map_err(wit_error)
}

/// How an execute (or on-reply) that returned `Ok` ends: done with its outputs, or
/// waiting with the outputs it set so far.
fn finished(mut ctx: StepContext) -> Result<wit::ExecuteResult, StepError> {
    let outputs = to_json(&ctx.set)?;
    Ok(match ctx.wait.take() {
        Some((correlation_id, timeout)) => wit::ExecuteResult::Wait(wit::WaitForReply {
            correlation_id,
            timeout_ms: timeout.as_millis().min(u128::from(u64::MAX)) as u64,
            outputs,
        }),
        None => wit::ExecuteResult::Done(outputs),
    })
}

/// `confirm`: make the named step's effect final.
pub fn confirm(table: &[Entry], step: &str, ctx: wit::StepContext) -> Result<(), wit::StepError> {
    let run = || {
        let entry = find(table, step)?;
        (entry.confirm)(&mut context(ctx)?)
    };
    run().map_err(wit_error)
}

/// `on-reply`: finish the named step's call that waited, with what came back.
pub fn on_reply(
    table: &[Entry],
    step: &str,
    ctx: wit::StepContext,
    reply: wit::Reply,
) -> Result<wit::ExecuteResult, wit::StepError> {
    let run = || {
        let entry = find(table, step)?;
        let mut ctx = context(ctx)?;
        let reply = Reply {
            correlation_id: reply.correlation_id,
            body: match reply.body {
                wit::ReplyBody::Message(m) => ReplyBody::Message {
                    payload: m.payload,
                    headers: m.headers,
                },
                wit::ReplyBody::Error(message) => ReplyBody::Error(message),
                wit::ReplyBody::TimedOut => ReplyBody::TimedOut,
            },
        };
        (entry.on_reply)(&mut ctx, &reply)?;
        finished(ctx)
    };
    run().map_err(wit_error)
}

/// `idempotency-key`: the named step's key, or `None` when the step is unknown or its context
/// unreadable (execute then reports the error).
pub fn idempotency_key(table: &[Entry], step: &str, ctx: wit::StepContext) -> Option<String> {
    let entry = find(table, step).ok()?;
    (entry.idempotency_key)(&context(ctx).ok()?)
}

fn find<'a>(table: &'a [Entry], step: &str) -> Result<&'a Entry, StepError> {
    table
        .iter()
        .find(|entry| (entry.info)().name == step)
        .ok_or_else(|| StepError::permanent(format!("unknown step `{step}`")))
}

fn context(ctx: wit::StepContext) -> Result<StepContext, StepError> {
    Ok(StepContext {
        input: json_object("input", &ctx.input)?,
        outputs: json_object("outputs", &ctx.outputs)?,
        tx_id: ctx.tx_id,
        tx_type: ctx.tx_type,
        step_name: ctx.step_name,
        step_index: ctx.step_index,
        phase: match ctx.phase {
            wit::Phase::Execute => Phase::Execute,
            wit::Phase::Compensate => Phase::Compensate,
            wit::Phase::Confirm => Phase::Confirm,
        },
        attempt: ctx.attempt,
        execute_outcome: match ctx.execute_outcome {
            wit::ExecuteOutcome::Completed => ExecuteOutcome::Completed,
            wit::ExecuteOutcome::Unknown => ExecuteOutcome::Unknown,
            wit::ExecuteOutcome::NotApplicable => ExecuteOutcome::NotApplicable,
        },
        set: Map::new(),
        wait: None,
    })
}

/// Parse a JSON object; empty text counts as `{}` so a host may omit an empty object.
fn json_object(what: &str, text: &str) -> Result<Map<String, Value>, StepError> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_str(text)
        .map_err(|err| StepError::permanent(format!("{what} is not a JSON object: {err}")))
}

/// Serialize the outputs into a buffer of their exact size. `serde_json::to_string` grows its
/// buffer by doubling, so a large output could need three times its size at once and hit the
/// host's memory cap before the host's own output limit could report it.
fn to_json(outputs: &Map<String, Value>) -> Result<String, StepError> {
    struct Count(usize);

    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let mut count = Count(0);
    serde_json::to_writer(&mut count, outputs)?;
    let mut text = Vec::with_capacity(count.0);
    serde_json::to_writer(&mut text, outputs)?;
    String::from_utf8(text).map_err(|err| StepError::permanent(err.to_string()))
}

fn wit_error(err: StepError) -> wit::StepError {
    match err {
        StepError::Retryable(message) => wit::StepError::Retryable(message),
        StepError::Permanent(message) => wit::StepError::Permanent(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Echo;

    impl Step for Echo {
        fn info() -> StepInfo {
            StepInfo::new("echo").compensation(true)
        }

        fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
            let amount: f64 = ctx.input_as("amount")?;
            let note: Option<String> = ctx.input_as("note")?;
            let earlier: String = ctx.output_as("earlier")?;
            ctx.set_output("doubled", amount * 2.0)?;
            ctx.set_output("note", note)?;
            ctx.set_output("earlier", earlier)
        }

        fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
            match ctx.execute_outcome() {
                ExecuteOutcome::Unknown => Err(StepError::retryable("unknown")),
                _ => Ok(()),
            }
        }

        fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
            Some(format!("echo:{}:{}", ctx.tx_id(), ctx.attempt()))
        }
    }

    const TABLE: &[Entry] = &[Entry::of::<Echo>()];

    fn ctx(input: &str, outputs: &str, outcome: wit::ExecuteOutcome) -> wit::StepContext {
        wit::StepContext {
            tx_id: "tx-1".into(),
            tx_type: "adhoc".into(),
            step_name: "echo".into(),
            step_index: 0,
            phase: wit::Phase::Execute,
            attempt: 2,
            input: input.into(),
            outputs: outputs.into(),
            execute_outcome: outcome,
        }
    }

    /// Execute, which must finish (not wait).
    fn run(table: &[Entry], step: &str, ctx: wit::StepContext) -> Result<String, wit::StepError> {
        execute(table, step, ctx).map(|r| match r {
            wit::ExecuteResult::Done(text) => text,
            wit::ExecuteResult::Wait(w) => panic!("unexpected wait on {}", w.correlation_id),
        })
    }

    fn permanent(result: Result<String, wit::StepError>) -> String {
        match result {
            Err(wit::StepError::Permanent(message)) => message,
            other => panic!("expected a permanent error, got {other:?}"),
        }
    }

    #[test]
    fn execute_returns_the_outputs_it_set() {
        let call = ctx(
            r#"{"amount": 1.5}"#,
            r#"{"earlier": "x"}"#,
            wit::ExecuteOutcome::NotApplicable,
        );
        let text = run(TABLE, "echo", call).unwrap();
        let outputs: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            outputs,
            serde_json::json!({"doubled": 3.0, "note": null, "earlier": "x"})
        );
    }

    #[test]
    fn bad_calls_are_permanent_errors_naming_the_problem() {
        let na = wit::ExecuteOutcome::NotApplicable;
        let message = permanent(run(TABLE, "nope", ctx("{}", "{}", na)));
        assert!(message.contains("unknown step `nope`"), "{message}");
        let message = permanent(run(TABLE, "echo", ctx("{", "{}", na)));
        assert!(
            message.starts_with("input is not a JSON object"),
            "{message}"
        );
        let message = permanent(run(TABLE, "echo", ctx("[]", "{}", na)));
        assert!(
            message.starts_with("input is not a JSON object"),
            "{message}"
        );
        let message = permanent(run(TABLE, "echo", ctx("{}", "{}", na)));
        assert_eq!(message, "missing input `amount`");
        let message = permanent(run(TABLE, "echo", ctx(r#"{"amount": "1"}"#, "{}", na)));
        assert!(
            message.starts_with("input `amount`: invalid type"),
            "{message}"
        );
        let message = permanent(run(TABLE, "echo", ctx(r#"{"amount": 1}"#, "", na)));
        assert_eq!(message, "missing output `earlier`");
    }

    #[test]
    fn compensate_and_key_dispatch_by_name() {
        let unknown = ctx("{}", "{}", wit::ExecuteOutcome::Unknown);
        assert!(matches!(
            compensate(TABLE, "echo", unknown.clone()),
            Err(wit::StepError::Retryable(message)) if message == "unknown"
        ));
        let completed = ctx("{}", "{}", wit::ExecuteOutcome::Completed);
        assert!(compensate(TABLE, "echo", completed).is_ok());
        assert!(compensate(TABLE, "nope", unknown.clone()).is_err());
        assert_eq!(
            idempotency_key(TABLE, "echo", unknown.clone()),
            Some("echo:tx-1:2".into())
        );
        assert_eq!(idempotency_key(TABLE, "nope", unknown), None);
        assert_eq!(steps(TABLE)[0].name, "echo");
        assert!(steps(TABLE)[0].supports_compensation);
    }
}
