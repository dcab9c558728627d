//! Fault injection for resilience tests and demos: a saga whose input carries
//! `"chaos": {"retryable": 0.1, "permanent": 0.02, "trap": 0.02, "slow": 0.1, "slow_ms": 300}`
//! makes its money steps fail, trap or stall with those probabilities. The dice are a hash
//! of the saga, step, phase and attempt, so a run is reproducible and a retry rolls anew.
//! Compensations only ever stall or fail retryably: an undo that can never succeed is a
//! different test.

use rte_plugin_sdk::{StepContext, StepError};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Chaos {
    retryable: f64,
    permanent: f64,
    trap: f64,
    slow: f64,
    slow_ms: u64,
}

/// Roll the dice for this call; `compensating` limits the faults to retryable ones and stalls.
pub fn inject(ctx: &StepContext, compensating: bool) -> Result<(), StepError> {
    let Ok(Some(chaos)) = ctx.input_as::<Option<Chaos>>("chaos") else {
        return Ok(());
    };
    let phase = if compensating {
        "compensate"
    } else {
        "execute"
    };
    let roll = |what: &str| {
        let seed = format!(
            "{}/{}/{phase}/{}/{what}",
            ctx.tx_id(),
            ctx.step_index(),
            ctx.attempt()
        );
        // FNV-1a, mapped to [0, 1).
        let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash >> 11) as f64 / (1u64 << 53) as f64
    };
    if roll("slow") < chaos.slow {
        std::thread::sleep(std::time::Duration::from_millis(chaos.slow_ms));
    }
    // Undo calls fail a third as often, so an undo almost never exhausts its retries.
    let retryable = if compensating {
        chaos.retryable / 3.0
    } else {
        chaos.retryable
    };
    if roll("retryable") < retryable {
        return Err(StepError::retryable(format!(
            "chaos: injected retryable failure in {}",
            ctx.step_name()
        )));
    }
    if compensating {
        return Ok(());
    }
    if roll("permanent") < chaos.permanent {
        return Err(StepError::permanent(format!(
            "chaos: injected permanent failure in {}",
            ctx.step_name()
        )));
    }
    if roll("trap") < chaos.trap {
        panic!("chaos: injected trap in {}", ctx.step_name());
    }
    Ok(())
}
