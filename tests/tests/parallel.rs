//! Parallel groups on every backend: branches run at once (within their cap), their outputs
//! merge, a branch failing for good stops the group and compensation undoes every
//! completed step in the reverse order of completion, an output set by two branches is a
//! clear failure, malformed groups are refused, and a host killed mid-group is resumed by
//! the next one without running any branch twice for effect.

use anyhow::{Context, Result};
use rte_tests::rte_host::lifecycle::{AttemptOutcome, Phase};
use rte_tests::rte_host::store::{StepRecord, TxRecord};
use rte_tests::{HostOptions, TestHost, process::HostProcess};
use serde_json::{Value, json};

/// A group of three `test_branch` steps between two plain steps.
fn trip(max_concurrent: Option<u32>) -> Value {
    let mut group = json!({"parallel": ["test_branch", "test_branch", "test_branch"]});
    if let Some(n) = max_concurrent {
        group["max_concurrent"] = json!(n);
    }
    json!(["test_branch", group, "test_ok"])
}

/// The saga as stored.
async fn stored(h: &TestHost, v: &Value) -> Result<(TxRecord, Vec<StepRecord>)> {
    let id = v["tx_id"].as_str().context("tx_id")?;
    Ok(h.engine().get(id).await?)
}

/// The span of step `s`'s completed execute: (start, end) in ms.
fn executed(s: &StepRecord) -> (i64, i64) {
    let a = s
        .attempt_log
        .iter()
        .rfind(|a| a.phase == Phase::Execute && a.outcome == AttemptOutcome::Completed)
        .unwrap_or_else(|| panic!("step {} has no completed execute", s.step_index));
    (a.started_at, a.ended_at)
}

/// When step `s`'s compensation completed.
fn compensated_at(s: &StepRecord) -> i64 {
    s.attempt_log
        .iter()
        .rfind(|a| a.phase == Phase::Compensate && a.outcome == AttemptOutcome::Completed)
        .map(|a| a.ended_at)
        .unwrap_or_else(|| panic!("step {} was not compensated", s.step_index))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_runs_its_branches_at_once_within_its_cap() -> Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        let v = h
            .run_saga(json!({"steps": trip(None), "input": {"sleep_ms": 400, "sleep_ms_0": 0}}))
            .await?;
        assert_eq!(v["status"], "COMPLETED", "{backend:?}: {v}");
        for i in 1..=3 {
            assert_eq!(v["output"][format!("branch_{i}")], i, "{v}");
            assert_eq!(
                v["steps"][i]["group"],
                json!({"first": 1, "max_concurrent": 3}),
                "{v}"
            );
        }
        assert!(v["steps"][0].get("group").is_none(), "{v}");
        let (tx, steps) = stored(&h, &v).await?;
        assert_eq!(tx.total_steps, 5);
        let spans: Vec<(i64, i64)> = steps[1..4].iter().map(executed).collect();
        // Every branch ran while every other did: the latest start precedes the earliest end.
        let last_start = spans.iter().map(|s| s.0).max().unwrap();
        let first_end = spans.iter().map(|s| s.1).min().unwrap();
        assert!(
            last_start < first_end,
            "{backend:?}: the branches overlap: {spans:?}"
        );
        let sum: i64 = spans.iter().map(|s| s.1 - s.0).sum();
        let wall = spans.iter().map(|s| s.1).max().unwrap() - spans[0].0.min(last_start);
        assert!(
            wall < sum,
            "{backend:?}: group took {wall} ms of {sum} ms of calls"
        );
        // The step after the group started once all branches ended.
        let after = executed(&steps[4]).0;
        assert!(spans.iter().all(|s| s.1 <= after), "{spans:?} then {after}");
        assert!(executed(&steps[0]).1 <= spans.iter().map(|s| s.0).min().unwrap());
        let (_, metrics) = h.get("/metrics").await?;
        let metrics = metrics.as_str().unwrap_or_default();
        assert!(
            metrics.contains("rte_parallel_groups_total{outcome=\"completed\"}"),
            "{metrics}"
        );

        // Capped at one: the branches run one after another, in order.
        let v = h
            .run_saga(json!({"steps": trip(Some(1)), "input": {"sleep_ms": 100}}))
            .await?;
        assert_eq!(v["status"], "COMPLETED", "{backend:?}: {v}");
        let (_, steps) = stored(&h, &v).await?;
        let spans: Vec<(i64, i64)> = steps[1..4].iter().map(executed).collect();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{backend:?}: one at a time: {spans:?}"
            );
        }
        let order: Vec<_> = steps.iter().map(|s| s.completed_order).collect();
        assert_eq!(order, [Some(1), Some(2), Some(3), Some(4), Some(5)]);
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_branch_compensates_in_reverse_completion_order() -> Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        // Branch 2 is slow, branch 3 fails while it runs, branch 1 completed first: branch
        // 2 finishes, then 2, 1 and the step before the group are undone, in that order.
        let v = h
            .run_saga(json!({
                "steps": trip(None),
                "input": {"sleep_ms_1": 0, "sleep_ms_2": 900, "sleep_ms_3": 300, "fail_index": 3}
            }))
            .await?;
        assert_eq!(v["status"], "COMPENSATED", "{backend:?}: {v}");
        let (tx, steps) = stored(&h, &v).await?;
        let status: Vec<&str> = steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(
            status,
            [
                "COMPENSATED",
                "COMPENSATED",
                "COMPENSATED",
                "FAILED",
                "SKIPPED"
            ],
            "{backend:?}: {v}"
        );
        assert!(
            tx.last_error
                .as_deref()
                .is_some_and(|e| e.contains("branch 3 fails")),
            "{tx:?}"
        );
        assert_eq!(
            steps[3].compensation_attempts, 0,
            "a permanent failure did not act"
        );
        assert_eq!(
            [1, 2, 0].map(|i| steps[i].completed_order),
            [Some(2), Some(3), Some(1)],
            "completed: the step before, branch 1, then the slow branch 2"
        );
        let undone = [2, 1, 0].map(|i| compensated_at(&steps[i]));
        assert!(
            undone.windows(2).all(|w| w[0] <= w[1]),
            "{backend:?}: undone in reverse completion order: {undone:?}"
        );
        // Branch 2 ran to its end after branch 3 failed.
        assert!(executed(&steps[2]).1 >= steps[3].finished_at.unwrap_or(i64::MAX));

        // Capped at one, the first branch fails: the others never start.
        let v = h
            .run_saga(json!({"steps": trip(Some(1)), "input": {"fail_index": 1}}))
            .await?;
        assert_eq!(v["status"], "COMPENSATED", "{backend:?}: {v}");
        let (_, steps) = stored(&h, &v).await?;
        let status: Vec<&str> = steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(
            status,
            ["COMPENSATED", "FAILED", "SKIPPED", "SKIPPED", "SKIPPED"],
            "{v}"
        );
        for s in &steps[2..] {
            assert!(s.attempt_log.is_empty(), "never called: {s:?}");
        }

        // A retryable failure in one branch is retried while the others go on.
        let v = h
            .run_saga(json!({"steps": trip(None), "input": {"flaky_2": 2, "sleep_ms": 50}}))
            .await?;
        assert_eq!(v["status"], "COMPLETED", "{backend:?}: {v}");
        let (_, steps) = stored(&h, &v).await?;
        assert_eq!(steps[2].attempts, 3, "{v}");
        assert_eq!([1, 3].map(|i| steps[i].attempts), [1, 1], "{v}");
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_set_by_two_branches_fails_clearly() -> Result<()> {
    for backend in rte_tests::backends() {
        let h = TestHost::start(HostOptions {
            backend,
            ..HostOptions::default()
        })
        .await?;
        let v = h
            .run_saga(json!({
                "steps": trip(None),
                "input": {"same_output": true, "sleep_ms_1": 0, "sleep_ms_2": 200, "sleep_ms_3": 400}
            }))
            .await?;
        assert_eq!(v["status"], "COMPENSATED", "{backend:?}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("output `shared` was already set by step 1 (`test_branch`)"),
            "{backend:?}: {v}"
        );
        let (_, steps) = stored(&h, &v).await?;
        for s in &steps[2..4] {
            assert_eq!(
                s.failure_kind.map(|k| k.as_str()),
                Some("output_conflict"),
                "{v}"
            );
            assert!(s.output.is_none(), "a refused result is not kept: {v}");
            // The refused branch ran, so it is compensated like the others.
            assert_eq!(s.status.as_str(), "COMPENSATED", "{v}");
        }
        assert_eq!(steps[1].output, json!({"shared": 1}).as_object().cloned());
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_groups_are_refused_with_a_clear_error() -> Result<()> {
    let h = TestHost::start(HostOptions::default()).await?;
    for (steps, expected) in [
        (json!([{"parallel": ["test_ok"]}]), "2 to 32 steps, got 1"),
        (
            json!([{"parallel": ["test_ok", "test_ok"], "max_concurrent": 0}]),
            "at least 1",
        ),
        (
            json!([{"parallel": ["test_ok", "test_ok"], "cap": 2}]),
            "unknown key `cap`",
        ),
        (
            json!([{"parallel": ["test_ok", ["test_ok"]]}]),
            "invalid type",
        ),
        (
            json!([{"parallel": ["test_ok", "nope"]}]),
            "unknown step `nope`",
        ),
        (json!([7]), "a step name or a parallel group"),
    ] {
        let (status, body) = h.post("/api/transactions", json!({"steps": steps})).await?;
        assert!((400..500).contains(&status), "{steps}: {status} {body}");
        let text = body.to_string();
        assert!(text.contains(expected), "{steps}: {body}");
    }
    h.stop().await;
    Ok(())
}

/// The host is killed while a group's slow branches run (one completed): the next host
/// resumes only the branches that did not complete, each branch's effect counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_group_resumes_only_unfinished_branches() -> Result<()> {
    for backend in rte_tests::backends() {
        let dir = tempfile::tempdir()?;
        let url = rte_tests::fresh_database(backend, dir.path()).await?;
        let settings = [
            "retry_interval=20ms",
            "stuck_threshold=1s",
            "recovery_interval=300ms",
        ];
        let first = HostProcess::start_on(dir.path(), &url, &["testkit"], &settings)?;
        first.get("/healthz").await?;
        let created: Value = reqwest::Client::new()
            .post(format!("{}/api/transactions", first.url))
            .json(&json!({
                "steps": trip(None),
                "input": {"sleep_ms_1": 0, "sleep_ms_2": 3000, "sleep_ms_3": 3000}
            }))
            .send()
            .await?
            .json()
            .await?;
        let id = created["tx_id"].as_str().context("tx_id")?.to_string();
        let path = format!("/api/transactions/{id}");
        let mid = first
            .poll(&path, |v| v["steps"][1]["status"] == "COMPLETED")
            .await?;
        assert_eq!(mid["steps"][2]["status"], "EXECUTING", "{backend:?}: {mid}");
        first.kill();

        let second = HostProcess::start_on(dir.path(), &url, &["testkit"], &settings)?;
        let done = second
            .poll(&path, |v| {
                v["status"] == "COMPLETED" || v["status"] == "COMPENSATED"
            })
            .await?;
        assert_eq!(done["status"], "COMPLETED", "{backend:?}: {done}");
        let executes = |i: u64| {
            done["attempts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["phase"] == "execute" && a["step_index"] == i)
                .map(|a| a["outcome"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(executes(1), ["completed"], "branch 1 not run again: {done}");
        for i in [2, 3] {
            assert_eq!(executes(i), ["failed", "completed"], "{backend:?}: {done}");
        }
        // Each branch's effect counted once.
        let client = reqwest::Client::new();
        for i in 0..4 {
            let read: Value = client
                .post(format!("{}/api/transactions?wait=30s", second.url))
                .json(&json!({
                    "steps": ["test_kv_read"],
                    "input": {"read_key": format!("branch/{id}/{i}")}
                }))
                .send()
                .await?
                .json()
                .await?;
            assert_eq!(
                read["output"]["value"], "1",
                "{backend:?}: step {i}: {read}"
            );
        }
        second.kill();
    }
    Ok(())
}
