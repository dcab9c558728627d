//! `debit`, `transfer` and `credit`: the three steps of the seed's `fund_transfer` saga.
//!
//! Input: `{from_account, to_account, amount, currency}`.

use rte_plugin_sdk::{Step, StepContext, StepError, StepInfo, kv, log};
use serde::{Deserialize, Serialize};

use crate::{ACCOUNTS, load_account, marker_key, save_account, to_cents, units, usable_account};

/// What a debit or credit marker records: enough to undo it without rereading the input.
#[derive(Serialize, Deserialize)]
struct Movement {
    account: String,
    cents: i64,
}

/// Take `amount` from `from_account`; compensation refunds it.
#[derive(Default)]
pub struct Debit;

impl Step for Debit {
    fn info() -> StepInfo {
        StepInfo::new("debit")
            .service(ACCOUNTS)
            .compensation(true)
            .idempotency(true)
            .description("take the amount from from_account")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        crate::chaos::inject(ctx, false)?;
        let id: String = ctx.input_as("from_account")?;
        let cents = to_cents("amount", ctx.input_as("amount")?, false)?;
        let marker = marker_key("debit", ctx);
        // Already done for this saga (a re-run after the host lost the result): do not debit twice.
        if kv::get(&marker)?.is_none() {
            let mut account = usable_account(&id)?;
            if account.balance_cents < cents {
                return Err(StepError::permanent(format!(
                    "insufficient funds in account `{id}`: balance {:.2}, debit {:.2}",
                    units(account.balance_cents),
                    units(cents)
                )));
            }
            account.balance_cents -= cents;
            save_account(&id, &account)?;
            kv::set_json(
                &marker,
                &Movement {
                    account: id.clone(),
                    cents,
                },
            )?;
        }
        ctx.set_output("debit_ref", format!("debit:{}:{id}", ctx.tx_id()))
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        crate::chaos::inject(ctx, true)?;
        undo(ctx, "debit", 1)
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        let id: String = ctx.input_as("from_account").ok()?;
        Some(format!("debit:{}:{id}", ctx.tx_id()))
    }
}

/// Add `amount` to `to_account`; compensation takes it back.
#[derive(Default)]
pub struct Credit;

impl Step for Credit {
    fn info() -> StepInfo {
        StepInfo::new("credit")
            .service(ACCOUNTS)
            .compensation(true)
            .idempotency(true)
            .description("add the amount to to_account")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        crate::chaos::inject(ctx, false)?;
        let id: String = ctx.input_as("to_account")?;
        let cents = to_cents("amount", ctx.input_as("amount")?, false)?;
        let marker = marker_key("credit", ctx);
        if kv::get(&marker)?.is_none() {
            let mut account = usable_account(&id)?;
            account.balance_cents += cents;
            save_account(&id, &account)?;
            kv::set_json(
                &marker,
                &Movement {
                    account: id.clone(),
                    cents,
                },
            )?;
        }
        ctx.set_output("credit_ref", format!("credit:{}:{id}", ctx.tx_id()))
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        crate::chaos::inject(ctx, true)?;
        undo(ctx, "credit", -1)
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        let id: String = ctx.input_as("to_account").ok()?;
        Some(format!("credit:{}:{id}", ctx.tx_id()))
    }
}

/// Reverse the movement recorded by `step`'s marker, if any: `sign` 1 gives the money back,
/// -1 takes it away again.
fn undo(ctx: &StepContext, step: &str, sign: i64) -> Result<(), StepError> {
    let marker = marker_key(step, ctx);
    let Some(movement) = kv::get_json::<Movement>(&marker)? else {
        log::debug(format!("{step}: nothing to undo"));
        return Ok(());
    };
    // Undo even on a closed account: the money belongs back where it came from. A missing
    // account cannot take it, which needs an operator.
    let Some(mut account) = load_account(&movement.account)? else {
        return Err(StepError::permanent(format!(
            "cannot undo {step}: account `{}` not found",
            movement.account
        )));
    };
    account.balance_cents += sign * movement.cents;
    save_account(&movement.account, &account)?;
    kv::delete(&marker)
}

/// A transfer record as stored under `transfer/{tx_id}`.
#[derive(Serialize, Deserialize)]
struct TransferRecord {
    from: String,
    to: String,
    amount: f64,
    currency: Option<String>,
    /// `recorded`, then `reversed` by compensation.
    state: String,
}

/// Record the transfer between the accounts; compensation marks it reversed.
#[derive(Default)]
pub struct Transfer;

impl Transfer {
    fn key(ctx: &StepContext) -> String {
        format!("transfer/{}", ctx.tx_id())
    }
}

impl Step for Transfer {
    fn info() -> StepInfo {
        StepInfo::new("transfer")
            .service("transfers")
            .compensation(true)
            .idempotency(true)
            .description("record the transfer from from_account to to_account")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        crate::chaos::inject(ctx, false)?;
        let key = Self::key(ctx);
        // An existing record is this saga's own from an earlier attempt: keep it.
        if kv::get(&key)?.is_none() {
            let record = TransferRecord {
                from: ctx.input_as("from_account")?,
                to: ctx.input_as("to_account")?,
                amount: units(to_cents("amount", ctx.input_as("amount")?, false)?),
                currency: ctx.input_as("currency")?,
                state: "recorded".to_owned(),
            };
            kv::set_json(&key, &record)?;
        }
        ctx.set_output("transfer_ref", format!("transfer:{}", ctx.tx_id()))
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        crate::chaos::inject(ctx, true)?;
        let key = Self::key(ctx);
        match kv::get_json::<TransferRecord>(&key)? {
            Some(mut record) if record.state != "reversed" => {
                record.state = "reversed".to_owned();
                kv::set_json(&key, &record)
            }
            // Never recorded, or already reversed.
            _ => Ok(()),
        }
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        Some(format!("transfer:{}", ctx.tx_id()))
    }
}
