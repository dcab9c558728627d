//! Metrics: the engine records the seed's metrics itself; a real scrape of `/metrics`
//! shows each move as sagas succeed, compensate, trip a breaker and get recovered, and
//! `promtool check metrics` accepts the exposition.

use std::collections::HashMap;
use std::time::Duration;

use rte_tests::{HostOptions, TestHost, services_required};
use serde_json::json;

/// Parse the text exposition into `name{labels}` → value (samples only).
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(h: &TestHost) -> anyhow::Result<(String, HashMap<String, f64>)> {
    let text = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await?
        .text()
        .await?;
    let parsed = parse(&text);
    Ok((text, parsed))
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_sagas_breakers_and_recovery() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        configure: |c| {
            c.circuit_threshold = 2;
            c.max_retries = 1;
        },
        ..HostOptions::default()
    })
    .await?;
    let (_, before) = scrape(&h).await?;

    h.open_account("m1", 100.0).await?;
    h.open_account("m2", 0.0).await?;
    let ok = h
        .run_saga(json!({"tx_type": "fund_transfer", "input": {"from_account": "m1", "to_account": "m2", "amount": 1, "currency": "USD"}}))
        .await?;
    assert_eq!(ok["status"], "COMPLETED");
    let comp = h
        .run_saga(json!({"tx_type": "probe", "steps": ["test_ok", "test_fail"], "input": {}}))
        .await?;
    assert_eq!(comp["status"], "COMPENSATED");
    // Two trapping calls (one retry) open the testkit breaker.
    let trapped = h
        .run_saga(json!({"steps": ["test_trap"], "input": {}}))
        .await?;
    assert!(
        trapped["status"] == "COMPENSATED" || trapped["status"] == "FAILED",
        "{trapped}"
    );
    let recovered = h.host.recovery.scan_once().await?;
    assert_eq!(recovered, 0);

    let (text, after) = scrape(&h).await?;
    let delta = |key: &str| get(&after, key) - get(&before, key);
    assert_eq!(
        delta("rte_tx_started_total{tx_type=\"fund_transfer\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta("rte_tx_completed_total{tx_type=\"fund_transfer\"}"),
        1.0
    );
    assert_eq!(
        delta("rte_tx_completed_total{tx_type=\"open_account\"}"),
        2.0
    );
    // Ad-hoc saga types are labelled `adhoc`, so labels stay bounded.
    assert_eq!(
        delta("rte_tx_started_total{tx_type=\"adhoc\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(delta("rte_tx_failed_total{tx_type=\"adhoc\"}"), 2.0);
    assert_eq!(delta("rte_tx_compensated_total{tx_type=\"adhoc\"}"), 2.0);
    assert_eq!(
        delta("rte_tx_duration_seconds_count{status=\"COMPLETED\",tx_type=\"fund_transfer\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(delta("rte_step_started_total{step=\"debit\"}"), 1.0);
    assert_eq!(delta("rte_step_completed_total{step=\"credit\"}"), 1.0);
    assert_eq!(
        delta("rte_step_failed_total{kind=\"permanent\",phase=\"execute\",step=\"test_fail\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta("rte_step_failed_total{kind=\"trap\",phase=\"execute\",step=\"test_trap\"}"),
        2.0,
        "{text}"
    );
    assert!(delta("rte_step_duration_seconds_count{phase=\"compensate\",step=\"test_ok\"}") >= 1.0);
    assert_eq!(
        get(
            &after,
            "rte_circuit_breaker_state{service=\"testkit:testkit\"}"
        ),
        1.0,
        "open: {text}"
    );
    assert!(delta("rte_lock_acquired_total") >= 3.0);
    assert!(delta("rte_lock_acquire_duration_seconds_count") >= 3.0);
    assert!(delta("rte_store_commit_duration_seconds_count") >= 5.0);
    assert!(text.contains("rte_recovery_scanned_total"));
    assert!(text.contains("rte_recovery_processed_total"));
    assert!(
        !text.contains(ok["tx_id"].as_str().unwrap()),
        "no saga ids as labels"
    );

    // A reset closes the breaker and the gauge follows.
    let (status, _) = h
        .post("/api/circuit-breakers/testkit:testkit/reset", json!({}))
        .await?;
    assert_eq!(status, 200);
    let (_, after_reset) = scrape(&h).await?;
    assert_eq!(
        get(
            &after_reset,
            "rte_circuit_breaker_state{service=\"testkit:testkit\"}"
        ),
        0.0
    );

    promtool_accepts(&text).await?;
    h.stop().await;
    Ok(())
}

async fn promtool_accepts(text: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if !services_required() => {
            eprintln!("skipping promtool check: {e}");
            return Ok(());
        }
        Err(e) => anyhow::bail!("promtool is required (RTE_REQUIRE_SERVICES=1): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await?;
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await??;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool rejected the metrics: {report}"
    );
    Ok(())
}
