//! Housekeeping: purge expired idempotency records, and finished sagas older than
//! `retention` with their steps and history, in small batches so live work never waits.

use std::time::Duration;

use crate::store::{Housekeeping, now_ms};

/// Rows removed per statement.
const BATCH: u32 = 200;
/// Pause between batches, so purging yields to live work.
const PAUSE: Duration = Duration::from_millis(50);

/// Purges on a timer until stopped.
pub struct RetentionWorker {
    store: std::sync::Arc<dyn Housekeeping>,
    retention: Duration,
    interval: Duration,
}

impl RetentionWorker {
    /// Purge every `interval`; `retention` of zero keeps finished sagas forever.
    pub fn new(
        store: std::sync::Arc<dyn Housekeeping>,
        retention: Duration,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            retention,
            interval,
        }
    }

    /// Run until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            match self.purge_once().await {
                Ok((idem, sagas)) if idem + sagas > 0 => {
                    tracing::info!(idempotency_records = idem, sagas, "purged expired data");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed; retrying next interval"),
            }
        }
    }

    /// Purge everything due now; returns (idempotency records, sagas) removed.
    pub async fn purge_once(&self) -> Result<(u64, u64), crate::store::StoreError> {
        let now = now_ms();
        let mut idem = 0;
        loop {
            let n = self.store.purge_idempotency(now, BATCH).await?;
            idem += n;
            if n < BATCH as u64 {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        let mut sagas = 0;
        if !self.retention.is_zero() {
            let before = now - self.retention.as_millis() as i64;
            loop {
                let n = self.store.purge_finished(before, BATCH).await?;
                sagas += n;
                if n < BATCH as u64 {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
        Ok((idem, sagas))
    }
}
