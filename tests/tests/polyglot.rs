//! One saga across plugins written in Rust, Python and JavaScript, on one host.

use rte_tests::polyglot::polyglot_files;
use rte_tests::{HostOptions, TestHost};
use serde_json::{Value, json};

const STEPS: [&str; 4] = ["test_ok", "py_reserve", "js_notify", "js_fail_if"];

/// Held while a host starts: the first compiles the Python and JavaScript components into
/// the shared artifact cache (minutes in a debug build) and the others then load them from it,
/// rather than all compiling at once on the same cores.
static COMPILING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start() -> anyhow::Result<TestHost> {
    let compiling = COMPILING.lock().await;
    let h = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        extra_files: polyglot_files(&["python", "js"]),
        ..HostOptions::default()
    })
    .await?;
    drop(compiling);
    let (_, plugins) = h.get("/api/plugins").await?;
    for file in ["python.wasm", "js.wasm"] {
        let status = plugins["plugins"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["file"] == file))
            .unwrap_or_else(|| panic!("{file} is not listed: {plugins}"));
        assert!(status["error"].is_null(), "{file} did not load: {status}");
    }
    Ok(h)
}

fn step_statuses(view: &Value) -> Vec<&str> {
    view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect()
}

/// The JavaScript plugin's notification record for saga `tx_id`.
async fn notification(h: &TestHost, tx_id: &str) -> anyhow::Result<Value> {
    let text = h
        .engine()
        .store()
        .kv_get("js", &format!("notify/{tx_id}"))
        .await?
        .expect("js_notify stored a notification");
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_javascript_step_compensates_python_and_javascript_steps() -> anyhow::Result<()> {
    let h = start().await?;
    let input =
        json!({"item": "widget", "qty": 3, "stock": 5, "to": "ops@example.com", "fail": true});
    let v = h.run_saga(json!({"steps": STEPS, "input": input})).await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    assert_eq!(
        step_statuses(&v),
        ["COMPENSATED", "COMPENSATED", "COMPENSATED", "FAILED"]
    );
    let failed = &v["steps"][3];
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("failed on request"),
        "{v}"
    );
    assert_eq!(failed["attempts"], 1, "a permanent error is not retried");

    // The JavaScript compensation retracted the notification.
    let tx_id = v["tx_id"].as_str().unwrap();
    let record = notification(&h, tx_id).await?;
    assert_eq!(record["state"], "retracted", "{record}");
    assert_eq!(record["id"], format!("ntf:{tx_id}"));

    // The Python compensation gave the 3 units back: all 5 can be reserved again.
    let all = h
        .run_saga(json!({"steps": ["py_reserve"], "input": {"item": "widget", "qty": 5}}))
        .await?;
    assert_eq!(all["status"], "COMPLETED", "{all}");
    assert_eq!(all["output"]["reservation"]["remaining"], 0, "{all}");
    let none_left = h
        .run_saga(json!({"steps": ["py_reserve"], "input": {"item": "widget", "qty": 1}}))
        .await?;
    assert_eq!(none_left["status"], "FAILED", "{none_left}");
    assert!(
        none_left["error"]
            .as_str()
            .unwrap()
            .contains("out of stock"),
        "{none_left}"
    );
    assert_eq!(none_left["steps"][0]["attempts"], 1);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_python_and_javascript_steps_complete_one_saga() -> anyhow::Result<()> {
    let h = start().await?;
    let input = json!({"item": "gadget", "qty": 2, "stock": 10, "to": "ops@example.com", "fail": false, "greeting": "hi"});
    let v = h.run_saga(json!({"steps": STEPS, "input": input})).await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(step_statuses(&v), ["COMPLETED"; 4]);
    let tx_id = v["tx_id"].as_str().unwrap();
    let out = &v["output"];
    // Rust echoed the input; Python reserved; JavaScript saw Python's output.
    assert_eq!(out["greeting"], "hi", "{v}");
    assert_eq!(
        out["reservation"],
        json!({"id": format!("rsv:{tx_id}:1"), "item": "gadget", "qty": 2, "remaining": 8}),
        "{v}"
    );
    assert_eq!(out["notification_id"], format!("ntf:{tx_id}"), "{v}");
    assert!(
        out["notification"]
            .as_str()
            .unwrap()
            .contains("2 x gadget reserved"),
        "{v}"
    );
    assert_eq!(out["checked"], true, "{v}");
    assert_eq!(notification(&h, tx_id).await?["state"], "sent");
    h.stop().await;
    Ok(())
}
