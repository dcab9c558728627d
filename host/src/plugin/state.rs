//! What one plugin call's `Store` holds: WASI context, limits, the key-value overlay of
//! writes to commit with the step, and what the host imports need to know.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http_policy::HttpPolicy;
use crate::store::{KvChanges, KvRead, KvWrite, PluginKv, StoreError};

/// Per-call store data.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) limits: StoreLimits,
    /// Wall-clock deadline of the call; the epoch callback traps past it.
    pub(crate) deadline: Instant,
    pub(crate) kv: KvOverlay,
    pub(crate) config: Arc<HashMap<String, String>>,
    pub(crate) log_span: tracing::Span,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

/// The plugin's key-value namespace as seen by one call: reads fall through to the store
/// (each key's version noted the first time), writes stay here until the engine commits
/// them with the step's result, and only if none of the keys read has changed by then.
pub struct KvOverlay {
    store: Option<Arc<dyn PluginKv>>,
    namespace: String,
    changes: HashMap<String, Option<String>>,
    order: Vec<String>,
    /// Version of each key read from the store (`0`: absent).
    reads: HashMap<String, i64>,
    /// The first read that failed because the store could not be reached.
    unavailable: Option<StoreError>,
}

impl KvOverlay {
    /// An overlay over `namespace` of `store` (`None`: a call with no durable store, such as
    /// `steps()` at load time; reads find nothing).
    pub fn new(store: Option<Arc<dyn PluginKv>>, namespace: &str) -> Self {
        Self {
            store,
            namespace: namespace.to_string(),
            changes: HashMap::new(),
            order: Vec::new(),
            reads: HashMap::new(),
            unavailable: None,
        }
    }

    /// Why a read failed because the store could not be reached, if one did.
    pub(crate) fn store_unavailable(&self) -> Option<&StoreError> {
        self.unavailable.as_ref()
    }

    pub(crate) async fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        if let Some(v) = self.changes.get(key) {
            return Ok(v.clone());
        }
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let found = match store.kv_read(&self.namespace, key).await {
            Ok(found) => found,
            Err(e) => {
                let text = e.to_string();
                if e.is_retryable() && self.unavailable.is_none() {
                    self.unavailable = Some(e);
                }
                return Err(text);
            }
        };
        // The first read counts: a later one that differs will be refused at commit anyway.
        self.reads
            .entry(key.to_string())
            .or_insert(found.as_ref().map_or(0, |v| v.version));
        Ok(found.map(|v| v.value))
    }

    pub(crate) fn put(&mut self, key: String, value: Option<String>) {
        if self.changes.insert(key.clone(), value).is_none() {
            self.order.push(key);
        }
    }

    /// What the call read and wrote: writes once each, in first-write order.
    pub fn into_changes(mut self) -> KvChanges {
        let writes = self
            .order
            .into_iter()
            .map(|key| {
                let value = self.changes.remove(&key).flatten();
                KvWrite { key, value }
            })
            .collect();
        KvChanges {
            namespace: self.namespace,
            reads: self
                .reads
                .into_iter()
                .map(|(key, version)| KvRead { key, version })
                .collect(),
            writes,
        }
    }
}
