//! Hot reload against the live watcher of a real host: plugin files are added, replaced while
//! a saga runs on them, corrupted, written in two halves and removed.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rte_tests::{HostOptions, TestHost};
use serde_json::{Value, json};

/// Longest wait for the watcher to apply a change (debounce plus a compile in a debug build).
const SETTLE: Duration = Duration::from_secs(60);

fn host_options(plugins: Vec<&'static str>) -> HostOptions {
    HostOptions {
        plugins,
        configure: |c| {
            c.step_timeout = Duration::from_secs(10);
            c.max_retries = 0;
        },
        ..HostOptions::default()
    }
}

fn plugins_dir(h: &TestHost) -> PathBuf {
    h.dir.path().join("plugins")
}

/// `bytes` with a custom section appended: the same component under a new digest.
fn new_version(mut bytes: Vec<u8>, tag: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"rte-test-version";
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend(name);
    body.extend(tag.as_bytes());
    bytes.push(0);
    leb128(body.len(), &mut bytes);
    bytes.extend(body);
    bytes
}

/// Publish `bytes` as `file` the way deploy tools should: write aside, then rename.
fn publish(h: &TestHost, file: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = plugins_dir(h).join(format!("{file}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, plugins_dir(h).join(file))?;
    Ok(())
}

/// The `/api/plugins` entry of `file` (`Null` if not listed).
async fn status_of(h: &TestHost, file: &str) -> anyhow::Result<Value> {
    let (_, body) = h.get("/api/plugins").await?;
    Ok(body["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["file"] == file).cloned())
        .unwrap_or(Value::Null))
}

/// Poll `file`'s status until `done` holds; fails with the last status after [`SETTLE`].
async fn wait_for(
    h: &TestHost,
    file: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let status = status_of(h, file).await?;
        if done(&status) {
            return Ok(status);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{file}: {what} did not happen; last status {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn digest(status: &Value) -> Option<String> {
    status["digest"].as_str().map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_file_makes_its_steps_usable() -> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["testkit"])).await?;
    let (status, err) = h
        .post(
            "/api/transactions",
            json!({"steps": ["open_account"], "input": {}}),
        )
        .await?;
    assert_eq!(status, 422, "{err}");
    publish(&h, "bank.wasm", &std::fs::read(rte_tests::plugin("bank"))?)?;
    let bank = wait_for(&h, "bank.wasm", "load", |s| s["digest"].is_string()).await?;
    assert!(bank["error"].is_null(), "{bank}");
    assert!(
        bank["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "debit"),
        "{bank}"
    );
    h.open_account("r1", 10.0).await?;
    assert_eq!(h.balance("r1").await?, 10.0);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_file_serves_new_sagas_while_running_ones_finish_on_the_old()
-> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["testkit"])).await?;
    let old = digest(&status_of(&h, "testkit.wasm").await?).expect("testkit loaded");
    let (status, started) = h
        .post(
            "/api/transactions",
            json!({"steps": ["test_sleep"], "input": {"sleep_ms": 3000}}),
        )
        .await?;
    assert_eq!(status, 201, "{started}");
    let tx_id = started["tx_id"].as_str().unwrap().to_string();
    // The step has its plugin once `step.started` is out; replace the file under it.
    let deadline = Instant::now() + SETTLE;
    loop {
        let (_, events) = h
            .get(&format!("/api/events?tx_id={tx_id}&type=step.started"))
            .await?;
        if events["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the saga never started its step");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A digest never seen before means a real compile while the saga runs.
    let tag = format!("{:?}", std::time::SystemTime::now());
    let bytes = new_version(std::fs::read(rte_tests::plugin("testkit"))?, &tag);
    publish(&h, "testkit.wasm", &bytes)?;
    let now = wait_for(&h, "testkit.wasm", "replace", |s| {
        digest(s).is_some_and(|d| d != old)
    })
    .await?;
    let new = digest(&now).unwrap();
    assert!(now["error"].is_null(), "{now}");
    // New sagas run on the new version.
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["steps"][0]["plugin_digest"], new.as_str());
    // The running one finished on the version it started with, and its record says so.
    let view = wait_done(&h, &tx_id).await?;
    assert_eq!(view["status"], "COMPLETED", "{view}");
    assert_eq!(view["steps"][0]["plugin_digest"], old.as_str(), "{view}");
    h.stop().await;
    // Its compiled artifact will never be used again.
    for entry in std::fs::read_dir(rte_tests::artifact_cache())? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&new[..32]))
        {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Poll a saga until it ends.
async fn wait_done(h: &TestHost, tx_id: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (_, view) = h.get(&format!("/api/transactions/{tx_id}")).await?;
        let status = view["status"].as_str().unwrap_or_default();
        if matches!(
            status,
            "COMPLETED" | "COMPENSATED" | "COMPENSATION_FAILED" | "CANCELLED" | "FAILED"
        ) {
            return Ok(view);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "saga {tx_id} never ended: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_refused_and_the_old_version_keeps_serving() -> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["testkit"])).await?;
    let old = digest(&status_of(&h, "testkit.wasm").await?).expect("testkit loaded");
    // Written in place, not renamed: the watcher sees the garbage itself.
    std::fs::write(
        plugins_dir(&h).join("testkit.wasm"),
        b"\0asm\x0d\0\x01\0not a component at all",
    )?;
    let now = wait_for(&h, "testkit.wasm", "rejection", |s| s["error"].is_string()).await?;
    assert_eq!(digest(&now).as_deref(), Some(old.as_str()), "{now}");
    assert!(
        now["error"].as_str().unwrap().contains("invalid component"),
        "{now}"
    );
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    assert_eq!(v["steps"][0]["plugin_digest"], old.as_str());
    // A good file again clears the error.
    publish(
        &h,
        "testkit.wasm",
        &new_version(std::fs::read(rte_tests::plugin("testkit"))?, "fixed"),
    )?;
    let fixed = wait_for(&h, "testkit.wasm", "recovery", |s| s["error"].is_null()).await?;
    assert_ne!(digest(&fixed), Some(old), "{fixed}");
    h.stop().await;
    Ok(())
}

/// Write `bytes` to `path` in place in two halves with a pause between, as a slow copy does.
fn write_in_halves(path: PathBuf, bytes: Vec<u8>) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(path)?;
        let (first, rest) = bytes.split_at(bytes.len() / 2);
        file.write_all(first)?;
        file.flush()?;
        std::thread::sleep(Duration::from_millis(100));
        file.write_all(rest)?;
        file.sync_all()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_never_serves() -> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["testkit"])).await?;
    let old = digest(&status_of(&h, "testkit.wasm").await?).expect("testkit loaded");
    let testkit = std::fs::read(rte_tests::plugin("testkit"))?;
    let replace = write_in_halves(
        plugins_dir(&h).join("testkit.wasm"),
        new_version(testkit, "halves"),
    );
    let add = write_in_halves(
        plugins_dir(&h).join("bank.wasm"),
        std::fs::read(rte_tests::plugin("bank"))?,
    );
    // Watch every state the API shows until both complete files serve.
    let mut seen_testkit = std::collections::BTreeSet::new();
    let mut seen_bank = std::collections::BTreeSet::new();
    let deadline = Instant::now() + SETTLE;
    loop {
        let t = status_of(&h, "testkit.wasm").await?;
        let b = status_of(&h, "bank.wasm").await?;
        seen_testkit.insert(digest(&t));
        seen_bank.insert(digest(&b));
        let t_new = digest(&t).is_some_and(|d| d != old) && t["error"].is_null();
        let b_loaded = b["digest"].is_string() && b["error"].is_null();
        if t_new && b_loaded && replace.is_finished() && add.is_finished() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "never settled: {t} {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replace.join().unwrap()?;
    add.join().unwrap()?;
    // Only the old and the complete version ever served (a half file has a digest of its own).
    let new = digest(&status_of(&h, "testkit.wasm").await?);
    assert!(
        seen_testkit
            .iter()
            .all(|d| *d == Some(old.clone()) || *d == new),
        "{seen_testkit:?}"
    );
    let bank = digest(&status_of(&h, "bank.wasm").await?);
    assert!(
        seen_bank.iter().all(|d| d.is_none() || *d == bank),
        "{seen_bank:?}"
    );
    h.open_account("r2", 5.0).await?;
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    assert_eq!(v["steps"][0]["plugin_digest"], json!(new));
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_file_unloads_its_steps() -> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["bank", "testkit"])).await?;
    h.open_account("r3", 1.0).await?;
    std::fs::remove_file(plugins_dir(&h).join("bank.wasm"))?;
    wait_for(&h, "bank.wasm", "unload", Value::is_null).await?;
    let (status, err) = h
        .post(
            "/api/transactions",
            json!({"tx_type": "get_balance", "input": {"account_id": "r3"}}),
        )
        .await?;
    assert_eq!(status, 422, "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("unknown step"), "{message}");
    // The other plugin is untouched.
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    h.stop().await;
    Ok(())
}

/// Compiled artifacts that no loaded plugin uses are deleted once an hour old: the disk
/// cache does not grow with every version ever loaded, and a fresh artifact (perhaps
/// another host's, mid-load) is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_compiled_plugins_are_removed_from_the_cache() -> anyhow::Result<()> {
    use rte_tests::rte_host::plugin::{Limits, PluginRuntime, RuntimeOptions};
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    let cache = plugins.join(".rte-cache");
    std::fs::create_dir_all(&cache)?;
    std::fs::copy(rte_tests::plugin("testkit"), plugins.join("testkit.wasm"))?;
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let mut stale = Vec::new();
    for name in [
        "0123456789abcdef0123456789abcdef-00000000000000aa.cwasm",
        "x.cwasm.tmp42",
    ] {
        let f = std::fs::File::create(cache.join(name))?;
        f.set_modified(two_hours_ago)?;
        stale.push(cache.join(name));
    }
    let fresh = cache.join("fedcba9876543210fedcba9876543210-00000000000000bb.cwasm");
    std::fs::write(&fresh, b"another host's, just written")?;
    let unrelated = cache.join("notes.txt");
    std::fs::File::create(&unrelated)?.set_modified(two_hours_ago)?;

    let runtime = PluginRuntime::new(RuntimeOptions {
        limits: Limits {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(5),
            max_output_bytes: 1 << 20,
            ..Limits::default()
        },
        cache_dir: Some(cache.clone()),
        max_instances: 16,
    })?;
    assert!(runtime.load_dir(&plugins).await.is_empty());
    for path in &stale {
        assert!(!path.exists(), "{} should be gone", path.display());
    }
    assert!(fresh.exists(), "a young artifact stays");
    assert!(unrelated.exists(), "only artifacts are touched");
    let artifacts: Vec<String> = std::fs::read_dir(&cache)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(
        artifacts.len(),
        2,
        "testkit's own and the young one: {artifacts:?}"
    );
    // Aged, testkit's own artifact still stays: it is in use.
    for name in &artifacts {
        std::fs::File::options()
            .write(true)
            .open(cache.join(name))?
            .set_modified(two_hours_ago)?;
    }
    assert_eq!(runtime.prune_cache(), 1, "only the unused one goes");
    assert!(!fresh.exists());
    Ok(())
}

/// Reading a plugin file (a backup, a checksum, another host loading it from a shared folder)
/// changes nothing: the watcher does not reload it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_plugin_file_does_not_reload_it() -> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["testkit"])).await?;
    let before = status_of(&h, "testkit.wasm").await?;
    assert!(before["loaded_at"].is_string(), "{before}");
    let file = plugins_dir(&h).join("testkit.wasm");
    for _ in 0..10 {
        std::fs::read(&file)?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Well past the watcher's debounce: a reload would have happened by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = status_of(&h, "testkit.wasm").await?;
    assert_eq!(
        after["loaded_at"], before["loaded_at"],
        "reads reloaded the plugin: {before} then {after}"
    );
    h.stop().await;
    Ok(())
}

/// Rewriting a plugin file with the same bytes (a deploy that copies what is already there,
/// a restore from backup) does not reload it; new bytes do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_a_plugin_with_the_same_bytes_does_not_reload_it() -> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["testkit"])).await?;
    let before = status_of(&h, "testkit.wasm").await?;
    let file = plugins_dir(&h).join("testkit.wasm");
    let bytes = std::fs::read(&file)?;
    for _ in 0..3 {
        std::fs::write(&file, &bytes)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = status_of(&h, "testkit.wasm").await?;
    assert_eq!(
        after["loaded_at"], before["loaded_at"],
        "the same bytes reloaded the plugin: {before} then {after}"
    );
    publish(&h, "testkit.wasm", &new_version(bytes, "v2"))?;
    let reloaded = wait_for(&h, "testkit.wasm", "a reload", |s| {
        digest(s) != digest(&before)
    })
    .await?;
    assert_ne!(reloaded["loaded_at"], before["loaded_at"], "{reloaded}");
    h.stop().await;
    Ok(())
}

/// A compiled artifact changed on disk (tampered with, or cut short) is never loaded as
/// native code: its integrity check fails, it is compiled again from the `.wasm`, and the
/// plugin serves as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_compiled_artifact_is_compiled_again() -> anyhow::Result<()> {
    use rte_tests::rte_host::plugin::cache::ArtifactCache;
    use rte_tests::rte_host::plugin::{Limits, PluginRuntime, RuntimeOptions};
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(rte_tests::plugin("testkit"), plugins.join("testkit.wasm"))?;
    let runtime = || {
        PluginRuntime::new(RuntimeOptions {
            limits: Limits::default(),
            cache_dir: Some(cache.clone()),
            max_instances: 16,
        })
    };
    assert!(runtime()?.load_dir(&plugins).await.is_empty());
    let artifact = std::fs::read_dir(&cache)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("an artifact was cached");
    let name = artifact.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(&artifact)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes)?;

    let second = runtime()?;
    assert!(
        second.load_dir(&plugins).await.is_empty(),
        "loads from the .wasm"
    );
    let status = second.plugins();
    assert!(
        status[0].error.is_none() && !status[0].steps.is_empty(),
        "{:?}",
        status[0]
    );
    let rewritten = ArtifactCache::open(&cache)?.read(&name);
    assert!(
        rewritten.is_ok(),
        "a verified artifact replaced the tampered one"
    );
    Ok(())
}

/// A step name claimed by two files refuses both (file-name order decides nothing, so a
/// stray `aaa.wasm` cannot take `test_ok` over), and the survivor serves again as soon as
/// the other file goes. The same holds when the host starts with both files present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_claimed_by_two_files_is_refused_for_both() -> anyhow::Result<()> {
    let h = TestHost::start(host_options(vec!["testkit"])).await?;
    let squatter = new_version(std::fs::read(rte_tests::plugin("testkit"))?, "squat");
    publish(&h, "aaa.wasm", &squatter)?;
    let both_refused = |s: &Value| {
        s["error"]
            .as_str()
            .is_some_and(|e| e.contains("claimed by aaa.wasm and testkit.wasm"))
    };
    let aaa = wait_for(&h, "aaa.wasm", "refusal", both_refused).await?;
    assert!(aaa["digest"].is_null(), "{aaa}");
    let testkit = wait_for(&h, "testkit.wasm", "refusal", both_refused).await?;
    assert!(
        testkit["steps"].as_array().is_some_and(Vec::is_empty),
        "{testkit}"
    );
    let (status, body) = h
        .post(
            "/api/transactions",
            json!({"steps": ["test_ok"], "input": {}}),
        )
        .await?;
    assert_eq!(status, 422, "no file serves test_ok: {body}");

    std::fs::remove_file(plugins_dir(&h).join("aaa.wasm"))?;
    let back = wait_for(&h, "testkit.wasm", "serving again", |s| {
        s["error"].is_null() && s["digest"].is_string()
    })
    .await?;
    assert!(!back["steps"].as_array().unwrap().is_empty(), "{back}");
    let v = h
        .run_saga(json!({"steps": ["test_ok"], "input": {}}))
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");

    // At start-up, with both present from the beginning.
    publish(&h, "aaa.wasm", &squatter)?;
    wait_for(&h, "testkit.wasm", "refusal", both_refused).await?;
    let restarted = TestHost::start(HostOptions {
        extra_files: vec![
            ("aaa.wasm".into(), squatter.clone()),
            (
                "testkit.wasm".into(),
                std::fs::read(rte_tests::plugin("testkit"))?,
            ),
        ],
        plugins: vec![],
        ..host_options(vec![])
    })
    .await?;
    for file in ["aaa.wasm", "testkit.wasm"] {
        let s = status_of(&restarted, file).await?;
        assert!(both_refused(&s), "{file} at start-up: {s}");
    }
    restarted.stop().await;
    h.stop().await;
    Ok(())
}

/// A plugin's identity is its manifest's `name`: renamed with its manifest, the file keeps
/// its key-value data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_plugin_keeps_its_data_under_its_declared_name() -> anyhow::Result<()> {
    let h = TestHost::start(HostOptions {
        extra_files: vec![("testkit.toml".into(), b"name = \"kit\"\n".to_vec())],
        ..host_options(vec!["testkit"])
    })
    .await?;
    let count = |v: &Value| v["output"]["count"].as_i64();
    let body = json!({"steps": ["test_kv_counter"], "input": {"key": "kept"}});
    let first = h.run_saga(body.clone()).await?;
    assert_eq!(count(&first), Some(1), "{first}");
    let dir = plugins_dir(&h);
    std::fs::write(dir.join("renamed.toml"), b"name = \"kit\"\n")?;
    std::fs::rename(dir.join("testkit.wasm"), dir.join("renamed.wasm"))?;
    std::fs::remove_file(dir.join("testkit.toml"))?;
    let renamed = wait_for(&h, "renamed.wasm", "load", |s| s["digest"].is_string()).await?;
    assert_eq!(renamed["name"], "kit", "{renamed}");
    wait_for(&h, "testkit.wasm", "unload", Value::is_null).await?;
    let second = h.run_saga(body).await?;
    assert_eq!(count(&second), Some(2), "the count went on: {second}");
    // Breakers belong to the plugin's name too.
    let (_, breakers) = h.get("/api/circuit-breakers").await?;
    let services: Vec<&str> = breakers["circuit_breakers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["service"].as_str())
        .collect();
    assert!(services.contains(&"kit:testkit"), "{breakers}");
    h.stop().await;
    Ok(())
}
