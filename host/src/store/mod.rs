//! Durable state: the [`TxStore`] contract the engine and admin use, its records, and
//! [`from_url`], which picks the backend by the URL's scheme.
//!
//! One body of SQL logic ([`sql::SqlStore`]) serves SQLite, PostgreSQL and MySQL/MariaDB;
//! what differs by dialect lives in [`dialect`]; what of a saga's input is searchable, and
//! how, in [`input_search`].

mod args;
mod conns;
mod dialect;
mod input_search;
mod listing;
mod records;
mod sql;
mod waits;

use std::sync::Arc;

use async_trait::async_trait;

use crate::engine::TxStatus;

pub use dialect::Dialect;
pub use input_search::{
    InputMatch, InvalidInputMatch, MAX_KEY_CHARS as MAX_INPUT_KEY_CHARS,
    MAX_VALUE_CHARS as MAX_INPUT_VALUE_CHARS,
};
pub use listing::ListPlans;
pub use records::{
    Attempt, Commit, CreateOutcome, HistoryEntry, HostRecord, IdempotencyChange, IdempotencyKey,
    IdempotencyRecord, KvChanges, KvRead, KvValue, KvWrite, MAX_ATTEMPT_LOG, Page, SharedEvent,
    StatusCount, StepGroup, StepRecord, TxFilter, TxRecord,
};
pub use sql::{CommitPause, CommitPoint, SqlStore};
pub use waits::{OutboxMessage, ReplyBody, ReplyOutcome, WaitChanges, WaitRecord, WaitStore};

/// Result of a store operation.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// What went wrong in the store, and what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the transaction since it was read: stop advancing it.
    #[error("transaction {tx_id} changed underneath (expected version {expected})")]
    VersionConflict {
        /// The transaction.
        tx_id: String,
        /// The version this writer read.
        expected: i64,
    },
    /// A key the step call read changed before its writes could commit: nothing of the
    /// commit was written, and the step must run again on fresh state.
    #[error("plugin key `{key}` in `{namespace}` changed since the step read it")]
    KvConflict {
        /// The plugin's namespace.
        namespace: String,
        /// The key that changed.
        key: String,
    },
    /// The database could not be reached or the call failed in a way worth retrying.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The error beneath, when there is one (a driver error).
        #[source]
        source: Option<BoxError>,
    },
    /// The database refused the call; retrying will not help.
    #[error("store error: {message}")]
    Permanent {
        /// What failed.
        message: String,
        /// The error beneath, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {message}")]
    Corrupt {
        /// What could not be decoded.
        message: String,
        /// The decoding error.
        #[source]
        source: Option<BoxError>,
    },
}

/// An error kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// [`StoreError::Unavailable`] with no error beneath.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Permanent`] with no error beneath.
    pub fn permanent(message: impl Into<String>) -> Self {
        StoreError::Permanent {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Corrupt`]: `what` could not be decoded because of `source`.
    pub fn corrupt(
        what: impl std::fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Corrupt {
            message: format!("{what}: {source}"),
            source: Some(Box::new(source)),
        }
    }
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let message = e.to_string();
        let kind = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => 0,
            sqlx::Error::Database(db) if is_transient_code(error_code(db.as_ref()).as_deref()) => 0,
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => 2,
            _ => 1,
        };
        let source: Option<BoxError> = Some(Box::new(e));
        match kind {
            0 => StoreError::Unavailable { message, source },
            2 => StoreError::Corrupt { message, source },
            _ => StoreError::Permanent { message, source },
        }
    }
}

/// The code a database error is known by: MySQL's error number (its SQLSTATE is missing
/// from errors sent before the handshake ends, and shared by unrelated errors otherwise),
/// else the SQLSTATE or SQLite's result code.
fn error_code(db: &dyn sqlx::error::DatabaseError) -> Option<String> {
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(my.number().to_string());
    }
    db.code().map(|c| c.into_owned())
}

/// Codes of the three databases worth retrying: busy, locked, deadlock, serialization,
/// lock-wait and statement timeouts, a session ended for idling in a transaction, a server
/// out of connections, and the connection class.
fn is_transient_code(code: Option<&str>) -> bool {
    matches!(
        code,
        // SQLite: busy, locked (and their extended codes).
        Some(
            "5" | "6" | "261" | "517"
            // PostgreSQL: serialization, deadlock, shutdown, statement and lock timeouts,
            // idle-in-transaction timeout, too many connections.
            | "40001" | "40P01" | "57P01" | "57014" | "55P03" | "25P03" | "53300"
            // MySQL/MariaDB error numbers: deadlock, lock wait timeout, too many
            // connections, statement timeout (MariaDB, MySQL), server shutdown, connection
            // killed.
            | "1213" | "1205" | "1040" | "1969" | "3024" | "1053" | "1927"
        )
    ) || code.is_some_and(|c| c.starts_with("08"))
}

/// The writes and reads of single sagas: what the coordinator, operator actions and
/// recovery's claim use. Every write that changes a saga is fenced by its version.
#[async_trait]
pub trait SagaStore: Send + Sync + 'static {
    /// Record a new transaction and its steps. With a request key already used, nothing is
    /// written and the existing transaction's id is returned.
    async fn create(&self, tx: &TxRecord, steps: &[StepRecord]) -> StoreResult<CreateOutcome>;

    /// A transaction and its steps in order.
    async fn get(&self, tx_id: &str) -> StoreResult<Option<(TxRecord, Vec<StepRecord>)>>;

    /// Write a transaction's new state with the step, key-value, idempotency and history
    /// changes that belong to it, in one database transaction. Fails with
    /// [`StoreError::VersionConflict`] unless the stored version is `commit.tx.version`;
    /// returns the new version.
    async fn commit(&self, commit: &Commit<'_>) -> StoreResult<i64>;
}

/// The queries behind the API and the console.
#[async_trait]
pub trait AdminReads: Send + Sync + 'static {
    /// Transactions matching `filter`, newest first, and the total count.
    async fn list(&self, filter: &TxFilter) -> StoreResult<Page>;

    /// Transaction counts by status and type.
    async fn stats(&self) -> StoreResult<Vec<StatusCount>>;

    /// Transactions that finished since `since_ms`, counted by status per `bucket_ms`
    /// interval: (bucket start in ms, status, count).
    async fn timeline(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, TxStatus, u64)>>;

    /// A transaction's history (admin actions, notable transitions), oldest first.
    async fn history(&self, tx_id: &str) -> StoreResult<Vec<HistoryEntry>>;
}

/// What the recovery worker scans for and records outside a state change.
#[async_trait]
pub trait RecoveryScan: Send + Sync + 'static {
    /// Ids of non-terminal transactions not updated since `updated_before` (ms), oldest first.
    async fn find_stuck(&self, updated_before: i64, limit: u32) -> StoreResult<Vec<String>>;

    /// Append to a transaction's history outside a state change.
    async fn append_history(&self, entry: &HistoryEntry) -> StoreResult<()>;
}

/// Purges of what outlived its use: expired idempotency records, finished sagas past
/// their retention, old shared events.
#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// Delete up to `batch` expired idempotency records; returns how many went.
    async fn purge_idempotency(&self, now_ms: i64, batch: u32) -> StoreResult<u64>;

    /// Delete up to `batch` terminal transactions finished before `before_ms`, with their
    /// steps and history; returns how many went.
    async fn purge_finished(&self, before_ms: i64, batch: u32) -> StoreResult<u64>;

    /// Delete up to `batch` shared events written before `before_ms`; returns how many went.
    async fn purge_events(&self, before_ms: i64, batch: u32) -> StoreResult<u64>;
}

/// The event log hosts share.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Append events (time in ms, JSON payload) from host `origin` to the log hosts share.
    async fn events_append(&self, origin: &str, events: &[(i64, String)]) -> StoreResult<()>;

    /// Shared events after position `after`, oldest first, at most `limit`; those from
    /// `own` (the reader's own origin) come without their payload (empty), which the
    /// reader has already and only needs the position of.
    async fn events_after(
        &self,
        after: i64,
        limit: u32,
        own: &str,
    ) -> StoreResult<Vec<SharedEvent>>;

    /// The newest `limit` shared events, oldest first.
    async fn events_latest(&self, limit: u32) -> StoreResult<Vec<SharedEvent>>;

    /// A wake-up each time any host appended events, where the database pushes them
    /// (PostgreSQL `LISTEN/NOTIFY`); `None` where readers only poll.
    async fn events_listen(&self) -> StoreResult<Option<futures::stream::BoxStream<'static, ()>>> {
        Ok(None)
    }
}

/// The registry of live hosts.
#[async_trait]
pub trait HostRegistry: Send + Sync + 'static {
    /// Write this host's report, and forget hosts not seen since `forget_before` (ms).
    async fn host_beat(&self, host: &HostRecord, forget_before: i64) -> StoreResult<()>;

    /// Hosts seen since `seen_after` (ms), by id.
    async fn hosts(&self, seen_after: i64) -> StoreResult<Vec<HostRecord>>;
}

/// Plugins' durable key-value data, read by a call's overlay (writes go with a saga's
/// commit). The only port the plugin runtime gets.
#[async_trait]
pub trait PluginKv: Send + Sync + 'static {
    /// A plugin's stored value with its version.
    async fn kv_read(&self, namespace: &str, key: &str) -> StoreResult<Option<KvValue>>;

    /// A plugin's stored value.
    async fn kv_get(&self, namespace: &str, key: &str) -> StoreResult<Option<String>> {
        Ok(self.kv_read(namespace, key).await?.map(|v| v.value))
    }
}

/// The engine's look-up of a completed step's idempotency key.
#[async_trait]
pub trait IdempotencyRecords: Send + Sync + 'static {
    /// The stored output of the step that completed with this key, unless expired.
    async fn idempotency_get(
        &self,
        key: &IdempotencyKey,
        now_ms: i64,
    ) -> StoreResult<Option<String>>;
}

/// The durable store of transactions, steps, idempotency records, plugin key-value data
/// and saga history: every port, as one backend implements them. Components take the
/// narrowest port they need.
#[async_trait]
pub trait TxStore:
    SagaStore
    + AdminReads
    + RecoveryScan
    + Housekeeping
    + EventLog
    + HostRegistry
    + PluginKv
    + IdempotencyRecords
    + WaitStore
{
    /// One line for startup logs: backend and location (no credentials).
    fn summary(&self) -> String;

    /// Check the database answers.
    async fn ping(&self) -> StoreResult<()>;
}
/// Open the store named by `url` (`sqlite://…`, `postgres://…`, `mysql://…`, `mariadb://…`)
/// with the default [`StoreOptions`], and bring its schema up to date.
pub async fn from_url(url: &str) -> StoreResult<Arc<dyn TxStore>> {
    open(url, &StoreOptions::default()).await
}

/// Open the store named by `url` with `options`, and bring its schema up to date.
pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn TxStore>> {
    let store = SqlStore::connect_with(url, options).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// How a host uses its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections held (SQLite: at most 8).
    pub max_connections: u32,
    /// Longest a statement, a row-lock wait or an idle open transaction may last before
    /// the database ends it.
    pub statement_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        let config = crate::config::Config::default();
        Self::from(&config)
    }
}

impl From<&crate::config::Config> for StoreOptions {
    fn from(c: &crate::config::Config) -> Self {
        Self {
            max_connections: c.database_max_connections,
            statement_timeout: c.database_statement_timeout,
        }
    }
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod error_tests {
    use super::*;

    /// A driver error stays reachable beneath the store's error: callers can inspect it,
    /// and reports can print the whole chain.
    #[test]
    fn a_store_error_keeps_the_driver_error_as_its_source() {
        let e = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(e.is_retryable());
        let source = std::error::Error::source(&e).expect("a source");
        assert!(matches!(
            source.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        ));
        let e = StoreError::from(sqlx::Error::RowNotFound);
        assert!(!e.is_retryable());
        assert!(std::error::Error::source(&e).is_some());
        let bad = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = StoreError::corrupt("outputs", bad);
        assert!(
            e.to_string().starts_with("corrupt stored value: outputs: "),
            "{e}"
        );
        assert!(
            std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<serde_json::Error>())
                .is_some()
        );
    }
}
