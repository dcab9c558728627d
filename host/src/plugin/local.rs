//! One step call outside any saga, for `rte step run`: the host's own sandbox, limits and
//! imports, with the plugin's kv namespace held in memory (the caller may load it from a
//! file and save what the call committed).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};

use super::call::{CallFailure, Keyed, StepCall};
use super::{LoadedPlugin, PluginRuntime};
use crate::store::{KvChanges, KvValue, PluginKv, StoreResult};

/// A plugin's kv namespace in memory: what a local call reads, and where its writes land
/// when it succeeds. Every stored value reads as version 1 (nothing runs beside the call).
#[derive(Debug, Default)]
pub struct MemoryKv {
    values: Mutex<BTreeMap<String, String>>,
}

impl MemoryKv {
    /// A namespace holding `values`.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self {
            values: Mutex::new(values),
        }
    }

    /// Every key and value.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.lock().clone()
    }

    /// Apply a call's writes, as the host does when the call's result commits.
    pub fn apply(&self, changes: &KvChanges) {
        let mut values = self.lock();
        for write in &changes.writes {
            match &write.value {
                Some(value) => values.insert(write.key.clone(), value.clone()),
                None => values.remove(&write.key),
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl PluginKv for MemoryKv {
    async fn kv_read(&self, _namespace: &str, key: &str) -> StoreResult<Option<KvValue>> {
        Ok(self.lock().get(key).map(|value| KvValue {
            value: value.clone(),
            version: 1,
        }))
    }
}

/// Which call of a step to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalPhase {
    /// Ask for the idempotency key, then execute.
    Execute,
    /// Compensate an execute that completed.
    Compensate,
    /// Compensate an execute whose outcome is unknown (its host stopped while it ran).
    CompensateUnknown,
    /// Confirm.
    Confirm,
}

/// One kv write of a call: `value` `None` is a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalWrite {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes.
    pub value: Option<String>,
}

/// How a local call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalError {
    /// The failure's kind (`retryable`, `permanent`, `trap`, `timeout`, ...).
    pub kind: crate::lifecycle::FailureKind,
    /// Whether the host would try again.
    pub retryable: bool,
    /// The message, as a saga's step error would show it.
    pub message: String,
}

impl From<CallFailure> for LocalError {
    fn from(failure: CallFailure) -> Self {
        Self {
            kind: failure.kind,
            retryable: failure.is_retryable(),
            message: failure.message,
        }
    }
}

/// What one local call came to.
#[derive(Debug, Clone, Serialize)]
pub struct LocalResult {
    /// The plugin file.
    pub plugin: String,
    /// The step.
    pub step: String,
    /// The call made.
    pub phase: LocalPhase,
    /// Whether it succeeded.
    pub ok: bool,
    /// The outputs execute set (execute only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Map<String, Value>>,
    /// The idempotency key the step gave before execute, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The kv writes the host would commit with the result (none when the call failed).
    pub kv_writes: Vec<LocalWrite>,
    /// Why the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LocalError>,
}

impl PluginRuntime {
    /// Make one call of `call.step_name` in `plugin`, exactly as a saga would (same instance
    /// setup, limits and imports), against `kv`; a successful call's writes are applied to
    /// `kv`. `phase` decides what the call is told of execute's outcome. An execute first asks for the step's idempotency key, in the same instance;
    /// no earlier run of a key is known here, so execute always runs.
    pub async fn run_local(
        &self,
        plugin: &LoadedPlugin,
        phase: LocalPhase,
        call: &StepCall,
        kv: Arc<MemoryKv>,
    ) -> LocalResult {
        let mut result = LocalResult {
            plugin: plugin.file.clone(),
            step: call.step_name.clone(),
            phase,
            ok: false,
            outputs: None,
            idempotency_key: None,
            kv_writes: Vec::new(),
            error: None,
        };
        let store: Arc<dyn PluginKv> = kv.clone();
        let mut call = call.clone();
        call.execute_completed = match phase {
            LocalPhase::Execute => None,
            LocalPhase::Compensate | LocalPhase::Confirm => Some(true),
            LocalPhase::CompensateUnknown => Some(false),
        };
        let call = &call;
        let changes = match phase {
            LocalPhase::Execute => {
                let lookup: super::KeyLookup = Box::new(|_| Box::pin(async { Ok(None) }));
                self.execute_keyed(plugin, call, store, lookup, Box::new(|| {}))
                    .await
                    .map(|out| {
                        if let Keyed::Ran { key, outputs } = out.value {
                            result.idempotency_key = key;
                            result.outputs = Some(outputs);
                        }
                        out.kv
                    })
            }
            LocalPhase::Compensate | LocalPhase::CompensateUnknown => {
                self.compensate(plugin, call, store).await.map(|out| out.kv)
            }
            LocalPhase::Confirm => self.confirm(plugin, call, store).await.map(|out| out.kv),
        };
        match changes {
            Ok(changes) => {
                kv.apply(&changes);
                result.ok = true;
                result.kv_writes = changes
                    .writes
                    .into_iter()
                    .map(|w| LocalWrite {
                        key: w.key,
                        value: w.value,
                    })
                    .collect();
            }
            Err(failure) => result.error = Some(failure.into()),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KvWrite;

    #[tokio::test]
    async fn memory_kv_reads_what_it_holds_and_applies_writes() {
        let kv = MemoryKv::new(BTreeMap::from([("a".into(), "1".into())]));
        assert_eq!(kv.kv_get("ns", "a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(kv.kv_get("ns", "b").await.unwrap(), None);
        kv.apply(&KvChanges {
            namespace: "ns".into(),
            reads: vec![],
            writes: vec![
                KvWrite {
                    key: "a".into(),
                    value: None,
                },
                KvWrite {
                    key: "b".into(),
                    value: Some("2".into()),
                },
            ],
        });
        assert_eq!(
            kv.snapshot(),
            BTreeMap::from([("b".to_string(), "2".to_string())])
        );
    }
}
