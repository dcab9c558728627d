//! `export_steps!` and the dispatch it expands to.
//!
//! The macro only builds a table of steps and hands it to the functions here, so the logic
//! lives in ordinary, testable code rather than in macro text compiled into every plugin.

use serde_json::{Map, Value};

use crate::wit::rte::saga::types as wit;
use crate::{ExecuteOutcome, Step, StepContext, StepError, StepInfo};

/// Export the listed [`Step`] types as the plugin's `rte:saga/step` interface.
///
/// Invoke it once, at the top level of a `cdylib` crate. Each type must implement [`Step`] and
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
                    ::std::string::String,
                    $crate::wit::rte::saga::types::StepError,
                > {
                    $crate::__private::execute(STEPS, &step, ctx)
                }

                fn compensate(
                    step: ::std::string::String,
                    ctx: $crate::wit::rte::saga::types::StepContext,
                ) -> ::std::result::Result<(), $crate::wit::rte::saga::types::StepError> {
                    $crate::__private::compensate(STEPS, &step, ctx)
                }

                fn idempotency_key(
                    step: ::std::string::String,
                    ctx: $crate::wit::rte::saga::types::StepContext,
                ) -> ::std::option::Option<::std::string::String> {
                    $crate::__private::idempotency_key(STEPS, &step, ctx)
                }
            }

            $crate::wit::export!(__RteSteps with_types_in $crate::wit);
        };
    };
}

/// One exported step, as plain function pointers so a `const` table can hold any mix of types.
pub struct Entry {
    info: fn() -> StepInfo,
    execute: fn(&mut StepContext) -> Result<(), StepError>,
    compensate: fn(&mut StepContext) -> Result<(), StepError>,
    idempotency_key: fn(&StepContext) -> Option<String>,
}

impl Entry {
    /// The entry for step type `S`.
    pub const fn of<S: Step + Default>() -> Self {
        Self {
            info: S::info,
            execute: |ctx| S::default().execute(ctx),
            compensate: |ctx| S::default().compensate(ctx),
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
                description: info.description,
            }
        })
        .collect()
}

/// `execute`: run the named step and return the outputs it set, as JSON object text.
pub fn execute(
    table: &[Entry],
    step: &str,
    ctx: wit::StepContext,
) -> Result<String, wit::StepError> {
    let run = || {
        let entry = find(table, step)?;
        let mut ctx = context(ctx)?;
        (entry.execute)(&mut ctx)?;
        Ok(serde_json::to_string(&ctx.set)?)
    };
    run().map_err(wit_error)
}

/// `compensate`: undo the named step.
pub fn compensate(
    table: &[Entry],
    step: &str,
    ctx: wit::StepContext,
) -> Result<(), wit::StepError> {
    let run = || {
        let entry = find(table, step)?;
        (entry.compensate)(&mut context(ctx)?)
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
        attempt: ctx.attempt,
        execute_outcome: match ctx.execute_outcome {
            wit::ExecuteOutcome::Completed => ExecuteOutcome::Completed,
            wit::ExecuteOutcome::Unknown => ExecuteOutcome::Unknown,
            wit::ExecuteOutcome::NotApplicable => ExecuteOutcome::NotApplicable,
        },
        set: Map::new(),
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

fn wit_error(err: StepError) -> wit::StepError {
    match err {
        StepError::Retryable(message) => wit::StepError::Retryable(message),
        StepError::Permanent(message) => wit::StepError::Permanent(message),
    }
}
