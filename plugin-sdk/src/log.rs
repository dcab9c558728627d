//! Logging into the host's tracing, where each line is tagged with the saga and step.

use crate::wit::rte::saga::log::{Level, log};

/// Log `message` at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref());
}

/// Log `message` at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref());
}

/// Log `message` at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

/// Log `message` at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}

/// Log `message` at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref());
}
