//! The example plugins written in Python and JavaScript, built with their own toolchains by
//! `plugins/build-polyglot.sh` (which installs componentize-py and componentize-qjs from the
//! package registries when they are missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::repo_root;

/// Build `python.wasm` and `js.wasm` (once per test process; the script skips components
/// newer than their sources) and return the directory holding them.
///
/// Panics with the build's failure when a toolchain cannot be installed or a build fails:
/// the polyglot tests never skip silently.
pub fn polyglot_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        build().unwrap_or_else(|e| panic!("building the Python and JavaScript plugins: {e:#}"))
    })
}

/// The built polyglot plugins `names` (without `.wasm`) as `HostOptions::extra_files` entries.
pub fn polyglot_files(names: &[&str]) -> Vec<(String, Vec<u8>)> {
    names
        .iter()
        .map(|name| {
            let file = format!("{name}.wasm");
            let path = polyglot_dir().join(&file);
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (file, bytes)
        })
        .collect()
}

/// Beside the Rust plugins' build (see `plugin_dir`), outside the host's target dir lock.
fn out_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("plugins"),
        None => repo_root().join("target").join("plugins"),
    }
    .join("polyglot")
}

fn build() -> Result<PathBuf> {
    let out = out_dir();
    let script = repo_root().join("plugins").join("build-polyglot.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}): it needs python3 with venv and pip, npm, and access to \
             PyPI and the npm registry; its output above says which step failed",
            script.display()
        );
    }
    Ok(out)
}
