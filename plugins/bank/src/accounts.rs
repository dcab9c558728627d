//! `open_account`, `close_account` and `get_balance`: set up and inspect the accounts the
//! transfer steps move money between.
//!
//! Input: `{account_id}`, plus `balance` for `open_account`.

use rte_plugin_sdk::{Step, StepContext, StepError, StepInfo, kv};

use crate::{
    ACCOUNTS, Account, account_key, load_account, marker_key, save_account, to_cents, units,
};

/// Create an account with an opening balance; compensation deletes it.
#[derive(Default)]
pub struct OpenAccount;

impl Step for OpenAccount {
    fn info() -> StepInfo {
        StepInfo::new("open_account")
            .service(ACCOUNTS)
            .compensation(true)
            .idempotency(true)
            .description("create account_id with an opening balance")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let id: String = ctx.input_as("account_id")?;
        let marker = marker_key("open_account", ctx);
        let account = match (kv::get(&marker)?, load_account(&id)?) {
            // Opened by this saga on an earlier attempt.
            (Some(_), Some(account)) => account,
            (_, Some(_)) => return Err(StepError::permanent(format!("account exists: `{id}`"))),
            (_, None) => {
                let balance = ctx.input_as::<Option<f64>>("balance")?.unwrap_or(0.0);
                let balance_cents = to_cents("balance", balance, true)?;
                let account = Account {
                    balance_cents,
                    closed: false,
                };
                save_account(&id, &account)?;
                kv::set(&marker, &id)?;
                account
            }
        };
        ctx.set_output("account_id", &id)?;
        ctx.set_output("balance", units(account.balance_cents))
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let marker = marker_key("open_account", ctx);
        if let Some(id) = kv::get(&marker)? {
            kv::delete(&account_key(&id))?;
            kv::delete(&marker)?;
        }
        Ok(())
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        let id: String = ctx.input_as("account_id").ok()?;
        Some(format!("open_account:{}:{id}", ctx.tx_id()))
    }
}

/// Mark an account closed, so it takes no more debits or credits; compensation reopens it.
#[derive(Default)]
pub struct CloseAccount;

impl Step for CloseAccount {
    fn info() -> StepInfo {
        StepInfo::new("close_account")
            .service(ACCOUNTS)
            .compensation(true)
            .idempotency(true)
            .description("close account_id")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let id: String = ctx.input_as("account_id")?;
        let Some(mut account) = load_account(&id)? else {
            return Err(StepError::permanent(format!("account `{id}` not found")));
        };
        // Closing a closed account changes nothing and leaves no marker, so compensation will
        // not reopen an account that some other saga closed.
        if !account.closed {
            account.closed = true;
            save_account(&id, &account)?;
            kv::set(&marker_key("close_account", ctx), &id)?;
        }
        ctx.set_output("account_id", &id)?;
        ctx.set_output("closed", true)
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let marker = marker_key("close_account", ctx);
        let Some(id) = kv::get(&marker)? else {
            return Ok(());
        };
        if let Some(mut account) = load_account(&id)? {
            account.closed = false;
            save_account(&id, &account)?;
        }
        kv::delete(&marker)
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        let id: String = ctx.input_as("account_id").ok()?;
        Some(format!("close_account:{}:{id}", ctx.tx_id()))
    }
}

/// Read an account's balance and whether it is closed. It changes nothing, so compensation has
/// nothing to undo, and it has no idempotency key: a read should see the current balance.
#[derive(Default)]
pub struct GetBalance;

impl Step for GetBalance {
    fn info() -> StepInfo {
        StepInfo::new("get_balance")
            .service(ACCOUNTS)
            .compensation(true)
            .description("read the balance of account_id")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let id: String = ctx.input_as("account_id")?;
        let Some(account) = load_account(&id)? else {
            return Err(StepError::permanent(format!("account `{id}` not found")));
        };
        ctx.set_output("balance", units(account.balance_cents))?;
        ctx.set_output("closed", account.closed)
    }
}
