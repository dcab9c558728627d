//! The plugin runtime: loads `*.wasm` components that implement `rte:saga`, keeps each
//! compiled once and pre-linked, and calls their steps in a fresh sandboxed instance.
//!
//! - [`loader`]: compile (with an on-disk cache by digest), pre-instantiate, list steps.
//! - [`bounds`]: what a component may hold, checked before it is compiled.
//! - [`call`]: one step call: a new `Store` with limits, a deadline and a key-value overlay.
//! - [`local`]: one call outside any saga, for `rte step run`.
//! - [`watcher`]: reloads the plugins directory as files come, change and go.

mod bindings;
pub mod bounds;
pub mod cache;
mod call;
mod epoch;
mod guest;
mod host_impl;
mod http_policy;
mod loader;
mod loading;
mod local;
mod manifest;
pub mod messaging;
mod output;
mod state;
mod stderr;
mod watcher;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use wasmtime::component::Linker;

pub use call::{CallFailure, CallOutput, FailureKind, KeyLookup, Keyed, StepCall};
pub use epoch::EpochTicker;
pub use guest::WitVersion;
pub use local::{LocalError, LocalPhase, LocalResult, LocalWrite, MemoryKv};
pub use manifest::Manifest;
pub use messaging::{MessagingPolicy, Published, WaitRequest};
pub use state::is_reserved_header;
pub use watcher::PluginWatcher;

use guest::GuestPre;
use state::CallState;

/// Why a plugin could not be loaded or called.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file is not a valid `rte:saga` component, or its manifest is wrong.
    #[error("cannot load plugin {file}: {message}")]
    Load {
        /// The file.
        file: String,
        /// What is wrong with it, as operators see it.
        message: String,
        /// The error beneath, when there is one (wasmtime's, the file system's, the
        /// load bounds' check).
        #[source]
        source: Option<crate::store::BoxError>,
    },
    /// The runtime itself could not be set up.
    #[error("plugin runtime: {what}: {source:#}")]
    Runtime {
        /// What could not be set up.
        what: &'static str,
        /// Wasmtime's error beneath.
        #[source]
        source: wasmtime::Error,
    },
}

/// Limits of one plugin's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: u64,
    /// Deadline of one call.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String)]
    pub timeout: Duration,
    /// Largest output, in bytes.
    pub max_output_bytes: u64,
    /// Most key-value bytes (keys and values) one call may write.
    pub max_kv_write_bytes: u64,
    /// Most keys one call may write or delete.
    pub max_kv_keys: u64,
    /// Most log bytes one call may write; the rest is dropped.
    pub max_log_bytes: u64,
    /// Host-wide bounds on loading a component (not per plugin: a manifest cannot change
    /// them, and `/api/plugins` does not show them).
    #[serde(skip)]
    pub load: bounds::LoadBounds,
}

impl Default for Limits {
    /// The defaults of [`crate::Config`].
    fn default() -> Self {
        Self::from_config(&crate::Config::default())
    }
}

impl Limits {
    /// The limits `config` sets for plugins whose manifest sets none.
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            memory_bytes: config.plugin_memory_mb << 20,
            timeout: config.step_timeout,
            max_output_bytes: config.plugin_max_output_kb << 10,
            max_kv_write_bytes: config.plugin_max_kv_write_kb << 10,
            max_kv_keys: config.plugin_max_kv_keys,
            max_log_bytes: config.plugin_max_log_kb << 10,
            load: bounds::LoadBounds::from_config(config),
        }
    }
}

/// How to set up the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Limits for plugins whose manifest sets none.
    pub limits: Limits,
    /// Where compiled components are cached (`None`: no disk cache).
    pub cache_dir: Option<PathBuf>,
    /// Instances that may be live at once (sizes the pooling allocator).
    pub max_instances: u32,
}

/// What a plugin says about one of its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StepDescriptor {
    /// Step name.
    pub name: String,
    /// Version of its code.
    pub version: String,
    /// Service its circuit breaker is keyed by.
    pub service: String,
    /// Whether it can be compensated.
    pub supports_compensation: bool,
    /// Whether it returns idempotency keys.
    pub supports_idempotency: bool,
    /// Whether it has a confirm that makes its effect final (TCC).
    pub supports_confirm: bool,
    /// One line for operators.
    pub description: String,
    /// How the step asks to be run (WIT 0.2.0 plugins; `None`: the host's defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::StepPolicy>,
}

/// A loaded, pre-linked plugin. Calls hold an `Arc` of it, so a reload never cuts a
/// running call short.
pub struct LoadedPlugin {
    /// File name (e.g. `bank.wasm`).
    pub file: String,
    /// The plugin's identity and key-value namespace: its manifest's `name`, else the
    /// file stem.
    pub namespace: String,
    /// SHA-256 of the file, hex.
    pub digest: String,
    /// The `rte:saga` version it targets.
    pub wit: WitVersion,
    /// Its steps.
    pub steps: Vec<StepDescriptor>,
    /// Its limits.
    pub limits: Limits,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    pre: GuestPre,
    config: Arc<HashMap<String, String>>,
    http_allow: Arc<HashSet<String>>,
}

impl LoadedPlugin {
    /// The descriptor of `step`, if this plugin has it.
    pub fn step(&self, name: &str) -> Option<&StepDescriptor> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// A plugin file's state, for `/api/plugins`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginStatus {
    /// File name.
    pub file: String,
    /// The plugin's name (its identity: kv data and breakers) in the version serving.
    pub name: Option<String>,
    /// Digest of the version serving, if any.
    pub digest: Option<String>,
    /// The `rte:saga` version the serving version targets.
    pub wit: Option<WitVersion>,
    /// Steps of the version serving.
    pub steps: Vec<StepDescriptor>,
    /// Limits of the version serving.
    pub limits: Option<Limits>,
    /// When the serving version was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The last load error, if the newest file could not be loaded.
    pub error: Option<String>,
}

#[derive(Default, Clone)]
struct Registry {
    by_file: BTreeMap<String, Arc<LoadedPlugin>>,
    by_step: HashMap<String, Arc<LoadedPlugin>>,
    errors: BTreeMap<String, String>,
    /// Loaded plugins refused because another file claims one of their step names or
    /// their plugin name; each serves again once the claim is its own.
    blocked: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Why each blocked file is refused.
    clashes: BTreeMap<String, String>,
}

impl Registry {
    /// Serve every loaded plugin whose step names and plugin name no other file claims;
    /// refuse every file of a clash (none wins by file-name order), and serve a survivor
    /// again once the clash is gone.
    fn settle(&mut self) {
        let mut all = std::mem::take(&mut self.by_file);
        all.append(&mut self.blocked);
        self.clashes.clear();
        let mut claims: BTreeMap<(&'static str, String), Vec<String>> = BTreeMap::new();
        for (file, p) in &all {
            claims
                .entry(("plugin name", p.namespace.clone()))
                .or_default()
                .push(file.clone());
            for s in &p.steps {
                claims
                    .entry(("step", s.name.clone()))
                    .or_default()
                    .push(file.clone());
            }
        }
        for ((what, name), files) in &claims {
            if files.len() > 1 {
                for file in files {
                    self.clashes.entry(file.clone()).or_insert_with(|| {
                        format!(
                            "{what} `{name}` is claimed by {}: each is refused until only one claims it",
                            files.join(" and ")
                        )
                    });
                }
            }
        }
        for (file, plugin) in all {
            if self.clashes.contains_key(&file) {
                self.blocked.insert(file, plugin);
            } else {
                self.by_file.insert(file, plugin);
            }
        }
        self.rebuild_steps();
    }

    fn rebuild_steps(&mut self) {
        self.by_step.clear();
        for plugin in self.by_file.values() {
            for step in &plugin.steps {
                self.by_step.insert(step.name.clone(), plugin.clone());
            }
        }
    }
}

/// Loads plugins and calls their steps.
pub struct PluginRuntime {
    engine: wasmtime::Engine,
    linker: Linker<CallState>,
    registry: ArcSwap<Registry>,
    /// Serialises registry updates (reads stay lock-free).
    publish: std::sync::Mutex<()>,
    options: RuntimeOptions,
    /// One compile at a time; a compile past its timeout keeps its slot until it ends.
    compile_slots: Arc<tokio::sync::Semaphore>,
    /// The compiled-code cache, when one is configured and could be opened.
    cache: Option<cache::ArtifactCache>,
    /// How fast each plugin's stdout and stderr lines may reach the log.
    output_rates: Arc<output::LineRates>,
    /// Files of a directory load not yet loaded.
    loading: loading::Loading,
    /// What calls may publish: set once the host's broker is connected.
    messaging: arc_swap::ArcSwapOption<messaging::MessagingPolicy>,
    _ticker: EpochTicker,
}

impl PluginRuntime {
    /// Build the wasmtime engine (pooling allocator, epoch interruption) and the linker
    /// with only what plugins may import: `rte:saga`, WASI without files, sockets or
    /// environment, and outbound `wasi:http` behind each plugin's allow-list.
    pub fn new(options: RuntimeOptions) -> Result<Self, PluginError> {
        let engine = loader::build_engine(&options)?;
        let mut linker = Linker::<CallState>::new(&engine);
        let err = |source| PluginError::Runtime {
            what: "cannot link the host's imports",
            source,
        };
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(err)?;
        bindings::v1::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(err)?;
        bindings::v2::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(err)?;
        let ticker = EpochTicker::start(&engine);
        let cache = options.cache_dir.as_deref().and_then(|dir| {
            cache::ArtifactCache::open(dir)
                .inspect_err(|e| {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot use the compiled-plugin cache; compiling every plugin at load")
                })
                .ok()
        });
        Ok(Self {
            cache,
            engine,
            linker,
            registry: ArcSwap::from_pointee(Registry::default()),
            publish: std::sync::Mutex::new(()),
            options,
            compile_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            output_rates: Arc::default(),
            loading: loading::Loading::default(),
            messaging: arc_swap::ArcSwapOption::empty(),
            _ticker: ticker,
        })
    }

    /// Let calls publish messages under `policy` (`None`: publishing fails with a clear
    /// error, as on a host without a broker).
    pub fn set_messaging(&self, policy: Option<MessagingPolicy>) {
        self.messaging.store(policy.map(Arc::new));
    }

    /// Load every `*.wasm` in `dir`. A file that fails is recorded with its error and the
    /// others still load; returns the failures.
    pub async fn load_dir(&self, dir: &Path) -> Vec<PluginError> {
        let files = self.begin_dir(dir);
        self.load_files(files).await
    }

    /// The `*.wasm` files of `dir`, sorted, each marked as loading.
    fn begin_dir(&self, dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read plugins directory");
                return Vec::new();
            }
        };
        files.sort();
        self.loading.begin(files.iter().map(|p| file_name(p)));
        files
    }

    /// Load `files` (marked as loading) one after the other; returns the failures.
    async fn load_files(&self, files: Vec<PathBuf>) -> Vec<PluginError> {
        let mut failures = Vec::new();
        for path in files {
            let result = self.load_file(&path).await;
            self.loading.end(&file_name(&path));
            if let Err(e) = result {
                tracing::error!(error = %e, "plugin not loaded");
                failures.push(e);
            }
        }
        self.prune_cache();
        failures
    }

    /// Load (or reload) one file and publish it. On failure the previous version, if
    /// any, keeps serving and the error is shown in [`PluginRuntime::plugins`].
    pub async fn load_file(&self, path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let file = file_name(path);
        let result = loader::load(self, path).await;
        let _guard = self.publish.lock().unwrap_or_else(|p| p.into_inner());
        let mut registry = (**self.registry.load()).clone();
        let outcome = match result {
            Ok(plugin) => {
                let plugin = Arc::new(plugin);
                registry.errors.remove(&file);
                registry.blocked.remove(&file);
                registry.by_file.insert(file.clone(), plugin.clone());
                let before: Vec<String> = registry.blocked.keys().cloned().collect();
                registry.settle();
                for other in registry.blocked.keys().filter(|f| !before.contains(f)) {
                    tracing::error!(file = %other, reason = %registry.clashes[other], "plugin refused");
                }
                match registry.clashes.get(&file) {
                    Some(message) => Err(PluginError::Load {
                        file: file.clone(),
                        message: message.clone(),
                        source: None,
                    }),
                    None => {
                        tracing::info!(
                            file = %file,
                            digest = %&plugin.digest[..12],
                            steps = ?plugin.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                            "plugin loaded"
                        );
                        crate::telemetry::metrics()
                            .plugin_reloads
                            .with_label_values(&[file.as_str()])
                            .inc();
                        Ok(plugin)
                    }
                }
            }
            Err(e) => Err(e),
        };
        if let Err(PluginError::Load { message, .. }) = &outcome {
            crate::telemetry::metrics()
                .plugin_load_errors
                .with_label_values(&[file.as_str()])
                .inc();
            if !registry.clashes.contains_key(&file) {
                registry.errors.insert(file, message.clone());
            }
        }
        self.registry.store(Arc::new(registry));
        outcome
    }

    /// Load `path` exactly as [`PluginRuntime::load_file`] would (compile, link against what
    /// RTE provides, ask for its steps) without publishing it: what `rte plugins check` shows.
    pub async fn inspect(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        loader::load(self, path).await
    }

    /// Unload the plugin from `path` (its file was removed).
    pub fn unload(&self, path: &Path) {
        let file = file_name(path);
        let _guard = self.publish.lock().unwrap_or_else(|p| p.into_inner());
        let mut registry = (**self.registry.load()).clone();
        let had = registry.by_file.remove(&file).is_some()
            | registry.blocked.remove(&file).is_some()
            | registry.errors.remove(&file).is_some();
        if had {
            let blocked: Vec<String> = registry.blocked.keys().cloned().collect();
            registry.settle();
            for freed in blocked.iter().filter(|f| registry.by_file.contains_key(*f)) {
                tracing::info!(file = %freed, "plugin serves again: its clash is gone");
            }
            self.registry.store(Arc::new(registry));
            tracing::info!(file = %file, "plugin unloaded");
        }
    }

    /// The limits of plugins whose manifest sets none.
    pub fn default_limits(&self) -> Limits {
        self.options.limits
    }

    /// The plugin serving `step`, if any.
    pub fn plugin_for(&self, step: &str) -> Option<Arc<LoadedPlugin>> {
        self.registry.load().by_step.get(step).cloned()
    }

    /// Every plugin file seen: loaded versions and load errors.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        let registry = self.registry.load();
        let mut files: Vec<&String> = registry
            .by_file
            .keys()
            .chain(registry.errors.keys())
            .chain(registry.clashes.keys())
            .collect();
        files.sort();
        files.dedup();
        files
            .into_iter()
            .map(|file| {
                let plugin = registry.by_file.get(file);
                PluginStatus {
                    file: file.clone(),
                    name: plugin.map(|p| p.namespace.clone()),
                    digest: plugin.map(|p| p.digest.clone()),
                    wit: plugin.map(|p| p.wit),
                    steps: plugin.map(|p| p.steps.clone()).unwrap_or_default(),
                    limits: plugin.map(|p| p.limits),
                    loaded_at: plugin
                        .map(|p| humantime::format_rfc3339_millis(p.loaded_at).to_string()),
                    error: registry
                        .errors
                        .get(file)
                        .or_else(|| registry.clashes.get(file))
                        .cloned(),
                }
            })
            .collect()
    }

    /// Names of every step available now.
    pub fn step_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.registry.load().by_step.keys().cloned().collect();
        names.sort();
        names
    }

    /// The wasmtime engine (shared by every plugin).
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

/// A step name another file already provides, as an error message.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
