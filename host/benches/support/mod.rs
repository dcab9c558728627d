//! Shared by the benchmarks and the bench smoke test: builds the example plugins from
//! `plugins/` for `wasm32-wasip2` (once per process) into `target/plugins`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Where plugin builds go: a target dir of their own, so building them never waits on the
/// lock of the build running this process.
fn plugin_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("plugins"),
        None => repo_root().join("target").join("plugins"),
    }
}

/// The directory holding `testkit.wasm` and the other example plugins, built on first use.
pub fn plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target_dir = plugin_target_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
                "plugins/Cargo.toml",
                "--target-dir",
            ])
            .arg(&target_dir)
            .status()
            .expect("running cargo to build the plugins");
        assert!(status.success(), "plugin build failed ({status})");
        target_dir.join("wasm32-wasip2").join("release")
    })
}

/// The path of a built plugin, e.g. `plugin("testkit")`.
pub fn plugin(name: &str) -> PathBuf {
    plugin_dir().join(format!("{name}.wasm"))
}
