//! Which plugin files are still being loaded (compiled) at start, so the API can be served
//! meanwhile: readiness lists them, and a saga that needs one of their steps waits for it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument;

use super::{LoadedPlugin, PluginRuntime};

/// The files a directory load has yet to finish, and a signal on every change.
pub(super) struct Loading {
    files: Mutex<BTreeSet<String>>,
    changed: tokio::sync::watch::Sender<()>,
}

impl Default for Loading {
    fn default() -> Self {
        Self {
            files: Mutex::default(),
            changed: tokio::sync::watch::channel(()).0,
        }
    }
}

impl Loading {
    fn files(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mark `files` as loading.
    pub(super) fn begin(&self, files: impl IntoIterator<Item = String>) {
        self.files().extend(files);
        self.changed.send_replace(());
    }

    /// `file` finished loading, well or not.
    pub(super) fn end(&self, file: &str) {
        if self.files().remove(file) {
            self.changed.send_replace(());
        }
    }
}

impl PluginRuntime {
    /// [`PluginRuntime::load_dir`] in a task of its own: the files are marked as loading
    /// before this returns, so [`PluginRuntime::loading`] lists them at once.
    pub fn spawn_load_dir(
        self: &Arc<Self>,
        dir: &std::path::Path,
    ) -> tokio::task::JoinHandle<Vec<super::PluginError>> {
        let files = self.begin_dir(dir);
        let runtime = self.clone();
        tokio::spawn(async move { runtime.load_files(files).await }.in_current_span())
    }

    /// Wait until no file of a directory load is still loading.
    pub async fn wait_loaded(&self) {
        let mut changed = self.loading.changed.subscribe();
        while !self.loading.files().is_empty() {
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Plugin files of the directory load still being compiled (file names, sorted); empty
    /// once every one of them is loaded or has failed.
    pub fn loading(&self) -> Vec<String> {
        self.loading.files().iter().cloned().collect()
    }

    /// The plugin serving `step`; while plugins are still loading and none serves it yet,
    /// wait for it, at most `limit`. `None`: no plugin serves it (and none is loading), or
    /// the wait ran out.
    pub async fn wait_for_step(&self, step: &str, limit: Duration) -> Option<Arc<LoadedPlugin>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changed = self.loading.changed.subscribe();
        loop {
            if let Some(plugin) = self.plugin_for(step) {
                return Some(plugin);
            }
            if self.loading.files().is_empty() {
                return None;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                // Out of time (the sender lives as long as the runtime).
                _ => return self.plugin_for(step),
            }
        }
    }
}
