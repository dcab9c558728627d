//! Timing without waiting: an engine on a [`ManualClock`] reaches a saga's deadline and
//! recovery's stuck threshold when the test moves the clock, not after real hours.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rte_tests::rte_host::clock::{Clock, ManualClock};
use rte_tests::rte_host::engine::{Engine, EngineConfig, TxStatus};
use rte_tests::rte_host::plugin::{Limits, PluginRuntime, RuntimeOptions};
use rte_tests::rte_host::recovery::{RecoveryConfig, RecoveryWorker};
use rte_tests::rte_host::store::{self, StepRecord, TxRecord};
use rte_tests::{artifact_cache, plugin};
use serde_json::json;

/// An engine on a SQLite file with the testkit plugin and `clock`.
async fn engine(dir: &std::path::Path, clock: Arc<ManualClock>) -> Result<Engine> {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(plugin("testkit"), plugins.join("testkit.wasm"))?;
    let runtime = PluginRuntime::new(RuntimeOptions {
        limits: Limits {
            timeout: Duration::from_secs(5),
            ..Limits::default()
        },
        cache_dir: Some(artifact_cache()),
        max_instances: 16,
    })?;
    let failures = runtime.load_dir(&plugins).await;
    anyhow::ensure!(failures.is_empty(), "{failures:?}");
    let store = store::from_url(&format!("sqlite://{}", dir.join("rte.db").display())).await?;
    Ok(Engine::builder(store, Arc::new(runtime))
        .config(EngineConfig {
            retry_interval: Duration::from_millis(5),
            retry_max_interval: Duration::from_millis(20),
            ..EngineConfig::default()
        })
        .clock(clock)
        .build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_deadline_passes_when_the_clock_says() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new();
    let engine = engine(dir.path(), clock.clone()).await?;
    // A step that keeps failing retryably, with retries to spare for an hour.
    let tx = engine
        .new_transaction("adhoc")
        .add_step("test_flaky")
        .with_input(json!({"flaky_times": 1_000_000}))
        .with_max_retries(1_000_000)
        .with_timeout(Duration::from_secs(3600))
        .build()?;
    let run = tokio::spawn({
        let engine = engine.clone();
        async move { engine.execute(tx).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!run.is_finished(), "the saga waits for its deadline");
    clock.advance(Duration::from_secs(3601));
    let result = tokio::time::timeout(Duration::from_secs(30), run).await???;
    // Timed out at a step that was called, so it is compensated (a no-op for this one).
    assert_eq!(result.status, TxStatus::Compensated, "{result:?}");
    assert!(
        result
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("saga timed out at step `test_flaky`")),
        "{result:?}"
    );
    let (tx, _) = engine.get(&result.tx_id).await?;
    assert!(
        tx.completed_at.unwrap() >= tx.deadline_at,
        "stamped with the clock's time: {tx:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_finds_a_stuck_saga_when_the_clock_says() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new();
    let engine = engine(dir.path(), clock.clone()).await?;
    // A saga whose host stopped mid-step: EXECUTING, updated just now by the clock.
    let now = clock.now_ms();
    let tx = TxRecord {
        timeout_ms: 3_600_000,
        deadline_at: now + 3_600_000,
        ..rte_tests::tx_record("stuck-1", TxStatus::Executing, now)
    };
    let mut step = StepRecord::pending("stuck-1", 0, "test_ok");
    step.status = rte_tests::rte_host::engine::StepStatus::Executing;
    engine.store().create(&tx, &[step]).await?;
    let recovery = RecoveryWorker::new(
        engine.clone(),
        RecoveryConfig {
            interval: Duration::from_secs(30),
            stuck_threshold: Duration::from_secs(300),
            max_retries: 3,
        },
    );
    let announced = || {
        engine
            .events()
            .recent()
            .iter()
            .filter(|e| e.kind == "recovery.start")
            .count()
    };
    assert_eq!(recovery.scan_once().await?, 0, "not stuck yet");
    assert_eq!(recovery.scan_once().await?, 0, "not stuck yet");
    assert_eq!(announced(), 0, "scans that find nothing are not announced");
    clock.advance(Duration::from_secs(301));
    assert_eq!(recovery.scan_once().await?, 1, "stuck once the clock moved");
    assert_eq!(announced(), 1, "a scan that finds work is announced");
    let done = engine.wait("stuck-1", Duration::from_secs(30)).await?;
    assert_eq!(done.status, TxStatus::Completed, "{done:?}");
    Ok(())
}
