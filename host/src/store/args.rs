//! A statement's arguments as values, so that one list of a row's columns serves both ways
//! the store sends them: bound to a prepared statement, or written as literals into a
//! MySQL batch (several statements sent in one round trip, see [`fill`]).

use std::borrow::Cow;
use std::fmt::Write;

use super::sql::AnyQuery;

/// One argument: a text or an integer, either possibly `NULL`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
}

impl<'a> Arg<'a> {
    pub fn text(s: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(s)))
    }

    pub fn owned(s: String) -> Self {
        Arg::Text(Some(Cow::Owned(s)))
    }

    pub fn opt_text(s: Option<&'a str>) -> Self {
        Arg::Text(s.map(Cow::Borrowed))
    }

    pub fn opt_owned(s: Option<String>) -> Self {
        Arg::Text(s.map(Cow::Owned))
    }

    pub fn int(i: i64) -> Self {
        Arg::Int(Some(i))
    }

    pub fn opt_int(i: Option<i64>) -> Self {
        Arg::Int(i)
    }
}

/// Bind `args` to `query`, in order.
pub(super) fn bind<'q>(mut query: AnyQuery<'q>, args: Vec<Arg<'q>>) -> AnyQuery<'q> {
    for arg in args {
        query = match arg {
            Arg::Text(None) => query.bind(None::<&str>),
            Arg::Text(Some(Cow::Borrowed(s))) => query.bind(s),
            Arg::Text(Some(Cow::Owned(s))) => query.bind(s),
            Arg::Int(i) => query.bind(i),
        };
    }
    query
}

/// `sql` with each `?` replaced by the next of `args` as a MySQL literal. Texts are written
/// as hexadecimal strings in utf8mb4 (`_utf8mb4 X'…'`), which no `sql_mode` or content
/// can turn into anything but the value: nothing a value holds is read as SQL. The
/// statements filled here are the store's own, none with a `?` inside a quoted string.
pub(super) fn fill(out: &mut String, sql: &str, args: &[Arg<'_>]) {
    let mut args = args.iter();
    let mut parts = sql.split('?');
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        match args.next() {
            Some(arg) => write_literal(out, arg),
            None => panic!("statement has more placeholders than arguments: {sql}"),
        }
        out.push_str(part);
    }
    assert!(
        args.next().is_none(),
        "statement has fewer placeholders than arguments: {sql}"
    );
}

fn write_literal(out: &mut String, arg: &Arg<'_>) {
    match arg {
        Arg::Text(None) | Arg::Int(None) => out.push_str("NULL"),
        Arg::Int(Some(i)) => {
            let _ = write!(out, "{i}");
        }
        Arg::Text(Some(s)) => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.reserve(s.len() * 2 + 12);
            out.push_str("_utf8mb4 X'");
            for b in s.as_bytes() {
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
            out.push('\'');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_fill_placeholders_in_order() {
        let mut out = String::new();
        fill(
            &mut out,
            "UPDATE t SET a = ?, b = ?, c = ? WHERE id = ?",
            &[
                Arg::text("x'; DROP TABLE t; --"),
                Arg::int(-42),
                Arg::opt_text(None),
                Arg::owned("é".into()),
            ],
        );
        assert_eq!(
            out,
            "UPDATE t SET a = _utf8mb4 X'78273B2044524F50205441424C4520743B202D2D', \
             b = -42, c = NULL WHERE id = _utf8mb4 X'C3A9'"
        );
    }

    #[test]
    fn an_empty_text_is_an_empty_string_not_null() {
        let mut out = String::new();
        fill(&mut out, "?", &[Arg::text("")]);
        assert_eq!(out, "_utf8mb4 X''");
    }

    #[test]
    #[should_panic(expected = "fewer placeholders")]
    fn a_count_mismatch_is_a_bug_caught_at_once() {
        fill(&mut String::new(), "?", &[Arg::int(1), Arg::int(2)]);
    }
}
