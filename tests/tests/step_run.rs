//! `rte step run`: one call of one step of a built component, in the host's sandbox, with
//! its outputs, kv writes, logs and errors reported; the kv file carries state between runs.

use std::process::{Command, Output};

use serde_json::{Value, json};

use rte_tests::{plugin, rte_binary};

fn step_run(args: &[&str]) -> (Output, Value) {
    let out = Command::new(rte_binary().unwrap())
        .args(["step", "run"])
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, report)
}

#[test]
fn runs_execute_and_compensate_against_a_kv_file() {
    let dir = tempfile::tempdir().unwrap();
    let kv = dir.path().join("kv.json");
    let kv_arg = kv.to_str().unwrap();
    let testkit = plugin("testkit");
    let wasm = testkit.to_str().unwrap();
    std::fs::write(&kv, r#"{"counter/c": "41"}"#).unwrap();

    let (out, report) = step_run(&[
        wasm,
        "test_kv_counter",
        "--input",
        r#"{"key": "c"}"#,
        "--kv",
        kv_arg,
        "--tx-id",
        "tx-7",
    ]);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["outputs"], json!({"count": 42}));
    let writes = report["kv_writes"].as_array().unwrap();
    assert!(
        writes.contains(&json!({"key": "counter/c", "value": "42"})),
        "{report}"
    );
    assert!(report["idempotency_key"].is_string(), "{report}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&kv).unwrap()).unwrap();
    assert_eq!(saved["counter/c"], "42");

    // Compensation of the same saga finds its marker and takes the count back.
    let (out, report) = step_run(&[
        wasm,
        "test_kv_counter",
        "--input",
        r#"{"key": "c"}"#,
        "--kv",
        kv_arg,
        "--tx-id",
        "tx-7",
        "--compensate",
    ]);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["phase"], "compensate");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&kv).unwrap()).unwrap();
    assert_eq!(saved["counter/c"], "41");
}

#[test]
fn reports_logs_and_errors_plainly() {
    let testkit = plugin("testkit");
    let wasm = testkit.to_str().unwrap();
    let (out, report) = step_run(&[wasm, "test_log", "--input", r#"{"message": "hi there"}"#]);
    assert!(out.status.success(), "{report}");
    assert!(
        report["logs"]
            .as_array()
            .unwrap()
            .contains(&json!({"level": "info", "message": "hi there"})),
        "{report}"
    );

    let (out, report) = step_run(&[wasm, "test_fail"]);
    assert_eq!(out.status.code(), Some(1), "a failed call exits 1");
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["kind"], "permanent");
    assert_eq!(report["error"]["retryable"], false);
    assert_eq!(report["kv_writes"], json!([]));

    let (out, report) = step_run(&[wasm, "test_trap"]);
    assert_eq!(out.status.code(), Some(1));
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("deliberate panic"), "{message}");
    assert!(
        !message.contains("wasm backtrace"),
        "no runtime noise: {message}"
    );

    // An unknown step is a usage error that names the steps there are.
    let out = Command::new(rte_binary().unwrap())
        .args(["step", "run", wasm, "nope"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no step `nope`") && stderr.contains("test_ok"),
        "{stderr}"
    );
}
