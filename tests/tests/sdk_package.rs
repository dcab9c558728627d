//! The Rust SDK can be published as it is: its WIT travels inside the crate, matches the
//! repository's contract, and the crate's version is that of the WIT package.

use std::process::Command;

use rte_tests::repo_root;

/// The version in a WIT file's `package rte:saga@X;` line.
fn wit_version(text: &str) -> &str {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("package rte:saga@"))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("a `package rte:saga@X;` line")
}

#[test]
fn the_sdk_carries_the_current_wit_and_is_versioned_with_it() {
    let root = repo_root();
    let contract = std::fs::read_to_string(root.join("wit/saga.wit")).unwrap();
    let shipped = std::fs::read_to_string(root.join("plugin-sdk/wit/saga.wit")).unwrap();
    assert!(
        contract == shipped,
        "plugin-sdk/wit/saga.wit differs from wit/saga.wit: copy the contract into the SDK"
    );
    let manifest = std::fs::read_to_string(root.join("plugin-sdk/Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("plugin-sdk/Cargo.toml sets its own version");
    assert_eq!(
        version,
        wit_version(&contract),
        "SDK version vs WIT package"
    );

    // What `cargo publish` would upload holds the WIT the bindings are generated from.
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["package", "-p", "rte-plugin-sdk", "--list", "--allow-dirty"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = String::from_utf8_lossy(&out.stdout);
    for file in ["wit/saga.wit", "README.md", "src/testing.rs"] {
        assert!(
            files.lines().any(|l| l == file),
            "{file} not packaged: {files}"
        );
    }
}
