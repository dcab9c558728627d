//! The host side of the plugin imports (`log`, `kv`, `config`, and `messaging` from
//! 0.2.0), once, with thin adapters for each `rte:saga` version.

use wasmtime::Result;

use super::bindings::{v1, v2};
use super::state::CallState;

/// Longest key or value a plugin may store, so one plugin cannot bloat the database.
const MAX_KV_KEY: usize = 255;
const MAX_KV_VALUE: usize = 1 << 20;

/// A plugin's log level, whichever version it speaks.
#[derive(Clone, Copy)]
enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl CallState {
    fn log(&mut self, level: Level, message: &str) {
        let size = message.len() as u64;
        if size > self.log_budget {
            if self.log_dropped == 0 {
                let _entered = self.log_span.enter();
                tracing::warn!(target: "rte::plugin", "plugin log output over its per-call limit; further lines of this call are dropped");
            }
            self.log_budget = 0;
            self.log_dropped += size;
            return;
        }
        self.log_budget -= size;
        let _entered = self.log_span.enter();
        match level {
            Level::Trace => tracing::trace!(target: "rte::plugin", "{message}"),
            Level::Debug => tracing::debug!(target: "rte::plugin", "{message}"),
            Level::Info => tracing::info!(target: "rte::plugin", "{message}"),
            Level::Warn => tracing::warn!(target: "rte::plugin", "{message}"),
            Level::Error => tracing::error!(target: "rte::plugin", "{message}"),
        }
    }

    fn kv_set(&mut self, key: String, value: String) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KV_KEY {
            return Err(format!("key must be 1 to {MAX_KV_KEY} bytes"));
        }
        if value.len() > MAX_KV_VALUE {
            return Err(format!("value must be at most {MAX_KV_VALUE} bytes"));
        }
        self.kv.put(key, Some(value))
    }

    fn kv_delete(&mut self, key: String) -> Result<(), String> {
        self.kv.put(key, None)
    }

    fn config_get(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }
}

/// The adapters of one version: every import forwards to the methods above.
macro_rules! imports_of {
    ($v:ident) => {
        impl $v::rte::saga::types::Host for CallState {}

        impl $v::rte::saga::log::Host for CallState {
            async fn log(
                &mut self,
                level: $v::rte::saga::log::Level,
                message: String,
            ) -> Result<()> {
                use $v::rte::saga::log::Level as L;
                let level = match level {
                    L::Trace => Level::Trace,
                    L::Debug => Level::Debug,
                    L::Info => Level::Info,
                    L::Warn => Level::Warn,
                    L::Error => Level::Error,
                };
                CallState::log(self, level, &message);
                Ok(())
            }
        }

        impl $v::rte::saga::kv::Host for CallState {
            async fn get(&mut self, key: String) -> Result<Result<Option<String>, String>> {
                Ok(self.kv.get(&key).await)
            }

            async fn set(&mut self, key: String, value: String) -> Result<Result<(), String>> {
                Ok(self.kv_set(key, value))
            }

            async fn delete(&mut self, key: String) -> Result<Result<(), String>> {
                Ok(self.kv_delete(key))
            }
        }

        impl $v::rte::saga::config::Host for CallState {
            async fn get(&mut self, key: String) -> Result<Option<String>> {
                Ok(self.config_get(&key))
            }
        }
    };
}

imports_of!(v1);
imports_of!(v2);

impl v2::rte::saga::messaging::Host for CallState {
    async fn publish(
        &mut self,
        message: v2::rte::saga::types::Message,
    ) -> Result<Result<(), String>> {
        Ok(CallState::publish(
            self,
            super::messaging::Published {
                subject: message.subject,
                payload: message.payload,
                headers: message.headers,
            },
        ))
    }
}
