//! Turning a `.wasm` file into a [`LoadedPlugin`]: read, check the manifest, compile once
//! (or reuse the cached artifact for the same digest and engine), pre-link, and ask the
//! component for its steps.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bounds::{Bound, LoadBounds, ScanError};
use super::guest::GuestPre;
use super::manifest::Manifest;
use super::{Limits, LoadedPlugin, PluginError, PluginRuntime, RuntimeOptions, StepDescriptor};
use crate::store::BoxError;

/// The most linear memory any plugin may be granted: the pooling allocator's hard cap per
/// memory. At least 1 GiB, so a manifest may raise a plugin above the default.
fn max_memory_bytes(options: &RuntimeOptions) -> u64 {
    options.limits.memory_bytes.max(1 << 30)
}

/// The wasmtime engine every plugin shares.
pub(super) fn build_engine(options: &RuntimeOptions) -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    let instances = options.max_instances.max(16);
    let mut pool = PoolingAllocationConfig::default();
    // Interpreted guests (Python, JS) hold about 15 core instances per component, so size
    // core-level resources well beyond the component count.
    pool.total_component_instances(instances)
        .total_core_instances(instances * 16)
        .total_memories(instances * 2)
        .total_tables(instances * 16)
        .total_stacks(instances)
        .max_memory_size(max_memory_bytes(options) as usize)
        .max_core_instance_size(16 << 20)
        .max_component_instance_size(16 << 20)
        .max_memories_per_component(32)
        .max_tables_per_component(64)
        .table_elements(100_000)
        // A slot's memory is reset by `memset` up to these sizes instead of `madvise`: fewer
        // page faults per call. At most `max_unused_warm_slots` (100) slots stay warm, so
        // this keeps at most a few tens of MiB resident.
        .linear_memory_keep_resident(256 << 10)
        .table_keep_resident(16 << 10)
        // The rest goes back to the system as each instance ends. A batch of slots would
        // wait, resident, until enough others end: after a burst of calls using a lot of
        // memory that held hundreds of MiB on an idle host.
        .decommit_batch_size(1);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|source| PluginError::Runtime {
        what: "cannot build the wasm engine",
        source,
    })
}

/// Why a file did not load: the reason operators see, and the error beneath it.
struct LoadFailure {
    message: String,
    source: Option<BoxError>,
}

impl LoadFailure {
    /// `message`, caused by `source`.
    fn caused(message: String, source: impl Into<BoxError>) -> Self {
        Self {
            message,
            source: Some(source.into()),
        }
    }

    fn into_error(self, file: &str) -> PluginError {
        PluginError::Load {
            file: file.to_string(),
            message: self.message,
            source: self.source,
        }
    }
}

impl From<String> for LoadFailure {
    fn from(message: String) -> Self {
        Self {
            message,
            source: None,
        }
    }
}

impl From<&str> for LoadFailure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// `wasmtime`'s error as a standard boxed error, its chain kept.
fn boxed(e: wasmtime::Error) -> BoxError {
    e.into()
}

/// Load one file; does not publish it.
pub(super) async fn load(rt: &PluginRuntime, path: &Path) -> Result<LoadedPlugin, PluginError> {
    let file = super::file_name(path);
    let fail = |message: String| LoadFailure::from(message).into_error(&file);
    let unreadable =
        |e: std::io::Error| LoadFailure::caused(format!("cannot read: {e}"), e).into_error(&file);
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    // Before reading: a huge file is refused by its size alone.
    let max_file_bytes = rt.options.limits.load.max_file_bytes;
    if meta.len() > max_file_bytes {
        let exceeds = ScanError::Exceeds {
            bound: Bound::FileSize,
            found: meta.len(),
            limit: max_file_bytes,
        };
        return Err(LoadFailure::caused(exceeds.to_string(), exceeds).into_error(&file));
    }
    let bytes = tokio::fs::read(path).await.map_err(unreadable)?;
    let manifest = Manifest::for_plugin(path).map_err(&fail)?;
    let config = manifest.resolved_config().map_err(&fail)?;
    let (component, digest) = compile(rt, bytes).await.map_err(|f| f.into_error(&file))?;
    let pre = GuestPre::new(&rt.linker, &component).map_err(&fail)?;
    let limits = limits(&rt.options, &manifest).map_err(&fail)?;
    let namespace = match &manifest.name {
        Some(name) if super::manifest::valid_name(name) => name.clone(),
        Some(name) => {
            return Err(fail(format!(
                "manifest name `{name}` must be 1 to 64 of a-z, 0-9, `_` and `-`"
            )));
        }
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.clone()),
    };
    let mut plugin = LoadedPlugin {
        file: file.clone(),
        namespace,
        digest,
        wit: pre.version(),
        steps: Vec::new(),
        limits,
        loaded_at: SystemTime::now(),
        pre,
        config: Arc::new(config),
        http_allow: Arc::new(
            manifest
                .http
                .allow
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect::<HashSet<_>>(),
        ),
    };
    let infos = rt
        .call_steps(&plugin)
        .await
        .map_err(|e| fail(format!("its steps() call failed: {}", e.message)))?;
    let mut seen = HashSet::new();
    for info in &infos {
        if info.name.is_empty() || !seen.insert(info.name.clone()) {
            return Err(fail(format!(
                "declares an empty or repeated step name `{}`",
                info.name
            )));
        }
    }
    if infos.is_empty() {
        return Err(fail("declares no steps".into()));
    }
    for info in &infos {
        if let Some(Err(e)) = info.policy.as_ref().map(|p| p.check()) {
            return Err(fail(format!(
                "step `{}` declares a bad policy: {e}",
                info.name
            )));
        }
    }
    // A breaker belongs to the plugin that declares the service, unless its manifest
    // shares that service on purpose: another plugin cannot open this one's breakers.
    plugin.steps = infos
        .into_iter()
        .map(|mut s| {
            if !manifest.shared_services.contains(&s.service) {
                s.service = format!("{}:{}", plugin.namespace, s.service);
            }
            s
        })
        .collect();
    Ok(plugin)
}

/// The plugin's limits: the host's defaults, overridden by its manifest.
fn limits(options: &RuntimeOptions, manifest: &Manifest) -> Result<Limits, String> {
    let defaults = options.limits;
    let wanted = &manifest.limits;
    // The pool caps every memory whatever the store's limiter allows, so a larger grant
    // would fail later with a confusing growth error: refuse it at load instead.
    let max_mb = max_memory_bytes(options) >> 20;
    let memory_bytes = match wanted.memory_mb {
        None => defaults.memory_bytes,
        Some(mb) if (1..=max_mb).contains(&mb) => mb << 20,
        Some(mb) => {
            return Err(format!(
                "limits.memory_mb = {mb} is outside 1..={max_mb}, what this host allows"
            ));
        }
    };
    let max_output_bytes = match wanted.max_output_kb {
        None => defaults.max_output_bytes,
        Some(kb) => kb
            .checked_mul(1 << 10)
            .ok_or_else(|| format!("limits.max_output_kb = {kb} is too large"))?,
    };
    let timeout = match wanted.timeout {
        None => defaults.timeout,
        Some(t) if !t.is_zero() && t <= MAX_STEP_TIMEOUT => t,
        Some(t) => {
            return Err(format!(
                "limits.timeout = {} is outside (0, {}]",
                humantime::format_duration(t),
                humantime::format_duration(MAX_STEP_TIMEOUT)
            ));
        }
    };
    Ok(Limits {
        memory_bytes,
        timeout,
        max_output_bytes,
        ..defaults
    })
}

// The longest step deadline a manifest may ask for (a saga's own timeout still bounds it)
// is the one a step's policy may ask for.
use crate::policy::MAX_STEP_TIMEOUT;

/// Check `bytes` against the load bounds, then compile them, or load the artifact cached
/// for their digest and this engine; returns the component and the digest. This runs on the
/// blocking pool, one file at a time, so a large component never holds up an async worker
/// and running sagas keep their cores.
///
/// A compile cannot be cancelled: past `compile_timeout` the load fails, while the compile
/// goes on to its end on the blocking pool and keeps the one compile slot until then, so a
/// runaway compile never runs beside the next one. The bounds checked before it bound how
/// long that can be.
async fn compile(rt: &PluginRuntime, bytes: Vec<u8>) -> Result<(Component, String), LoadFailure> {
    let engine = rt.engine.clone();
    let cache = rt.cache.clone();
    let bounds = rt.options.limits.load;
    let slot = rt
        .compile_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| LoadFailure::caused(format!("cannot compile: {e}"), e))?;
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let digest = hex::encode(Sha256::digest(&bytes));
        let cached = cache.map(|c| {
            let name = format!("{}.cwasm", cache_key(&engine, &digest));
            (c, name)
        });
        compile_blocking(&engine, &bytes, &bounds, cached).map(|c| (c, digest))
    });
    match tokio::time::timeout(bounds.compile_timeout, task).await {
        Ok(done) => {
            done.map_err(|e| LoadFailure::caused(format!("compile task failed: {e}"), e))?
        }
        Err(_) => Err(LoadFailure::from(format!(
            "compiling took longer than {} (plugin_compile_timeout); the compile goes on in \
             the background and holds the compiler until it ends",
            humantime::format_duration(bounds.compile_timeout)
        ))),
    }
}

fn compile_blocking(
    engine: &Engine,
    bytes: &[u8],
    bounds: &LoadBounds,
    cached: Option<(super::cache::ArtifactCache, String)>,
) -> Result<Component, LoadFailure> {
    let invalid =
        |e: wasmtime::Error| LoadFailure::caused(format!("invalid component: {e:#}"), boxed(e));
    if bytes.get(..4) != Some(b"\0asm") {
        return Err("not a WebAssembly file".into());
    }
    // Version 1, layer 0: a core module. Said plainly, since the parser's own message
    // (an unknown component version) does not tell the author what to do.
    if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
        return Err(
            "a core WebAssembly module, not a component: build for wasm32-wasip2, or wrap it \
             with `wasm-tools component new`"
                .into(),
        );
    }
    // Even with an artifact cached: the bounds may have been lowered since it was compiled.
    super::bounds::scan(bytes, bounds).map_err(|e| LoadFailure::caused(e.to_string(), e))?;
    if let Some((cache, name)) = &cached {
        match cache.read(name) {
            // SAFETY: the artifact's HMAC verified under the key only this host's user can
            // read, so this host wrote it with `precompile_component`, for an engine whose
            // compatibility hash is part of its name.
            #[allow(unsafe_code)]
            Ok(artifact) => match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(%name, error = %format!("{e:#}"), "ignoring unusable cached artifact")
                }
            },
            Err(super::cache::CacheError::Missing) => {}
            Err(e) => tracing::warn!(error = %e, "not loading a cached artifact; compiling again"),
        }
    }
    let Some((cache, name)) = cached else {
        return Component::new(engine, bytes).map_err(invalid);
    };
    let artifact = engine.precompile_component(bytes).map_err(invalid)?;
    if let Err(e) = cache.write(&name, &artifact) {
        tracing::warn!(%name, error = %e, "cannot cache a compiled plugin");
    }
    // SAFETY: `artifact` was produced just now by this engine.
    #[allow(unsafe_code)]
    unsafe { Component::deserialize(engine, &artifact) }.map_err(invalid)
}

/// Cache file name: the component digest plus a hash of everything that makes an artifact
/// valid for this engine (wasmtime version and configuration).
fn cache_key(engine: &Engine, digest: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{}-{:016x}", &digest[..32], h.finish())
}

/// Cached artifacts no loaded plugin uses are deleted once they are this old (younger
/// ones may belong to another host sharing the directory, mid-load).
const CACHE_KEEP_UNUSED: std::time::Duration = std::time::Duration::from_secs(3600);

impl PluginRuntime {
    /// Delete cached artifacts that no loaded plugin uses (older versions, other engine
    /// builds) and leftovers of interrupted writes, once they are an hour old. Returns how
    /// many files went.
    pub fn prune_cache(&self) -> usize {
        let Some(dir) = &self.options.cache_dir else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let in_use: HashSet<String> = self
            .registry
            .load()
            .by_file
            .values()
            .map(|p| format!("{}.cwasm", cache_key(&self.engine, &p.digest)))
            .collect();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".cwasm") || name.contains(".tmp");
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= CACHE_KEEP_UNUSED);
            if ours && old && !in_use.contains(&name) && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %dir.display(), "removed unused compiled plugins");
        }
        removed
    }

    /// Ask a freshly loaded component for its steps, in a sandbox like any call.
    async fn call_steps(
        &self,
        plugin: &LoadedPlugin,
    ) -> Result<Vec<StepDescriptor>, super::CallFailure> {
        match self
            .call(plugin, super::call::CallKind::Steps, "", None, None)
            .await?
            .value
        {
            super::call::CallValue::Steps(steps) => Ok(steps),
            _ => unreachable!("a steps call returns steps"),
        }
    }
}
