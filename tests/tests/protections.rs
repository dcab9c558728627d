//! The seed's protections through real hosts: circuit breakers shared by two hosts through
//! Redis, step idempotency across a re-run, idempotency expiry, and the saga deadline.

use std::time::Duration;

use rte_tests::rte_host::engine::{StepStatus, TxStatus};
use rte_tests::rte_host::retention::RetentionWorker;
use rte_tests::rte_host::store::{Commit, IdempotencyKey, now_ms};
use rte_tests::{HostOptions, TestHost, services_required};
use serde_json::json;

fn redis_up() -> bool {
    let up = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
    assert!(
        up || !services_required(),
        "Redis is required (RTE_REQUIRE_SERVICES=1)"
    );
    if !up {
        eprintln!("skipping: Redis is not running");
    }
    up
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_circuit_breakers_through_redis() -> anyhow::Result<()> {
    if !redis_up() {
        return Ok(());
    }
    let prefix = format!("rte-test-{}:", now_ms());
    let opts = || HostOptions {
        redis_prefix: Some(prefix.clone()),
        configure: |c| {
            c.circuit_threshold = 2;
            c.circuit_timeout = Duration::from_millis(800);
            c.circuit_half_open_reqs = 1;
            c.max_retries = 0;
        },
        ..HostOptions::default()
    };
    let a = TestHost::start(opts()).await?;
    let b = TestHost::start(opts()).await?;
    // Two trapping calls on host A open the `testkit` breaker…
    for _ in 0..2 {
        let v = a
            .run_saga(json!({"steps": ["test_trap"], "input": {}}))
            .await?;
        assert_eq!(v["steps"][0]["failure_kind"], "trap", "{v}");
    }
    let (_, list) = b.get("/api/circuit-breakers").await?;
    let testkit = list["circuit_breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["service"] == "testkit:testkit")
        .cloned();
    assert_eq!(
        testkit.as_ref().map(|t| t["state"].clone()),
        Some(json!("open")),
        "host B sees A's breaker: {list}"
    );
    // …so host B fails a testkit step fast, without calling the plugin.
    let v = b
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    assert!(
        v["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("circuit breaker for service `testkit:testkit` is open"),
        "{v}"
    );
    assert_eq!(
        v["steps"][0]["plugin_digest"],
        serde_json::Value::Null,
        "the plugin was never called: {v}"
    );
    // After the timeout one trial passes and closes it, for both hosts.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let v = b
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    let (_, list) = a.get("/api/circuit-breakers").await?;
    assert_eq!(list["circuit_breakers"][0]["state"], "closed", "{list}");
    // Open again from B, reset from A.
    for _ in 0..2 {
        b.run_saga(json!({"steps": ["test_trap"], "input": {}}))
            .await?;
    }
    let (status, _) = a
        .post("/api/circuit-breakers/testkit:testkit/reset", json!({}))
        .await?;
    assert_eq!(status, 200);
    let (_, list) = b.get("/api/circuit-breakers").await?;
    assert_eq!(list["circuit_breakers"][0]["state"], "closed", "{list}");
    let (status, _) = a
        .post("/api/circuit-breakers/nothing/reset", json!({}))
        .await?;
    assert_eq!(status, 404);
    let (_, listed) = b.get("/api/circuit-breakers").await?;
    assert_eq!(
        listed["shared"], true,
        "breakers in Redis are every host's: {listed}"
    );
    // The transitions were announced as events.
    let (_, opened) = a.get("/api/events?type=circuit.opened").await?;
    assert!(!opened["events"].as_array().unwrap().is_empty());
    a.stop().await;
    b.stop().await;
    let client = redis::Client::open("redis://127.0.0.1:6379")?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_lost_host_debits_once() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    h.open_account("i1", 100.0).await?;
    h.open_account("i2", 0.0).await?;
    let v = h
        .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "i1", "to_account": "i2", "amount": 10, "currency": "USD"}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED");
    // Pretend the host lost track right after the steps ran: the saga is back at its
    // first step, stale, while every step's effect and idempotency record are stored.
    let store = h.engine().store();
    let tx_id = v["tx_id"].as_str().unwrap();
    let (mut tx, mut steps) = store.get(tx_id).await?.unwrap();
    tx.status = TxStatus::Executing;
    tx.current_step = 0;
    tx.completed_at = None;
    tx.updated_at = now_ms() - 3_600_000;
    for (i, s) in steps.iter_mut().enumerate() {
        s.status = if i == 0 {
            StepStatus::Executing
        } else {
            StepStatus::Pending
        };
    }
    let refs: Vec<_> = steps.iter().collect();
    store.commit(&Commit::new(&tx, &refs)).await?;
    assert!(h.host.recovery.scan_once().await? >= 1);
    let done = h.engine().wait(tx_id, Duration::from_secs(30)).await?;
    assert_eq!(done.status, TxStatus::Completed, "{done:?}");
    assert_eq!(h.balance("i1").await?, 90.0, "debited once");
    assert_eq!(h.balance("i2").await?, 10.0, "credited once");
    let (_, ev) = h
        .get(&format!("/api/events?tx_id={tx_id}&type=step.completed"))
        .await?;
    let replays = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["idempotent_replay"] == true)
        .count();
    assert_eq!(replays, 3, "every step reused its stored output: {ev}");
    let (_, started) = h
        .get(&format!("/api/events?tx_id={tx_id}&type=step.started"))
        .await?;
    assert_eq!(
        started["events"].as_array().unwrap().len(),
        3,
        "execute ran in the first pass only, never for a replay: {started}"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_records_expire_and_are_purged() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| c.idempotency_ttl = Duration::from_millis(300),
        ..HostOptions::default()
    })
    .await?;
    let v = h
        .run_saga(json!({"steps": ["test_kv_counter"], "input": {"key": "exp"}}))
        .await?;
    let key = IdempotencyKey {
        plugin: "testkit".into(),
        step_name: "test_kv_counter".into(),
        key: v["steps"][0]["idempotency_key"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let store = h.engine().store().clone();
    assert!(store.idempotency_get(&key, now_ms()).await?.is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store.idempotency_get(&key, now_ms()).await?.is_none(),
        "expired records no longer count"
    );
    let (purged, _) = RetentionWorker::new(store.clone(), Duration::ZERO, Duration::from_secs(60))
        .purge_once()
        .await?;
    assert!(purged >= 1);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_past_its_deadline_times_out_and_is_compensated() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| c.step_timeout = Duration::from_secs(10),
        ..HostOptions::default()
    })
    .await?;
    let v = h
        .run_saga(json!({"steps": ["test_kv_counter", "test_sleep", "test_ok"], "input": {"key": "deadline", "sleep_ms": 5000}, "timeout": "1s"}))
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    assert!(v["error"].as_str().unwrap().contains("timed out"), "{v}");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["COMPENSATED", "COMPENSATED", "SKIPPED"], "{v}");
    let (_, ev) = h
        .get(&format!(
            "/api/events?tx_id={}&type=tx.timeout",
            v["tx_id"].as_str().unwrap()
        ))
        .await?;
    assert_eq!(ev["events"].as_array().unwrap().len(), 1);
    // The counter was undone.
    let again = h
        .run_saga(json!({"steps": ["test_kv_counter"], "input": {"key": "deadline"}}))
        .await?;
    assert_eq!(again["output"]["count"], 1, "{again}");
    h.stop().await;
    Ok(())
}
