//! A plugin built against `rte:saga@0.1.0` with plain `wit-bindgen`, as plugins were before
//! 0.2.0: hosts keep loading and running it unchanged.
//!
//! `legacy_count` adds one to the `kv` counter named by the input `key` (default
//! `default`), outputs the new `legacy_count`, and its compensation takes the one back if
//! this saga step added it.

wit_bindgen::generate!({
    path: "../../wit/0.1.0",
    world: "plugin",
});

use exports::rte::saga::step::{Guest, StepContext, StepError, StepInfo};
use rte::saga::kv;

struct Legacy;

fn counter_key(ctx: &StepContext) -> String {
    let key = input_key(&ctx.input).unwrap_or_else(|| "default".to_string());
    format!("counter/{key}")
}

/// The input's `key` string, read without a JSON library to keep the component small.
fn input_key(input: &str) -> Option<String> {
    let rest = &input[input.find("\"key\"")? + 5..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(rest[..rest.find('"')?].to_string())
}

fn marker(ctx: &StepContext) -> String {
    format!("counted/{}/{}", ctx.tx_id, ctx.step_index)
}

fn read(key: &str) -> Result<i64, StepError> {
    let value = kv::get(key).map_err(StepError::Retryable)?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

impl Guest for Legacy {
    fn steps() -> Vec<StepInfo> {
        vec![StepInfo {
            name: "legacy_count".into(),
            version: "0.1.0".into(),
            service: String::new(),
            supports_compensation: true,
            supports_idempotency: false,
            description: "add one to a kv counter (an rte:saga@0.1.0 plugin)".into(),
        }]
    }

    fn execute(step: String, ctx: StepContext) -> Result<String, StepError> {
        if step != "legacy_count" {
            return Err(StepError::Permanent(format!("unknown step `{step}`")));
        }
        let key = counter_key(&ctx);
        let count = if kv::get(&marker(&ctx))
            .map_err(StepError::Retryable)?
            .is_some()
        {
            read(&key)?
        } else {
            let count = read(&key)? + 1;
            kv::set(&key, &count.to_string()).map_err(StepError::Retryable)?;
            kv::set(&marker(&ctx), "1").map_err(StepError::Retryable)?;
            count
        };
        Ok(format!("{{\"legacy_count\":{count}}}"))
    }

    fn compensate(_step: String, ctx: StepContext) -> Result<(), StepError> {
        if kv::get(&marker(&ctx))
            .map_err(StepError::Retryable)?
            .is_none()
        {
            return Ok(());
        }
        let key = counter_key(&ctx);
        let count = read(&key)? - 1;
        kv::set(&key, &count.to_string()).map_err(StepError::Retryable)?;
        kv::delete(&marker(&ctx)).map_err(StepError::Retryable)
    }

    fn idempotency_key(_step: String, _ctx: StepContext) -> Option<String> {
        None
    }
}

export!(Legacy);
