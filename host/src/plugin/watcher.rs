//! Hot reload: watch the plugins directory and load, replace or unload plugins as
//! `*.wasm` files (and their `*.toml` manifests) come, change and go.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::PluginRuntime;

/// Quiet time after a file's last event before it is (re)loaded, so a file still being
/// written is not read half-way.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches a plugins directory until dropped.
pub struct PluginWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl PluginWatcher {
    /// Start watching `dir` and applying changes to `runtime`.
    pub fn start(runtime: Arc<PluginRuntime>, dir: &Path) -> notify::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reads (a host loading the file, another host sharing the directory) are
                // not changes: reacting to them would reload in a loop.
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        let task = tokio::spawn(apply_changes(runtime, dir.to_path_buf(), rx));
        Ok(Self {
            _watcher: watcher,
            task,
        })
    }
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `.wasm` file an event's path concerns: itself, or the plugin its manifest belongs to.
fn plugin_path(path: &Path) -> Option<PathBuf> {
    match path.extension()?.to_str()? {
        "wasm" => Some(path.to_path_buf()),
        "toml" => Some(path.with_extension("wasm")),
        _ => None,
    }
}

/// The content digests of a plugin and its manifest: a change event that leaves the
/// bytes as they were (a `touch`, an attribute change, a file rewritten with the same
/// bytes, a copy back from a backup) reloads nothing.
type Fingerprint = [Option<[u8; 32]>; 2];

fn fingerprint(wasm: &Path) -> Fingerprint {
    use sha2::{Digest, Sha256};
    let of = |p: &Path| std::fs::read(p).ok().map(|b| Sha256::digest(&b).into());
    [of(wasm), of(&wasm.with_extension("toml"))]
}

/// What is serving now: each loaded plugin's digest, with its manifest's.
fn serving(runtime: &PluginRuntime, dir: &Path) -> HashMap<PathBuf, Fingerprint> {
    use sha2::{Digest, Sha256};
    let mut out = HashMap::new();
    for status in runtime.plugins() {
        let digest = status
            .digest
            .as_deref()
            .and_then(|d| hex::decode(d).ok())
            .and_then(|d| <[u8; 32]>::try_from(d).ok());
        if let Some(digest) = digest {
            let path = dir.join(&status.file);
            let manifest = std::fs::read(path.with_extension("toml"))
                .ok()
                .map(|b| Sha256::digest(&b).into());
            out.insert(path, [Some(digest), manifest]);
        }
    }
    out
}

async fn apply_changes(
    runtime: Arc<PluginRuntime>,
    dir: PathBuf,
    mut rx: mpsc::UnboundedReceiver<PathBuf>,
) {
    // While the start's directory load runs (the API is served meanwhile), events wait in
    // the channel: what it loads is what they are compared with.
    runtime.wait_loaded().await;
    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    let mut applied: HashMap<PathBuf, Fingerprint> = serving(&runtime, &dir);
    loop {
        let next_due = pending.values().min().copied();
        tokio::select! {
            event = rx.recv() => match event {
                Some(path) => {
                    if let Some(wasm) = plugin_path(&path) {
                        pending.insert(wasm, Instant::now() + DEBOUNCE);
                    }
                }
                None => return,
            },
            _ = async { tokio::time::sleep_until(next_due.unwrap()).await }, if next_due.is_some() => {
                let now = Instant::now();
                let due: Vec<PathBuf> = pending.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
                for path in due {
                    pending.remove(&path);
                    let seen = path.clone();
                    let now_seen = tokio::task::spawn_blocking(move || fingerprint(&seen))
                        .await
                        .unwrap_or_default();
                    if applied.get(&path) == Some(&now_seen) {
                        continue;
                    }
                    applied.insert(path.clone(), now_seen);
                    if path.is_file() {
                        if let Err(e) = runtime.load_file(&path).await {
                            tracing::error!(error = %e, "plugin reload rejected; the previous version keeps serving");
                        }
                    } else {
                        runtime.unload(&path);
                    }
                }
            }
        }
    }
}
