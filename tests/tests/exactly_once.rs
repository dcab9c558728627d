//! Plugin state changes exactly once, on every backend: a commit that stalled past its lock
//! cannot write the state it computed before the stall, idempotency keys count only for the
//! step that stored them, and a compensated step's key runs again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rte_tests::rte_host::engine::EngineConfig;
use rte_tests::rte_host::lock::MemoryLocks;
use rte_tests::rte_host::plugin::{Limits, PluginRuntime, RuntimeOptions};
use rte_tests::rte_host::store::{CommitPoint, PluginKv, SqlStore};
use rte_tests::rte_host::{Engine, LockManager, TxStatus};
use rte_tests::{Backend, HostOptions, TestHost, artifact_cache, fresh_database, plugin};
use serde_json::{Value, json};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_sharing_a_key_text_each_run() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        // Both booking steps use the client's booking reference as their key.
        let v = h
            .run_saga(json!({
                "steps": ["test_reserve", "test_charge"],
                "input": {"booking": "BK-1", "flight": "F1", "amount_cents": 250}
            }))
            .await?;
        assert_eq!(v["status"], "COMPLETED", "{backend:?}: {v}");
        assert_eq!(v["steps"][0]["output"], json!({"seats_held": 1}), "{v}");
        assert_eq!(
            v["steps"][1]["output"],
            json!({"charged_cents": 250}),
            "{backend:?}: the charge ran, not a replay of the seat's output: {v}"
        );
        // A retry of the whole booking (a new saga, same key) replays both, each its own.
        let again = h
            .run_saga(json!({
                "steps": ["test_reserve", "test_charge"],
                "input": {"booking": "BK-1", "flight": "F1", "amount_cents": 250}
            }))
            .await?;
        assert_eq!(again["status"], "COMPLETED", "{again}");
        assert_eq!(again["steps"][0]["output"], json!({"seats_held": 1}));
        assert_eq!(again["steps"][1]["output"], json!({"charged_cents": 250}));
        assert_eq!(seats_held(&h, "F1").await?, 1, "{backend:?}: one seat held");
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensated_steps_key_runs_again() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        // The seat is held, the card declined: the seat is given back.
        let declined = h
            .run_saga(json!({
                "steps": ["test_reserve", "test_fail"],
                "input": {"booking": "BK-2", "flight": "F2"}
            }))
            .await?;
        assert_eq!(declined["status"], "COMPENSATED", "{declined}");
        assert_eq!(seats_held(&h, "F2").await?, 0);
        // The client retries the booking as a new saga: the seat must really be held.
        let retried = h
            .run_saga(json!({
                "steps": ["test_reserve", "test_ok"],
                "input": {"booking": "BK-2", "flight": "F2"}
            }))
            .await?;
        assert_eq!(retried["status"], "COMPLETED", "{retried}");
        let tx_id = retried["tx_id"].as_str().unwrap();
        let (_, started) = h
            .get(&format!("/api/events?tx_id={tx_id}&type=step.started"))
            .await?;
        assert_eq!(
            started["events"].as_array().unwrap().len(),
            2,
            "{backend:?}: both steps executed, neither replayed: {started}"
        );
        assert_eq!(
            seats_held(&h, "F2").await?,
            1,
            "{backend:?}: the retried booking holds its seat"
        );
        h.stop().await;
    }
    Ok(())
}

/// Seats held on `flight`, read by holding one more under a fresh booking and giving it back.
async fn seats_held(h: &TestHost, flight: &str) -> anyhow::Result<i64> {
    let probe = format!("probe-{:016x}", rand::random::<u64>());
    let v = h
        .run_saga(json!({
            "steps": ["test_reserve", "test_fail"],
            "input": {"booking": probe, "flight": flight}
        }))
        .await?;
    anyhow::ensure!(v["status"] == "COMPENSATED", "probe: {v}");
    let with_probe = v["steps"][0]["output"]["seats_held"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("probe output: {v}"))?;
    Ok(with_probe - 1)
}

/// Two engines (two hosts) on one database and one lock service. Engine A's debit of 100
/// stalls in its commit (before it, or after its saga fence inside the transaction) past its
/// lock's TTL; engine B takes the lock and debits 50; A resumes. A's stale write must be
/// refused and its step run again on fresh state: 1000 - 100 - 50, in three executes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_stalled_past_its_lock_is_refused_and_retried() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for backend in rte_tests::backends() {
        let points: &[CommitPoint] = match backend {
            // SQLite's writer holds the whole database: a stall inside a commit stops every
            // other writer, so the race can only open before it.
            Backend::Sqlite => &[CommitPoint::Start],
            _ => &[CommitPoint::Start, CommitPoint::Fenced],
        };
        for &point in points {
            stalled_commit(backend, point, dir.path())
                .await
                .map_err(|e| anyhow::anyhow!("{backend:?}, stalled at {point:?}: {e:#}"))?;
        }
    }
    Ok(())
}

async fn stalled_commit(
    backend: Backend,
    point: CommitPoint,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let url = fresh_database(backend, dir).await?;
    let store_a = Arc::new(SqlStore::connect(&url).await?);
    store_a.migrate().await?;
    let store_b = Arc::new(SqlStore::connect(&url).await?);
    let locks: Arc<dyn LockManager> = Arc::new(MemoryLocks::new());
    let runtime = Arc::new(PluginRuntime::new(RuntimeOptions {
        limits: Limits {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(5),
            max_output_bytes: 1 << 20,
            ..Limits::default()
        },
        cache_dir: Some(artifact_cache()),
        max_instances: 16,
    })?);
    runtime.load_file(&plugin("bank")).await?;
    let config = EngineConfig {
        lock_ttl: Duration::from_millis(400),
        // Never extended: the stalled host's lock simply lapses.
        lock_extend_period: Duration::from_secs(3600),
        lock_wait: Duration::from_secs(10),
        retry_interval: Duration::from_millis(10),
        retry_max_interval: Duration::from_millis(50),
        ..EngineConfig::default()
    };
    let engine = |store: Arc<SqlStore>| {
        Engine::builder(store, runtime.clone())
            .locks(locks.clone())
            .config(config.clone())
            .build()
    };
    let (a, b) = (engine(store_a.clone()), engine(store_b.clone()));

    let open = a
        .new_transaction("open")
        .add_step("open_account")
        .with_input(json!({"account_id": "acct", "balance": 1000.0}))
        .build()?;
    assert_eq!(a.execute(open).await?.status, TxStatus::Completed);

    // The next commit through A that writes plugin state stalls at `point`.
    let armed = Arc::new(AtomicBool::new(true));
    let (paused, resume) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    store_a.set_commit_pause(Some({
        let (armed, paused, resume) = (armed.clone(), paused.clone(), resume.clone());
        Box::new(move |_tx_id, at| {
            let fire = at == point && armed.swap(false, Ordering::SeqCst);
            let (paused, resume) = (paused.clone(), resume.clone());
            Box::pin(async move {
                if fire {
                    paused.notify_one();
                    resume.notified().await;
                }
            })
        })
    }));
    let debit = |engine: &Engine, amount: f64| {
        engine
            .new_transaction("debit")
            .with_lock_keys(["account:acct"])
            .add_step("debit")
            .with_input(json!({"from_account": "acct", "amount": amount}))
            .build()
    };
    let s1 = a.submit(debit(&a, 100.0)?).await?.tx_id;
    tokio::time::timeout(Duration::from_secs(30), paused.notified())
        .await
        .map_err(|_| anyhow::anyhow!("the first debit never reached its commit"))?;
    // Past the stalled holder's lock: B takes it and debits.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s2 = b.submit(debit(&b, 50.0)?).await?.tx_id;
    // B's debit runs to its end while A is stalled: the interleaving that lost money.
    let during = b.wait(&s2, Duration::from_secs(8)).await;
    resume.notify_one();
    anyhow::ensure!(
        during
            .as_ref()
            .is_ok_and(|r| r.status == TxStatus::Completed),
        "the second debit did not complete while the first was stalled: {during:?}"
    );

    let r1 = a.wait(&s1, Duration::from_secs(30)).await?;
    let r2 = b.wait(&s2, Duration::from_secs(30)).await?;
    assert_eq!(r1.status, TxStatus::Completed, "{r1:?}");
    assert_eq!(r2.status, TxStatus::Completed, "{r2:?}");
    let account: Value = serde_json::from_str(
        &store_b
            .kv_get("bank", "account/acct")
            .await?
            .ok_or_else(|| anyhow::anyhow!("the account is gone"))?,
    )?;
    assert_eq!(
        account["balance_cents"], 85_000,
        "both debits, each once: {account}"
    );
    let mut attempts = Vec::new();
    for tx_id in [&s1, &s2] {
        let (_, steps) = b.get(tx_id).await?;
        attempts.push(steps[0].attempts);
    }
    anyhow::ensure!(
        attempts.iter().sum::<u32>() == 3,
        "the stale debit runs once more, on fresh state: attempts {attempts:?}"
    );
    store_a.set_commit_pause(None);
    Ok(())
}
