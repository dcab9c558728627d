//! The plugin's durable key-value store, kept by the host.
//!
//! Keys are namespaced per plugin. Writes made during a call are committed together with the
//! step's result, and discarded if the call fails, so a step can check and update its own
//! records without racing a half-finished earlier attempt. Reads see the call's own writes.
//!
//! Each call is serializable on its own, whatever the saga locks do: the host remembers the
//! version of every key the call read (or that it was absent), and commits the call's writes
//! only if none of those keys changed since. If one did (another saga wrote it first, say
//! after this host stalled past its lock), the writes are discarded and the step runs again,
//! as a retryable failure, on fresh values. A call that writes nothing is never refused.
//!
//! On any target but `wasm32` (in unit tests), the store is the in-memory one of
//! [`testing`](crate::testing).
//!
//! A store failure is a [retryable](StepError::Retryable) error: the next attempt may find the
//! store healthy.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StepError;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake::kv as host;
#[cfg(target_arch = "wasm32")]
use crate::wit::rte::saga::kv as host;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<String>, StepError> {
    host::get(key).map_err(|err| store_error("get", key, err))
}

/// The value stored under `key`, parsed from JSON. A value that is not the JSON of a `T` is a
/// [permanent](StepError::Permanent) error: rereading will not repair it.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StepError> {
    get(key)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|err| {
                StepError::permanent(format!("kv `{key}` holds invalid JSON: {err}"))
            })
        })
        .transpose()
}

/// Store `value` under `key`.
pub fn set(key: &str, value: &str) -> Result<(), StepError> {
    host::set(key, value).map_err(|err| store_error("set", key, err))
}

/// Store `value` under `key` as JSON.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StepError> {
    set(key, &serde_json::to_string(value)?)
}

/// Remove `key`.
pub fn delete(key: &str) -> Result<(), StepError> {
    host::delete(key).map_err(|err| store_error("delete", key, err))
}

fn store_error(op: &str, key: &str, err: String) -> StepError {
    StepError::retryable(format!("kv {op} `{key}`: {err}"))
}
