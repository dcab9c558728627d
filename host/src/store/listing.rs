//! The list query behind the API and the console: the SQL a [`TxFilter`] turns into, and
//! the database's plan for it (to check which indexes a search uses).

use sqlx::any::AnyRow;

use super::input_search::{self, InputMatch};
use super::{Dialect, StoreResult, TxFilter};

/// A query being bound, over the `Any` driver.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Columns a listed saga is read from.
pub(super) const LIST_COLS: &str = super::sql::TX_COLS;

/// The two statements of one list call, in the dialect's form, and their arguments.
pub(super) struct ListQuery {
    /// How many sagas match.
    pub count: String,
    /// The page of them, newest first.
    pub page: String,
    args: Vec<FilterArg>,
}

/// The database's plans for the statements a list call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPlans {
    /// The plan of the count of matching sagas.
    pub count: String,
    /// The plan of the page of them.
    pub page: String,
}

impl ListQuery {
    /// The statements listing what `filter` selects.
    pub(super) fn new(d: Dialect, filter: &TxFilter) -> Self {
        let (where_sql, args) = filter_clauses(filter);
        let count = d
            .sql(&format!("SELECT COUNT(*) FROM rte_transactions{where_sql}"))
            .into_owned();
        let page = d
            .sql(&format!(
                "SELECT {LIST_COLS} FROM rte_transactions{where_sql} \
                 ORDER BY created_at DESC, tx_id DESC LIMIT {} OFFSET {}",
                filter.limit.max(1),
                filter.offset
            ))
            .into_owned();
        Self { count, page, args }
    }

    /// Bind the filter's arguments to `query` (the count or the page: they take the same).
    pub(super) fn bind<'q>(&'q self, mut query: AnyQuery<'q>) -> AnyQuery<'q> {
        for arg in &self.args {
            query = match arg {
                FilterArg::Text(t) => query.bind(t.as_str()),
                FilterArg::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

/// The statement asking the database for its plan of `sql`: PostgreSQL's `EXPLAIN`,
/// MySQL's and MariaDB's `EXPLAIN FORMAT=JSON`, SQLite's `EXPLAIN QUERY PLAN`.
pub(super) fn explain_sql(d: Dialect, sql: &str) -> String {
    match d {
        Dialect::Postgres => format!("EXPLAIN {sql}"),
        Dialect::MySql => format!("EXPLAIN FORMAT=JSON {sql}"),
        Dialect::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
    }
}

/// The plan [`explain_sql`] answered, as text: PostgreSQL's lines, MySQL's JSON document,
/// SQLite's details, one per line.
pub(super) fn plan_text(d: Dialect, rows: &[AnyRow]) -> StoreResult<String> {
    let column = match d {
        Dialect::Sqlite => "detail",
        // PostgreSQL names its one column `QUERY PLAN`, MySQL `EXPLAIN`.
        _ => return first_column_lines(rows),
    };
    let lines = rows
        .iter()
        .map(|r| super::sql::text(r, column))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(lines.join("\n"))
}

fn first_column_lines(rows: &[AnyRow]) -> StoreResult<String> {
    use sqlx::{Column, Row};
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(column) = row.columns().first() else {
            continue;
        };
        lines.push(super::sql::text(row, column.name())?);
    }
    Ok(lines.join("\n"))
}

/// The filter's `WHERE` clause (empty when it selects everything) and its arguments, in
/// order.
fn filter_clauses(filter: &TxFilter) -> (String, Vec<FilterArg>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    if !filter.statuses.is_empty() {
        clauses.push(format!(
            "status IN ({})",
            vec!["?"; filter.statuses.len()].join(", ")
        ));
        args.extend(
            filter
                .statuses
                .iter()
                .map(|s| FilterArg::Text(s.as_str().to_string())),
        );
    }
    if let Some(t) = &filter.tx_type {
        clauses.push("tx_type = ?".to_string());
        args.push(FilterArg::Text(t.clone()));
    }
    if let Some(after) = filter.created_after {
        clauses.push("created_at >= ?".to_string());
        args.push(FilterArg::Int(after));
    }
    if let Some(before) = filter.created_before {
        clauses.push("created_at < ?".to_string());
        args.push(FilterArg::Int(before));
    }
    if let Some(part) = &filter.tx_id_contains {
        // Ids are made of [0-9a-z-], which LIKE takes literally: no escapes needed. A part
        // with any other character matches no id.
        if part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            clauses.push("tx_id LIKE ?".to_string());
            args.push(FilterArg::Text(format!("%{part}%")));
        } else {
            clauses.push("1 = 0".to_string());
        }
    }
    for InputMatch { key, value } in &filter.input {
        clauses.push(input_search::MATCH_CLAUSE.to_string());
        args.push(FilterArg::Text(key.clone()));
        args.push(FilterArg::Text(value.clone()));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (where_sql, args)
}

/// An argument of a list statement.
enum FilterArg {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_adds_its_clause_and_arguments_in_order() {
        let filter = TxFilter {
            statuses: vec![crate::engine::TxStatus::Failed],
            tx_id_contains: Some("a1-b".into()),
            input: vec![
                InputMatch::new("account_id", "ACC-1007").unwrap(),
                InputMatch::new("currency", "EUR").unwrap(),
            ],
            limit: 20,
            offset: 40,
            ..TxFilter::default()
        };
        let q = ListQuery::new(Dialect::Postgres, &filter);
        assert_eq!(
            q.count,
            "SELECT COUNT(*) FROM rte_transactions WHERE status IN ($1) AND tx_id LIKE $2 \
             AND tx_id IN (SELECT tx_id FROM rte_tx_input WHERE input_key = $3 AND input_value = $4) \
             AND tx_id IN (SELECT tx_id FROM rte_tx_input WHERE input_key = $5 AND input_value = $6)"
        );
        assert!(
            q.page
                .ends_with("ORDER BY created_at DESC, tx_id DESC LIMIT 20 OFFSET 40")
        );
        let texts: Vec<&str> = q
            .args
            .iter()
            .map(|a| match a {
                FilterArg::Text(t) => t.as_str(),
                FilterArg::Int(_) => "",
            })
            .collect();
        assert_eq!(
            texts,
            [
                "FAILED",
                "%a1-b%",
                "account_id",
                "ACC-1007",
                "currency",
                "EUR"
            ]
        );
        let odd = TxFilter {
            tx_id_contains: Some("50%".into()),
            ..TxFilter::default()
        };
        assert!(
            ListQuery::new(Dialect::Sqlite, &odd)
                .count
                .ends_with("WHERE 1 = 0")
        );
    }
}
