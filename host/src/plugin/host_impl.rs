//! The host side of the plugin imports: `log`, `kv` and `config`.

use wasmtime::Result;

use super::bindings::rte::saga::{config, kv, log, types};
use super::state::CallState;

/// Longest key or value a plugin may store, so one plugin cannot bloat the database.
const MAX_KV_KEY: usize = 255;
const MAX_KV_VALUE: usize = 1 << 20;

impl types::Host for CallState {}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) -> Result<()> {
        let _entered = self.log_span.enter();
        match level {
            log::Level::Trace => tracing::trace!(target: "rte::plugin", "{message}"),
            log::Level::Debug => tracing::debug!(target: "rte::plugin", "{message}"),
            log::Level::Info => tracing::info!(target: "rte::plugin", "{message}"),
            log::Level::Warn => tracing::warn!(target: "rte::plugin", "{message}"),
            log::Level::Error => tracing::error!(target: "rte::plugin", "{message}"),
        }
        Ok(())
    }
}

impl kv::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Result<Option<String>, String>> {
        Ok(self.kv.get(&key).await)
    }

    async fn set(&mut self, key: String, value: String) -> Result<Result<(), String>> {
        if key.is_empty() || key.len() > MAX_KV_KEY {
            return Ok(Err(format!("key must be 1 to {MAX_KV_KEY} bytes")));
        }
        if value.len() > MAX_KV_VALUE {
            return Ok(Err(format!("value must be at most {MAX_KV_VALUE} bytes")));
        }
        self.kv.put(key, Some(value));
        Ok(Ok(()))
    }

    async fn delete(&mut self, key: String) -> Result<Result<(), String>> {
        self.kv.put(key, None);
        Ok(Ok(()))
    }
}

impl config::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }
}
