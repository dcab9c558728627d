//! Operator actions (force-complete, force-cancel, retry), recovery of stuck sagas, and the
//! host-side barrier rules, through a real host and real plugins.

use std::time::Duration;

use rte_tests::rte_host::engine::{StepStatus, TxStatus};
use rte_tests::rte_host::lifecycle::FailureKind;
use rte_tests::rte_host::store::{Commit, StepRecord, TxRecord, now_ms};
use rte_tests::{HostOptions, TestHost};
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["tx_id"].as_str().unwrap().to_string()
}

async fn wait_status(h: &TestHost, tx_id: &str, want: &str) -> anyhow::Result<Value> {
    for _ in 0..300 {
        let (_, v) = h.get(&format!("/api/transactions/{tx_id}")).await?;
        if v["status"] == want {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{tx_id} never reached {want}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_runs_a_failed_saga_again_after_the_cause_is_fixed() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    h.open_account("to", 0.0).await?;
    let v = h
        .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "late", "to_account": "to", "amount": 5, "currency": "EUR"}}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    h.open_account("late", 20.0).await?;
    let (status, r) = h
        .post(
            &format!("/api/transactions/{}/retry", id(&v)),
            json!({"reason": "account opened"}),
        )
        .await?;
    assert_eq!(status, 200, "{r}");
    let done = wait_status(&h, &id(&v), "COMPLETED").await?;
    assert_eq!(done["retry_count"], 1);
    let history: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["retry"]);
    assert!(
        done["history"][0]["message"]
            .as_str()
            .unwrap()
            .contains("account opened")
    );
    assert_eq!(h.balance("late").await?, 15.0);
    // A completed saga cannot be retried or cancelled.
    let (status, e) = h
        .post(&format!("/api/transactions/{}/retry", id(&v)), json!({}))
        .await?;
    assert_eq!(status, 409, "{e}");
    let (status, _) = h
        .post(
            &format!("/api/transactions/{}/force-cancel", id(&v)),
            json!({"reason": "x"}),
        )
        .await?;
    assert_eq!(status, 409);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensation_failed_can_be_retried_or_force_completed() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| c.max_retries = 1,
        ..HostOptions::default()
    })
    .await?;
    let v = h
        .run_saga(json!({"steps": ["test_bad_compensation", "test_fail"], "input": {}}))
        .await?;
    assert_eq!(v["status"], "COMPENSATION_FAILED");
    let (status, _) = h
        .post(
            &format!("/api/transactions/{}/retry", id(&v)),
            json!({"reason": "try the undo again"}),
        )
        .await?;
    assert_eq!(status, 200);
    // The compensation is attempted afresh (and fails again: the plugin always fails).
    let mut again = Value::Null;
    for _ in 0..200 {
        let (_, cur) = h.get(&format!("/api/transactions/{}", id(&v))).await?;
        if cur["status"] == "COMPENSATION_FAILED"
            && cur["history"].as_array().unwrap().len() == 1
            && cur["retry_count"] == 1
        {
            again = cur;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again["steps"][0]["compensation_attempts"], 2, "{again}");
    // The step compensated or failing to: retrying from it would re-execute it. Refused.
    let (status, e) = h
        .post(
            &format!("/api/transactions/{}/force-complete", id(&v)),
            json!({"reason": ""}),
        )
        .await?;
    assert_eq!(status, 422, "an empty reason is refused: {e}");
    let (status, done) = h
        .post(
            &format!("/api/transactions/{}/force-complete", id(&v)),
            json!({"reason": "refunded by hand"}),
        )
        .await?;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "COMPLETED");
    assert!(
        done["history"][1]["message"]
            .as_str()
            .unwrap()
            .contains("refunded by hand")
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_cancel_compensates_a_running_saga_then_cancels_it() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| {
            c.step_timeout = Duration::from_secs(10);
            c.max_retries = 0;
        },
        ..HostOptions::default()
    })
    .await?;
    let (status, v) = h
        .post("/api/transactions", json!({"steps": ["test_kv_counter", "test_sleep", "test_ok"], "input": {"sleep_ms": 1500, "key": "cancel"}}))
        .await?;
    assert_eq!(status, 201);
    wait_status(&h, &id(&v), "EXECUTING").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, c) = h
        .post(
            &format!("/api/transactions/{}/force-cancel", id(&v)),
            json!({"reason": "customer withdrew"}),
        )
        .await?;
    assert_eq!(status, 200, "{c}");
    let done = wait_status(&h, &id(&v), "CANCELLED").await?;
    let steps: Vec<&str> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps[0], "COMPENSATED", "{done}");
    assert_eq!(
        steps[2], "SKIPPED",
        "a step that never started is never compensated: {done}"
    );
    assert_eq!(done["steps"][2]["compensation_attempts"], 0);
    // The counter was undone: a fresh saga counts from 1 again.
    let again = h
        .run_saga(json!({"steps": ["test_kv_counter"], "input": {"key": "cancel"}}))
        .await?;
    assert_eq!(again["output"]["count"], 1, "{again}");
    // A cancelled saga stays cancelled.
    let (status, _) = h
        .post(&format!("/api/transactions/{}/retry", id(&v)), json!({}))
        .await?;
    assert_eq!(status, 409);
    h.stop().await;
    Ok(())
}

/// A request waiting on its saga (`?wait=`) while an operator cancels it gets the
/// cancelled saga with the operator's action in its history, not the state of the driver
/// that was fenced out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_sees_an_operator_cancel() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| c.step_timeout = Duration::from_secs(10),
        ..HostOptions::default()
    })
    .await?;
    let waiting = tokio::spawn({
        let (http, url) = (
            h.http.clone(),
            format!("{}/api/transactions?wait=30s", h.url),
        );
        async move {
            let resp = http
                .post(url)
                .json(&json!({"steps": ["test_ok", "test_sleep", "test_ok"], "input": {"sleep_ms": 1500}}))
                .send()
                .await?;
            anyhow::Ok((resp.status().as_u16(), resp.json::<Value>().await?))
        }
    });
    let tx_id = loop {
        let (_, list) = h.get("/api/transactions?status=EXECUTING").await?;
        if let Some(id) = list["transactions"][0]["tx_id"].as_str() {
            break id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, c) = h
        .post(
            &format!("/api/transactions/{tx_id}/force-cancel"),
            json!({"reason": "customer withdrew"}),
        )
        .await?;
    assert_eq!(status, 200, "{c}");
    let (status, done) = waiting.await??;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["tx_id"], tx_id.as_str());
    assert_eq!(done["status"], "CANCELLED", "{done}");
    assert_eq!(done["history"][0]["kind"], "force_cancel", "{done}");
    assert_eq!(done["history"][0]["actor"]["reason"], "customer withdrew");
    // The view handed over by a driver that ran alone equals the stored one.
    let v = h
        .run_saga(json!({"steps": ["test_ok", "test_ok"], "input": {"a": 1}}))
        .await?;
    let (_, stored) = h
        .get(&format!(
            "/api/transactions/{}",
            v["tx_id"].as_str().unwrap()
        ))
        .await?;
    assert_eq!(v, stored);
    h.stop().await;
    Ok(())
}

/// Record a saga as a host that died would have left it: in `status` at step `current`,
/// last updated an hour ago.
async fn plant(
    h: &TestHost,
    steps: &[(&str, StepStatus, Option<Value>)],
    status: TxStatus,
    current: u32,
    input: Value,
) -> anyhow::Result<String> {
    let store = h.engine().store();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tx_id = format!("planted-{}-{seq}", now_ms());
    let old = now_ms() - 3_600_000;
    let base = TxRecord {
        tx_id: tx_id.clone(),
        tx_type: "adhoc".into(),
        status: TxStatus::Created,
        input,
        outputs: serde_json::Map::new(),
        lock_keys: vec![],
        current_step: 0,
        total_steps: steps.len() as u32,
        retry_count: 0,
        max_retries: 2,
        timeout_ms: 600_000,
        deadline_at: now_ms() + 600_000,
        last_error: None,
        version: 0,
        request_key: None,
        created_at: old,
        updated_at: old,
        completed_at: None,
        undo: None,
    };
    let pending: Vec<StepRecord> = steps
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| StepRecord::pending(&tx_id, i as u32, name))
        .collect();
    store.create(&base, &pending).await?;
    let records: Vec<StepRecord> = steps
        .iter()
        .enumerate()
        .map(|(i, (name, st, out))| StepRecord {
            status: *st,
            attempts: u32::from(*st != StepStatus::Pending),
            output: out.as_ref().map(|o| o.as_object().unwrap().clone()),
            started_at: (*st != StepStatus::Pending).then_some(old),
            ..StepRecord::pending(&tx_id, i as u32, name)
        })
        .collect();
    let outputs = records
        .iter()
        .filter_map(|s| s.output.clone())
        .flatten()
        .collect();
    let planted = TxRecord {
        status,
        current_step: current,
        outputs,
        ..base
    };
    let refs: Vec<&StepRecord> = records.iter().collect();
    // The commit keeps `updated_at` as given: the saga looks stuck to recovery.
    store.commit(&Commit::new(&planted, &refs)).await?;
    Ok(tx_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_resumes_a_saga_whose_host_died_mid_step() -> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        recovery_resumes_mid_step_on(backend).await?;
    }
    Ok(())
}

async fn recovery_resumes_mid_step_on(backend: rte_tests::Backend) -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        backend,
        configure: |c| c.stuck_threshold = Duration::from_secs(60),
        ..HostOptions::default()
    })
    .await?;
    let tx_id = plant(
        &h,
        &[
            ("test_ok", StepStatus::Completed, Some(json!({"a": 1}))),
            ("test_kv_counter", StepStatus::Executing, None),
            ("test_ok", StepStatus::Pending, None),
        ],
        TxStatus::Executing,
        1,
        json!({"a": 1, "key": "recovered"}),
    )
    .await?;
    let resumed = h.host.recovery.scan_once().await?;
    assert!(resumed >= 1);
    let done = wait_status(&h, &tx_id, "COMPLETED").await?;
    assert_eq!(
        done["output"]["count"], 1,
        "the interrupted step ran once more, to completion: {done}"
    );
    assert_eq!(done["history"][0]["kind"], "recovery");
    let stats = h.host.recovery.stats();
    assert!(stats.scanned >= 1 && stats.processed >= 1, "{stats:?}");
    let (_, api) = h.get("/api/recovery/stats").await?;
    assert!(api["processed"].as_u64().unwrap() >= 1, "{api}");
    // A second scan finds nothing left to do.
    assert_eq!(h.host.recovery.scan_once().await?, 0);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_compensates_with_an_unknown_outcome_for_a_step_cut_mid_execute()
-> anyhow::Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        compensates_unknown_outcome(&h).await?;
        h.stop().await;
    }
    Ok(())
}

async fn compensates_unknown_outcome(h: &TestHost) -> anyhow::Result<()> {
    let tx_id = plant(
        h,
        &[
            ("test_ok", StepStatus::Completed, Some(json!({"a": 1}))),
            ("test_ok", StepStatus::Executing, None),
            ("test_ok", StepStatus::Pending, None),
        ],
        TxStatus::Compensating,
        1,
        json!({"a": 1}),
    )
    .await?;
    h.host.recovery.scan_once().await?;
    let done = wait_status(h, &tx_id, "COMPENSATED").await?;
    let steps: Vec<&str> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["COMPENSATED", "COMPENSATED", "PENDING"], "{done}");
    let (_, ev) = h
        .get(&format!("/api/events?tx_id={tx_id}&type=step.compensated"))
        .await?;
    // Oldest first: the step cut mid-execute, then the completed one before it.
    let outcomes: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["data"]["execute_outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["unknown", "completed"], "{ev}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_retries_a_fixable_failure_by_policy_but_not_a_permanent_one() -> anyhow::Result<()>
{
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        let plant_failed = |kind: FailureKind, error: &'static str| {
            let h = &h;
            async move {
                let tx_id = plant(
                    h,
                    &[("test_ok", StepStatus::Failed, None)],
                    TxStatus::Failed,
                    0,
                    json!({"x": 1}),
                )
                .await?;
                // Give the failed step its error, as the engine records it.
                let store = h.engine().store();
                let (tx, mut steps) = store.get(&tx_id).await?.unwrap();
                steps[0].error = Some(error.to_string());
                steps[0].failure_kind = Some(kind);
                store.commit(&Commit::new(&tx, &[&steps[0]])).await?;
                anyhow::Ok(tx_id)
            }
        };
        let fixable = plant_failed(FailureKind::Retryable, "downstream unavailable").await?;
        let permanent = plant_failed(FailureKind::Permanent, "insufficient funds").await?;
        assert!(h.host.recovery.scan_once().await? >= 1);
        let done = wait_status(&h, &fixable, "COMPLETED").await?;
        assert_eq!(done["retry_count"], 1, "{done}");
        assert_eq!(done["history"][0]["kind"], "retry", "{done}");
        assert_eq!(
            done["history"][0]["actor"]["type"], "recovery",
            "labelled as recovery, not an operator: {done}"
        );
        assert!(
            done["history"][0]["message"]
                .as_str()
                .unwrap()
                .contains("by recovery on host"),
            "{done}"
        );
        let (_, still) = h.get(&format!("/api/transactions/{permanent}")).await?;
        assert_eq!(
            still["status"], "FAILED",
            "a permanent failure is not retried: {still}"
        );
        assert_eq!(still["retry_count"], 0);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_is_fenced_out() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    let store = h.engine().store();
    let (mut tx, _) = store.get(&id(&v)).await?.unwrap();
    tx.version -= 1;
    tx.status = TxStatus::Executing;
    let err = store.commit(&Commit::new(&tx, &[])).await.unwrap_err();
    assert!(err.to_string().contains("changed underneath"), "{err}");
    let (_, after) = h.get(&format!("/api/transactions/{}", id(&v))).await?;
    assert_eq!(after["status"], "COMPLETED");
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_is_allowed_or_refused_by_status() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    use TxStatus::*;
    // (status, force-complete allowed, force-cancel allowed, retry allowed)
    let table = [
        (Created, true, true, false),
        (Locked, true, true, false),
        (Executing, true, true, false),
        (Confirming, true, false, false),
        (Completed, false, false, false),
        (Failed, true, true, true),
        (Compensating, false, false, false),
        (Compensated, false, false, false),
        (CompensationFailed, true, true, true),
        (Timeout, true, true, true),
        (Cancelled, false, false, false),
    ];
    for (status, complete, cancel, retry) in table {
        for (action, allowed) in [
            ("force-complete", complete),
            ("force-cancel", cancel),
            ("retry", retry),
        ] {
            // A saga whose single step failed cleanly, recorded in `status`.
            let step = match status {
                Completed | Confirming => StepStatus::Completed,
                Created | Locked => StepStatus::Pending,
                Executing => StepStatus::Executing,
                CompensationFailed => StepStatus::CompensationFailed,
                Compensating => StepStatus::Compensating,
                Compensated | Cancelled => StepStatus::Compensated,
                Failed | Timeout => StepStatus::Failed,
            };
            let tx_id = plant(&h, &[("test_ok", step, None)], status, 0, json!({})).await?;
            let (code, body) = h
                .post(
                    &format!("/api/transactions/{tx_id}/{action}"),
                    json!({"reason": "table test"}),
                )
                .await?;
            if allowed {
                assert_eq!(code, 200, "{action} on {status}: {body}");
                let (_, v) = h.get(&format!("/api/transactions/{tx_id}")).await?;
                let kinds: Vec<&str> = v["history"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["kind"].as_str().unwrap())
                    .collect();
                assert!(
                    kinds.contains(&action.replace('-', "_").as_str()),
                    "{action} on {status} is recorded: {v}"
                );
            } else {
                assert_eq!(code, 409, "{action} on {status} must be refused: {body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(status.as_str()),
                    "{body}"
                );
            }
            // Let any saga the action restarted settle before the next one.
            h.engine().drain(Duration::from_secs(10)).await;
        }
    }
    h.stop().await;
    Ok(())
}

/// A saga that keeps getting stuck is resumed `max_retries × 4` times, then left to an
/// operator: recovery stops taking it, says so once with `alert.critical`, and records why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_gives_up_on_a_saga_stuck_too_often() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| {
            c.stuck_threshold = Duration::from_secs(60);
            c.max_retries = 1;
        },
        ..HostOptions::default()
    })
    .await?;
    let tx_id = plant(
        &h,
        &[("test_ok", StepStatus::Executing, None)],
        TxStatus::Executing,
        0,
        json!({}),
    )
    .await?;
    // Four earlier recoveries on record (max_retries 1 × 4), none of which finished it.
    let store = h.engine().store();
    for n in 0..4 {
        store
            .append_history(&rte_tests::rte_host::store::HistoryEntry {
                tx_id: tx_id.clone(),
                at: now_ms() - 3_000_000 + n,
                kind: rte_tests::rte_host::lifecycle::HistoryKind::Recovery,
                actor: None,
                message: format!("resumed (earlier run {n})"),
            })
            .await?;
    }
    let before = h.host.recovery.stats().failed;
    assert_eq!(h.host.recovery.scan_once().await?, 0, "not resumed again");
    assert_eq!(h.host.recovery.scan_once().await?, 0);
    let (_, v) = h.get(&format!("/api/transactions/{tx_id}")).await?;
    assert_eq!(v["status"], "EXECUTING", "left as it was: {v}");
    let kinds: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "recovery",
            "recovery",
            "recovery",
            "recovery",
            "recovery_given_up"
        ],
        "{v}"
    );
    let (_, ev) = h
        .get(&format!("/api/events?tx_id={tx_id}&type=alert.critical"))
        .await?;
    let alerts = ev["events"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "told once, not at every scan: {ev}");
    assert!(
        alerts[0]["error"]
            .as_str()
            .unwrap()
            .contains("needs an operator"),
        "{ev}"
    );
    assert_eq!(h.host.recovery.stats().failed, before + 1);
    // An operator can still end it.
    let (status, _) = h
        .post(
            &format!("/api/transactions/{tx_id}/force-complete"),
            json!({"reason": "checked by hand"}),
        )
        .await?;
    assert_eq!(status, 200);
    h.stop().await;
    Ok(())
}
