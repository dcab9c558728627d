//! Logging into the host's tracing, where each line is tagged with the saga and step.
//!
//! On any target but `wasm32` (in unit tests), lines are kept by [`testing`](crate::testing).

#[cfg(target_arch = "wasm32")]
fn log(level: &'static str, message: &str) {
    use crate::wit::rte::saga::log::{Level, log};
    let level = match level {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        _ => Level::Error,
    };
    log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake::log;

/// Log `message` at trace level.
pub fn trace(message: impl AsRef<str>) {
    log("trace", message.as_ref());
}

/// Log `message` at debug level.
pub fn debug(message: impl AsRef<str>) {
    log("debug", message.as_ref());
}

/// Log `message` at info level.
pub fn info(message: impl AsRef<str>) {
    log("info", message.as_ref());
}

/// Log `message` at warn level.
pub fn warn(message: impl AsRef<str>) {
    log("warn", message.as_ref());
}

/// Log `message` at error level.
pub fn error(message: impl AsRef<str>) {
    log("error", message.as_ref());
}
