//! `rte build`: build a step project into its `.wasm` component(s).
//!
//! A Rust project (a `Cargo.toml`) is built with `cargo build --release --target
//! wasm32-wasip2`, whatever the crate's default target, and its `cdylib` components are
//! found in cargo's own report. Any other project runs its `build.sh`, which writes its
//! components into `dist/`. The caller then checks each one as the host would load it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Build the project in `dir`; returns the components built.
pub fn build(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join("Cargo.toml").is_file() {
        build_rust(dir)
    } else if dir.join("build.sh").is_file() {
        build_script(dir)
    } else {
        bail!(
            "{} holds neither a Cargo.toml nor a build.sh: run `rte build` in a project made by `rte new`",
            dir.display()
        )
    }
}

fn build_rust(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(&cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cargo}"))?;
    let mut built = Vec::new();
    let stdout = child.stdout.take().expect("piped stdout");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let files = message["filenames"].as_array().into_iter().flatten();
        built.extend(
            files
                .filter_map(|f| f.as_str())
                .filter(|f| f.ends_with(".wasm"))
                .map(PathBuf::from),
        );
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); if the target is missing: rustup target add wasm32-wasip2"
        );
    }
    if built.is_empty() {
        bail!("the build made no .wasm: is the crate's `crate-type` `[\"cdylib\"]`?");
    }
    Ok(built)
}

fn build_script(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let status = Command::new("sh")
        .current_dir(dir)
        .arg("build.sh")
        .status()
        .context("cannot run build.sh")?;
    if !status.success() {
        bail!("build.sh failed ({status})");
    }
    let dist = dir.join("dist");
    let mut built: Vec<PathBuf> = std::fs::read_dir(&dist)
        .with_context(|| format!("build.sh wrote no {}", dist.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    built.sort();
    if built.is_empty() {
        bail!("build.sh wrote no .wasm into {}", dist.display());
    }
    Ok(built)
}
