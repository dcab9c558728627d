//! The `rte` binary: clear errors and exit codes for bad configuration and an unreachable
//! database, and `rte migrate`.

use std::process::Command;

fn rte(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rte"))
        .args(args)
        .current_dir(dir)
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
fn unreachable_database_is_a_clear_error_and_a_failed_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = rte(
        &[
            "serve",
            "--database-url",
            "postgres://postgres:secret@127.0.0.1:1/none",
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("cannot connect to postgres://postgres:***@127.0.0.1:1/none"),
        "{text}"
    );
    assert!(
        !text.contains("secret"),
        "the password never reaches the output: {text}"
    );
}

#[test]
fn bad_configuration_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rte.toml"), "step_timout = \"1s\"\n").unwrap();
    let (code, text) = rte(&["serve"], dir.path());
    assert_ne!(code, 0);
    assert!(text.contains("step_timout"), "{text}");
    let (code, text) = rte(&["serve", "--config", "missing.toml"], dir.path());
    assert_ne!(code, 0, "an explicitly named file must exist: {text}");
    std::fs::remove_file(dir.path().join("rte.toml")).unwrap();
    let (code, text) = rte(&["serve", "--listen", "0.0.0.0:0"], dir.path());
    assert_ne!(code, 0);
    assert!(text.contains("without admin_token"), "{text}");
    let (code, text) = rte(&["serve", "--admin-token", "x"], dir.path());
    assert_ne!(code, 0, "a guessable token is refused: {text}");
    assert!(text.contains("at least 16 characters"), "{text}");
}

#[test]
fn migrate_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = rte(
        &["migrate", "--database-url", "sqlite://fresh.db"],
        dir.path(),
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("schema up to date"), "{text}");
    assert!(dir.path().join("fresh.db").exists());
    let (code, _) = rte(
        &["migrate", "--database-url", "sqlite://fresh.db"],
        dir.path(),
    );
    assert_eq!(code, 0, "migrating twice is fine");
}
