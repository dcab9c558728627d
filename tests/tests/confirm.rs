//! The confirm phase (TCC) and the two `rte:saga` versions a host loads: confirms run once
//! every step executed, in step order, are retried until they succeed, are never followed
//! by compensation, and run once for effect even when the host is killed between them; a
//! plugin built against `rte:saga@0.1.0` loads and runs unchanged beside 0.2.0 ones.

use anyhow::{Context, Result};
use rte_tests::process::HostProcess;
use rte_tests::{HostOptions, TestHost, backends};
use serde_json::{Value, json};

const PLUGINS: [&str; 3] = ["travel", "testkit", "legacy"];

/// The (step index, outcome) of every attempt of `phase`, in order.
fn attempts(v: &Value, phase: &str) -> Vec<(u64, String)> {
    v["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["phase"] == phase)
                .map(|a| {
                    (
                        a["step_index"].as_u64().unwrap_or(99),
                        a["outcome"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn statuses(v: &Value) -> Vec<String> {
    v["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s["status"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `(held, booked)` seats of `flight`, read through a saga.
async fn flight(h: &TestHost, flight: &str) -> Result<(i64, i64)> {
    let v = h
        .run_saga(json!({"steps": ["flight_status"], "input": {"flight": flight}}))
        .await?;
    let out = &v["output"];
    Ok((
        out["held"].as_i64().context("held")?,
        out["booked"].as_i64().context("booked")?,
    ))
}

/// How many times `test_confirm`'s confirm took effect for step `index` of saga `tx_id`.
async fn confirm_count(h: &TestHost, tx_id: &str, index: u32) -> Result<Value> {
    let v = h
        .run_saga(json!({"steps": ["test_kv_read"], "input": {"read_key": format!("confirmed/{tx_id}/{index}")}}))
        .await?;
    Ok(v["output"]["value"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_make_held_seats_final_on_every_backend() -> Result<()> {
    for backend in backends() {
        let h = TestHost::start(HostOptions {
            backend,
            plugins: PLUGINS.to_vec(),
            ..HostOptions::default()
        })
        .await?;

        // Try, then confirm: the hold becomes a booking; a step without confirm stays
        // COMPLETED; each confirm ran once, in step order, after every execute.
        let v = h
            .run_saga(json!({
                "steps": ["hold_seat", "test_confirm", "test_ok"],
                "input": {"flight": "RT1", "seats": 2}
            }))
            .await?;
        assert_eq!(v["status"], "COMPLETED", "{backend:?}: {v}");
        assert_eq!(statuses(&v), ["CONFIRMED", "CONFIRMED", "COMPLETED"], "{v}");
        assert_eq!(
            attempts(&v, "confirm"),
            [(0, "completed".to_string()), (1, "completed".to_string())],
            "{v}"
        );
        let order: Vec<String> = v["attempts"]
            .as_array()
            .context("attempts")?
            .iter()
            .map(|a| a["phase"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            order,
            ["execute", "execute", "execute", "confirm", "confirm"],
            "{v}"
        );
        let id = v["tx_id"].as_str().context("tx_id")?;
        assert_eq!(flight(&h, "RT1").await?, (0, 2), "{backend:?}");
        assert_eq!(confirm_count(&h, id, 1).await?, "1");
        let (_, events) = h
            .get(&format!("/api/events?tx_id={id}&type=step.confirmed"))
            .await?;
        assert_eq!(
            events["events"].as_array().map(Vec::len),
            Some(2),
            "{events}"
        );

        // A later step fails: the hold is released (cancel), and no confirm is called.
        let v = h
            .run_saga(json!({
                "steps": ["hold_seat", "test_confirm", "test_fail"],
                "input": {"flight": "RT1", "seats": 3}
            }))
            .await?;
        assert_eq!(v["status"], "COMPENSATED", "{backend:?}: {v}");
        assert!(attempts(&v, "confirm").is_empty(), "{v}");
        assert_eq!(statuses(&v)[0], "COMPENSATED", "{v}");
        let id = v["tx_id"].as_str().context("tx_id")?;
        assert_eq!(flight(&h, "RT1").await?, (0, 2), "{backend:?}");
        assert_eq!(confirm_count(&h, id, 1).await?, Value::Null);

        // A failing confirm is retried until it succeeds; its effect happens once and
        // the saga is not compensated nor counted as retried.
        let v = h
            .run_saga(json!({
                "steps": ["hold_seat", "test_confirm"],
                "input": {"flight": "RT2", "confirm_fail_times": 3}
            }))
            .await?;
        assert_eq!(v["status"], "COMPLETED", "{backend:?}: {v}");
        assert_eq!(
            attempts(&v, "confirm"),
            [
                (0, "completed".to_string()),
                (1, "failed".to_string()),
                (1, "failed".to_string()),
                (1, "failed".to_string()),
                (1, "completed".to_string())
            ],
            "{v}"
        );
        assert_eq!(v["retry_count"], 0, "{v}");
        assert_eq!(v["steps"][1]["error"], Value::Null, "{v}");
        let id = v["tx_id"].as_str().context("tx_id")?;
        assert_eq!(confirm_count(&h, id, 1).await?, "1");
        assert_eq!(flight(&h, "RT2").await?, (0, 1));

        // A full flight fails at the try: nothing held, nothing to confirm.
        let v = h
            .run_saga(json!({
                "steps": ["hold_seat"],
                "input": {"flight": "RT3", "seats": 5, "capacity": 4}
            }))
            .await?;
        assert_eq!(v["status"], "FAILED", "{v}");
        assert_eq!(flight(&h, "RT3").await?, (0, 0));
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_0_1_0_loads_and_runs_unchanged() -> Result<()> {
    let h = TestHost::start(HostOptions {
        plugins: PLUGINS.to_vec(),
        ..HostOptions::default()
    })
    .await?;
    let (_, plugins) = h.get("/api/plugins").await?;
    let wit = |file: &str| {
        plugins["plugins"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["file"] == file))
            .map(|p| p["wit"].clone())
    };
    assert_eq!(wit("legacy.wasm"), Some(json!("0.1.0")), "{plugins}");
    assert_eq!(wit("travel.wasm"), Some(json!("0.2.0")), "{plugins}");
    assert_eq!(wit("testkit.wasm"), Some(json!("0.2.0")), "{plugins}");

    // Beside a step with a confirm: the 0.1.0 step is executed and left COMPLETED.
    let v = h
        .run_saga(json!({
            "steps": ["legacy_count", "hold_seat"],
            "input": {"key": "k", "flight": "L1"}
        }))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(statuses(&v), ["COMPLETED", "CONFIRMED"], "{v}");
    assert_eq!(v["output"]["legacy_count"], 1, "{v}");
    assert_eq!(attempts(&v, "confirm"), [(1, "completed".to_string())]);

    // Its compensation runs as before, with its kv writes.
    let v = h
        .run_saga(json!({"steps": ["legacy_count", "test_fail"], "input": {"key": "k"}}))
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    assert_eq!(statuses(&v)[0], "COMPENSATED", "{v}");
    let v = h
        .run_saga(json!({"steps": ["legacy_count"], "input": {"key": "k"}}))
        .await?;
    assert_eq!(
        v["output"]["legacy_count"], 2,
        "one count kept, one undone: {v}"
    );
    h.stop().await;
    Ok(())
}

/// The host is killed while the second of two confirms runs: the next host's recovery
/// finishes the saga without calling the first confirm again, and the second takes effect
/// once (the killed call's writes never committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_runs_once_when_the_host_is_killed_between_confirms() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = [
        "retry_interval=20ms",
        "step_timeout=30s",
        "stuck_threshold=1s",
        "recovery_interval=300ms",
    ];
    let plugins = ["travel", "testkit"];
    let first = HostProcess::start(dir.path(), &plugins, &settings)?;
    first.get("/healthz").await?;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/transactions", first.url))
        .json(&json!({
            "steps": ["hold_seat", "test_confirm"],
            "input": {"flight": "K1", "seats": 2, "confirm_sleep_ms": 4000}
        }))
        .send()
        .await?
        .json()
        .await?;
    let id = created["tx_id"].as_str().context("tx_id")?.to_string();
    let path = format!("/api/transactions/{id}");
    let between = first
        .poll(&path, |v| v["steps"][0]["status"] == "CONFIRMED")
        .await?;
    assert_eq!(between["status"], "CONFIRMING", "{between}");
    assert_eq!(statuses(&between), ["CONFIRMED", "COMPLETED"]);
    first.kill();

    let second = HostProcess::start(dir.path(), &plugins, &settings)?;
    let done = second.poll(&path, |v| v["status"] != "CONFIRMING").await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(statuses(&done), ["CONFIRMED", "CONFIRMED"], "{done}");
    let confirms = attempts(&done, "confirm");
    assert_eq!(
        confirms.iter().filter(|(i, _)| *i == 0).count(),
        1,
        "the first confirm is not called again: {done}"
    );
    // The killed call is in the history as a lost attempt, the next one completed it.
    let second_step: Vec<&Value> = done["attempts"]
        .as_array()
        .context("attempts")?
        .iter()
        .filter(|a| a["phase"] == "confirm" && a["step_index"] == 1)
        .collect();
    assert_eq!(second_step.len(), 2, "{done}");
    assert_eq!(second_step[0]["outcome"], "failed", "{done}");
    assert_eq!(second_step[0]["failure_kind"], "lost", "{done}");
    assert_eq!(second_step[0]["attempt"], 1, "{done}");
    assert_eq!(second_step[1]["outcome"], "completed", "{done}");
    assert_eq!(second_step[1]["attempt"], 2, "{done}");

    let client = reqwest::Client::new();
    let run = |body: Value| {
        let client = client.clone();
        let url = format!("{}/api/transactions?wait=30s", second.url);
        async move {
            let v: Value = client.post(url).json(&body).send().await?.json().await?;
            anyhow::Ok(v)
        }
    };
    let status = run(json!({"steps": ["flight_status"], "input": {"flight": "K1"}})).await?;
    assert_eq!(status["output"]["held"], 0, "{status}");
    assert_eq!(status["output"]["booked"], 2, "booked once: {status}");
    let count =
        run(json!({"steps": ["test_kv_read"], "input": {"read_key": format!("confirmed/{id}/1")}}))
            .await?;
    assert_eq!(
        count["output"]["value"], "1",
        "the killed confirm's writes did not commit: {count}"
    );
    second.kill();
    Ok(())
}
