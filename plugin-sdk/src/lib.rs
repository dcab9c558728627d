//! Write RTE saga steps in Rust, as WebAssembly components.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2`. Each step is a type that implements
//! [`Step`]: its [`info`](Step::info) names it, [`execute`](Step::execute) does the work and sets
//! outputs for later steps, and [`compensate`](Step::compensate) undoes the work when a later
//! step fails. [`export_steps!`] exports every step of the crate as one component.
//!
//! | item | what |
//! |---|---|
//! | [`Step`], [`StepInfo`] | the trait a step implements, and its description |
//! | [`StepContext`] | the saga's id, input and earlier outputs; where outputs are set |
//! | [`StepError`] | retryable or permanent failure |
//! | [`kv`] | a durable key-value store, committed with the step's result |
//! | [`log`], [`config`] | the host's logs; values the operator grants |
//! | [`testing`] | unit tests on the machine's own target: contexts, an in-memory kv |
//!
//! # Example
//!
//! ```no_run
//! use rte_plugin_sdk::{Step, StepContext, StepError, StepInfo, export_steps, kv};
//!
//! /// Reserve seats on a flight; compensation releases them.
//! #[derive(Default)]
//! struct Reserve;
//!
//! impl Step for Reserve {
//!     fn info() -> StepInfo {
//!         StepInfo::new("reserve_seats")
//!             .service("flights")
//!             .compensation(true)
//!             .idempotency(true)
//!             .description("hold seats on a flight")
//!     }
//!
//!     fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
//!         let flight: String = ctx.input_as("flight")?;
//!         let seats: u32 = ctx.input_as::<Option<u32>>("seats")?.unwrap_or(1);
//!         let key = format!("held/{flight}");
//!         let held: u32 = kv::get_json(&key)?.unwrap_or(0);
//!         if held + seats > 180 {
//!             return Err(StepError::permanent("flight full"));
//!         }
//!         kv::set_json(&key, &(held + seats))?;
//!         // The marker lets compensation tell whether this saga really holds seats.
//!         kv::set_json(&format!("hold/{}", ctx.tx_id()), &seats)?;
//!         ctx.set_output("seats_held", seats)
//!     }
//!
//!     fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
//!         let marker = format!("hold/{}", ctx.tx_id());
//!         // No marker: execute never took effect, or this ran already.
//!         let Some(seats) = kv::get_json::<u32>(&marker)? else {
//!             return Ok(());
//!         };
//!         let flight: String = ctx.input_as("flight")?;
//!         let key = format!("held/{flight}");
//!         let held: u32 = kv::get_json(&key)?.unwrap_or(0);
//!         kv::set_json(&key, &held.saturating_sub(seats))?;
//!         kv::delete(&marker)
//!     }
//!
//!     fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
//!         Some(format!("reserve:{}", ctx.tx_id()))
//!     }
//! }
//!
//! export_steps!(Reserve);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` (or `rte build`, which also
//! checks the component as the host would load it) and drop the `.wasm` file into the host's
//! plugins directory.
//!
//! # Testing
//!
//! A step's logic is tested with a plain `cargo test`, on the machine's own target: there
//! [`kv`], [`log`] and [`config`] use an in-memory stand-in of the host, and
//! [`testing::StepTest`] builds contexts and calls steps as the host would (a failed call's
//! kv writes are discarded). `rte step run FILE.wasm STEP --input JSON` then runs the built
//! component once, in the host's own sandbox.
//!
//! # Versions
//!
//! The crate's version is that of the `rte:saga` WIT package it targets; its `wit/saga.wit`
//! ships inside the crate.
//!
//! # Errors and retries
//!
//! Return [`StepError::retryable`] for failures another attempt may fix, and
//! [`StepError::permanent`] for those it cannot. The typed helpers
//! ([`StepContext::input_as`], [`kv::get_json`], ...) already pick the right kind. A panic traps
//! the component: the call fails and its `kv` writes are discarded.
//!
//! # At least once
//!
//! The host may call `execute` again after a crash, and `compensate` more than once or for an
//! execute that never took effect ([`ExecuteOutcome::Unknown`]). `kv` writes commit atomically
//! with the call's result, so a marker written during execute is a reliable record of what
//! compensation has to undo.

#![deny(missing_docs)]

mod context;
mod error;
mod export;
mod reply;
mod step;

pub mod config;
pub mod kv;
pub mod log;
pub mod messaging;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
#[allow(missing_docs, unsafe_code, rust_2018_idioms)]
pub mod wit;

pub use context::{ExecuteOutcome, Phase, StepContext};
pub use error::StepError;
pub use messaging::Message;
pub use reply::{Reply, ReplyBody};
pub use step::{Step, StepInfo, StepPolicy};

/// Used by [`export_steps!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{
        Entry, compensate, confirm, execute, idempotency_key, on_reply, steps,
    };
}
