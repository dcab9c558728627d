//! The saga state machine as users see it: the transition table holds on every backend,
//! the seed's statuses are reached and shown, every attempt is kept durably (the same
//! after a host is killed and another takes over, and right when step names repeat), and
//! operator actions leave statuses, counts and history consistent.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rte_tests::process::HostProcess;
use rte_tests::rte_host::engine::{Patience, TxStatus, With};
use rte_tests::rte_host::lifecycle::TxEvent;
use rte_tests::rte_host::store::{StepRecord, TxRecord, now_ms};
use rte_tests::{HostOptions, TestHost};
use serde_json::{Value, json};

fn record(tx_id: &str, status: TxStatus) -> TxRecord {
    rte_tests::tx_record(tx_id, status, now_ms())
}

/// Every (status, event) pair through the engine's one writer, on every backend: an
/// allowed move is stored with the table's status and a bumped version; a refused one
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transition_table_holds_on_every_backend() -> Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        let engine = h.engine();
        let store = engine.store();
        let (mut allowed, mut refused) = (0, 0);
        for (n, &from) in TxStatus::ALL.iter().enumerate() {
            for (m, event) in TxEvent::all().into_iter().enumerate() {
                let id = format!("table-{n}-{m}");
                let mut tx = record(&id, from);
                store
                    .create(&tx, &[StepRecord::pending(&id, 0, "test_ok")])
                    .await?;
                let applied = engine
                    .apply(
                        &mut tx,
                        event,
                        &[],
                        With::default(),
                        Patience::Bounded(Duration::from_secs(1)),
                    )
                    .await;
                let (stored, _) = store.get(&id).await?.context("stored")?;
                match from.on(event) {
                    Ok(to) => {
                        applied.with_context(|| format!("{backend:?}: {from} on {event:?}"))?;
                        assert_eq!(stored.status, to, "{backend:?}: {from} on {event:?}");
                        assert_eq!(stored.version, 1);
                        assert_eq!(
                            stored.completed_at.is_some(),
                            to.is_terminal() && from != to
                        );
                        allowed += 1;
                    }
                    Err(_) => {
                        let e = applied.expect_err("refused");
                        assert!(
                            matches!(e, rte_tests::rte_host::Error::Refused(_)),
                            "{backend:?}: {from} on {event:?}: {e}"
                        );
                        assert_eq!(stored.status, from, "{backend:?}: nothing written");
                        assert_eq!(stored.version, 0);
                        assert_eq!(tx.status, from, "the caller's copy is left as it was");
                        refused += 1;
                    }
                }
            }
        }
        assert_eq!(
            allowed + refused,
            TxStatus::ALL.len() * TxEvent::all().len()
        );
        assert!(
            allowed > 30 && refused > 100,
            "{allowed} allowed, {refused} refused"
        );
        h.stop().await;
    }
    Ok(())
}

/// Poll a saga until `done` holds for it, recording every status seen on the way.
async fn watch(
    h: &TestHost,
    id: &str,
    seen: &mut Vec<String>,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    for _ in 0..1500 {
        let (_, v) = h.get(&format!("/api/transactions/{id}")).await?;
        if let Some(s) = v["status"].as_str()
            && seen.last().map(String::as_str) != Some(s)
        {
            seen.push(s.to_string());
        }
        if done(&v) {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("saga {id} did not get there: seen {seen:?}")
}

fn terminal(v: &Value) -> bool {
    v["status"]
        .as_str()
        .and_then(|s| s.parse::<TxStatus>().ok())
        .is_some_and(TxStatus::is_terminal)
}

async fn start(h: &TestHost, body: Value) -> Result<String> {
    let (status, v) = h.post("/api/transactions", body).await?;
    anyhow::ensure!(status == 201, "{status} {v}");
    Ok(v["tx_id"].as_str().context("tx_id")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_statuses_are_reached_and_shown() -> Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;

    // CREATED → LOCKED (first step running) → EXECUTING (second) → COMPLETED.
    let id = start(
        &h,
        json!({"steps": ["test_sleep", "test_sleep"], "input": {"sleep_ms": 600}, "lock_keys": ["seat:1"]}),
    )
    .await?;
    let mut seen = Vec::new();
    let v = watch(&h, &id, &mut seen, terminal).await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert!(
        seen.iter().any(|s| s == "LOCKED") && seen.iter().any(|s| s == "EXECUTING"),
        "LOCKED while the first step runs, EXECUTING after: {seen:?}"
    );
    let order: Vec<&str> = seen.iter().map(String::as_str).collect();
    let locked = order.iter().position(|s| *s == "LOCKED").unwrap();
    let executing = order.iter().position(|s| *s == "EXECUTING").unwrap();
    assert!(locked < executing, "{order:?}");

    // Nothing took effect: FAILED, nothing compensated.
    let v = h
        .run_saga(json!({"steps": ["test_fail", "test_ok"]}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["steps"][0]["failure_kind"], "permanent");
    assert_eq!(v["steps"][1]["status"], "SKIPPED");
    assert_eq!(v["failed_step"], 0);

    // Something took effect: COMPENSATING, then COMPENSATED; the failed step is named.
    let id = start(
        &h,
        json!({"steps": ["test_ok", "test_sleep", "test_fail"], "input": {"sleep_ms": 300}}),
    )
    .await?;
    let mut seen = Vec::new();
    let v = watch(&h, &id, &mut seen, terminal).await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    assert_eq!(v["failed_step"], 2, "{v}");
    assert_eq!(v["steps"][0]["status"], "COMPENSATED");
    assert_eq!(v["steps"][2]["status"], "FAILED");
    let phases: Vec<(u64, &str, &str)> = v["attempts"]
        .as_array()
        .context("attempts")?
        .iter()
        .map(|a| {
            (
                a["step_index"].as_u64().unwrap(),
                a["phase"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        phases,
        [
            (0, "execute", "completed"),
            (1, "execute", "completed"),
            (2, "execute", "failed"),
            (1, "compensate", "completed"),
            (0, "compensate", "completed"),
        ],
        "{v}"
    );

    // An undo that keeps failing: COMPENSATION_FAILED.
    let v = h
        .run_saga(json!({"steps": ["test_bad_compensation", "test_fail"], "max_retries": 1}))
        .await?;
    assert_eq!(v["status"], "COMPENSATION_FAILED", "{v}");
    assert_eq!(v["steps"][0]["status"], "COMPENSATION_FAILED");
    assert_eq!(v["steps"][0]["compensation_attempts"], 2);

    // Past its deadline while waiting for a lock it never gets: TIMEOUT.
    let holder = start(
        &h,
        json!({"steps": ["test_sleep"], "input": {"sleep_ms": 1800}, "lock_keys": ["seat:9"]}),
    )
    .await?;
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "lock_keys": ["seat:9"], "timeout": "1s"}))
        .await?;
    assert_eq!(v["status"], "TIMEOUT", "{v}");
    assert_eq!(v["steps"][0]["status"], "SKIPPED");
    watch(&h, &holder, &mut Vec::new(), terminal).await?;

    // A trap may have acted: the trapped step is compensated too. (CANCELLED: see
    // `operator_actions_leave_a_consistent_saga`.)
    let v = h
        .run_saga(json!({"steps": ["test_ok", "test_trap"], "max_retries": 0}))
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "a trap may have acted: {v}");
    assert_eq!(v["steps"][1]["failure_kind"], "trap");
    assert_eq!(
        v["steps"][1]["status"], "COMPENSATED",
        "the trapped step is undone too"
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_leave_a_consistent_saga() -> Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;

    // Force-complete while a step runs: refused, and the saga finishes on its own.
    let id = start(
        &h,
        json!({"steps": ["test_sleep", "test_ok"], "input": {"sleep_ms": 800}}),
    )
    .await?;
    watch(&h, &id, &mut Vec::new(), |v| v["status"] == "LOCKED").await?;
    let (status, body) = h
        .post(
            &format!("/api/transactions/{id}/force-complete"),
            json!({"reason": "looks done"}),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let v = watch(&h, &id, &mut Vec::new(), terminal).await?;
    assert_eq!(v["status"], "COMPLETED");
    for step in v["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "COMPLETED", "{v}");
        assert_eq!(step["attempts"], 1);
    }
    assert_eq!(v["history"], json!([]), "nothing was done by hand: {v}");

    // Cancel a failed saga with something to undo: CANCELLED, by the operator, with why.
    let v = h
        .run_saga(json!({"steps": ["test_ok", "test_flaky"], "input": {"flaky_times": 5}, "max_retries": 1}))
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    let v = h
        .run_saga(json!({"steps": ["test_flaky", "test_ok"], "input": {"flaky_times": 5}, "max_retries": 1}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["steps"][0]["attempts"], 2);
    assert_eq!(v["steps"][0]["failure_kind"], "retryable");
    let id = v["tx_id"].as_str().unwrap().to_string();
    // Retry: from CREATED again, fresh step retries, the earlier attempts kept.
    let (status, body) = h
        .post(
            &format!("/api/transactions/{id}/retry"),
            json!({"reason": "upstream fixed"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let v = watch(&h, &id, &mut Vec::new(), terminal).await?;
    assert_eq!(v["status"], "FAILED", "still flaky: {v}");
    assert_eq!(v["retry_count"], 1);
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        4,
        "two attempts before the retry, two after: {v}"
    );
    assert_eq!(v["history"][0]["kind"], "retry");
    assert_eq!(v["history"][0]["actor"]["type"], "operator");
    assert_eq!(v["history"][0]["actor"]["reason"], "upstream fixed");
    let (status, body) = h
        .post(
            &format!("/api/transactions/{id}/force-cancel"),
            json!({"reason": "customer gave up"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let v = watch(&h, &id, &mut Vec::new(), terminal).await?;
    assert_eq!(v["status"], "CANCELLED", "{v}");
    assert_eq!(v["history"][1]["kind"], "force_cancel");
    assert_eq!(v["history"][1]["actor"]["reason"], "customer gave up");
    // A cancelled saga takes no further operator action.
    let (status, _) = h
        .post(
            &format!("/api/transactions/{id}/force-complete"),
            json!({"reason": "no"}),
        )
        .await?;
    assert_eq!(status, 409);
    h.stop().await;
    Ok(())
}

/// A host killed mid-saga: the next host shows the same attempts, then recovery runs the
/// cut-off step again, logging the lost call, labelled as recovery; step names repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_history_survives_a_killed_host() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = [
        "retry_interval=20ms",
        "step_timeout=30s",
        "stuck_threshold=1s",
        "recovery_interval=300ms",
    ];
    let first = HostProcess::start(dir.path(), &["testkit"], &settings)?;
    first.get("/healthz").await?;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/transactions", first.url))
        .json(&json!({
            "steps": ["test_ok", "test_flaky", "test_ok", "test_sleep"],
            "input": {"flaky_times": 1, "sleep_ms": 3000}
        }))
        .send()
        .await?;
    let created: Value = resp.json().await?;
    let id = created["tx_id"].as_str().context("tx_id")?.to_string();
    let path = format!("/api/transactions/{id}");
    let before = first
        .poll(&path, |v| v["steps"][3]["status"] == "EXECUTING")
        .await?;
    let expected = [
        (0, "test_ok", 1, "completed"),
        (1, "test_flaky", 1, "failed"),
        (1, "test_flaky", 2, "completed"),
        (2, "test_ok", 1, "completed"),
    ];
    let summary = |v: &Value| -> Vec<(u64, String, u64, String)> {
        v["attempts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|a| {
                        (
                            a["step_index"].as_u64().unwrap_or(99),
                            a["step_name"].as_str().unwrap_or("").to_string(),
                            a["attempt"].as_u64().unwrap_or(0),
                            a["outcome"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let want: Vec<(u64, String, u64, String)> = expected
        .iter()
        .map(|(i, n, a, o)| (*i, n.to_string(), *a, o.to_string()))
        .collect();
    assert_eq!(summary(&before), want, "{before}");
    assert_eq!(before["attempts"][1]["failure_kind"], "retryable");
    first.kill();

    let second = HostProcess::start(dir.path(), &["testkit"], &settings)?;
    let after = second.get(&path).await?;
    assert_eq!(
        after["attempts"], before["attempts"],
        "the same history from the next host"
    );
    let done = second.poll(&path, terminal).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let all = summary(&done);
    assert_eq!(all[..4], want[..], "{done}");
    assert_eq!(
        all[4..],
        [
            (3, "test_sleep".to_string(), 1, "failed".to_string()),
            (3, "test_sleep".to_string(), 2, "completed".to_string()),
        ],
        "the lost call, then the call recovery made: {done}"
    );
    assert_eq!(done["attempts"][4]["failure_kind"], "lost");
    assert_ne!(
        done["attempts"][5]["host"], before["attempts"][0]["host"],
        "another host made the last call"
    );
    assert_eq!(done["steps"][3]["attempts"], 2);
    assert_eq!(done["retry_count"], 0, "a recovery is not a retry: {done}");
    assert_eq!(done["current_step"], 3);
    assert_eq!(done["history"][0]["kind"], "recovery");
    assert_eq!(done["history"][0]["actor"]["type"], "recovery");
    second.kill();
    Ok(())
}
