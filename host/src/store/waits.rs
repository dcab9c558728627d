//! Steps that wait for a reply, and the transactional outbox: their records, the port the
//! engine and the broker bridge use ([`WaitStore`]), and its SQL.
//!
//! A wait is opened in the commit of the call that asked for it, gets at most one reply
//! (the remote answer, an error, or its deadline passing, whichever is recorded first),
//! and is closed by the step's next commit. Outbox messages are written in the commit of
//! the call that published them and marked sent once the broker acknowledged them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use crate::lifecycle::Phase;

/// What came back for a wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyBody {
    /// The remote service's answer.
    Message {
        /// Payload bytes (base64 in JSON).
        #[serde(with = "base64_bytes")]
        payload: Vec<u8>,
        /// Headers, in order.
        headers: Vec<(String, String)>,
    },
    /// The remote service answered with an error.
    Error {
        /// Its message.
        message: String,
    },
    /// Nothing came before the wait's deadline.
    TimedOut,
}

impl ReplyBody {
    /// The name of its kind, for events, metrics and views.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplyBody::Message { .. } => "message",
            ReplyBody::Error { .. } => "error",
            ReplyBody::TimedOut => "timed_out",
        }
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// One wait of a step for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitRecord {
    /// The id the reply carries; unique across waits.
    pub correlation_id: String,
    /// The saga.
    pub tx_id: String,
    /// The waiting step.
    pub step_index: u32,
    /// The call that waits: execute or compensate.
    pub phase: Phase,
    /// The attempt of that call.
    pub attempt: u32,
    /// When the wait began (ms since epoch).
    pub created_at: i64,
    /// When it times out (ms since epoch).
    pub deadline_at: i64,
    /// When its reply (or timeout) was recorded.
    pub replied_at: Option<i64>,
    /// The reply.
    pub reply: Option<ReplyBody>,
    /// When the step's next commit closed it.
    pub closed_at: Option<i64>,
}

/// A message a step published, held until its call's result commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Unique id, also the broker's deduplication id: saga, step, phase, attempt, position.
    pub message_id: String,
    /// The saga.
    pub tx_id: String,
    /// Where it goes.
    pub subject: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Headers, in order (the host's own `Rte-*` headers included).
    pub headers: Vec<(String, String)>,
    /// When it was committed (ms since epoch).
    pub created_at: i64,
}

/// What recording a reply came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The wait's first reply: recorded; the saga resumes.
    Recorded {
        /// The saga.
        tx_id: String,
    },
    /// The wait already had its reply: this one is not applied.
    Duplicate {
        /// The saga.
        tx_id: String,
    },
    /// The wait had timed out, or the step had moved on: not applied.
    Late {
        /// The saga.
        tx_id: String,
    },
    /// No wait has this correlation id.
    Unknown,
}

/// The wait changes of a commit.
#[derive(Debug, Clone, Copy, Default)]
pub struct WaitChanges<'a> {
    /// A wait to open.
    pub open: Option<&'a WaitRecord>,
    /// The correlation id of a wait to close.
    pub close: Option<&'a str>,
}

impl WaitChanges<'_> {
    /// Whether there is anything to write.
    pub fn is_empty(&self) -> bool {
        self.open.is_none() && self.close.is_none()
    }
}

/// The waits and outbox of sagas.
#[async_trait]
pub trait WaitStore: Send + Sync + 'static {
    /// The wait with this correlation id.
    async fn wait_get(&self, correlation_id: &str) -> StoreResult<Option<WaitRecord>>;

    /// The open (not closed) wait of a step, if it has one.
    async fn wait_of_step(&self, tx_id: &str, step_index: u32) -> StoreResult<Option<WaitRecord>>;

    /// Every wait of a saga, oldest first.
    async fn waits_of(&self, tx_id: &str) -> StoreResult<Vec<WaitRecord>>;

    /// Record `reply` as the wait's reply, unless it has one or is closed; a recorded reply
    /// also marks the saga as just updated, so recovery leaves it to the host resuming it.
    async fn record_reply(
        &self,
        correlation_id: &str,
        reply: &ReplyBody,
        now_ms: i64,
    ) -> StoreResult<ReplyOutcome>;

    /// Correlation ids of open waits with no reply whose deadline passed, oldest first.
    async fn waits_due(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<String>>;

    /// Open waits with no reply yet, soonest deadline first.
    async fn waits_open(&self, limit: u32) -> StoreResult<Vec<WaitRecord>>;

    /// Outbox messages not yet sent that were committed before `created_before`, oldest
    /// first.
    async fn outbox_unsent(
        &self,
        created_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutboxMessage>>;

    /// Mark messages sent.
    async fn outbox_sent(&self, message_ids: &[String], now_ms: i64) -> StoreResult<()>;

    /// A saga's outbox messages with when each was sent.
    async fn outbox_of(&self, tx_id: &str) -> StoreResult<Vec<(OutboxMessage, Option<i64>)>>;
}

/// `sql` in the dialect's placeholder form, owned.
fn q(d: super::Dialect, sql: &str) -> String {
    d.sql(sql).into_owned()
}

const WAIT_COLS: &str = "correlation_id, tx_id, step_index, phase, attempt, created_at, \
    deadline_at, replied_at, reply, closed_at";
const OUTBOX_COLS: &str = "message_id, tx_id, subject, payload, headers, created_at";

fn wait_from(row: &sqlx::any::AnyRow) -> StoreResult<WaitRecord> {
    let phase: String = row.try_get("phase")?;
    let reply: Option<String> = row.try_get("reply")?;
    Ok(WaitRecord {
        correlation_id: row.try_get("correlation_id")?,
        tx_id: row.try_get("tx_id")?,
        step_index: row.try_get::<i64, _>("step_index")? as u32,
        phase: phase
            .parse()
            .map_err(|e| StoreError::corrupt("wait phase", e))?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        created_at: row.try_get("created_at")?,
        deadline_at: row.try_get("deadline_at")?,
        replied_at: row.try_get("replied_at")?,
        reply: reply
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::corrupt("wait reply", e))?,
        closed_at: row.try_get("closed_at")?,
    })
}

fn outbox_from(row: &sqlx::any::AnyRow) -> StoreResult<OutboxMessage> {
    let headers: String = row.try_get("headers")?;
    Ok(OutboxMessage {
        message_id: row.try_get("message_id")?,
        tx_id: row.try_get("tx_id")?,
        subject: row.try_get("subject")?,
        payload: row.try_get("payload")?,
        headers: serde_json::from_str(&headers)
            .map_err(|e| StoreError::corrupt("outbox headers", e))?,
        created_at: row.try_get("created_at")?,
    })
}

/// The SQL of the writes a commit makes to waits and the outbox, inside its transaction.
pub(super) async fn write_in_commit(
    store: &SqlStore,
    db: &mut sqlx::AnyConnection,
    waits: WaitChanges<'_>,
    outbox: &[OutboxMessage],
    now_ms: i64,
) -> StoreResult<()> {
    let d = store.dialect();
    if let Some(cid) = waits.close {
        sqlx::query(&d.sql("UPDATE rte_waits SET closed_at = ? WHERE correlation_id = ?"))
            .bind(now_ms)
            .bind(cid)
            .execute(&mut *db)
            .await?;
    }
    if let Some(w) = waits.open {
        sqlx::query(&q(
            d,
            &format!("INSERT INTO rte_waits ({WAIT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        ))
        .bind(w.correlation_id.as_str())
        .bind(w.tx_id.as_str())
        .bind(w.step_index as i64)
        .bind(w.phase.as_str())
        .bind(w.attempt as i64)
        .bind(w.created_at)
        .bind(w.deadline_at)
        .bind(w.replied_at)
        .bind(w.reply.as_ref().map(super::sql::to_json))
        .bind(w.closed_at)
        .execute(&mut *db)
        .await?;
    }
    if !outbox.is_empty() {
        let sql = q(
            d,
            &d.insert_ignore(
                "rte_outbox",
                &[
                    "message_id",
                    "tx_id",
                    "subject",
                    "payload",
                    "headers",
                    "created_at",
                ],
            ),
        );
        for m in outbox {
            sqlx::query(&sql)
                .bind(m.message_id.as_str())
                .bind(m.tx_id.as_str())
                .bind(m.subject.as_str())
                .bind(m.payload.clone())
                .bind(super::sql::to_json(&m.headers))
                .bind(m.created_at)
                .execute(&mut *db)
                .await?;
        }
    }
    Ok(())
}

#[async_trait]
impl WaitStore for SqlStore {
    async fn wait_get(&self, correlation_id: &str) -> StoreResult<Option<WaitRecord>> {
        let sql = q(
            self.dialect(),
            &format!("SELECT {WAIT_COLS} FROM rte_waits WHERE correlation_id = ?"),
        );
        let row = sqlx::query(&sql)
            .bind(correlation_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(wait_from).transpose()
    }

    async fn wait_of_step(&self, tx_id: &str, step_index: u32) -> StoreResult<Option<WaitRecord>> {
        let sql = q(
            self.dialect(),
            &format!(
                "SELECT {WAIT_COLS} FROM rte_waits WHERE tx_id = ? AND step_index = ? \
             AND closed_at IS NULL ORDER BY created_at DESC"
            ),
        );
        let row = sqlx::query(&sql)
            .bind(tx_id)
            .bind(step_index as i64)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(wait_from).transpose()
    }

    async fn waits_of(&self, tx_id: &str) -> StoreResult<Vec<WaitRecord>> {
        let sql = q(
            self.dialect(),
            &format!(
                "SELECT {WAIT_COLS} FROM rte_waits WHERE tx_id = ? ORDER BY created_at, correlation_id"
            ),
        );
        let rows = sqlx::query(&sql).bind(tx_id).fetch_all(self.pool()).await?;
        rows.iter().map(wait_from).collect()
    }

    async fn record_reply(
        &self,
        correlation_id: &str,
        reply: &ReplyBody,
        now_ms: i64,
    ) -> StoreResult<ReplyOutcome> {
        let d = self.dialect();
        let _turn = self.write_turn().await;
        let mut conn = self.pool().acquire().await?;
        let mut db = sqlx::Connection::begin(&mut *conn).await?;
        let taken = sqlx::query(&d.sql(
            "UPDATE rte_waits SET replied_at = ?, reply = ? WHERE correlation_id = ? \
             AND replied_at IS NULL AND closed_at IS NULL",
        ))
        .bind(now_ms)
        .bind(super::sql::to_json(reply))
        .bind(correlation_id)
        .execute(&mut *db)
        .await?
        .rows_affected();
        let row = sqlx::query(&q(
            d,
            &format!("SELECT {WAIT_COLS} FROM rte_waits WHERE correlation_id = ?"),
        ))
        .bind(correlation_id)
        .fetch_optional(&mut *db)
        .await?;
        let Some(wait) = row.as_ref().map(wait_from).transpose()? else {
            db.rollback().await?;
            return Ok(ReplyOutcome::Unknown);
        };
        if taken == 1 {
            sqlx::query(&d.sql("UPDATE rte_transactions SET updated_at = ? WHERE tx_id = ?"))
                .bind(now_ms)
                .bind(wait.tx_id.as_str())
                .execute(&mut *db)
                .await?;
            db.commit().await?;
            return Ok(ReplyOutcome::Recorded { tx_id: wait.tx_id });
        }
        db.rollback().await?;
        let tx_id = wait.tx_id;
        Ok(match wait.reply {
            Some(ReplyBody::TimedOut) | None => ReplyOutcome::Late { tx_id },
            Some(_) => ReplyOutcome::Duplicate { tx_id },
        })
    }

    async fn waits_due(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<String>> {
        let sql = q(
            self.dialect(),
            "SELECT w.correlation_id FROM rte_waits w JOIN rte_transactions t ON t.tx_id = w.tx_id \
             WHERE w.closed_at IS NULL AND w.replied_at IS NULL AND w.deadline_at <= ? \
             AND t.status IN ('LOCKED', 'EXECUTING', 'COMPENSATING') ORDER BY w.deadline_at LIMIT ?",
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(now_ms)
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?)
    }

    async fn waits_open(&self, limit: u32) -> StoreResult<Vec<WaitRecord>> {
        let sql = q(
            self.dialect(),
            &format!(
                "SELECT {} FROM rte_waits w JOIN rte_transactions t ON t.tx_id = w.tx_id \
             WHERE w.closed_at IS NULL AND w.replied_at IS NULL \
             AND t.status IN ('LOCKED', 'EXECUTING', 'COMPENSATING') ORDER BY w.deadline_at LIMIT ?",
                WAIT_COLS
                    .split(", ")
                    .map(|c| format!("w.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let rows = sqlx::query(&sql)
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(wait_from).collect()
    }

    async fn outbox_unsent(
        &self,
        created_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let sql = q(
            self.dialect(),
            &format!(
                "SELECT {OUTBOX_COLS} FROM rte_outbox WHERE sent_at IS NULL AND created_at < ? \
             ORDER BY created_at LIMIT ?"
            ),
        );
        let rows = sqlx::query(&sql)
            .bind(created_before)
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outbox_from).collect()
    }

    async fn outbox_sent(&self, message_ids: &[String], now_ms: i64) -> StoreResult<()> {
        if message_ids.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; message_ids.len()].join(", ");
        let sql = q(
            self.dialect(),
            &format!(
                "UPDATE rte_outbox SET sent_at = ? WHERE sent_at IS NULL AND message_id IN ({marks})"
            ),
        );
        let _turn = self.write_turn().await;
        let mut query = sqlx::query(&sql).bind(now_ms);
        for id in message_ids {
            query = query.bind(id.as_str());
        }
        query.execute(self.pool()).await?;
        Ok(())
    }

    async fn outbox_of(&self, tx_id: &str) -> StoreResult<Vec<(OutboxMessage, Option<i64>)>> {
        let sql = q(
            self.dialect(),
            &format!(
                "SELECT {OUTBOX_COLS}, sent_at FROM rte_outbox WHERE tx_id = ? \
             ORDER BY created_at, message_id"
            ),
        );
        let rows = sqlx::query(&sql).bind(tx_id).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| Ok((outbox_from(row)?, row.try_get("sent_at")?)))
            .collect()
    }
}
