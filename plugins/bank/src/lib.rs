//! The seed's fund transfer as RTE steps: `debit`, `transfer` and `credit`, plus
//! `open_account`, `close_account` and `get_balance` to set up and inspect accounts, and
//! `remote_transfer`, which records the transfer at a remote ledger over the broker.
//!
//! Accounts live in the plugin's `kv` store. Money is kept in integer cents so repeated debits
//! and refunds never drift; inputs and outputs use currency units (`100.00`).
//!
//! Every step that changes state writes a marker for its saga and step in the same call, and
//! its compensation undoes only what a marker records, then deletes it. Writes commit together
//! with the step's result, so a marker exists exactly when the effect does: compensation is
//! idempotent and a no-op for an execute that never took effect.

mod accounts;
mod chaos;
mod remote;
mod transfer;

use rte_plugin_sdk::{StepContext, StepError, export_steps, kv};
use serde::{Deserialize, Serialize};

use crate::accounts::{CloseAccount, GetBalance, OpenAccount};
use crate::remote::RemoteTransfer;
use crate::transfer::{Credit, Debit, Transfer};

export_steps!(
    Debit,
    Transfer,
    Credit,
    OpenAccount,
    CloseAccount,
    GetBalance,
    RemoteTransfer
);

/// The circuit-breaker service of the account steps.
const ACCOUNTS: &str = "accounts";

/// An account as stored under `account/{id}`.
#[derive(Debug, Serialize, Deserialize)]
struct Account {
    balance_cents: i64,
    closed: bool,
}

fn account_key(id: &str) -> String {
    format!("account/{id}")
}

fn load_account(id: &str) -> Result<Option<Account>, StepError> {
    kv::get_json(&account_key(id))
}

/// The account `id`, which must exist and be open.
fn usable_account(id: &str) -> Result<Account, StepError> {
    match load_account(id)? {
        None => Err(StepError::permanent(format!("account `{id}` not found"))),
        Some(account) if account.closed => {
            Err(StepError::permanent(format!("account `{id}` is closed")))
        }
        Some(account) => Ok(account),
    }
}

fn save_account(id: &str, account: &Account) -> Result<(), StepError> {
    kv::set_json(&account_key(id), account)
}

/// The marker of this saga's step: one per step call site, so a saga may run the same step
/// twice (two debits) without the markers colliding.
fn marker_key(step: &str, ctx: &StepContext) -> String {
    format!("{step}/{}/{}", ctx.tx_id(), ctx.step_index())
}

/// `amount`, the input `key`, in cents. Rounding to the cent absorbs binary fractions
/// (`0.1 + 0.2`) that JSON numbers carry.
fn to_cents(key: &str, amount: f64, allow_zero: bool) -> Result<i64, StepError> {
    // Well inside the range where an f64 holds every cent exactly.
    let in_range = amount.is_finite() && amount.abs() < 1e13;
    if !in_range || amount < 0.0 || (amount == 0.0 && !allow_zero) {
        let expected = if allow_zero {
            "zero or more"
        } else {
            "positive"
        };
        return Err(StepError::permanent(format!(
            "input `{key}` must be a {expected} amount, got {amount}"
        )));
    }
    Ok((amount * 100.0).round() as i64)
}

/// Cents as currency units for outputs and messages.
fn units(cents: i64) -> f64 {
    cents as f64 / 100.0
}
