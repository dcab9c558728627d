//! The hosts sharing one database. Each reports what only it knows (its recovery worker's
//! figures, the plugins it loaded) every few seconds, so whichever host serves a request
//! can answer for all of them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::breaker::BreakerStatus;
use crate::engine::Engine;
use crate::recovery::{RecoveryStatsView, RecoveryWorker};
use crate::store::{HostRecord, StoreResult, now_ms};

/// How often a host reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);
/// A host not heard from for this long is taken to be gone.
pub const LIVE_FOR: Duration = Duration::from_secs(20);
/// Rows of hosts gone this long are deleted.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What a host reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostReport {
    /// Its recovery worker's figures.
    pub recovery: RecoveryStatsView,
    /// Digest of the version serving, by plugin file.
    pub plugins: BTreeMap<String, String>,
    /// Its circuit breakers (the same on every host when they live in Redis).
    #[serde(default)]
    pub circuit_breakers: Vec<BreakerStatus>,
}

/// One live host, as the database knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostView {
    /// The host's id.
    pub host_id: String,
    /// Whether it is the host answering.
    pub this_host: bool,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it last reported (RFC 3339).
    pub seen_at: String,
    /// What it reported.
    #[serde(flatten)]
    pub report: HostReport,
}

/// This host's report, as of now.
pub async fn report(engine: &Engine, recovery: &RecoveryWorker) -> HostReport {
    HostReport {
        recovery: recovery.stats(),
        plugins: engine
            .plugins()
            .plugins()
            .into_iter()
            .filter_map(|p| p.digest.map(|d| (p.file, d)))
            .collect(),
        circuit_breakers: engine.breakers().list().await,
    }
}

/// Write this host's report now.
pub async fn report_now(
    engine: &Engine,
    recovery: &RecoveryWorker,
    started_at: i64,
) -> StoreResult<()> {
    let now = now_ms();
    let host = HostRecord {
        host_id: engine.host_id().to_string(),
        started_at,
        seen_at: now,
        info: serde_json::to_string(&report(engine, recovery).await)
            .unwrap_or_else(|_| "{}".into()),
    };
    engine
        .store()
        .host_beat(&host, now - FORGET_AFTER.as_millis() as i64)
        .await
}

/// Report every [`REPORT_EVERY`] until `shutdown`. With locks held per host (no Redis),
/// warns when other hosts share the database: their locks do not exclude each other.
pub async fn run_reports(
    engine: Engine,
    recovery: RecoveryWorker,
    locks_shared: bool,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let started_at = now_ms();
    let mut others_warned = 0;
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = report_now(&engine, &recovery, started_at).await {
            tracing::debug!(error = %e, "could not report this host to the database");
        }
        if !locks_shared && let Ok(hosts) = live_hosts(&engine).await {
            let others = hosts.iter().filter(|h| !h.this_host).count();
            if others > others_warned {
                tracing::warn!(
                    others,
                    "other hosts share this database but lock keys are held per host \
                     (no redis_url): sagas with the same lock keys on different hosts may \
                     run at once; set redis_url on every host"
                );
            }
            others_warned = others;
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(REPORT_EVERY) => {}
        }
    }
}

/// The hosts heard from within [`LIVE_FOR`], this one first with its report as of now.
pub async fn live_hosts(engine: &Engine) -> StoreResult<Vec<HostView>> {
    let rows = engine
        .store()
        .hosts(now_ms() - LIVE_FOR.as_millis() as i64)
        .await?;
    let mut hosts: Vec<HostView> = rows
        .into_iter()
        .filter_map(|row| {
            let report = serde_json::from_str(&row.info).ok()?;
            Some(HostView {
                this_host: row.host_id == engine.host_id(),
                host_id: row.host_id,
                started_at: crate::admin::rfc3339(row.started_at),
                seen_at: crate::admin::rfc3339(row.seen_at),
                report,
            })
        })
        .collect();
    hosts.sort_by_key(|h| !h.this_host);
    Ok(hosts)
}

/// The hosts to show: the live ones, with this host's report fresh (added when the
/// database has not heard from it yet, or cannot be read).
pub async fn hosts_with(engine: &Engine, recovery: &RecoveryWorker) -> Vec<HostView> {
    let mut hosts = live_hosts(engine).await.unwrap_or_default();
    let fresh = report(engine, recovery).await;
    match hosts.iter_mut().find(|h| h.this_host) {
        Some(own) => {
            own.report = fresh;
            own.seen_at = crate::admin::rfc3339(now_ms());
        }
        None => hosts.insert(
            0,
            HostView {
                host_id: engine.host_id().to_string(),
                this_host: true,
                started_at: crate::admin::rfc3339(now_ms()),
                seen_at: crate::admin::rfc3339(now_ms()),
                report: fresh,
            },
        ),
    }
    hosts
}
