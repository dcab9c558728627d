//! Per-step policy, end to end with a real plugin: testkit's `test_policy` declares in code
//! 1 retry, a 10 ms backoff, a 500 ms call deadline and that it is not idempotent; the saga
//! type `policy_demo` (sagas.toml) gives it 3 retries; the operator's `step_policy` wins over
//! both. The host's own defaults in these tests are 3 retries and a 2 s call deadline.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use rte_tests::{HostOptions, TestHost};

fn attempts(saga: &Value) -> u64 {
    saga["steps"][0]["attempts"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_step_runs_by_its_own_policy_unless_its_saga_type_overrides_it() -> Result<()> {
    let host = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        ..HostOptions::default()
    })
    .await?;

    // The declared policy shows where plugins are listed.
    let (_, plugins) = host.get("/api/plugins").await?;
    let declared = plugins["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["steps"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == "test_policy")
        .expect("test_policy is listed");
    assert_eq!(
        declared["policy"],
        json!({"max_retries": 1, "retry_interval": "10ms", "retry_max_interval": "10ms",
               "timeout": "500ms", "idempotent": false}),
        "{declared}"
    );

    // One retry, as declared (not the host's 3): one failing attempt is survived...
    let ok = host
        .run_saga(json!({"steps": ["test_policy"], "input": {"flaky_times": 1}}))
        .await?;
    assert_eq!(ok["status"], "COMPLETED", "{ok}");
    assert_eq!(ok["output"]["attempts"], 2, "{ok}");
    // ...two are not.
    let failed = host
        .run_saga(json!({"steps": ["test_policy"], "input": {"flaky_times": 2}}))
        .await?;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(attempts(&failed), 2, "{failed}");

    // The saga type gives it 3 retries.
    let typed = host
        .run_saga(json!({"tx_type": "policy_demo", "input": {"flaky_times": 2}}))
        .await?;
    assert_eq!(typed["status"], "COMPLETED", "{typed}");
    assert_eq!(typed["output"]["attempts"], 3, "{typed}");

    // Its own 500 ms deadline, not the host's 2 s; not idempotent, so a call cut short
    // (its effect unknown) is not retried, even with retries left: the saga fails and the
    // step, which may have acted, is compensated.
    let slow = host
        .run_saga(json!({"tx_type": "policy_demo", "input": {"sleep_ms": 1200}}))
        .await?;
    assert_eq!(slow["status"], "COMPENSATED", "{slow}");
    assert_eq!(slow["steps"][0]["failure_kind"], "timeout", "{slow}");
    assert_eq!(attempts(&slow), 1, "{slow}");
    let error = slow["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("500ms"), "{slow}");

    // The effective policy of each step of a type, and where each setting came from.
    let (_, sagas) = host.get("/api/sagas").await?;
    let policy = &sagas["sagas"]["policy_demo"]["policies"]["test_policy"];
    assert_eq!(policy["max_retries"], 3, "{policy}");
    assert_eq!(policy["max_retries_from"], "saga", "{policy}");
    assert_eq!(policy["timeout"], "500ms", "{policy}");
    assert_eq!(policy["timeout_from"], "step", "{policy}");
    assert_eq!(policy["idempotent"], false, "{policy}");
    let debit = &sagas["sagas"]["fund_transfer"]["policies"]["debit"];
    assert_eq!(debit["max_retries_from"], "default", "{debit}");
    Ok(())
}

#[tokio::test]
async fn the_operator_overrides_the_step_and_the_saga_type() -> Result<()> {
    let host = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        configure: |c| {
            c.step_policy.insert(
                "test_policy".into(),
                rte_host::policy::StepPolicy {
                    max_retries: Some(0),
                    timeout: Some(Duration::from_secs(3)),
                    ..Default::default()
                },
            );
        },
        ..HostOptions::default()
    })
    .await?;
    // No retry at all, whatever the type says.
    let failed = host
        .run_saga(json!({"tx_type": "policy_demo", "input": {"flaky_times": 1}}))
        .await?;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(attempts(&failed), 1, "{failed}");
    // A longer deadline than the step asked for: the slow call completes.
    let slow = host
        .run_saga(json!({"tx_type": "policy_demo", "input": {"sleep_ms": 1200}}))
        .await?;
    assert_eq!(slow["status"], "COMPLETED", "{slow}");
    let (_, sagas) = host.get("/api/sagas").await?;
    let policy = &sagas["sagas"]["policy_demo"]["policies"]["test_policy"];
    assert_eq!(policy["max_retries_from"], "operator", "{policy}");
    assert_eq!(policy["timeout"], "3s", "{policy}");
    Ok(())
}
