//! `rte plugins check FILE.wasm`: a real component lists its steps and exits 0; a file that
//! cannot be loaded prints why and exits non-zero.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the example plugins for `wasm32-wasip2` (as the end-to-end tests do, into the same
/// directory) and return the path of `name.wasm`.
fn built_plugin(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["--manifest-path", "plugins/Cargo.toml", "--target-dir"])
        .arg(&target)
        .status()
        .expect("run cargo to build the plugins");
    assert!(status.success(), "plugin build failed");
    target.join(format!("wasm32-wasip2/release/{name}.wasm"))
}

fn check(file: &Path) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rte"))
        .args(["plugins", "check"])
        .arg(file)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("run rte");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_component_lists_its_steps() {
    let (code, text) = check(&built_plugin("testkit"));
    assert_eq!(code, 0, "{text}");
    let line = |step: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(step))
            .unwrap_or_else(|| panic!("no line for {step}: {text}"))
            .to_string()
    };
    let counter = line("test_kv_counter");
    for word in ["testkit", "compensate", "idempotent"] {
        assert!(counter.contains(word), "{counter}");
    }
    assert!(!line("test_ok").contains("idempotent"), "{text}");
    assert!(
        line("test_confirm").contains("compensate,confirm"),
        "{text}"
    );
    assert!(
        text.contains("testkit.wasm: a valid rte:saga@0.2.0 component, sha256 "),
        "{text}"
    );
    let (code, text) = check(&built_plugin("legacy"));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("legacy.wasm: a valid rte:saga@0.1.0 component, sha256 "),
        "{text}"
    );
}

#[test]
fn a_bad_file_prints_the_load_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, "not wasm at all").unwrap();
    let (code, text) = check(&garbage);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("cannot load plugin garbage.wasm: not a WebAssembly file"),
        "{text}"
    );
    let (code, text) = check(&dir.path().join("missing.wasm"));
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("missing.wasm"), "{text}");
}
