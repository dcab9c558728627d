//! MySQL/MariaDB: a saga's create and a commit of its state as one batch of statements,
//! sent in one round trip with the values written in as literals (see [`args::fill`]).
//! The other dialects do each in one statement; MySQL has no statement that both fences
//! the saga row and writes its steps, and the same work as a prepared transaction costs a
//! round trip per statement plus its `BEGIN` and `COMMIT`.
//!
//! A batch begins and ends its own transaction. When a statement in it fails, the server
//! runs none after it and leaves the transaction open: the caller rolls it back (see
//! [`SqlStore::settle`](super::SqlStore)).

use super::{
    Statements, StepRecord, TxRecord, input_args, step_update_args, steps_args, tx_insert_args,
    tx_update_args,
};
use crate::store::args::{self, Arg};

/// Largest batch sent; a change whose literals would make a longer one goes as a prepared
/// transaction instead (MySQL's default `max_allowed_packet` is 16 or 64 MiB, and the
/// batch holds every text twice over, as hexadecimal).
const MAX_BATCH: usize = 4 << 20;

/// The column a commit batch answers with: 1 when the saga's version fence held and the
/// change was written, 0 when another writer had moved the saga (nothing was written).
pub(super) const WRITTEN: &str = "written";

/// The batch creating `tx` with its indexed input (`entries`) and `steps`; `None` when it
/// would be too long.
pub(super) fn create(
    q: &Statements,
    tx: &TxRecord,
    entries: Option<&str>,
    steps: &[StepRecord],
) -> Option<String> {
    let mut out = String::with_capacity(4096);
    out.push_str("START TRANSACTION; ");
    statement(&mut out, &q.insert_tx, &tx_insert_args(tx));
    if let Some(entries) = entries {
        statement(&mut out, &q.insert_input, &input_args(tx, entries));
    }
    if !steps.is_empty() {
        statement(&mut out, &q.insert_steps(steps.len()), &steps_args(steps));
    }
    out.push_str("COMMIT");
    (out.len() <= MAX_BATCH).then_some(out)
}

/// The batch writing `tx`'s new state (version `next_version`) and `steps`, fenced by
/// `tx.version`: the steps are written only when the saga's update matched its row, and
/// the batch's one result row says whether it did (column [`WRITTEN`]). `None` when it
/// would be too long.
pub(super) fn commit(
    q: &Statements,
    tx: &TxRecord,
    next_version: i64,
    steps: &[&StepRecord],
) -> Option<String> {
    let mut out = String::with_capacity(4096);
    out.push_str("START TRANSACTION; ");
    statement(&mut out, &q.update_tx, &tx_update_args(tx, next_version));
    // With the client's FOUND_ROWS flag (sqlx sets it) this counts the rows matched.
    out.push_str("SET @rte_fenced = ROW_COUNT(); ");
    let update_step = format!("{} AND @rte_fenced = 1", q.update_step);
    for step in steps {
        statement(&mut out, &update_step, &step_update_args(step));
    }
    out.push_str("COMMIT; SELECT CAST(@rte_fenced AS SIGNED) AS ");
    out.push_str(WRITTEN);
    (out.len() <= MAX_BATCH).then_some(out)
}

fn statement(out: &mut String, sql: &str, values: &[Arg<'_>]) {
    args::fill(out, sql, values);
    out.push_str("; ");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Dialect;

    fn saga(steps: usize) -> (TxRecord, Vec<StepRecord>) {
        let tx = TxRecord {
            tx_id: "t-1".into(),
            tx_type: "bench".into(),
            status: crate::engine::TxStatus::Executing,
            input: serde_json::json!({"n": 1}),
            outputs: Default::default(),
            lock_keys: vec!["k".into()],
            current_step: 0,
            total_steps: steps as u32,
            retry_count: 0,
            max_retries: 3,
            timeout_ms: 1000,
            deadline_at: 1000,
            last_error: None,
            version: 4,
            request_key: None,
            created_at: 0,
            updated_at: 0,
            completed_at: None,
            undo: None,
        };
        let steps = (0..steps)
            .map(|i| StepRecord::pending("t-1", i as u32, "test_ok"))
            .collect();
        (tx, steps)
    }

    #[test]
    fn a_commit_writes_steps_only_behind_the_fence_and_reports_it() {
        let q = Statements::new(Dialect::MySql);
        let (tx, steps) = saga(3);
        let changed: Vec<&StepRecord> = steps.iter().take(2).collect();
        let batch = commit(&q, &tx, tx.version + 1, &changed).unwrap();
        assert!(batch.starts_with("START TRANSACTION; UPDATE rte_transactions SET"));
        assert_eq!(batch.matches("AND @rte_fenced = 1").count(), 2);
        assert!(batch.ends_with("COMMIT; SELECT CAST(@rte_fenced AS SIGNED) AS written"));
        assert!(!batch.contains('?'), "every placeholder is filled: {batch}");
    }

    #[test]
    fn a_change_too_long_for_one_batch_is_left_to_a_transaction() {
        let q = Statements::new(Dialect::MySql);
        let (mut tx, steps) = saga(1);
        tx.last_error = Some("x".repeat(MAX_BATCH));
        assert!(commit(&q, &tx, 1, &[&steps[0]]).is_none());
        assert!(create(&q, &tx, None, &steps).is_none());
    }
}
