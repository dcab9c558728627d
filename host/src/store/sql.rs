//! The one body of store logic, over sqlx's `Any` driver; dialect quirks come from
//! [`Dialect`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::args::{self, Arg};
use super::conns::Conns;
use super::input_search;
use super::listing::{self, ListPlans, ListQuery};
use super::records::*;
use super::{
    AdminReads, Dialect, EventLog, HostRegistry, Housekeeping, IdempotencyRecords, PluginKv,
    RecoveryScan, SagaStore, StoreError, StoreOptions, StoreResult, TxStore,
};
use crate::engine::{StepStatus, TxStatus};
use crate::lifecycle::{Actor, FailureKind, HistoryKind, Undo};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static MYSQL_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/mysql");
/// Longest a host waits for another host to finish migrating a MySQL database.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(300);

pub(super) const TX_COLS: &str = "tx_id, tx_type, status, input, outputs, lock_keys, current_step, \
    total_steps, retry_count, max_retries, timeout_ms, deadline_at, last_error, version, \
    request_key, created_at, updated_at, completed_at, undo_cause";
const STEP_COLS: &str = "tx_id, step_index, step_name, parallel_group, parallel_limit, status, \
    attempts, compensation_attempts, output, error, idempotency_key, plugin_digest, started_at, \
    finished_at, failure_kind, attempt_log, completed_order";
/// Statuses of sagas under way, listed (not negated) so the status index finds them.
const ACTIVE: &str = "('CREATED', 'LOCKED', 'EXECUTING', 'CONFIRMING', 'COMPENSATING')";
const TERMINAL: &str =
    "('COMPLETED', 'COMPENSATED', 'COMPENSATION_FAILED', 'CANCELLED', 'FAILED', 'TIMEOUT')";

/// A query being bound, over the `Any` driver.
mod mysql_batch;

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Statements translated once for the dialect at hand.
struct Statements {
    dialect: Dialect,
    insert_tx: String,
    /// Step inserts of 1 to [`PREPARED_ROWS`] rows.
    insert_steps: Vec<String>,
    /// Step upserts of 1 to [`PREPARED_ROWS`] rows.
    upsert_steps: Vec<String>,
    /// PostgreSQL: a saga and 1 to [`PREPARED_ROWS`] steps inserted in one statement.
    pg_create: Vec<String>,
    /// PostgreSQL: a saga, its indexed input and 0 to [`PREPARED_ROWS`] steps inserted in
    /// one statement.
    pg_create_input: Vec<String>,
    /// A saga's indexed input (see [`input_search::insert_sql`]).
    insert_input: String,
    /// PostgreSQL: a saga update and 1 to [`PREPARED_ROWS`] step writes in one statement.
    pg_commit: Vec<String>,
    /// A saga and its steps, in one statement (one snapshot: never a saga's row from
    /// before a commit beside step rows from after it).
    select_saga: String,
    select_tx_by_request: String,
    update_tx: String,
    update_step: String,
    kv_get: String,
    /// A write of a key the call did not read: insert, or update bumping the version.
    kv_upsert: String,
    /// A write of a key the call found absent: insert only if still absent.
    kv_insert: String,
    /// A write of a key the call read: update only if the version is unchanged.
    kv_update_seen: String,
    kv_delete: String,
    kv_delete_seen: String,
    idem_get: String,
    idem_put: String,
    idem_delete: String,
    history_insert: String,
    history_select: String,
    host_put: String,
    find_stuck: String,
}

impl Statements {
    fn new(d: Dialect) -> Self {
        let s = |q: &str| d.sql(q).into_owned();
        let marks = |n: usize| vec!["?"; n].join(", ");
        Self {
            insert_tx: s(&format!(
                "INSERT INTO rte_transactions ({TX_COLS}) VALUES ({})",
                marks(19)
            )),
            dialect: d,
            insert_steps: (1..=PREPARED_ROWS).map(|n| steps_insert(d, n)).collect(),
            upsert_steps: (1..=PREPARED_ROWS).map(|n| steps_upsert(d, n)).collect(),
            select_saga: s(&select_saga()),
            select_tx_by_request: s("SELECT tx_id FROM rte_transactions WHERE request_key = ?"),
            update_tx: s(UPDATE_TX),
            pg_create: (1..=PREPARED_ROWS).map(|n| pg_create(n, false)).collect(),
            pg_create_input: (0..=PREPARED_ROWS).map(|n| pg_create(n, true)).collect(),
            insert_input: s(input_search::insert_sql(d)),
            pg_commit: (1..=PREPARED_ROWS).map(pg_commit).collect(),
            update_step: s(
                "UPDATE rte_steps SET status = ?, attempts = ?, compensation_attempts = ?, \
                output = ?, error = ?, idempotency_key = ?, plugin_digest = ?, started_at = ?, \
                finished_at = ?, failure_kind = ?, attempt_log = ?, completed_order = ? \
                WHERE tx_id = ? AND step_index = ?",
            ),
            kv_get: s("SELECT kv_value, version FROM rte_kv WHERE namespace = ? AND kv_key = ?"),
            kv_upsert: s(&kv_upsert(d)),
            kv_insert: s(&d.insert_ignore("rte_kv", &KV_COLS)),
            kv_update_seen: s(
                "UPDATE rte_kv SET kv_value = ?, version = version + 1, updated_at = ? \
                 WHERE namespace = ? AND kv_key = ? AND version = ?",
            ),
            kv_delete: s("DELETE FROM rte_kv WHERE namespace = ? AND kv_key = ?"),
            kv_delete_seen: s(
                "DELETE FROM rte_kv WHERE namespace = ? AND kv_key = ? AND version = ?",
            ),
            idem_get: s(
                "SELECT output FROM rte_idempotency WHERE plugin = ? AND step_name = ? \
                 AND idem_key = ? AND expires_at > ?",
            ),
            idem_put: s(&d.upsert(
                "rte_idempotency",
                &[
                    "plugin",
                    "step_name",
                    "idem_key",
                    "tx_id",
                    "output",
                    "created_at",
                    "expires_at",
                ],
                &["plugin", "step_name", "idem_key"],
                &["tx_id", "output", "created_at", "expires_at"],
            )),
            idem_delete: s(
                "DELETE FROM rte_idempotency WHERE plugin = ? AND step_name = ? AND idem_key = ?",
            ),
            history_insert: s(
                "INSERT INTO rte_history (tx_id, at, kind, actor, message) VALUES (?, ?, ?, ?, ?)",
            ),
            history_select: s(
                "SELECT tx_id, at, kind, actor, message FROM rte_history WHERE tx_id = ? \
                 ORDER BY id",
            ),
            host_put: s(&d.upsert(
                "rte_hosts",
                &["host_id", "started_at", "seen_at", "info"],
                &["host_id"],
                &["started_at", "seen_at", "info"],
            )),
            find_stuck: s(&format!(
                "SELECT tx_id FROM rte_transactions t WHERE status IN {ACTIVE} \
                 AND updated_at < ? AND NOT EXISTS (SELECT 1 FROM rte_waits w \
                 WHERE w.tx_id = t.tx_id AND w.closed_at IS NULL AND w.replied_at IS NULL) \
                 ORDER BY updated_at LIMIT ?"
            )),
        }
    }

    /// The statement inserting `n` step rows.
    fn insert_steps(&self, n: usize) -> Cow<'_, str> {
        match self.insert_steps.get(n.wrapping_sub(1)) {
            Some(q) => q.as_str().into(),
            None => steps_insert(self.dialect, n).into(),
        }
    }

    /// One statement creating a saga with `n` steps (and its indexed input, with
    /// `input`), where the dialect has one. Its arguments are the saga's, then the
    /// input's (see [`input_args`]), then the steps'.
    fn create_statement(&self, n: usize, input: bool) -> Option<Cow<'_, str>> {
        match (self.dialect, n, input) {
            (_, 0, false) => Some(self.insert_tx.as_str().into()),
            (Dialect::Postgres, n, false) => Some(match self.pg_create.get(n - 1) {
                Some(q) => q.as_str().into(),
                None => pg_create(n, false).into(),
            }),
            (Dialect::Postgres, n, true) => Some(match self.pg_create_input.get(n) {
                Some(q) => q.as_str().into(),
                None => pg_create(n, true).into(),
            }),
            (Dialect::Sqlite, n, input) => {
                let mut parts = vec![Cow::Borrowed(self.insert_tx.as_str())];
                if input {
                    parts.push(self.insert_input.as_str().into());
                }
                if n > 0 {
                    parts.push(self.insert_steps(n));
                }
                Some(sqlite_script(&parts.join("; ")))
            }
            _ => None,
        }
    }

    /// One statement writing a saga's new state and `n` steps, where the dialect has one.
    /// It changes no row when the version fence fails.
    fn commit_statement(&self, n: usize) -> Option<Cow<'_, str>> {
        match (self.dialect, n) {
            (_, 0) => Some(self.update_tx.as_str().into()),
            (Dialect::Postgres, n) => Some(match self.pg_commit.get(n - 1) {
                Some(q) => q.as_str().into(),
                None => pg_commit(n).into(),
            }),
            (Dialect::Sqlite, n) => Some(sqlite_commit(n).into()),
            _ => None,
        }
    }

    /// The statement writing `n` existing step rows at once.
    fn upsert_steps(&self, n: usize) -> Cow<'_, str> {
        match self.upsert_steps.get(n.wrapping_sub(1)) {
            Some(q) => q.as_str().into(),
            None => steps_upsert(self.dialect, n).into(),
        }
    }
}

/// [`Statements::select_saga`]: the saga's columns, then its steps' (the step status
/// as `step_status`), one row per step (one row of empty step columns for a saga
/// without steps).
fn select_saga() -> String {
    let tx_cols: Vec<String> = TX_COLS.split(", ").map(|c| format!("t.{c}")).collect();
    let step_cols: Vec<String> = STEP_COLS
        .split(", ")
        .filter(|c| *c != "tx_id")
        .map(|c| match c {
            "status" => "s.status AS step_status".to_string(),
            c => format!("s.{c}"),
        })
        .collect();
    format!(
        "SELECT {}, {} FROM rte_transactions t LEFT JOIN rte_steps s ON s.tx_id = t.tx_id \
         WHERE t.tx_id = ? ORDER BY s.step_index",
        tx_cols.join(", "),
        step_cols.join(", ")
    )
}

/// The saga update, fenced by its version.
const UPDATE_TX: &str = "UPDATE rte_transactions SET status = ?, outputs = ?, current_step = ?, \
    retry_count = ?, max_retries = ?, deadline_at = ?, last_error = ?, lock_keys = ?, \
    version = ?, updated_at = ?, completed_at = ?, undo_cause = ? WHERE tx_id = ? AND version = ?";

/// Typed placeholders of one step row, for PostgreSQL statements that select from
/// `VALUES` (where a bare placeholder has no column to take its type from).
const PG_STEP_ROW: &str = "(?::text, ?::bigint, ?::text, ?::bigint, ?::bigint, ?::text, \
    ?::bigint, ?::bigint, ?::text, ?::text, ?::text, ?::text, ?::bigint, ?::bigint, ?::text, \
    ?::text, ?::bigint)";

/// A saga with `n` steps (and its indexed input, with `input`) inserted in one statement.
fn pg_create(n: usize, input: bool) -> String {
    let insert_tx = format!(
        "INSERT INTO rte_transactions ({TX_COLS}) VALUES ({})",
        vec!["?"; 19].join(", ")
    );
    let insert_steps = format!(
        "INSERT INTO rte_steps ({STEP_COLS}) VALUES {}",
        step_rows(n)
    );
    let insert_input = input_search::insert_sql(Dialect::Postgres);
    let sql = match (input, n) {
        (false, _) => format!("WITH t AS ({insert_tx}) {insert_steps}"),
        (true, 0) => format!("WITH t AS ({insert_tx}) {insert_input}"),
        (true, _) => format!("WITH t AS ({insert_tx}), i AS ({insert_input}) {insert_steps}"),
    };
    Dialect::Postgres.sql(&sql).into_owned()
}

/// The saga update and the step upserts as one statement; the steps are written only
/// when the update passed its version fence, so no row changes on a conflict.
fn pg_commit(n: usize) -> String {
    let set: Vec<String> = STEP_MUTABLE
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    Dialect::Postgres
        .sql(&format!(
            "WITH t AS ({UPDATE_TX} RETURNING 1) \
             INSERT INTO rte_steps ({STEP_COLS}) \
             SELECT * FROM (VALUES {}) AS v ({STEP_COLS}) WHERE EXISTS (SELECT 1 FROM t) \
             ON CONFLICT (tx_id, step_index) DO UPDATE SET {}",
            vec![PG_STEP_ROW; n].join(", "),
            set.join(", ")
        ))
        .into_owned()
}

/// SQLite runs several statements sent as one (binding the arguments in order), so a
/// transaction goes to its connection's thread in one message instead of one per
/// statement. A failed script leaves the transaction open: see [`SqlStore::settle`].
fn sqlite_script(body: &str) -> Cow<'static, str> {
    format!("BEGIN IMMEDIATE; {body}; COMMIT").into()
}

/// The saga update and the step upserts as one SQLite script; the steps are written only
/// when the update passed its version fence (`changes()` counts the update's rows). The
/// script's one result row says how many saga rows it updated: the counts sqlx reports
/// for a script also carry stale counts over from `BEGIN` and `COMMIT`.
fn sqlite_commit(n: usize) -> String {
    let set: Vec<String> = STEP_MUTABLE
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    sqlite_script(&format!(
        "{UPDATE_TX}; SELECT changes() AS written; \
         INSERT INTO rte_steps ({STEP_COLS}) SELECT * FROM (VALUES {}) \
         WHERE changes() = 1 ON CONFLICT (tx_id, step_index) DO UPDATE SET {}",
        step_rows(n),
        set.join(", ")
    ))
    .into_owned()
}

/// Columns of a plugin key-value row, in insert order.
const KV_COLS: [&str; 5] = ["namespace", "kv_key", "kv_value", "version", "updated_at"];

/// A blind write: a new row takes the version bound; an existing one gets the next.
fn kv_upsert(d: Dialect) -> String {
    let head = format!(
        "INSERT INTO rte_kv ({}) VALUES (?, ?, ?, ?, ?)",
        KV_COLS.join(", ")
    );
    match d {
        Dialect::MySql => format!(
            "{head} ON DUPLICATE KEY UPDATE kv_value = VALUES(kv_value), \
             version = version + 1, updated_at = VALUES(updated_at)"
        ),
        _ => format!(
            "{head} ON CONFLICT (namespace, kv_key) DO UPDATE SET kv_value = excluded.kv_value, \
             version = rte_kv.version + 1, updated_at = excluded.updated_at"
        ),
    }
}

/// The version of a key created anew: random (and positive, `0` meaning absent), so a key
/// deleted and created again never repeats a version some reader saw before.
fn fresh_kv_version() -> i64 {
    (rand::random::<u64>() >> 2) as i64 | 1
}

/// Step statements are prepared up to this many rows (a commit rarely touches more).
const PREPARED_ROWS: usize = 4;

/// Step columns a commit may change.
const STEP_MUTABLE: [&str; 12] = [
    "status",
    "attempts",
    "compensation_attempts",
    "output",
    "error",
    "idempotency_key",
    "plugin_digest",
    "started_at",
    "finished_at",
    "failure_kind",
    "attempt_log",
    "completed_order",
];

fn step_rows(n: usize) -> String {
    let row = format!("({})", ["?"; 17].join(", "));
    vec![row; n].join(", ")
}

fn steps_insert(d: Dialect, n: usize) -> String {
    d.sql(&format!(
        "INSERT INTO rte_steps ({STEP_COLS}) VALUES {}",
        step_rows(n)
    ))
    .into_owned()
}

/// One statement that rewrites `n` step rows: an insert whose key clash updates the row,
/// which every dialect here accepts with many rows (unlike a multi-row `UPDATE`).
fn steps_upsert(d: Dialect, n: usize) -> String {
    let head = format!(
        "INSERT INTO rte_steps ({STEP_COLS}) VALUES {}",
        step_rows(n)
    );
    let sql = match d {
        Dialect::MySql => {
            let set: Vec<String> = STEP_MUTABLE
                .iter()
                .map(|c| format!("{c} = VALUES({c})"))
                .collect();
            format!("{head} ON DUPLICATE KEY UPDATE {}", set.join(", "))
        }
        _ => {
            let set: Vec<String> = STEP_MUTABLE
                .iter()
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            format!(
                "{head} ON CONFLICT (tx_id, step_index) DO UPDATE SET {}",
                set.join(", ")
            )
        }
    };
    d.sql(&sql).into_owned()
}

/// [`TxStore::create`] as a database transaction of two statements.
async fn create_in_transaction(
    q: &Statements,
    conn: &mut sqlx::AnyConnection,
    tx: &TxRecord,
    input: Option<&str>,
    steps: &[StepRecord],
) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut db = conn.begin().await?;
    args::bind(sqlx::query(&q.insert_tx), tx_insert_args(tx))
        .execute(&mut *db)
        .await?;
    if let Some(entries) = input {
        args::bind(sqlx::query(&q.insert_input), input_args(tx, entries))
            .execute(&mut *db)
            .await?;
    }
    if !steps.is_empty() {
        let sql = q.insert_steps(steps.len());
        args::bind(sqlx::query(&sql), steps_args(steps))
            .execute(&mut *db)
            .await?;
    }
    db.commit().await
}

/// A saga's nineteen columns, in [`TX_COLS`] order.
fn tx_insert_args(tx: &TxRecord) -> Vec<Arg<'_>> {
    vec![
        Arg::text(&tx.tx_id),
        Arg::text(&tx.tx_type),
        Arg::text(tx.status.as_str()),
        Arg::owned(to_json(&tx.input)),
        Arg::owned(to_json(&tx.outputs)),
        Arg::owned(to_json(&tx.lock_keys)),
        Arg::int(tx.current_step as i64),
        Arg::int(tx.total_steps as i64),
        Arg::int(tx.retry_count as i64),
        Arg::int(tx.max_retries as i64),
        Arg::int(tx.timeout_ms as i64),
        Arg::int(tx.deadline_at),
        Arg::opt_text(tx.last_error.as_deref()),
        Arg::int(tx.version),
        Arg::opt_text(tx.request_key.as_deref()),
        Arg::int(tx.created_at),
        Arg::int(tx.updated_at),
        Arg::opt_int(tx.completed_at),
        Arg::opt_text(tx.undo.map(|u| u.as_str())),
    ]
}

/// The arguments of [`input_search::insert_sql`]: the saga's id, its creation time and its
/// indexed input (`entries`, from [`input_search::entries_argument`]).
fn input_args<'a>(tx: &'a TxRecord, entries: &'a str) -> Vec<Arg<'a>> {
    vec![
        Arg::text(&tx.tx_id),
        Arg::int(tx.created_at),
        Arg::text(entries),
    ]
}

/// The arguments of the saga update (`UPDATE_TX`): its twelve changing columns, then the
/// version fence.
fn tx_update_args(tx: &TxRecord, next_version: i64) -> Vec<Arg<'_>> {
    vec![
        Arg::text(tx.status.as_str()),
        Arg::owned(to_json(&tx.outputs)),
        Arg::int(tx.current_step as i64),
        Arg::int(tx.retry_count as i64),
        Arg::int(tx.max_retries as i64),
        Arg::int(tx.deadline_at),
        Arg::opt_text(tx.last_error.as_deref()),
        Arg::owned(to_json(&tx.lock_keys)),
        Arg::int(next_version),
        Arg::int(tx.updated_at),
        Arg::opt_int(tx.completed_at),
        Arg::opt_text(tx.undo.map(|u| u.as_str())),
        Arg::text(&tx.tx_id),
        Arg::int(tx.version),
    ]
}

/// A step's changing columns, in [`STEP_MUTABLE`] order, appended to `args`.
fn push_step_changes<'a>(args: &mut Vec<Arg<'a>>, step: &'a StepRecord) {
    args.extend([
        Arg::text(step.status.as_str()),
        Arg::int(step.attempts as i64),
        Arg::int(step.compensation_attempts as i64),
        Arg::opt_owned(step.output.as_ref().map(to_json)),
        Arg::opt_text(step.error.as_deref()),
        Arg::opt_text(step.idempotency_key.as_deref()),
        Arg::opt_text(step.plugin_digest.as_deref()),
        Arg::opt_int(step.started_at),
        Arg::opt_int(step.finished_at),
        Arg::opt_text(step.failure_kind.map(|k| k.as_str())),
        Arg::opt_owned((!step.attempt_log.is_empty()).then(|| to_json(&step.attempt_log))),
        Arg::opt_int(step.completed_order.map(i64::from)),
    ]);
}

/// The arguments of `update_step`: the step's changing columns, then its key.
fn step_update_args(step: &StepRecord) -> Vec<Arg<'_>> {
    let mut args = Vec::with_capacity(14);
    push_step_changes(&mut args, step);
    args.push(Arg::text(&step.tx_id));
    args.push(Arg::int(step.step_index as i64));
    args
}

/// One step's seventeen columns, in [`STEP_COLS`] order (its key, then the changing
/// columns), appended to `args`.
fn push_step<'a>(args: &mut Vec<Arg<'a>>, step: &'a StepRecord) {
    args.extend([
        Arg::text(&step.tx_id),
        Arg::int(step.step_index as i64),
        Arg::text(&step.step_name),
        Arg::opt_int(step.group.map(|g| i64::from(g.first))),
        Arg::opt_int(step.group.map(|g| i64::from(g.max_concurrent))),
    ]);
    push_step_changes(args, step);
}

/// The columns of every step in `steps`, one row after another.
fn steps_args<'a>(steps: impl IntoIterator<Item = &'a StepRecord>) -> Vec<Arg<'a>> {
    let mut args = Vec::new();
    for step in steps {
        push_step(&mut args, step);
    }
    args
}

/// SQLite writers let in at once: one writes while the next prepares, and the wait for
/// the write lock stays short.
const SQLITE_WRITERS: usize = 2;

/// Keys checked per statement when a call's reads are validated.
const KV_CHECK_ROWS: usize = 100;

/// A wait injected into commits (see [`SqlStore::set_commit_pause`]), given the saga's
/// id and where the commit is.
pub type CommitPause =
    Box<dyn Fn(String, CommitPoint) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Where in a commit a [`CommitPause`] is asked to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPoint {
    /// Before the commit touches the database (the step's results are in hand).
    Start,
    /// Inside the transaction, right after the saga's version fence was written.
    Fenced,
}

/// Shared events written per statement (well under every dialect's bind limit).
const EVENT_ROWS: usize = 200;

fn shared_event_from_row(row: &AnyRow) -> StoreResult<SharedEvent> {
    Ok(SharedEvent {
        id: row.try_get("id")?,
        origin: text(row, "origin")?,
        at: row.try_get("at")?,
        payload: text(row, "payload")?,
    })
}

/// A store over SQLite, PostgreSQL or MySQL/MariaDB.
pub struct SqlStore {
    pool: AnyPool,
    /// SQLite: writers in this process queue here, fairly, rather than in SQLite's busy
    /// handler, which sleeps in steps of up to 100 ms and can starve a writer for seconds.
    write_gate: Option<tokio::sync::Semaphore>,
    /// Connections kept between uses on the hot path (saga create, commit and read).
    conns: Conns,
    dialect: Dialect,
    location: String,
    q: Statements,
    /// A wait injected into commits by fault-injection tests.
    commit_pause: arc_swap::ArcSwapOption<CommitPause>,
    /// Longest wait for one store call (see [`SqlStore::bounded`]).
    call_limit: Duration,
    /// PostgreSQL: the URL a listener for shared events connects to.
    listen_url: Option<String>,
}

/// The PostgreSQL channel notified when a host appended shared events.
const EVENTS_CHANNEL: &str = "rte_events";

impl SqlStore {
    /// Connect to the database `url` names with the default options; fails clearly when
    /// it cannot be reached.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Connect to the database `url` names, holding at most `options.max_connections`
    /// and asking the database to end statements, row-lock waits and idle open
    /// transactions after `options.statement_timeout`.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url).ok_or_else(|| {
            StoreError::permanent(format!(
                "unsupported database_url `{}`: use sqlite://, postgres:// or mysql://",
                redact(url)
            ))
        })?;
        let url = normalise_url(dialect, url);
        let max_connections = match dialect {
            Dialect::Sqlite => options.max_connections.clamp(2, 8),
            _ => options.max_connections.max(2),
        };
        let session = session_settings(dialect, options.statement_timeout);
        let mut pool_options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .max_connections(max_connections)
            // A ping before every use would add a round trip to every commit: only a
            // connection idle for a while is checked. A connection that died meanwhile fails
            // its statement instead, which the coordinator retries, and the pool drops it.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= Duration::from_secs(10) {
                        use sqlx::Connection;
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            });
        pool_options = pool_options.after_connect(move |conn, _| {
            let session = session.clone();
            Box::pin(async move {
                use sqlx::Executor;
                for setting in session.iter() {
                    match conn.execute(setting.sql.as_str()).await {
                        Ok(_) => {}
                        // A setting only some servers know (MariaDB's, or MySQL's).
                        Err(e) if setting.optional => {
                            tracing::debug!(setting = %setting.sql, error = %e, "database setting not supported");
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            })
        });
        let pool = pool_options
            .connect(&url)
            .await
            .map_err(|e| StoreError::Unavailable {
                message: format!("cannot connect to {}: {e}", redact(&url)),
                source: Some(Box::new(e)),
            })?;
        Ok(Self {
            // Keep a quarter of the pool for everything else.
            conns: Conns::new(pool.clone(), max_connections as usize * 3 / 4),
            write_gate: (dialect == Dialect::Sqlite)
                .then(|| tokio::sync::Semaphore::new(SQLITE_WRITERS)),
            pool,
            dialect,
            location: redact(&url),
            q: Statements::new(dialect),
            commit_pause: arc_swap::ArcSwapOption::empty(),
            call_limit: options.statement_timeout * 3,
            listen_url: (dialect == Dialect::Postgres).then_some(url),
        })
    }

    /// Apply the dialect's migrations from `migrations/`.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATOR,
            Dialect::Postgres => &POSTGRES_MIGRATOR,
            Dialect::MySql => &MYSQL_MIGRATOR,
        };
        let failed = |e: sqlx::migrate::MigrateError| StoreError::Permanent {
            message: format!("migration failed: {e}"),
            source: Some(Box::new(e)),
        };
        match self.dialect {
            // sqlx holds an advisory lock while it migrates PostgreSQL.
            Dialect::Postgres => return migrator.run(&self.pool).await.map_err(failed),
            // SQLite has no such lock, but each migration commits with its record or not at
            // all: a host that raced another one into the same migration fails it whole, and
            // its next run finds it applied.
            Dialect::Sqlite => {
                let mut tries = 0;
                return loop {
                    match migrator.run(&self.pool).await {
                        Ok(()) => break Ok(()),
                        Err(_) if tries < 5 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                        }
                        Err(e) => break Err(failed(e)),
                    }
                };
            }
            Dialect::MySql => {}
        }
        // sqlx asks MySQL for its lock with a negative timeout, which MariaDB answers with
        // NULL and no lock: hosts starting together on a fresh database would then run the
        // same DDL at once. Hold a named lock of our own on the migrating connection.
        let mut conn = self.pool.acquire().await?;
        let deadline = tokio::time::Instant::now() + MIGRATION_LOCK_WAIT;
        loop {
            let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('rte_migrate', 5)")
                .fetch_one(&mut *conn)
                .await?;
            if got == Some(1) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::permanent(format!(
                    "migration failed: another host has held the migration lock for {}s",
                    MIGRATION_LOCK_WAIT.as_secs()
                )));
            }
        }
        let outcome = migrator.run(&mut *conn).await;
        let released = sqlx::query("SELECT RELEASE_LOCK('rte_migrate')")
            .execute(&mut *conn)
            .await;
        outcome.map_err(failed)?;
        released?;
        Ok(())
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Wait for this process's turn to write, where the backend takes few writers at once.
    pub(super) async fn write_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.write_gate {
            Some(gate) => gate.acquire().await.ok(),
            None => None,
        }
    }

    /// After a script (see [`sqlite_script`]) or batch (see [`mysql_batch`]) failed part
    /// way, roll back what it began, so the connection is not handed on inside an open
    /// transaction.
    async fn settle<T>(&self, conn: &mut sqlx::AnyConnection, outcome: &Result<T, sqlx::Error>) {
        if self.dialect != Dialect::Postgres && outcome.is_err() {
            use sqlx::Executor;
            // Fails harmlessly when the script ended its transaction itself.
            let _ = conn.execute("ROLLBACK").await;
        }
    }

    /// MySQL: the create as one batch (see [`mysql_batch`]), unless too long.
    fn mysql_create_batch(
        &self,
        tx: &TxRecord,
        entries: Option<&str>,
        steps: &[StepRecord],
    ) -> Option<String> {
        (self.dialect == Dialect::MySql)
            .then(|| mysql_batch::create(&self.q, tx, entries, steps))
            .flatten()
    }

    /// MySQL: a commit of the saga's state and steps as one batch, unless too long.
    fn mysql_commit_batch(
        &self,
        tx: &TxRecord,
        next_version: i64,
        steps: &[&StepRecord],
    ) -> Option<String> {
        (self.dialect == Dialect::MySql)
            .then(|| mysql_batch::commit(&self.q, tx, next_version, steps))
            .flatten()
    }

    /// Apply a step call's key-value writes inside the committing transaction, each only
    /// if every key the call read still has the version it read: keys read and written
    /// are compared and set in one statement each; keys only read are checked under a
    /// shared row lock (SQLite's writer holds the whole database). Any difference is a
    /// [`StoreError::KvConflict`], and the caller's transaction rolls back.
    async fn write_kv(
        &self,
        db: &mut sqlx::AnyConnection,
        kv: &KvChanges,
        now: i64,
    ) -> StoreResult<()> {
        let ns = kv.namespace.as_str();
        let conflict = |key: &str| StoreError::KvConflict {
            namespace: kv.namespace.clone(),
            key: key.to_string(),
        };
        let read: std::collections::HashMap<&str, i64> = kv
            .reads
            .iter()
            .map(|r| (r.key.as_str(), r.version))
            .collect();
        let written: std::collections::HashMap<&str, bool> = kv
            .writes
            .iter()
            .map(|w| (w.key.as_str(), w.value.is_some()))
            .collect();
        // Keys no write statement below compares: those only read, and those found absent
        // and deleted (nothing to delete, but they must still be absent).
        let check_only: Vec<&KvRead> = kv
            .reads
            .iter()
            .filter(|r| match written.get(r.key.as_str()) {
                None => true,
                Some(&sets) => !sets && r.version == 0,
            })
            .collect();
        for w in &kv.writes {
            let seen = read.get(w.key.as_str()).copied();
            let (q, expect_one) = match (&w.value, seen) {
                (Some(v), None) => (
                    sqlx::query(&self.q.kv_upsert)
                        .bind(ns)
                        .bind(w.key.as_str())
                        .bind(v.as_str())
                        .bind(fresh_kv_version())
                        .bind(now),
                    false,
                ),
                (Some(v), Some(0)) => (
                    sqlx::query(&self.q.kv_insert)
                        .bind(ns)
                        .bind(w.key.as_str())
                        .bind(v.as_str())
                        .bind(fresh_kv_version())
                        .bind(now),
                    true,
                ),
                (Some(v), Some(version)) => (
                    sqlx::query(&self.q.kv_update_seen)
                        .bind(v.as_str())
                        .bind(now)
                        .bind(ns)
                        .bind(w.key.as_str())
                        .bind(version),
                    true,
                ),
                (None, None) => (
                    sqlx::query(&self.q.kv_delete).bind(ns).bind(w.key.as_str()),
                    false,
                ),
                // Deleting a key found absent writes nothing (checked with the reads).
                (None, Some(0)) => continue,
                (None, Some(version)) => (
                    sqlx::query(&self.q.kv_delete_seen)
                        .bind(ns)
                        .bind(w.key.as_str())
                        .bind(version),
                    true,
                ),
            };
            let done = q.execute(&mut *db).await?;
            if expect_one && done.rows_affected() != 1 {
                return Err(conflict(&w.key));
            }
        }
        for chunk in check_only.chunks(KV_CHECK_ROWS) {
            let sql = self
                .dialect
                .sql(&format!(
                    "SELECT kv_key, version FROM rte_kv WHERE namespace = ? AND kv_key IN ({}){}",
                    vec!["?"; chunk.len()].join(", "),
                    self.dialect.share_lock()
                ))
                .into_owned();
            let mut q = sqlx::query(&sql).bind(ns);
            for r in chunk {
                q = q.bind(r.key.as_str());
            }
            let rows = q.fetch_all(&mut *db).await?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                found.insert(text(row, "kv_key")?, row.try_get::<i64, _>("version")?);
            }
            for r in chunk {
                if found.get(&r.key).copied().unwrap_or(0) != r.version {
                    return Err(conflict(&r.key));
                }
            }
        }
        Ok(())
    }

    /// Have every commit that writes beyond the saga's row wait on `pause` at each
    /// [`CommitPoint`]; `None` removes it. For fault-injection tests: it reproduces a host
    /// that stalls just before or in the middle of a commit.
    pub fn set_commit_pause(&self, pause: Option<CommitPause>) {
        self.commit_pause.store(pause.map(Arc::new));
    }

    /// `work`, unless it takes longer than the statement timeout allows (a few statements'
    /// worth): then an [`StoreError::Unavailable`], and the connection it held is dropped.
    /// The database ends what it was doing on its side; this bounds the wait on ours, so a
    /// half-dead connection cannot hang a saga or the recovery worker.
    async fn bounded<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.call_limit, work).await {
            Ok(done) => done,
            Err(_) => Err(StoreError::unavailable(format!(
                "store {what} did not finish within {:?}",
                self.call_limit
            ))),
        }
    }

    async fn pause_at(&self, tx_id: &str, point: CommitPoint) {
        if let Some(pause) = self.commit_pause.load_full() {
            pause(tx_id.to_string(), point).await;
        }
    }

    /// Hand the connections kept between uses back to the pool (before using the pool
    /// directly for long, or closing it).
    pub fn release_idle(&self) {
        self.conns.release();
    }

    /// The database's plans for the statements [`AdminReads::list`] runs for `filter`,
    /// with its arguments bound: PostgreSQL's `EXPLAIN` lines, MySQL's and MariaDB's
    /// `EXPLAIN FORMAT=JSON` document, SQLite's `EXPLAIN QUERY PLAN` details. Shows
    /// which indexes a search uses.
    pub async fn explain_list(&self, filter: &TxFilter) -> StoreResult<ListPlans> {
        let query = ListQuery::new(self.dialect, filter);
        let mut conn = self.pool.acquire().await?;
        let mut plans = Vec::with_capacity(2);
        for sql in [&query.count, &query.page] {
            let explain = listing::explain_sql(self.dialect, sql);
            let rows = query
                .bind(sqlx::query(&explain))
                .fetch_all(&mut *conn)
                .await?;
            plans.push(listing::plan_text(self.dialect, &rows)?);
        }
        let page = plans.pop().unwrap_or_default();
        let count = plans.pop().unwrap_or_default();
        Ok(ListPlans { count, page })
    }

    /// The connection pool, for benchmarks that measure the raw database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// A statement run on every new connection.
struct SessionSetting {
    sql: String,
    /// Servers of the dialect that do not know it may refuse it.
    optional: bool,
}

/// What every new connection is told: SQLite's journal and waits; on the servers, bounds
/// on statements, row-lock waits and open transactions left idle, so a host stalled in the
/// middle of a commit cannot keep rows locked for longer than `timeout`.
fn session_settings(dialect: Dialect, timeout: Duration) -> Arc<Vec<SessionSetting>> {
    let required = |sql: String| SessionSetting {
        sql,
        optional: false,
    };
    let optional = |sql: String| SessionSetting {
        sql,
        optional: true,
    };
    let ms = timeout.as_millis().max(1);
    let secs = timeout.as_secs().max(1);
    Arc::new(match dialect {
        Dialect::Sqlite => vec![
            required("PRAGMA journal_mode = WAL".into()),
            required("PRAGMA synchronous = NORMAL".into()),
            required(format!("PRAGMA busy_timeout = {ms}")),
            required("PRAGMA foreign_keys = ON".into()),
        ],
        Dialect::Postgres => vec![
            required(format!("SET statement_timeout = {ms}")),
            required(format!("SET lock_timeout = {ms}")),
            required(format!("SET idle_in_transaction_session_timeout = {ms}")),
        ],
        Dialect::MySql => vec![
            required(format!("SET SESSION innodb_lock_wait_timeout = {secs}")),
            // MariaDB: statements and open transactions left idle.
            optional(format!(
                "SET SESSION max_statement_time = {}",
                timeout.as_secs_f64()
            )),
            optional(format!("SET SESSION idle_transaction_timeout = {secs}")),
            // MySQL: read statements.
            optional(format!("SET SESSION max_execution_time = {ms}")),
        ],
    })
}

/// Give SQLite URLs create-if-missing, as `sqlite://rte.db` should just work.
fn normalise_url(dialect: Dialect, url: &str) -> String {
    match dialect {
        Dialect::Sqlite if !url.contains('?') && !url.contains(":memory:") => {
            format!("{url}?mode=rwc")
        }
        Dialect::MySql if url.starts_with("mariadb:") => url.replacen("mariadb:", "mysql:", 1),
        _ => url.to_string(),
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e))
}

fn parse_status<T: std::str::FromStr<Err = crate::lifecycle::UnknownName>>(
    text: &str,
) -> StoreResult<T> {
    text.parse()
        .map_err(|e: crate::lifecycle::UnknownName| StoreError::corrupt("status", e))
}

/// A text column. MySQL reports `TEXT` columns as blobs through the `Any` driver, so
/// bytes are accepted too.
pub(super) fn text(row: &AnyRow, col: &str) -> StoreResult<String> {
    match row.try_get::<String, _>(col) {
        Ok(s) => Ok(s),
        Err(_) => {
            let bytes: Vec<u8> = row.try_get(col)?;
            String::from_utf8(bytes).map_err(|e| StoreError::corrupt(col, e))
        }
    }
}

/// A nullable text column (see [`text`]).
fn opt_text(row: &AnyRow, col: &str) -> StoreResult<Option<String>> {
    match row.try_get::<Option<String>, _>(col) {
        Ok(s) => Ok(s),
        Err(_) => {
            let bytes: Option<Vec<u8>> = row.try_get(col)?;
            bytes
                .map(|b| String::from_utf8(b).map_err(|e| StoreError::corrupt(col, e)))
                .transpose()
        }
    }
}

fn tx_from_row(row: &AnyRow) -> StoreResult<TxRecord> {
    Ok(TxRecord {
        tx_id: text(row, "tx_id")?,
        tx_type: text(row, "tx_type")?,
        status: parse_status(&text(row, "status")?)?,
        input: parse_json(&text(row, "input")?, "input")?,
        outputs: parse_json(&text(row, "outputs")?, "outputs")?,
        lock_keys: parse_json(&text(row, "lock_keys")?, "lock_keys")?,
        current_step: row.try_get::<i64, _>("current_step")? as u32,
        total_steps: row.try_get::<i64, _>("total_steps")? as u32,
        retry_count: row.try_get::<i64, _>("retry_count")? as u32,
        max_retries: row.try_get::<i64, _>("max_retries")? as u32,
        timeout_ms: row.try_get::<i64, _>("timeout_ms")? as u64,
        deadline_at: row.try_get("deadline_at")?,
        last_error: opt_text(row, "last_error")?,
        version: row.try_get("version")?,
        request_key: opt_text(row, "request_key")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
        undo: opt_text(row, "undo_cause")?
            .map(|u| parse_status::<Undo>(&u))
            .transpose()?,
    })
}

/// A step from `row`, whose status is in column `status`.
fn step_from_row(row: &AnyRow, status: &str) -> StoreResult<StepRecord> {
    let output = opt_text(row, "output")?;
    Ok(StepRecord {
        tx_id: text(row, "tx_id")?,
        step_index: row.try_get::<i64, _>("step_index")? as u32,
        step_name: text(row, "step_name")?,
        status: parse_status::<StepStatus>(&text(row, status)?)?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        compensation_attempts: row.try_get::<i64, _>("compensation_attempts")? as u32,
        output: output
            .map(|o| parse_json::<Map<String, Value>>(&o, "step output"))
            .transpose()?,
        error: opt_text(row, "error")?,
        idempotency_key: opt_text(row, "idempotency_key")?,
        plugin_digest: opt_text(row, "plugin_digest")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        failure_kind: opt_text(row, "failure_kind")?
            .map(|k| parse_status::<FailureKind>(&k))
            .transpose()?,
        attempt_log: opt_text(row, "attempt_log")?
            .map(|l| parse_json(&l, "attempt_log"))
            .transpose()?
            .unwrap_or_default(),
        group: match (
            row.try_get::<Option<i64>, _>("parallel_group")?,
            row.try_get::<Option<i64>, _>("parallel_limit")?,
        ) {
            (Some(first), Some(limit)) => Some(StepGroup {
                first: first as u32,
                max_concurrent: limit as u32,
            }),
            _ => None,
        },
        completed_order: row
            .try_get::<Option<i64>, _>("completed_order")?
            .map(|o| o as u32),
    })
}

#[async_trait]
impl TxStore for SqlStore {
    fn summary(&self) -> String {
        format!("{} store at {}", self.dialect.name(), self.location)
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conns.get().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        conn.done();
        Ok(())
    }
}

#[async_trait]
impl SagaStore for SqlStore {
    async fn create(&self, tx: &TxRecord, steps: &[StepRecord]) -> StoreResult<CreateOutcome> {
        self.bounded("create", async move {
            let _turn = self.write_turn().await;
            let mut conn = self.conns.get().await?;
            if let Some(key) = &tx.request_key {
                let existing: Option<String> = sqlx::query_scalar(&self.q.select_tx_by_request)
                    .bind(key.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(id) = existing {
                    return Ok(CreateOutcome::Existing(id));
                }
            }
            let input = input_search::entries_argument(&tx.input);
            let inserted = match self.q.create_statement(steps.len(), input.is_some()) {
                Some(sql) => {
                    let mut all = tx_insert_args(tx);
                    if let Some(entries) = &input {
                        all.extend(input_args(tx, entries));
                    }
                    all.extend(steps_args(steps));
                    let done = args::bind(sqlx::query(&sql), all)
                        .execute(&mut *conn)
                        .await
                        .map(|_| ());
                    self.settle(&mut conn, &done).await;
                    done
                }
                None => match self.mysql_create_batch(tx, input.as_deref(), steps) {
                    Some(batch) => {
                        // A text without arguments goes as one simple query.
                        let done = sqlx::Executor::execute(&mut *conn, batch.as_str())
                            .await
                            .map(|_| ());
                        self.settle(&mut conn, &done).await;
                        done
                    }
                    None => {
                        create_in_transaction(&self.q, &mut conn, tx, input.as_deref(), steps).await
                    }
                },
            };
            match inserted {
                Ok(()) => {
                    conn.done();
                    Ok(CreateOutcome::Created)
                }
                // Two requests with one key raced: the loser reports the winner's saga.
                Err(sqlx::Error::Database(d))
                    if tx.request_key.is_some() && d.is_unique_violation() =>
                {
                    let id: String = sqlx::query_scalar(&self.q.select_tx_by_request)
                        .bind(tx.request_key.as_deref())
                        .fetch_one(&mut *conn)
                        .await?;
                    Ok(CreateOutcome::Existing(id))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn get(&self, tx_id: &str) -> StoreResult<Option<(TxRecord, Vec<StepRecord>)>> {
        self.bounded("get", async move {
            let mut conn = self.conns.get().await?;
            let rows = sqlx::query(&self.q.select_saga)
                .bind(tx_id)
                .fetch_all(&mut *conn)
                .await?;
            conn.done();
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let tx = tx_from_row(first)?;
            let mut steps = Vec::with_capacity(rows.len());
            for row in &rows {
                if row.try_get::<Option<i64>, _>("step_index")?.is_some() {
                    steps.push(step_from_row(row, "step_status")?);
                }
            }
            Ok(Some((tx, steps)))
        })
        .await
    }

    async fn commit(&self, c: &Commit<'_>) -> StoreResult<i64> {
        self.bounded("commit", async move {
            let tx = c.tx;
            let only_state = !c.writes_beyond_state();
            if !only_state {
                self.pause_at(&tx.tx_id, CommitPoint::Start).await;
            }
            let _turn = self.write_turn().await;
            let next_version = tx.version + 1;
            let conflict = || StoreError::VersionConflict {
                tx_id: tx.tx_id.clone(),
                expected: tx.version,
            };
            if only_state && let Some(sql) = self.q.commit_statement(c.steps.len()) {
                // The whole change in one statement: one round trip, atomic on its own.
                let mut all = tx_update_args(tx, next_version);
                all.extend(steps_args(c.steps.iter().copied()));
                let query = args::bind(sqlx::query(&sql), all);
                let mut conn = self.conns.get().await?;
                let written = if self.dialect == Dialect::Sqlite && !c.steps.is_empty() {
                    let done = query.fetch_all(&mut *conn).await;
                    self.settle(&mut conn, &done).await;
                    let rows = done?;
                    let row = rows.first().ok_or_else(|| {
                        StoreError::permanent("the commit script returned no count")
                    })?;
                    row.try_get::<i64, _>("written")? as u64
                } else {
                    query.execute(&mut *conn).await?.rows_affected()
                };
                conn.done();
                if written == 0 {
                    return Err(conflict());
                }
                return Ok(next_version);
            }
            if only_state && let Some(batch) = self.mysql_commit_batch(tx, next_version, c.steps) {
                let mut conn = self.conns.get().await?;
                let done = sqlx::Executor::fetch_all(&mut *conn, batch.as_str()).await;
                self.settle(&mut conn, &done).await;
                let written = match done?.first() {
                    Some(row) => row.try_get::<i64, _>(mysql_batch::WRITTEN)?,
                    None => return Err(StoreError::permanent("the commit batch returned no row")),
                };
                conn.done();
                if written != 1 {
                    return Err(conflict());
                }
                return Ok(next_version);
            }
            let mut conn = self.conns.get().await?;
            let mut db = sqlx::Connection::begin(&mut *conn).await?;
            // The fence first, inside the transaction: from here the saga's row is locked until
            // this transaction ends, and a writer that lost the saga changes nothing.
            let updated = args::bind(
                sqlx::query(&self.q.update_tx),
                tx_update_args(tx, next_version),
            )
            .execute(&mut *db)
            .await?;
            if updated.rows_affected() != 1 {
                return Err(conflict());
            }
            if !only_state {
                self.pause_at(&tx.tx_id, CommitPoint::Fenced).await;
            }
            match c.steps {
                [] => {}
                [step] => {
                    args::bind(sqlx::query(&self.q.update_step), step_update_args(step))
                        .execute(&mut *db)
                        .await?;
                }
                steps => {
                    let sql = self.q.upsert_steps(steps.len());
                    args::bind(sqlx::query(&sql), steps_args(steps.iter().copied()))
                        .execute(&mut *db)
                        .await?;
                }
            }
            if let Some(kv) = c.kv.filter(|kv| kv.has_writes()) {
                self.write_kv(&mut db, kv, tx.updated_at).await?;
            }
            match c.idempotency {
                None => {}
                Some(IdempotencyChange::Remember(r)) => {
                    sqlx::query(&self.q.idem_put)
                        .bind(r.key.plugin.as_str())
                        .bind(r.key.step_name.as_str())
                        .bind(r.key.key.as_str())
                        .bind(r.tx_id.as_str())
                        .bind(r.output.as_str())
                        .bind(tx.updated_at)
                        .bind(r.expires_at)
                        .execute(&mut *db)
                        .await?;
                }
                Some(IdempotencyChange::Forget(k)) => {
                    sqlx::query(&self.q.idem_delete)
                        .bind(k.plugin.as_str())
                        .bind(k.step_name.as_str())
                        .bind(k.key.as_str())
                        .execute(&mut *db)
                        .await?;
                }
            }
            for h in c.history {
                sqlx::query(&self.q.history_insert)
                    .bind(h.tx_id.as_str())
                    .bind(h.at)
                    .bind(h.kind.as_str())
                    .bind(h.actor.as_ref().map(to_json))
                    .bind(h.message.as_str())
                    .execute(&mut *db)
                    .await?;
            }
            if !c.waits.is_empty() || !c.outbox.is_empty() {
                super::waits::write_in_commit(self, &mut db, c.waits, c.outbox, tx.updated_at)
                    .await?;
            }
            db.commit().await?;
            conn.done();
            Ok(next_version)
        })
        .await
    }
}

#[async_trait]
impl AdminReads for SqlStore {
    async fn list(&self, filter: &TxFilter) -> StoreResult<Page> {
        self.bounded("list", async move {
            let mut conn = self.conns.get().await?;
            let query = ListQuery::new(self.dialect, filter);
            let total: i64 = query
                .bind(sqlx::query(&query.count))
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            let rows = query
                .bind(sqlx::query(&query.page))
                .fetch_all(&mut *conn)
                .await?;
            conn.done();
            let items = rows
                .iter()
                .map(tx_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Page {
                items,
                total: total as u64,
            })
        })
        .await
    }

    async fn stats(&self) -> StoreResult<Vec<StatusCount>> {
        let mut conn = self.conns.get().await?;
        let rows = sqlx::query(
            "SELECT status, tx_type, COUNT(*) AS n FROM rte_transactions GROUP BY status, tx_type",
        )
        .fetch_all(&mut *conn)
        .await?;
        conn.done();
        rows.iter()
            .map(|r| {
                Ok(StatusCount {
                    status: parse_status(&r.try_get::<String, _>("status")?)?,
                    tx_type: r.try_get("tx_type")?,
                    count: r.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }

    async fn timeline(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, TxStatus, u64)>> {
        let mut conn = self.conns.get().await?;
        let bucket_ms = bucket_ms.max(1);
        let sql = format!(
            "SELECT {} AS bucket, status, COUNT(*) AS n FROM rte_transactions \
             WHERE completed_at >= ? GROUP BY {}, status ORDER BY bucket",
            self.dialect.int_div("completed_at", &bucket_ms.to_string()),
            self.dialect.int_div("completed_at", &bucket_ms.to_string()),
        );
        let rows = sqlx::query(&self.dialect.sql(&sql))
            .bind(since_ms)
            .fetch_all(&mut *conn)
            .await?;
        conn.done();
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("bucket")? * bucket_ms,
                    parse_status(&r.try_get::<String, _>("status")?)?,
                    r.try_get::<i64, _>("n")? as u64,
                ))
            })
            .collect()
    }

    async fn history(&self, tx_id: &str) -> StoreResult<Vec<HistoryEntry>> {
        let mut conn = self.conns.get().await?;
        let rows = sqlx::query(&self.q.history_select)
            .bind(tx_id)
            .fetch_all(&mut *conn)
            .await?;
        conn.done();
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    tx_id: r.try_get("tx_id")?,
                    at: r.try_get("at")?,
                    kind: parse_status::<HistoryKind>(&text(r, "kind")?)?,
                    actor: opt_text(r, "actor")?
                        .map(|a| parse_json::<Actor>(&a, "history actor"))
                        .transpose()?,
                    message: text(r, "message")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl RecoveryScan for SqlStore {
    async fn find_stuck(&self, updated_before: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.bounded("find_stuck", async move {
            let mut conn = self.conns.get().await?;
            let ids = sqlx::query_scalar(&self.q.find_stuck)
                .bind(updated_before)
                .bind(limit as i64)
                .fetch_all(&mut *conn)
                .await?;
            conn.done();
            Ok(ids)
        })
        .await
    }

    async fn append_history(&self, h: &HistoryEntry) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        let mut conn = self.conns.get().await?;
        sqlx::query(&self.q.history_insert)
            .bind(h.tx_id.as_str())
            .bind(h.at)
            .bind(h.kind.as_str())
            .bind(h.actor.as_ref().map(to_json))
            .bind(h.message.as_str())
            .execute(&mut *conn)
            .await?;
        conn.done();
        Ok(())
    }
}

#[async_trait]
impl Housekeeping for SqlStore {
    async fn purge_idempotency(&self, now_ms: i64, batch: u32) -> StoreResult<u64> {
        let _turn = self.write_turn().await;
        let mut conn = self.conns.get().await?;
        let sql = self.dialect.delete_batch(
            "rte_idempotency",
            "idem_key",
            "expires_at <= ?",
            batch.max(1),
        );
        let done = sqlx::query(&self.dialect.sql(&sql))
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        conn.done();
        Ok(done.rows_affected())
    }

    async fn purge_finished(&self, before_ms: i64, batch: u32) -> StoreResult<u64> {
        let _turn = self.write_turn().await;
        let mut conn = self.conns.get().await?;
        let select = format!(
            "SELECT tx_id FROM rte_transactions WHERE status IN {TERMINAL} \
             AND completed_at < ? ORDER BY completed_at LIMIT {}",
            batch.max(1)
        );
        let select = self.dialect.sql(&select);
        let ids: Vec<String> = sqlx::query_scalar(&select)
            .bind(before_ms)
            .fetch_all(&mut *conn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let mut db = sqlx::Connection::begin(&mut *conn).await?;
        for table in [
            "rte_steps",
            "rte_history",
            "rte_waits",
            "rte_outbox",
            "rte_tx_input",
            "rte_transactions",
        ] {
            let sql = self
                .dialect
                .sql(&format!("DELETE FROM {table} WHERE tx_id IN ({marks})"))
                .into_owned();
            let mut q = sqlx::query(&sql);
            for id in &ids {
                q = q.bind(id.as_str());
            }
            q.execute(&mut *db).await?;
        }
        db.commit().await?;
        conn.done();
        Ok(ids.len() as u64)
    }

    async fn purge_events(&self, before_ms: i64, batch: u32) -> StoreResult<u64> {
        let _turn = self.write_turn().await;
        let mut conn = self.conns.get().await?;
        let sql = self
            .dialect
            .delete_batch("rte_events", "id", "at < ?", batch.max(1));
        let done = sqlx::query(&self.dialect.sql(&sql))
            .bind(before_ms)
            .execute(&mut *conn)
            .await?;
        conn.done();
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl EventLog for SqlStore {
    async fn events_append(&self, origin: &str, events: &[(i64, String)]) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        let mut conn = self.conns.get().await?;
        for chunk in events.chunks(EVENT_ROWS) {
            let rows = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let sql = self
                .dialect
                .sql(&format!(
                    "INSERT INTO rte_events (origin, at, payload) VALUES {rows}"
                ))
                .into_owned();
            let mut q = sqlx::query(&sql);
            for (at, payload) in chunk {
                q = q.bind(origin).bind(*at).bind(payload.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        if self.dialect == Dialect::Postgres {
            // Delivered to listeners once the insert above is visible.
            sqlx::query(&format!("NOTIFY {EVENTS_CHANNEL}"))
                .execute(&mut *conn)
                .await?;
        }
        conn.done();
        Ok(())
    }

    async fn events_listen(&self) -> StoreResult<Option<futures::stream::BoxStream<'static, ()>>> {
        use futures::StreamExt;
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let unavailable = |e: sqlx::Error| StoreError::Unavailable {
            message: format!("cannot listen for shared events on {}: {e}", self.location),
            source: Some(Box::new(e)),
        };
        let mut listener = sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(unavailable)?;
        listener.listen(EVENTS_CHANNEL).await.map_err(unavailable)?;
        // A lost connection (reconnected on the next read) wakes the reader too: what was
        // notified meanwhile is read by position anyway.
        Ok(Some(listener.into_stream().map(|_| ()).boxed()))
    }

    async fn events_after(
        &self,
        after: i64,
        limit: u32,
        own: &str,
    ) -> StoreResult<Vec<SharedEvent>> {
        let mut conn = self.conns.get().await?;
        let sql = self
            .dialect
            .sql(&format!(
                "SELECT id, origin, at, CASE WHEN origin = ? THEN '' ELSE payload END AS payload \
                 FROM rte_events WHERE id > ? ORDER BY id LIMIT {}",
                limit.max(1)
            ))
            .into_owned();
        let rows = sqlx::query(&sql)
            .bind(own)
            .bind(after)
            .fetch_all(&mut *conn)
            .await?;
        conn.done();
        rows.iter().map(shared_event_from_row).collect()
    }

    async fn events_latest(&self, limit: u32) -> StoreResult<Vec<SharedEvent>> {
        let mut conn = self.conns.get().await?;
        let sql = format!(
            "SELECT id, origin, at, payload FROM rte_events ORDER BY id DESC LIMIT {}",
            limit.max(1)
        );
        let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
        conn.done();
        let mut events = rows
            .iter()
            .map(shared_event_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }
}

#[async_trait]
impl HostRegistry for SqlStore {
    async fn host_beat(&self, host: &HostRecord, forget_before: i64) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        let mut conn = self.conns.get().await?;
        sqlx::query(&self.q.host_put)
            .bind(host.host_id.as_str())
            .bind(host.started_at)
            .bind(host.seen_at)
            .bind(host.info.as_str())
            .execute(&mut *conn)
            .await?;
        sqlx::query(&self.dialect.sql("DELETE FROM rte_hosts WHERE seen_at < ?"))
            .bind(forget_before)
            .execute(&mut *conn)
            .await?;
        conn.done();
        Ok(())
    }

    async fn hosts(&self, seen_after: i64) -> StoreResult<Vec<HostRecord>> {
        let mut conn = self.conns.get().await?;
        let sql = self.dialect.sql(
            "SELECT host_id, started_at, seen_at, info FROM rte_hosts WHERE seen_at >= ? \
             ORDER BY host_id",
        );
        let rows = sqlx::query(&sql)
            .bind(seen_after)
            .fetch_all(&mut *conn)
            .await?;
        conn.done();
        rows.iter()
            .map(|row| {
                Ok(HostRecord {
                    host_id: text(row, "host_id")?,
                    started_at: row.try_get("started_at")?,
                    seen_at: row.try_get("seen_at")?,
                    info: text(row, "info")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl PluginKv for SqlStore {
    async fn kv_read(&self, namespace: &str, key: &str) -> StoreResult<Option<KvValue>> {
        self.bounded("kv_read", async move {
            let mut conn = self.conns.get().await?;
            let row = sqlx::query(&self.q.kv_get)
                .bind(namespace)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            conn.done();
            row.map(|r| {
                Ok(KvValue {
                    value: text(&r, "kv_value")?,
                    version: r.try_get("version")?,
                })
            })
            .transpose()
        })
        .await
    }
}

#[async_trait]
impl IdempotencyRecords for SqlStore {
    async fn idempotency_get(
        &self,
        key: &IdempotencyKey,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        self.bounded("idempotency_get", async move {
            let mut conn = self.conns.get().await?;
            let row = sqlx::query(&self.q.idem_get)
                .bind(key.plugin.as_str())
                .bind(key.step_name.as_str())
                .bind(key.key.as_str())
                .bind(now_ms)
                .fetch_optional(&mut *conn)
                .await?;
            conn.done();
            row.map(|r| text(&r, "output")).transpose()
        })
        .await
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_outlives_its_runtime_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = rt.block_on(async {
            let store = SqlStore::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            // Leaves connections kept between uses.
            assert!(store.get("none").await.unwrap().is_none());
            store
        });
        drop(rt);
        drop(store);
    }

    #[test]
    fn active_and_terminal_statuses_split_every_status() {
        use std::str::FromStr;
        let names = |list: &str| -> Vec<String> {
            list.trim_matches(|c| c == '(' || c == ')')
                .split(", ")
                .map(|s| s.trim_matches('\'').to_string())
                .collect()
        };
        let (active, terminal) = (names(ACTIVE), names(TERMINAL));
        for name in active.iter().chain(&terminal) {
            let status = TxStatus::from_str(name).unwrap();
            assert_eq!(status.is_terminal(), terminal.contains(name), "{name}");
        }
        assert_eq!(
            active.len() + terminal.len(),
            11,
            "every status is in one list"
        );
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://rte.db"), "sqlite://rte.db");
    }
}
