//! The one writer of saga state. The coordinator, operator actions and recovery all change
//! a saga through [`Engine::apply`]: it takes the next status from the transition table
//! ([`TxStatus::on`]), writes with the version fence, waits out a store outage as far as
//! the caller allows, and settles a commit whose answer was lost the same way for all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::Instrument;

use super::Engine;
use crate::error::{Error, Result};
use crate::lifecycle::TxEvent;
use crate::store::{
    Commit, HistoryEntry, IdempotencyChange, KvChanges, OutboxMessage, StepRecord, StoreError,
    TxRecord, WaitChanges,
};
use crate::telemetry;

/// How long a writer waits for an unreachable store.
#[derive(Clone, Copy)]
pub enum Patience<'a> {
    /// The coordinator: until the store is back, unless the saga's locks are lost.
    UntilBack(&'a AtomicBool),
    /// An operator or recovery: a few seconds, then the error.
    Bounded(Duration),
}

/// What goes with a saga's change, written in the same transaction.
#[derive(Default, Clone, Copy)]
pub struct With<'a> {
    /// The step call's plugin key-value reads and writes.
    pub kv: Option<&'a KvChanges>,
    /// An idempotency record to remember or forget.
    pub idempotency: Option<IdempotencyChange<'a>>,
    /// History lines to append.
    pub history: &'a [HistoryEntry],
    /// A wait to open or close.
    pub waits: WaitChanges<'a>,
    /// Messages the step call published, sent once the commit is durable.
    pub outbox: &'a [OutboxMessage],
}

impl Engine {
    /// Move `tx` by `event`: set its status from the transition table, write it with the
    /// steps `steps` and `with`, fenced by `tx.version` (bumped on success). A move the
    /// table refuses writes nothing.
    pub async fn apply(
        &self,
        tx: &mut TxRecord,
        event: TxEvent,
        steps: &[&StepRecord],
        with: With<'_>,
        patience: Patience<'_>,
    ) -> Result<()> {
        let (from, completed_at) = (tx.status, tx.completed_at);
        let next = from.on(event)?;
        if let Patience::UntilBack(lost) = patience
            && lost.load(Ordering::SeqCst)
        {
            return Err(Error::Conflict(format!("saga {} lost its locks", tx.tx_id)));
        }
        tx.status = next;
        tx.updated_at = self.now_ms();
        if next.is_terminal() && from != next {
            tx.completed_at = Some(tx.updated_at);
        }
        match self.write(tx, steps, with, patience).await {
            Ok(version) => {
                tx.version = version;
                Ok(())
            }
            Err(e) => {
                tx.status = from;
                tx.completed_at = completed_at;
                Err(e)
            }
        }
    }

    /// Commit; the version written.
    async fn write(
        &self,
        tx: &TxRecord,
        steps: &[&StepRecord],
        with: With<'_>,
        patience: Patience<'_>,
    ) -> Result<i64> {
        let commit = Commit {
            tx,
            steps,
            kv: with.kv,
            idempotency: with.idempotency,
            history: with.history,
            waits: with.waits,
            outbox: with.outbox,
        };
        let store = &self.inner.store;
        let mut pause = Duration::from_millis(50);
        let mut retried = false;
        let give_up = match patience {
            Patience::Bounded(d) => Some(tokio::time::Instant::now() + d),
            Patience::UntilBack(_) => None,
        };
        loop {
            let started = std::time::Instant::now();
            let result = store
                .commit(&commit)
                .instrument(tracing::info_span!("store.commit"))
                .await;
            telemetry::metrics()
                .store_commit_duration
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(version) => return Ok(version),
                // The database is unreachable: hold the change and try again, so the saga
                // continues as soon as the connection is back.
                Err(e)
                    if e.is_retryable()
                        && give_up.is_none_or(|t| tokio::time::Instant::now() + pause < t)
                        && !matches!(patience, Patience::UntilBack(l) if l.load(Ordering::SeqCst)) =>
                {
                    if !retried {
                        tracing::warn!(tx_id = %tx.tx_id, error = %e, "store unavailable; the saga's change waits until it returns");
                    }
                    retried = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                // A retried commit may have landed before its answer was lost: the stored
                // row then carries exactly this write.
                Err(StoreError::VersionConflict { .. }) if retried => {
                    let stored = store.get(&tx.tx_id).await?.map(|(stored, _)| stored);
                    return match stored {
                        Some(s)
                            if s.version == tx.version + 1
                                && s.updated_at == tx.updated_at
                                && s.status == tx.status =>
                        {
                            Ok(s.version)
                        }
                        _ => Err(StoreError::VersionConflict {
                            tx_id: tx.tx_id.clone(),
                            expected: tx.version,
                        }
                        .into()),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
