//! `rte bench` in its short mode, so the benchmark cannot rot: it runs, its JSON has every
//! figure, and the figures are sane. Never asserts on timings.

#[path = "../benches/support/mod.rs"]
mod support;

use serde_json::Value;

/// `rte bench --json` with `args` (and the test plugins); its report.
fn bench(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rte"))
        .args(["bench", "--json"])
        .args(args)
        .arg("--plugins-dir")
        .arg(support::plugin_dir())
        .env("RUST_LOG", "warn")
        .output()
        .expect("running rte bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rte bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).expect("the last line is JSON")
}

#[test]
fn short_bench_reports_sane_figures() {
    let steps = 3;
    let report = bench(&["--sagas", "60", "--steps", "3", "--concurrency", "4"]);
    let number = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("`{key}` is a number in {report}"))
    };
    for key in [
        "sagas_per_s",
        "steps_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "commits_per_saga",
        "baseline_commits_per_s",
        "ratio",
        "peak_rss_mb",
    ] {
        assert!(number(key) > 0.0, "`{key}` is positive in {report}");
    }
    assert!(number("p50_ms") <= number("p95_ms") && number("p95_ms") <= number("p99_ms"));
    assert!(
        number("commits_per_saga") <= (steps + 2) as f64,
        "at most K+2 commits per saga: {report}"
    );
    assert_eq!(report["completed"], 60, "every saga completed: {report}");
    assert_eq!(report["unexpected"], 0);
}

#[test]
fn checking_read_versions_adds_no_commit() {
    let run = |step: &str| {
        let report = bench(&[
            "--sagas",
            "40",
            "--steps",
            "2",
            "--concurrency",
            "4",
            "--step",
            step,
        ]);
        assert_eq!(report["completed"], 40, "{step}: {report}");
        report["commits_per_saga"].as_f64().unwrap()
    };
    let (checked, blind) = (run("test_kv_counter"), run("test_kv_put"));
    assert_eq!(
        checked, blind,
        "a read-modify-write step commits as often as a blind write"
    );
}

/// A 1 → 3 parallel → 1 saga against the 5-step sequential one: both complete every saga,
/// and the group costs no commit more than the steps in a row.
#[test]
fn a_parallel_group_commits_no_more_than_steps_in_a_row() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--sagas",
            "40",
            "--steps",
            "5",
            "--concurrency",
            "4",
            "--step",
            "test_branch",
        ];
        args.extend_from_slice(extra);
        let report = bench(&args);
        assert_eq!(report["completed"], 40, "{extra:?}: {report}");
        assert_eq!(report["unexpected"], 0, "{extra:?}: {report}");
        report["commits_per_saga"].as_f64().unwrap()
    };
    let (sequential, grouped) = (run(&[]), run(&["--parallel", "3"]));
    assert!(
        grouped <= sequential,
        "group: {grouped} commits per saga, in a row: {sequential}"
    );
}

/// The waits mode: every saga gets to wait, then every reply ends its saga.
#[test]
fn the_waits_bench_ends_every_saga_after_its_reply() {
    let report = bench(&["--waits", "40", "--concurrency", "4"]);
    assert_eq!(report["sagas"], 40, "{report}");
    assert_eq!(report["completed"], 40, "every saga completed: {report}");
    let p50 = report["reply_p50_ms"].as_f64().expect("reply_p50_ms");
    let p99 = report["reply_p99_ms"].as_f64().expect("reply_p99_ms");
    assert!(p50 > 0.0 && p50 <= p99, "{report}");
    assert!(report["waiting_rss_mb"].as_f64().is_some(), "{report}");
}

#[test]
fn bench_says_clearly_when_the_test_steps_are_missing() {
    let empty = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rte"))
        .args(["bench", "--sagas", "1", "--plugins-dir"])
        .arg(empty.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("running rte bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("test_ok"),
        "names the missing step: {stderr}"
    );
}

/// Both ways in one run: the same sagas in-process and over the REST API of a host the
/// bench starts; the REST side reads the API's fields (a compensated saga's `error`) and
/// the host's CPU time.
#[test]
fn both_ways_in_one_run() {
    let report = bench(&[
        "--rest",
        "--sagas",
        "40",
        "--steps",
        "3",
        "--concurrency",
        "4",
        "--fail-ratio",
        "0.25",
    ]);
    for way in ["in_process", "rest"] {
        let r = &report[way];
        assert_eq!(r["completed"], 30, "{way}: {report}");
        assert_eq!(r["compensated"], 10, "{way}: {report}");
        assert_eq!(r["unexpected"], 0, "{way}: {report}");
        assert!(r["sagas_per_s"].as_f64().unwrap() > 0.0, "{way}: {report}");
    }
    assert!(
        report["rest"]["engine"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(
        report["rest"]["host_cpu_ms_per_saga"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["rest_ratio"].as_f64().unwrap() > 0.0, "{report}");
}
