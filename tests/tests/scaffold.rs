//! `rte new rust` makes a project that builds with `rte build` (which checks the component
//! as the host loads it), passes its own unit test on the machine's own target, runs with
//! `rte step run`, and serves a saga on a real host.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde_json::json;

use rte_tests::{HostOptions, TestHost, repo_root, rte_binary};

fn run(dir: &Path, program: &Path, args: &[&str], target_dir: &Path) -> String {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        program.display()
    );
    text
}

#[tokio::test]
async fn the_rust_template_builds_tests_runs_and_serves_a_saga() -> Result<()> {
    let rte = rte_binary()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo = Path::new(&cargo);
    let tmp = tempfile::tempdir()?;
    let project = tmp.path().join("shop");
    let sdk = repo_root().join("plugin-sdk");
    // Builds share the example plugins' target dir, so dependencies compile once.
    let outer = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let target = outer.join("plugins");

    let made = run(
        tmp.path(),
        &rte,
        &[
            "new",
            "rust",
            "shop",
            "--dir",
            project.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
        &target,
    );
    assert!(made.contains("shop_reserve"), "{made}");

    // Its own unit test, natively: the SDK's in-memory kv stands in for the host.
    let tested = run(&project, cargo, &["test"], &target.join("native"));
    assert!(tested.contains("2 passed"), "{tested}");

    // `rte build`: the component, checked as the host loads it.
    let built = run(&project, &rte, &["build"], &target);
    assert!(
        built.contains("a valid rte:saga@0.2.0 component") && built.contains("shop_reserve"),
        "{built}"
    );
    let wasm = target.join("wasm32-wasip2/release/shop.wasm");
    assert!(built.contains(&wasm.display().to_string()), "{built}");

    let out = run(
        &project,
        &rte,
        &[
            "step",
            "run",
            wasm.to_str().unwrap(),
            "shop_reserve",
            "--input",
            r#"{"item": "pear", "qty": 4}"#,
            "--json",
        ],
        &target,
    );
    let report: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1])?;
    assert_eq!(report["outputs"], json!({"reserved": 4, "remaining": 6}));

    // A saga on a real host: the stock is kept between sagas.
    let host = TestHost::start(HostOptions {
        plugins: vec![],
        extra_files: vec![("shop.wasm".into(), std::fs::read(&wasm)?)],
        ..HostOptions::default()
    })
    .await?;
    let body = json!({"steps": ["shop_reserve"], "input": {"item": "fig", "qty": 3}});
    let first = host.run_saga(body.clone()).await?;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    let second = host.run_saga(body).await?;
    assert_eq!(second["output"]["remaining"], 4, "{second}");
    Ok(())
}

/// `rte new python`: the step's unit test in plain Python, `rte build` through componentize-py
/// (installed by `plugins/build-polyglot.sh`), `rte step run`, and a saga on a real host.
#[tokio::test]
async fn the_python_template_builds_tests_runs_and_serves_a_saga() -> Result<()> {
    let rte = rte_binary()?;
    let componentize = rte_tests::polyglot::polyglot_dir().join("venv/bin/componentize-py");
    let tmp = tempfile::tempdir()?;
    let project = tmp.path().join("pyshop");
    let rte_cmd = |args: &[&str], expect_ok: bool| {
        let out = Command::new(&rte)
            .current_dir(&project)
            .args(args)
            .env("COMPONENTIZE_PY", &componentize)
            // An 18 MB interpreter compiles slowly in a debug host: cache it once, and
            // give the first compile room on a busy machine.
            .env("RTE_PLUGIN_CACHE_DIR", rte_tests::artifact_cache())
            .env("RTE_PLUGIN_COMPILE_TIMEOUT", "15m")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), expect_ok, "rte {args:?}:\n{text}");
        text
    };
    let made = Command::new(&rte)
        .args([
            "new",
            "python",
            "pyshop",
            "--dir",
            project.to_str().unwrap(),
        ])
        .output()?;
    assert!(made.status.success(), "{made:?}");

    let tested = Command::new("python3")
        .current_dir(&project)
        .args(["-m", "unittest"])
        .output()?;
    let text = String::from_utf8_lossy(&tested.stderr);
    assert!(tested.status.success() && text.contains("OK"), "{text}");

    let built = rte_cmd(&["build"], true);
    assert!(
        built.contains("a valid rte:saga@0.2.0 component") && built.contains("pyshop_reserve"),
        "{built}"
    );
    assert!(
        built.contains(
            r#"pyshop_reserve policy: {"max_retries":5,"retry_interval":"200ms","timeout":"2s"}"#
        ),
        "{built}"
    );
    let wasm = project.join("dist/pyshop.wasm");
    let out = rte_cmd(
        &[
            "step",
            "run",
            wasm.to_str().unwrap(),
            "pyshop_reserve",
            "--input",
            r#"{"item": "pear", "qty": 4}"#,
            "--json",
        ],
        true,
    );
    let report: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1])?;
    assert_eq!(report["outputs"], json!({"reserved": 4, "remaining": 6}));
    assert_eq!(report["idempotency_key"], "pyshop_reserve:tx-local");
    let out = rte_cmd(
        &[
            "step",
            "run",
            wasm.to_str().unwrap(),
            "pyshop_reserve",
            "--input",
            r#"{"item": "pear", "qty": 40}"#,
            "--json",
        ],
        false,
    );
    assert!(out.contains("only 10 pear left"), "{out}");

    let host = TestHost::start(HostOptions {
        plugins: vec![],
        extra_files: vec![("pyshop.wasm".into(), std::fs::read(&wasm)?)],
        ..HostOptions::default()
    })
    .await?;
    let body = json!({"steps": ["pyshop_reserve"], "input": {"item": "fig", "qty": 3}});
    let first = host.run_saga(body.clone()).await?;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    let second = host.run_saga(body).await?;
    assert_eq!(second["output"]["remaining"], 4, "{second}");
    Ok(())
}

/// Run `program args` in `dir` with `envs`; its output, stdout and stderr together, after
/// checking it succeeded (or failed) as `expect_ok` says.
fn sh(dir: &Path, program: &Path, args: &[&str], envs: &[(&str, &str)], expect_ok: bool) -> String {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .envs(envs.iter().copied())
        // Large components compile slowly in a debug host: cache them once.
        .env("RTE_PLUGIN_CACHE_DIR", rte_tests::artifact_cache())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.success(),
        expect_ok,
        "{} {args:?}:\n{text}",
        program.display()
    );
    text
}

/// `rte new LANG NAME` in a fresh directory; the project's path.
fn new_project(tmp: &Path, lang: &str, name: &str) -> std::path::PathBuf {
    let project = tmp.join(name);
    let made = sh(
        tmp,
        &rte_binary().unwrap(),
        &["new", lang, name, "--dir", project.to_str().unwrap()],
        &[],
        true,
    );
    assert!(made.contains(&format!("{name}_reserve")), "{made}");
    project
}

/// The JSON report of `rte step run` on `wasm`.
fn step_run(
    project: &Path,
    wasm: &Path,
    step: &str,
    input: &str,
    envs: &[(&str, &str)],
    ok: bool,
) -> String {
    let args = [
        "step",
        "run",
        wasm.to_str().unwrap(),
        step,
        "--input",
        input,
        "--json",
    ];
    sh(project, &rte_binary().unwrap(), &args, envs, ok)
}

fn report(out: &str) -> serde_json::Value {
    serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap()
}

/// The same project served by a real host: the stock is kept between sagas, and a saga
/// whose next step fails compensates the reservation.
async fn serve_two_sagas(file: &str, wasm: &Path, step: &str) -> Result<()> {
    let host = TestHost::start(HostOptions {
        plugins: vec!["testkit"],
        extra_files: vec![(file.into(), std::fs::read(wasm)?)],
        ..HostOptions::default()
    })
    .await?;
    let body = json!({"steps": [step], "input": {"item": "fig", "qty": 3}});
    let first = host.run_saga(body.clone()).await?;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    let second = host.run_saga(body).await?;
    assert_eq!(second["output"]["remaining"], 4, "{second}");
    let undone = host
        .run_saga(json!({"steps": [step, "test_fail"], "input": {"item": "fig", "qty": 2}}))
        .await?;
    assert_eq!(undone["status"], "COMPENSATED", "{undone}");
    let third = host
        .run_saga(json!({"steps": [step], "input": {"item": "fig", "qty": 1}}))
        .await?;
    assert_eq!(third["output"]["remaining"], 3, "{third}");
    Ok(())
}

/// `rte new js`: the step's unit tests with `node --test`, its types checked by `tsc`
/// against the helper's `.d.ts`, `rte build` through componentize-qjs (installed from npm
/// by the project's own `npm install`), `rte step run`, and sagas on a real host.
#[tokio::test]
async fn the_js_template_builds_tests_runs_and_serves_a_saga() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let project = new_project(tmp.path(), "js", "jsshop");
    let npm = Path::new("npm");
    sh(
        &project,
        npm,
        &["install", "--no-audit", "--no-fund", "--loglevel=error"],
        &[],
        true,
    );
    let tested = sh(&project, Path::new("node"), &["--test"], &[], true);
    assert!(
        tested.contains("pass 3") && tested.contains("fail 0"),
        "{tested}"
    );
    sh(&project, npm, &["run", "--silent", "typecheck"], &[], true);
    // The types catch a misspelt helper call.
    let step_js = project.join("step.js");
    let good = std::fs::read_to_string(&step_js)?;
    std::fs::write(
        &step_js,
        good.replace("ctx.setOutput(\"reserved\"", "ctx.setOuput(\"reserved\""),
    )?;
    let typo = sh(&project, npm, &["run", "--silent", "typecheck"], &[], false);
    assert!(typo.contains("setOuput"), "{typo}");
    std::fs::write(&step_js, good)?;

    let rte = rte_binary()?;
    let built = sh(&project, &rte, &["build"], &[], true);
    assert!(
        built.contains("a valid rte:saga@0.2.0 component") && built.contains("jsshop_reserve"),
        "{built}"
    );
    assert!(
        built.contains(r#"jsshop_reserve policy: {"max_retries":5"#),
        "{built}"
    );
    let wasm = project.join("dist/jsshop.wasm");
    let ok = report(&step_run(
        &project,
        &wasm,
        "jsshop_reserve",
        r#"{"item": "pear", "qty": 4}"#,
        &[],
        true,
    ));
    assert_eq!(ok["outputs"], json!({"reserved": 4, "remaining": 6}));
    assert_eq!(ok["idempotency_key"], "jsshop_reserve:tx-local");
    let refused = step_run(
        &project,
        &wasm,
        "jsshop_reserve",
        r#"{"item": "pear", "qty": 40}"#,
        &[],
        false,
    );
    assert!(
        refused.contains("only 10 pear left") && refused.contains("permanent"),
        "{refused}"
    );
    serve_two_sagas("jsshop.wasm", &wasm, "jsshop_reserve").await
}

/// `rte new c`: the step's unit tests natively (under AddressSanitizer), `rte build` with
/// Debian's clang and wasi-libc, `wit-bindgen c` and the Rust toolchain's
/// `wasm-component-ld` (scripts/test.sh installs them), `rte step run`, and sagas on a real
/// host.
#[tokio::test]
async fn the_c_template_builds_tests_runs_and_serves_a_saga() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let project = new_project(tmp.path(), "c", "cshop");
    let tested = sh(&project, Path::new("sh"), &["test.sh"], &[], true);
    assert!(tested.contains("3 passed, 0 failed"), "{tested}");

    // wit-bindgen where scripts/test.sh installs it, unless it is on PATH already.
    let tools = std::env::var("HOME").unwrap_or_default() + "/.cache/rte-tools/bin";
    let path = format!("{}:{tools}", std::env::var("PATH").unwrap_or_default());
    let env = [("PATH", path.as_str())];
    let rte = rte_binary()?;
    let built = sh(&project, &rte, &["build"], &env, true);
    assert!(
        built.contains("a valid rte:saga@0.2.0 component") && built.contains("cshop_reserve"),
        "{built}"
    );
    assert!(
        built.contains(r#"cshop_reserve policy: {"max_retries":5,"timeout":"2s"}"#),
        "{built}"
    );
    let wasm = project.join("dist/cshop.wasm");
    let ok = report(&step_run(
        &project,
        &wasm,
        "cshop_reserve",
        r#"{"item": "pear", "qty": 4}"#,
        &[],
        true,
    ));
    assert_eq!(ok["outputs"], json!({"reserved": 4, "remaining": 6}));
    assert_eq!(ok["idempotency_key"], "cshop_reserve:tx-local");
    assert_eq!(ok["logs"][0]["message"], "reserved 4 pear, 6 left", "{ok}");
    let refused = step_run(
        &project,
        &wasm,
        "cshop_reserve",
        r#"{"qty": 4}"#,
        &[],
        false,
    );
    assert!(
        refused.contains("missing input `item`") && refused.contains("permanent"),
        "{refused}"
    );

    // Without wit-bindgen, the build says what is missing and how to get it.
    let bare = [
        ("PATH", "/usr/bin:/bin"),
        ("WIT_BINDGEN", "no-such-wit-bindgen"),
    ];
    let missing = sh(&project, &rte, &["build"], &bare, false);
    assert!(
        missing.contains("cargo install wit-bindgen-cli"),
        "{missing}"
    );

    serve_two_sagas("cshop.wasm", &wasm, "cshop_reserve").await
}
