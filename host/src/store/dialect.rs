//! What differs between SQLite, PostgreSQL and MySQL/MariaDB: placeholders, upserts,
//! insert-if-absent, and how a URL names each.

use std::borrow::Cow;

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    /// The dialect a database URL names, if any.
    pub fn from_url(url: &str) -> Option<Dialect> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Dialect::Sqlite),
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            _ => None,
        }
    }

    /// Name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// Rewrite `?` placeholders into this dialect's form (`$1, $2, …` for PostgreSQL).
    /// Statements here never hold a `?` inside a string literal.
    pub fn sql(self, query: &str) -> Cow<'_, str> {
        if self != Dialect::Postgres {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len() + 8);
        let mut n = 0;
        for c in query.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// `INSERT … ` that replaces the value columns on a key clash.
    pub fn upsert(self, table: &str, cols: &[&str], key: &[&str], update: &[&str]) -> String {
        let marks = vec!["?"; cols.len()].join(", ");
        let head = format!("INSERT INTO {table} ({}) VALUES ({marks})", cols.join(", "));
        match self {
            Dialect::MySql => {
                let set: Vec<String> = update
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect();
                format!("{head} ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            _ => {
                let set: Vec<String> = update
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect();
                format!(
                    "{head} ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    set.join(", ")
                )
            }
        }
    }

    /// The clause that makes a `SELECT` take shared locks on the rows it reads, so they
    /// cannot change before the transaction ends (empty for SQLite, whose writer holds the
    /// whole database).
    pub fn share_lock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
            // MariaDB has no `FOR SHARE`; both accept this.
            Dialect::MySql => " LOCK IN SHARE MODE",
        }
    }

    /// Integer division of two integer expressions.
    pub fn int_div(self, a: &str, b: &str) -> String {
        match self {
            Dialect::MySql => format!("({a} DIV {b})"),
            _ => format!("({a} / {b})"),
        }
    }

    /// `INSERT … ` that keeps the existing row on a key clash.
    pub fn insert_ignore(self, table: &str, cols: &[&str]) -> String {
        let marks = vec!["?"; cols.len()].join(", ");
        match self {
            Dialect::MySql => format!(
                "INSERT IGNORE INTO {table} ({}) VALUES ({marks})",
                cols.join(", ")
            ),
            _ => format!(
                "INSERT INTO {table} ({}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                cols.join(", ")
            ),
        }
    }

    /// `DELETE` of at most `batch` rows matching `cond` (ordered by `order`).
    pub fn delete_batch(self, table: &str, key: &str, cond: &str, batch: u32) -> String {
        match self {
            // MySQL cannot select from the table it deletes from in a subquery.
            Dialect::MySql => format!("DELETE FROM {table} WHERE {cond} LIMIT {batch}"),
            _ => format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {cond} LIMIT {batch})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        let q = "SELECT a FROM t WHERE b = ? AND c = ?";
        assert_eq!(
            Dialect::Postgres.sql(q),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
        assert_eq!(Dialect::MySql.sql(q), q);
        assert_eq!(
            Dialect::from_url("mariadb://root@h/db"),
            Some(Dialect::MySql)
        );
        assert_eq!(Dialect::from_url("redis://h"), None);
    }
}
