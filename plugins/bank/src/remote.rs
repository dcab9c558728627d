//! `remote_transfer`: the transfer recorded by a remote ledger service, reached through the
//! host's message broker. Execute publishes the request and waits for the ledger's answer;
//! the answer's reference becomes the step's output, an error answer fails the step, and
//! no answer in time runs the step again (a new request, a new wait). Compensation asks the
//! ledger to reverse the saga's transfer and waits for its acknowledgment.
//!
//! Input: `{from_account, to_account, amount}`, with `remote_mode` (how the test ledger
//! answers: `ok`, `error`, `late`, `twice`, `silent`, `random`) and `remote_timeout_ms`
//! (default 30000).
//!
//! Requests go to `rte.requests.ledger.transfer` and `rte.requests.ledger.reverse` as JSON
//! with the `Rte-Correlation-Id` header the answer must carry.

use std::time::Duration;

use rte_plugin_sdk::{Reply, ReplyBody, Step, StepContext, StepError, StepInfo, log, messaging};
use serde::{Deserialize, Serialize};

use crate::to_cents;

/// A request to the remote ledger.
#[derive(Serialize)]
struct LedgerRequest<'a> {
    tx_id: &'a str,
    from_account: String,
    to_account: String,
    amount_cents: i64,
    mode: String,
}

/// The ledger's answer to a transfer.
#[derive(Deserialize)]
struct LedgerAnswer {
    ledger_ref: String,
}

/// Record the transfer at the remote ledger; compensation reverses it there.
#[derive(Default)]
pub struct RemoteTransfer;

fn timeout(ctx: &StepContext) -> Result<Duration, StepError> {
    let ms: Option<u64> = ctx.input_as("remote_timeout_ms")?;
    Ok(Duration::from_millis(ms.unwrap_or(30_000)))
}

fn send(ctx: &mut StepContext, subject: &str, kind: &str) -> Result<(), StepError> {
    let correlation_id = format!(
        "{}:remote_transfer:{kind}:{}",
        ctx.tx_id(),
        ctx.attempt()
    );
    let request = LedgerRequest {
        tx_id: ctx.tx_id(),
        from_account: ctx.input_as("from_account")?,
        to_account: ctx.input_as("to_account")?,
        amount_cents: to_cents("amount", ctx.input_as("amount")?, false)?,
        mode: ctx
            .input_as::<Option<String>>("remote_mode")?
            .unwrap_or_else(|| "ok".into()),
    };
    messaging::publish_json(
        subject,
        &request,
        &[("Rte-Correlation-Id", correlation_id.as_str())],
    )?;
    let wait = timeout(ctx)?;
    ctx.wait_for_reply(correlation_id, wait);
    Ok(())
}

impl Step for RemoteTransfer {
    fn info() -> StepInfo {
        StepInfo::new("remote_transfer")
            .service("remote-ledger")
            .compensation(true)
            .description("record the transfer at the remote ledger (over the broker)")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        send(ctx, "rte.requests.ledger.transfer", "do")
    }

    fn on_reply(&self, ctx: &mut StepContext, reply: &Reply) -> Result<(), StepError> {
        match ctx.phase() {
            rte_plugin_sdk::Phase::Compensate => match &reply.body {
                ReplyBody::Message { .. } => Ok(()),
                ReplyBody::Error(message) => Err(StepError::retryable(format!(
                    "the ledger could not reverse the transfer yet: {message}"
                ))),
                ReplyBody::TimedOut => Err(StepError::retryable(
                    "the ledger did not acknowledge the reversal in time",
                )),
            },
            _ => {
                let answer: LedgerAnswer = reply.json()?;
                log::info(&format!("ledger recorded the transfer as {}", answer.ledger_ref));
                ctx.set_output("ledger_ref", answer.ledger_ref)
            }
        }
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        // The ledger reverses by saga id, and a reversal of nothing is acknowledged: safe
        // whether or not the transfer request reached it.
        send(ctx, "rte.requests.ledger.reverse", "undo")
    }
}
