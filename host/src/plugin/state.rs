//! What one plugin call's `Store` holds: WASI context, limits, the key-value overlay of
//! writes to commit with the step, and what the host imports need to know.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http_policy::HttpPolicy;
use super::messaging::{MessagingPolicy, Published, WaitRequest};
use crate::store::{KvChanges, KvRead, KvWrite, PluginKv, StoreError};

/// Per-call store data.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) limits: CallLimiter,
    /// Log bytes the call may still write; past it, lines are dropped and counted.
    pub(crate) log_budget: u64,
    /// Log bytes dropped so far (counted in the metrics when the call ends).
    pub(crate) log_dropped: u64,
    /// Wall-clock deadline of the call; the epoch callback traps past it.
    pub(crate) deadline: Instant,
    pub(crate) kv: KvOverlay,
    pub(crate) config: Arc<HashMap<String, String>>,
    pub(crate) log_span: tracing::Span,
    /// What the call may publish; `None` when the host has no broker.
    pub(crate) messaging: Option<Arc<MessagingPolicy>>,
    /// Messages published so far, held until the call's result commits.
    pub(crate) published: Vec<Published>,
    /// Bytes of `published`.
    pub(crate) published_bytes: usize,
    /// The wait the call ended with, when it ended waiting for a reply.
    pub(crate) wait: Option<WaitRequest>,
}

impl CallState {
    /// Hold `message` for the call's commit, within the host's subjects and the call's
    /// quota.
    pub(crate) fn publish(&mut self, message: Published) -> Result<(), String> {
        let Some(policy) = &self.messaging else {
            return Err(format!(
                "cannot publish to `{}`: this host has no message broker configured",
                message.subject
            ));
        };
        if !policy.allows(&message.subject) {
            return Err(format!(
                "cannot publish to `{}`: not one of this host's subjects ({})",
                message.subject,
                policy.subjects.join(", ")
            ));
        }
        if self.published.len() >= policy.max_messages {
            return Err(format!(
                "cannot publish to `{}`: a call may publish {} messages",
                message.subject, policy.max_messages
            ));
        }
        let size = message.payload.len()
            + message.subject.len()
            + message
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if self.published_bytes + size > policy.max_bytes {
            return Err(format!(
                "cannot publish to `{}`: a call may publish {} bytes in all",
                message.subject, policy.max_bytes
            ));
        }
        if let Some((k, _)) = message.headers.iter().find(|(k, _)| is_reserved_header(k)) {
            return Err(format!(
                "cannot publish to `{}`: header `{k}` is set by the host",
                message.subject
            ));
        }
        self.published_bytes += size;
        self.published.push(message);
        Ok(())
    }
}

/// Headers the host sets on every message it sends for a step (and the broker's own).
pub fn is_reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "rte-message-id" | "rte-tx-id" | "rte-step" | "rte-reply-to" | "nats-msg-id"
    )
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

/// A call went over its instance's memory cap: every linear memory of every core module
/// in the component counts toward it, not each one alone.
#[derive(Debug, thiserror::Error)]
#[error("plugin exceeded its memory limit of {cap_mib} MiB (all its memories together)")]
pub struct MemoryCapHit {
    /// The cap, in MiB.
    pub cap_mib: u64,
}

/// Accounts for the whole instance a call runs in: the total of all its linear memories
/// (a component may hold many core modules, each with its own), all its table elements,
/// and how many instances, tables and memories it may create.
#[derive(Debug)]
pub struct CallLimiter {
    memory_cap: usize,
    memory_total: usize,
    table_cap: usize,
    table_total: usize,
}

/// Table elements an instance may hold in all its tables together.
const TABLE_ELEMENTS: usize = 100_000;

impl CallLimiter {
    /// A limiter allowing `memory_bytes` of linear memory in all.
    pub fn new(memory_bytes: u64) -> Self {
        Self {
            memory_cap: memory_bytes as usize,
            memory_total: 0,
            table_cap: TABLE_ELEMENTS,
            table_total: 0,
        }
    }
}

/// Account for one memory or table going from `current` to `desired` in an instance
/// holding `total` in all; `false` (and nothing counted) when that would pass `cap`.
fn grow(total: &mut usize, cap: usize, current: usize, desired: usize) -> bool {
    let next = total.saturating_sub(current).saturating_add(desired);
    if next > cap {
        return false;
    }
    *total = next;
    true
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if !grow(&mut self.memory_total, self.memory_cap, current, desired) {
            return Err(MemoryCapHit {
                cap_mib: (self.memory_cap >> 20) as u64,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if !grow(&mut self.table_total, self.table_cap, current, desired) {
            return Err(wasmtime::format_err!(
                "plugin exceeded its limit of {} table elements",
                self.table_cap
            ));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        32
    }
}

/// A per-call limit on plugin key-value writes that a call went over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvLimitHit {
    /// Too many bytes of keys and values.
    Bytes(u64),
    /// Too many keys.
    Keys(u64),
}

impl std::fmt::Display for KvLimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvLimitHit::Bytes(max) => write!(
                f,
                "the call wrote more than its limit of {} KiB of plugin key-value data",
                max >> 10
            ),
            KvLimitHit::Keys(max) => {
                write!(f, "the call wrote more than its limit of {max} plugin keys")
            }
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
    /// Bytes of the keys and values written so far.
    written_bytes: u64,
    /// Limits on what one call may write.
    max_bytes: u64,
    max_keys: u64,
    /// The first write limit the call went over.
    limit_hit: Option<KvLimitHit>,
}

impl KvOverlay {
    /// An overlay over `namespace` of `store` (`None`: a call with no durable store, such as
    /// `steps()` at load time; reads find nothing), allowing the call `max_bytes` of keys and
    /// values written and `max_keys` keys.
    pub fn bounded(
        store: Option<Arc<dyn PluginKv>>,
        namespace: &str,
        max_bytes: u64,
        max_keys: u64,
    ) -> Self {
        Self {
            written_bytes: 0,
            max_bytes,
            max_keys,
            limit_hit: None,
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

    /// The first write limit the call went over, if any.
    pub(crate) fn limit_hit(&self) -> Option<&KvLimitHit> {
        self.limit_hit.as_ref()
    }

    /// Stage a write (`None`: a delete), unless it takes the call over its limits.
    pub(crate) fn put(&mut self, key: String, value: Option<String>) -> Result<(), String> {
        let size =
            |k: &str, v: &Option<String>| (k.len() + v.as_ref().map_or(0, String::len)) as u64;
        let before = self.changes.get(&key).map(|old| size(&key, old));
        let bytes = self.written_bytes - before.unwrap_or(0) + size(&key, &value);
        let keys = self.changes.len() as u64 + u64::from(before.is_none());
        let hit = if bytes > self.max_bytes {
            Some(KvLimitHit::Bytes(self.max_bytes))
        } else if keys > self.max_keys {
            Some(KvLimitHit::Keys(self.max_keys))
        } else {
            None
        };
        if let Some(hit) = hit {
            let text = hit.to_string();
            self.limit_hit.get_or_insert(hit);
            return Err(text);
        }
        self.written_bytes = bytes;
        if self.changes.insert(key.clone(), value).is_none() {
            self.order.push(key);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Many memories, each under the cap, together over it: refused at the one that
    /// crosses it (a component may hold dozens of core modules, each with a memory).
    #[test]
    fn the_memory_cap_covers_all_memories_together() {
        let mut limiter = CallLimiter::new(64 << 20);
        let memory = 63 << 20;
        assert!(limiter.memory_growing(0, memory, None).unwrap());
        let second = limiter.memory_growing(0, memory, None);
        let err = second.expect_err("a second 63 MiB memory goes over 64 MiB");
        assert!(err.downcast_ref::<MemoryCapHit>().is_some(), "{err:#}");
        // Growing the first within the cap still works; shrinking accounting stays exact.
        assert!(
            limiter
                .memory_growing(memory, (64 << 20) - 1, None)
                .unwrap()
        );
        assert!(limiter.memory_growing(0, 2, None).is_err());
        let mut tables = CallLimiter::new(1 << 20);
        assert!(tables.table_growing(0, TABLE_ELEMENTS, None).unwrap());
        assert!(tables.table_growing(0, 1, None).is_err());
    }

    #[test]
    fn kv_writes_are_bounded_in_bytes_and_keys() {
        let mut kv = KvOverlay::bounded(None, "p", 100, 3);
        assert!(kv.put("a".into(), Some("x".repeat(40))).is_ok());
        // Rewriting a key counts its new size, not both.
        assert!(kv.put("a".into(), Some("y".repeat(60))).is_ok());
        assert!(kv.put("b".into(), Some("z".repeat(38))).is_ok());
        assert_eq!(kv.limit_hit(), None);
        let err = kv.put("c".into(), Some("w".repeat(10))).unwrap_err();
        assert!(err.contains("KiB of plugin key-value data"), "{err}");
        assert_eq!(kv.limit_hit(), Some(&KvLimitHit::Bytes(100)));
        let mut kv = KvOverlay::bounded(None, "p", 1 << 20, 2);
        assert!(kv.put("a".into(), None).is_ok());
        assert!(kv.put("b".into(), None).is_ok());
        assert!(kv.put("a".into(), Some("again".into())).is_ok());
        assert!(kv.put("c".into(), None).is_err());
        assert_eq!(kv.limit_hit(), Some(&KvLimitHit::Keys(2)));
        let changes = kv.into_changes();
        assert_eq!(changes.writes.len(), 2, "refused writes are not kept");
    }
}
