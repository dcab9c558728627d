//! What a plugin writes to stdout and stderr reaches the host's log, tagged with the saga
//! and step, and a flood of it is cut short instead of filling the log.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use rte_tests::process::HostProcess;

#[tokio::test]
async fn plugin_stdout_and_stderr_reach_the_log_tagged_and_rate_limited() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = HostProcess::start(dir.path(), &["testkit"], &[])?;
    host.poll("/readyz", |v| !v.is_null()).await?;
    let client = reqwest::Client::new();
    let view: serde_json::Value = client
        .post(format!("{}/api/transactions?wait=60s", host.url))
        .json(&json!({"steps": ["test_print"], "input": {"message": "shout", "lines": 5000}}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    let tx_id = view["tx_id"].as_str().unwrap().to_string();

    // Lines are written as the call runs; give the log a moment to reach the file.
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(dir.path().join("rte.log"))?;
        if log.contains("lines dropped") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = log
        .lines()
        .find(|l| l.contains("shout 0"))
        .unwrap_or_else(|| panic!("stdout not in the log:\n{log}"));
    assert!(
        first.contains(&tx_id) && first.contains("test_print"),
        "the line names its saga and step: {first}"
    );
    let printed = log.lines().filter(|l| l.contains("shout ")).count();
    assert!(
        (100..1000).contains(&printed),
        "5000 lines are cut to the plugin's rate ({printed} logged)"
    );
    assert!(log.contains("lines dropped"), "the cut is reported:\n{log}");

    // Once the rate has refilled, stderr comes through too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let view: serde_json::Value = client
        .post(format!("{}/api/transactions?wait=60s", host.url))
        .json(&json!({"steps": ["test_print"], "input": {"message": "whisper", "lines": 0}}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    for _ in 0..100 {
        log = std::fs::read_to_string(dir.path().join("rte.log"))?;
        if log.contains("whisper on stderr") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        log.contains("whisper on stderr"),
        "stderr not in the log:\n{log}"
    );
    Ok(())
}
