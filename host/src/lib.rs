//! RTE, the Reliable Transaction Engine: runs orchestration-style saga transactions whose
//! steps are sandboxed WebAssembly components.
//!
//! | module | holds |
//! |---|---|
//! | [`lifecycle`] | the saga state machine: statuses, failure and history kinds, the transition table |
//! | [`engine`] | the [`Engine`], saga definitions, and the coordinator that drives sagas |
//! | [`plugin`] | the wasmtime plugin runtime: loading, sandboxing, calling steps, hot reload |
//! | [`store`] | the durable store over SQLite, PostgreSQL and MySQL/MariaDB: one narrow port per role ([`store::SagaStore`], [`store::PluginKv`], ...), all of them [`TxStore`] |
//! | [`clock`] | the wall clock the engine, breakers and recovery read; a manual one for tests |
//! | [`lock`] | the [`LockManager`] contract: in-process, or Redis for several hosts |
//! | [`policy`] | per-step run policy: declared by the step, overridden by the saga definition and the operator |
//! | [`breaker`] | per-service circuit breakers |
//! | [`redis_client`] | the Redis connection locks, breakers and the event relay share, and its error |
//! | [`events`] | events and the [`EventBus`] |
//! | [`admin`] | the REST API and embedded console |
//! | [`telemetry`] | Prometheus metrics and tracing spans |
//! | [`config`] | the layered configuration |
//! | [`server`] | wiring it all into the `rte serve` process |
//! | [`bench`] | `rte bench`: saga throughput against the database's raw commit rate, memory in flight |
//! | [`scaffold`] | `rte new`: project templates for a step, embedded in the binary |
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use rte_host::{Engine, plugin::{PluginRuntime, RuntimeOptions, Limits}};
//!
//! let store = rte_host::store::from_url("sqlite://rte.db").await?;
//! let plugins = Arc::new(PluginRuntime::new(RuntimeOptions {
//!     limits: Limits { memory_bytes: 64 << 20, timeout: std::time::Duration::from_secs(10), ..Limits::default() },
//!     cache_dir: None,
//!     max_instances: 1000,
//! })?);
//! plugins.load_dir("plugins".as_ref()).await;
//! let engine = Engine::builder(store, plugins).build();
//! let tx = engine
//!     .new_transaction("fund_transfer")
//!     .with_lock_keys(["account:123", "account:456"])
//!     .with_input(serde_json::json!({"from_account": "123", "to_account": "456", "amount": 100.0, "currency": "USD"}))
//!     .with_timeout(std::time::Duration::from_secs(120))
//!     .with_max_retries(3)
//!     .add_step("debit")
//!     .add_step("transfer")
//!     .add_step("credit")
//!     .build()?;
//! let result = engine.execute(tx).await?;
//! println!("{} {}", result.tx_id, result.status);
//! # Ok(()) }
//! ```

pub mod admin;
pub mod bench;
pub mod breaker;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod lock;
pub mod plugin;
pub mod policy;
pub mod recovery;
pub mod redis_client;
pub mod retention;
pub mod scaffold;
pub mod server;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use engine::{Engine, StepStatus, Transaction, TxResult, TxStatus};
pub use error::{Error, Result};
pub use events::{Event, EventBus};
pub use lock::LockManager;
pub use store::TxStore;
