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
