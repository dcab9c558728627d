//! Hostile plugins: real components from `plugins/testkit` that loop forever, hoard memory,
//! recurse without end, flood their output or panic. Each must end as a failed step with a
//! clear error while the host stays healthy and the sagas running beside it complete. Files
//! that are not loadable components are refused at load with the reason in `/api/plugins`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rte_tests::{HostOptions, TestHost};
use serde_json::{Value, json};

const STEP_TIMEOUT: Duration = Duration::from_secs(1);

/// Short deadlines and no retries, so each hostile step fails once and fast.
fn strict(c: &mut rte_tests::rte_host::Config) {
    c.step_timeout = STEP_TIMEOUT;
    c.max_retries = 0;
    c.plugin_memory_mb = 32;
    c.plugin_max_output_kb = 64;
}

async fn strict_host() -> anyhow::Result<TestHost> {
    TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        configure: strict,
        ..HostOptions::default()
    })
    .await
}

/// The hostile cases: step, input, and what its error must say.
const HOSTILE: &[(&str, &str, &[&str])] = &[
    ("test_spin", "{}", &["kind:timeout", "deadline"]),
    ("test_oom", "{}", &["kind:memory", "memory limit of 32 MiB"]),
    ("test_recurse", "{}", &["kind:trap", "stack"]),
    (
        "test_big_output",
        r#"{"bytes": 1048576}"#,
        &["output too large", "limit"],
    ),
    (
        "test_trap",
        "{}",
        &[
            "kind:trap",
            "plugin aborted",
            "panicked",
            "test_trap: deliberate panic",
        ],
    ),
];

/// Run `step` alone and check it failed, once, with every one of `needles` in its error. (A
/// trapped or timed-out step is compensated too, since its effect is unknown.)
async fn assert_fails_clearly(
    h: &TestHost,
    step: &str,
    input: &str,
    needles: &[&str],
) -> anyhow::Result<()> {
    let input: Value = serde_json::from_str(input)?;
    let v = h.run_saga(json!({"steps": [step], "input": input})).await?;
    let ended = |s: &Value| s == "FAILED" || s == "COMPENSATED";
    assert!(ended(&v["status"]), "{step}: {v}");
    let s = &v["steps"][0];
    assert!(ended(&s["status"]), "{step}: {v}");
    assert_eq!(s["attempts"], 1, "{step}: {v}");
    let err = s["error"].as_str().unwrap_or_default();
    for needle in needles {
        match needle.strip_prefix("kind:") {
            Some(kind) => assert_eq!(s["failure_kind"], *kind, "{step}: {v}"),
            None => assert!(err.contains(needle), "{step}: `{needle}` not in: {err}"),
        }
    }
    Ok(())
}

/// The host answers and still runs an ordinary saga to the end.
async fn assert_healthy(h: &TestHost) -> anyhow::Result<()> {
    let (status, _) = h.get("/healthz").await?;
    assert_eq!(status, 200);
    let (status, ready) = h.get("/readyz").await?;
    assert_eq!(status, 200, "{ready}");
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {"after": true}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["output"]["after"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_is_stopped_at_its_deadline() -> anyhow::Result<()> {
    let h = strict_host().await?;
    let started = Instant::now();
    assert_fails_clearly(&h, "test_spin", "{}", &["kind:timeout", "deadline of 1s"]).await?;
    // Only a generous upper bound: the loop must not run on past its deadline.
    let elapsed = started.elapsed();
    assert!(
        elapsed < STEP_TIMEOUT + Duration::from_secs(5),
        "stopped after {elapsed:?}"
    );
    assert_healthy(&h).await?;
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_step_fails_with_a_clear_error() -> anyhow::Result<()> {
    let h = strict_host().await?;
    for (step, input, needles) in HOSTILE.iter().skip(1) {
        assert_fails_clearly(&h, step, input, needles).await?;
        assert_healthy(&h).await?;
    }
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_blocked_past_the_deadline_is_cut() -> anyhow::Result<()> {
    // `test_sleep` waits in a WASI clock poll, where epoch interruption cannot reach it: the
    // call's own timeout must end it.
    let h = strict_host().await?;
    let started = Instant::now();
    assert_fails_clearly(
        &h,
        "test_sleep",
        r#"{"sleep_ms": 60000}"#,
        &["kind:timeout", "deadline"],
    )
    .await?;
    assert!(started.elapsed() < STEP_TIMEOUT + Duration::from_secs(5));
    assert_healthy(&h).await?;
    h.stop().await;
    Ok(())
}

// One worker thread: if a spinning guest held it, nothing else (not even the API) could
// run until the deadline, so the saga started beside it could not finish first.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_spinning_guest_does_not_hold_its_worker_thread() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        configure: |c| {
            strict(c);
            c.step_timeout = Duration::from_secs(5);
        },
        ..HostOptions::default()
    })
    .await?;
    let (status, spin) = h
        .post(
            "/api/transactions",
            json!({"steps": ["test_spin"], "input": {}}),
        )
        .await?;
    assert_eq!(status, 201, "{spin}");
    let spin_id = spin["tx_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, events) = h
            .get(&format!("/api/events?tx_id={spin_id}&type=step.started"))
            .await?;
        if events["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the spin step never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = h
        .run_saga(json!({"steps": ["test_ok", "test_sleep"], "input": {"sleep_ms": 50}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    let (_, spin) = h.get(&format!("/api/transactions/{spin_id}")).await?;
    assert_eq!(
        spin["status"], "LOCKED",
        "still spinning in its first step: {spin}"
    );
    // And its deadline still ends it.
    loop {
        let (_, spin) = h.get(&format!("/api/transactions/{spin_id}")).await?;
        if spin["status"] != "LOCKED" && spin["status"] != "EXECUTING" {
            let err = spin["steps"][0]["error"].as_str().unwrap_or_default();
            assert!(err.contains("deadline"), "{spin}");
            break;
        }
        assert!(Instant::now() < deadline, "the spin never ended: {spin}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_beside_hostile_ones_complete() -> anyhow::Result<()> {
    let h = Arc::new(
        TestHost::start(HostOptions {
            plugins: vec!["testkit"],
            configure: |c| {
                strict(c);
                // Room for the neighbours' sleeps on a loaded machine.
                c.step_timeout = Duration::from_secs(3);
                // The hostile steps share the neighbours' service: ten failures would open
                // its breaker, which is the breaker working, not the sandbox failing.
                c.circuit_threshold = 1000;
            },
            ..HostOptions::default()
        })
        .await?,
    );
    let mut hostile = tokio::task::JoinSet::new();
    for round in 0..2 {
        for (step, input, needles) in HOSTILE {
            let h = h.clone();
            hostile.spawn(async move {
                assert_fails_clearly(&h, step, input, needles)
                    .await
                    .map_err(|e| e.context(format!("{step}, round {round}")))
            });
        }
    }
    let mut neighbours = tokio::task::JoinSet::new();
    for i in 0..10 {
        let h = h.clone();
        neighbours.spawn(async move {
            let body = if i % 2 == 0 {
                json!({"steps": ["test_ok", "test_ok"], "input": {"n": i}})
            } else {
                json!({"steps": ["test_sleep", "test_ok"], "input": {"n": i, "sleep_ms": 200}})
            };
            h.run_saga(body).await
        });
    }
    while let Some(done) = neighbours.join_next().await {
        let v = done??;
        assert_eq!(v["status"], "COMPLETED", "a neighbour was disturbed: {v}");
        assert!(v["output"]["n"].is_number(), "{v}");
    }
    while let Some(done) = hostile.join_next().await {
        done??;
    }
    assert_healthy(&h).await?;
    Arc::into_inner(h).expect("tasks are done").stop().await;
    Ok(())
}

/// `/api/plugins` once `settled` holds for it (or as it is after a bounded wait).
async fn plugins_once(
    h: &TestHost,
    settled: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = h.get("/api/plugins").await?;
        let plugins = body["plugins"].as_array().cloned().unwrap_or_default();
        if settled(&plugins) || Instant::now() > deadline {
            return Ok(plugins);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A component whose only import is `foo:bar/baz`, an instance with one function `f: func()`,
/// which RTE does not provide.
fn component_importing_unknown_interface() -> Vec<u8> {
    let name = b"foo:bar/baz";
    let mut out = b"\0asm\x0d\0\x01\0".to_vec();
    // Type section, one instance type: (type (func)) (export "f" (func (type 0))).
    let instance = [0x42, 2, 0x01, 0x40, 0, 0x01, 0, 0x04, 0, 1, b'f', 0x01, 0];
    out.extend([7, instance.len() as u8 + 1, 1]);
    out.extend(instance);
    // Import section: `foo:bar/baz` as an instance of type 0.
    let mut body = vec![1, 0, name.len() as u8];
    body.extend(name);
    body.extend([5, 0]);
    out.extend([10, body.len() as u8]);
    out.extend(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unloadable_files_are_refused_with_the_reason() -> anyhow::Result<()> {
    let h = strict_host().await?;
    let dir = h.dir.path().join("plugins");
    std::fs::write(
        dir.join("imports.wasm"),
        component_importing_unknown_interface(),
    )?;
    std::fs::write(dir.join("core.wasm"), b"\0asm\x01\0\0\0")?;
    std::fs::write(dir.join("text.wasm"), b"this is not wasm")?;
    let mut corrupt = std::fs::read(rte_tests::plugin("testkit"))?;
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 64].fill(0xff);
    std::fs::write(dir.join("corrupt.wasm"), corrupt)?;
    // Sparse: the size alone must refuse it, before anything is read.
    std::fs::File::create(dir.join("huge.wasm"))?.set_len(300 << 20)?;
    let expected = [
        ("imports.wasm", "foo:bar/baz"),
        ("core.wasm", "core WebAssembly module, not a component"),
        ("text.wasm", "not a WebAssembly file"),
        ("corrupt.wasm", "invalid component"),
        ("huge.wasm", "the limit is"),
    ];
    // The watcher picks them up.
    let plugins = plugins_once(&h, |ps| {
        expected
            .iter()
            .all(|(file, _)| ps.iter().any(|p| p["file"] == *file))
    })
    .await?;
    for (file, needle) in expected {
        let p = plugins
            .iter()
            .find(|p| p["file"] == file)
            .unwrap_or_else(|| panic!("{file} not listed: {plugins:?}"));
        let err = p["error"].as_str().unwrap_or_default();
        assert!(err.contains(needle), "{file}: `{needle}` not in: {err}");
        assert!(p["digest"].is_null() && p["steps"] == json!([]), "{p}");
    }
    assert_healthy(&h).await?;
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_limits_apply_and_an_impossible_grant_is_refused() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        extra_files: vec![(
            "testkit.toml".into(),
            b"[limits]\nmemory_mb = 16\nmax_output_kb = 4\n".to_vec(),
        )],
        configure: strict,
        ..HostOptions::default()
    })
    .await?;
    assert_fails_clearly(&h, "test_oom", "{}", &["memory limit of 16 MiB"]).await?;
    assert_fails_clearly(
        &h,
        "test_big_output",
        r#"{"bytes": 8192}"#,
        &["output too large", "the limit is 4096"],
    )
    .await?;
    // More memory than the host can ever give is refused at load, and the version already
    // loaded keeps serving.
    std::fs::write(
        h.dir.path().join("plugins").join("testkit.toml"),
        "[limits]\nmemory_mb = 1048576\n",
    )?;
    let is_testkit = |p: &&Value| p["file"] == "testkit.wasm";
    let plugins = plugins_once(&h, |ps| {
        ps.iter()
            .find(is_testkit)
            .is_some_and(|p| p["error"].is_string())
    })
    .await?;
    let testkit = plugins.iter().find(is_testkit).unwrap();
    let err = testkit["error"].as_str().unwrap_or_default();
    assert!(err.contains("limits.memory_mb = 1048576"), "{testkit}");
    assert_eq!(testkit["limits"]["memory_bytes"], 16 << 20, "{testkit}");
    assert_healthy(&h).await?;
    // So is a deadline no step should have (and one past any clock's range).
    std::fs::write(
        h.dir.path().join("plugins").join("testkit.toml"),
        "[limits]\ntimeout = \"500years\"\n",
    )?;
    let plugins = plugins_once(&h, |ps| {
        ps.iter().find(is_testkit).is_some_and(|p| {
            p["error"]
                .as_str()
                .is_some_and(|e| e.contains("limits.timeout"))
        })
    })
    .await?;
    let testkit = plugins.iter().find(is_testkit).unwrap();
    assert_eq!(testkit["limits"]["memory_bytes"], 16 << 20, "{testkit}");
    assert_healthy(&h).await?;
    h.stop().await;
    Ok(())
}

/// A plugin chooses its error text: a megabyte of it reaches neither the saga record nor any
/// event (the event log, `/api/events`, every stream client) beyond the 8 KiB cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_error_text_is_capped_everywhere() -> anyhow::Result<()> {
    let h = strict_host().await?;
    let v = h
        .run_saga(json!({"steps": ["test_ok", "test_fail"], "input": {"error_bytes": 1_000_000}}))
        .await?;
    assert_eq!(
        v["status"],
        "COMPENSATED",
        "saga: {}",
        &v.to_string()[..200]
    );
    let cap = 8 * 1024 + '…'.len_utf8();
    let tx_id = v["tx_id"].as_str().unwrap();
    let (_, got) = h.get(&format!("/api/transactions/{tx_id}")).await?;
    for text in [&got["error"], &got["steps"][1]["error"]] {
        let text = text.as_str().unwrap_or_default();
        assert!(text.len() <= cap, "stored error of {} bytes", text.len());
    }
    let (_, events) = h.get(&format!("/api/events?tx_id={tx_id}")).await?;
    let events = events["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["type"] == "step.failed"),
        "{events:?}"
    );
    for e in events {
        let len = e["error"].as_str().map_or(0, str::len);
        assert!(
            len <= cap,
            "{} event with an error of {len} bytes",
            e["type"]
        );
    }
    assert_healthy(&h).await?;
    h.stop().await;
    Ok(())
}

/// Per-call and per-saga limits: a call that writes too much plugin data or too many keys
/// fails with kind `resource_limit` and commits none of it; log lines past the per-call
/// limit are dropped and counted (the step still completes); a saga whose outputs would
/// grow past their cap fails at the step that would cross it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_limits_fail_calls_clearly() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        configure: |c| {
            strict(c);
            c.plugin_max_kv_write_kb = 64;
            c.plugin_max_kv_keys = 100;
            c.plugin_max_log_kb = 16;
            c.saga_max_outputs_kb = 96;
        },
        ..HostOptions::default()
    })
    .await?;
    let read = |key: &str| json!({"steps": ["test_kv_read"], "input": {"read_key": key}});

    for (input, needle) in [
        (
            json!({"kv_keys": 1000, "kv_bytes": 1024}),
            "more than its limit of 64 KiB of plugin key-value data",
        ),
        (
            json!({"kv_keys": 500, "kv_bytes": 1}),
            "more than its limit of 100 plugin keys",
        ),
    ] {
        let v = h
            .run_saga(json!({"steps": ["test_flood"], "input": input}))
            .await?;
        assert_eq!(v["status"], "FAILED", "{v}");
        assert_eq!(v["steps"][0]["failure_kind"], "resource_limit", "{v}");
        let err = v["steps"][0]["error"].as_str().unwrap_or_default();
        assert!(err.contains(needle), "{err}");
        assert_eq!(v["steps"][0]["attempts"], 1, "not retried: {v}");
        let kept = h.run_saga(read("flood/0")).await?;
        assert_eq!(
            kept["output"]["value"],
            Value::Null,
            "nothing committed: {kept}"
        );
    }

    let v = h
        .run_saga(json!({"steps": ["test_flood"], "input": {"log_lines": 2000, "log_bytes": 1024}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    let metrics = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await?
        .text()
        .await?;
    let dropped: f64 = metrics
        .lines()
        .find(|l| l.starts_with("rte_plugin_log_dropped_bytes_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(
        dropped >= ((2000 - 16) * 1024) as f64,
        "dropped {dropped} bytes:\n{metrics}"
    );

    let v = h
        .run_saga(
            json!({"steps": ["test_big_output", "test_big_output"], "input": {"bytes": 60000}}),
        )
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    assert_eq!(v["steps"][1]["failure_kind"], "resource_limit", "{v}");
    let err = v["steps"][1]["error"].as_str().unwrap_or_default();
    assert!(err.contains("saga_max_outputs_kb"), "{err}");
    assert_healthy(&h).await?;
    h.stop().await;
    Ok(())
}

/// Peak resident memory of this process (`VmHWM`), bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb << 10)
}

/// The floods that once took the host to gigabytes, at their original scale and with the
/// default limits: 3,000 kv writes of 1 MiB in one call, 2,000 log lines of 16 KiB, and a
/// saga of 64 steps of 1 MB outputs. Each is stopped by its limit (the kv and outputs as
/// failures of kind `resource_limit`, the log by dropping lines), and the whole test
/// process (this host and the tests beside it) stays under 512 MiB resident at its peak
/// (about 100 MiB measured), where these floods alone reached 3.0 GB, 52 MB and 1.3 GB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_at_full_scale_stay_within_bounded_memory() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        ..HostOptions::default()
    })
    .await?;
    let v = h
        .run_saga(json!({"steps": ["test_flood"], "input": {"kv_keys": 3000, "kv_bytes": 1 << 20}}))
        .await?;
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["steps"][0]["failure_kind"], "resource_limit", "{v}");

    let v = h
        .run_saga(
            json!({"steps": ["test_flood"], "input": {"log_lines": 2000, "log_bytes": 16 << 10}}),
        )
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");

    let steps = vec!["test_big_output"; 64];
    let v = h
        .run_saga(json!({"steps": steps, "input": {"bytes": 1_000_000}}))
        .await?;
    assert_eq!(v["status"], "COMPENSATED", "{v}");
    let failed = v["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["status"] == "FAILED"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed["failure_kind"], "resource_limit", "{v}");

    let peak = peak_rss();
    assert!(peak > 0, "VmHWM is readable");
    assert!(peak < 512 << 20, "peak resident memory {} MiB", peak >> 20);
    assert_healthy(&h).await?;
    h.stop().await;
    Ok(())
}
