//! The store write on the hot path: one saga state transition (`TxStore::commit` of a step
//! completing: the saga row, version-fenced, and two step rows in one database transaction)
//! against the floor, a single-row insert transaction on the same pool.
//!
//! Runs on a fresh SQLite file; set `RTE_BENCH_DATABASE_URL` to measure another database.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use sqlx::Executor;

use rte_host::store::{Commit, SagaStore, SqlStore, StepRecord, TxRecord, now_ms};
use rte_host::{StepStatus, TxStatus};

/// A 3-step saga with its first step running.
fn saga() -> (TxRecord, Vec<StepRecord>) {
    let tx_id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let tx = TxRecord {
        tx_id: tx_id.clone(),
        tx_type: "bench".into(),
        status: TxStatus::Executing,
        input: json!({"n": 1}),
        outputs: Map::new(),
        lock_keys: vec!["bench:1".into()],
        current_step: 0,
        total_steps: 3,
        retry_count: 0,
        max_retries: 3,
        timeout_ms: 300_000,
        deadline_at: now + 300_000,
        last_error: None,
        version: 0,
        request_key: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        undo: None,
    };
    let steps = (0..3)
        .map(|i| StepRecord::pending(&tx_id, i, "test_ok"))
        .collect();
    (tx, steps)
}

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("RTE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let (store, mut tx, mut steps) = rt.block_on(async {
        let store = SqlStore::connect(&url).await.expect("database");
        store.migrate().await.expect("migrations");
        let (mut tx, steps) = saga();
        tx.status = TxStatus::Created;
        store.create(&tx, &steps).await.expect("saga recorded");
        tx.status = TxStatus::Executing;
        store
            .pool()
            .execute("DROP TABLE IF EXISTS rte_bench_scratch")
            .await
            .expect("drop scratch table");
        store
            .pool()
            .execute(
                "CREATE TABLE rte_bench_scratch (id VARCHAR(64) PRIMARY KEY, payload TEXT NOT NULL)",
            )
            .await
            .expect("scratch table");
        (store, tx, steps)
    });
    // What the transition writes: step 0 completed with its output, step 1 started.
    let output: Map<String, Value> = [("n".to_string(), json!(1))].into_iter().collect();
    steps[0].status = StepStatus::Completed;
    steps[0].output = Some(output.clone());
    steps[1].status = StepStatus::Executing;
    tx.outputs = output;
    tx.current_step = 1;
    let insert = store
        .dialect()
        .sql("INSERT INTO rte_bench_scratch (id, payload) VALUES (?, ?)")
        .into_owned();
    let payload = format!(
        r#"{{"status":"EXECUTING","outputs":{{"n":1}},"pad":"{}"}}"#,
        "x".repeat(160)
    );

    let mut group = c.benchmark_group("store");
    let saga = std::cell::RefCell::new(tx);
    let (store, saga, steps) = (&store, &saga, &steps);
    group.bench_function("saga_transition_commit", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut tx = saga.borrow().clone();
            let changed = [&steps[0], &steps[1]];
            let started = Instant::now();
            for _ in 0..iters {
                tx.updated_at = now_ms();
                tx.version = store
                    .commit(&Commit::new(&tx, &changed))
                    .await
                    .expect("commit");
            }
            let took = started.elapsed();
            *saga.borrow_mut() = tx;
            took
        })
    });
    let (insert, payload) = (&insert, &payload);
    group.bench_function("raw_single_row_insert", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let pool = store.pool();
            let started = Instant::now();
            for _ in 0..iters {
                let mut db = pool.begin().await.expect("begin");
                sqlx::query(insert)
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(payload.as_str())
                    .execute(&mut *db)
                    .await
                    .expect("insert");
                db.commit().await.expect("commit");
            }
            started.elapsed()
        })
    });
    group.finish();
    rt.block_on(async {
        let _ = store
            .pool()
            .execute("DROP TABLE IF EXISTS rte_bench_scratch")
            .await;
        store.pool().close().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = store
}
criterion_main!(benches);
