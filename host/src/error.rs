//! The crate-wide error type: what went wrong, and what the caller does next.

use crate::lock::LockError;
use crate::plugin::PluginError;
use crate::store::StoreError;

/// Result with the crate-wide [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the engine or one of its parts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names something that does not exist or is malformed; fix the request.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No transaction with this id.
    #[error("transaction {0} not found")]
    NotFound(String),
    /// An `Idempotency-Key` (request key) already named a different request.
    #[error("{0}")]
    KeyReused(String),
    /// The operation does not fit the transaction's current status.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The saga's status does not allow this change (see [`crate::lifecycle`]).
    #[error(transparent)]
    Refused(#[from] crate::lifecycle::Refused),
    /// The durable store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A lock operation failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Redis (breakers) could not be reached.
    #[error(transparent)]
    Redis(#[from] crate::redis_client::RedisError),
    /// Events cannot be shared with other hosts.
    #[error(transparent)]
    Relay(#[from] crate::events::RelayError),
    /// A plugin could not be loaded or called.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A step the request needs is not served yet: its plugin may still be loading.
    #[error("{0}")]
    PluginsLoading(String),
}

/// Longest error text the host keeps or passes on: on a step or saga, in an event.
pub const MAX_ERROR_LEN: usize = 8 << 10;

/// `text` cut to at most `max` bytes (on a character boundary), marked with `…` when cut.
pub fn truncate_text(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
