//! Search by a saga's input: which top-level input values are indexed, the text they are
//! indexed as, and the SQL that writes them with the saga and finds sagas by them.
//!
//! Each saga gets one row in `rte_tx_input` per top-level key whose value is a string,
//! a number or a boolean: strings without their quotes, numbers and booleans as their JSON
//! text (`100`, `1.5`, `true`). Keys longer than [`MAX_KEY_CHARS`] and values longer than
//! [`MAX_VALUE_CHARS`] (and any holding the character NUL, which PostgreSQL's text cannot
//! hold) are not indexed at all rather than cut short, so an equality match on the table is
//! exact: a search for a value that long is refused instead ([`InputMatch::new`]).

use serde_json::Value;

use super::Dialect;

/// Longest input key indexed, in characters.
pub const MAX_KEY_CHARS: usize = 128;
/// Longest input value indexed, in characters.
pub const MAX_VALUE_CHARS: usize = 255;

/// One condition of an input search: the saga's input has top-level key `key` with the
/// value `value` (a string's text, or a number's or boolean's JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMatch {
    /// The top-level key.
    pub key: String,
    /// The value, as indexed.
    pub value: String,
}

/// Why an [`InputMatch`] cannot be searched for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInputMatch {
    /// The key is empty.
    #[error("an input key cannot be empty")]
    EmptyKey,
    /// The key is longer than any indexed key.
    #[error("input key `{0}…` is longer than {MAX_KEY_CHARS} characters")]
    KeyTooLong(String),
    /// The value is longer than any indexed value.
    #[error("the value of input key `{0}` is longer than {MAX_VALUE_CHARS} characters")]
    ValueTooLong(String),
    /// The key or the value holds the character NUL.
    #[error("input key `{0}`: keys and values cannot hold the character NUL")]
    Nul(String),
}

impl InputMatch {
    /// A condition on `key` = `value`, refused when no indexed value could match it.
    pub fn new(
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, InvalidInputMatch> {
        let (key, value) = (key.into(), value.into());
        if key.is_empty() {
            return Err(InvalidInputMatch::EmptyKey);
        }
        if key.chars().count() > MAX_KEY_CHARS {
            let head: String = key.chars().take(32).collect();
            return Err(InvalidInputMatch::KeyTooLong(head));
        }
        if key.contains('\0') || value.contains('\0') {
            return Err(InvalidInputMatch::Nul(key.replace('\0', "\\0")));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(InvalidInputMatch::ValueTooLong(key));
        }
        Ok(Self { key, value })
    }
}

/// The text `value` is indexed as, if it is indexed at all.
fn indexed_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
    };
    (text.chars().count() <= MAX_VALUE_CHARS && !text.contains('\0')).then_some(text)
}

/// The indexed (key, text) pairs of an input (a JSON object; anything else has none), in
/// key order.
fn indexed_entries(input: &Value) -> Vec<(&str, String)> {
    let Some(input) = input.as_object() else {
        return Vec::new();
    };
    input
        .iter()
        .filter(|(k, _)| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS && !k.contains('\0'))
        .filter_map(|(k, v)| Some((k.as_str(), indexed_text(v)?)))
        .collect()
}

/// The indexed pairs as one JSON array of `[key, text]` pairs, the one argument the
/// statement of [`insert_sql`] expands into rows; `None` when nothing is indexed.
pub(super) fn entries_argument(input: &Value) -> Option<String> {
    let entries = indexed_entries(input);
    if entries.is_empty() {
        return None;
    }
    serde_json::to_string(&entries).ok()
}

/// The statement writing a saga's indexed input, with three `?` arguments: the saga's id,
/// its creation time and [`entries_argument`]. The database expands the pairs itself, so
/// the statement is one text whatever the number of keys (prepared once per connection).
pub(super) fn insert_sql(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => {
            "INSERT INTO rte_tx_input (tx_id, input_key, input_value, created_at) \
             SELECT ?::text, e ->> 0, e ->> 1, ?::bigint FROM jsonb_array_elements(?::jsonb) AS e"
        }
        Dialect::Sqlite => {
            "INSERT INTO rte_tx_input (tx_id, input_key, input_value, created_at) \
             SELECT ?, json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'), ? \
             FROM json_each(?) AS e"
        }
        Dialect::MySql => {
            "INSERT INTO rte_tx_input (tx_id, input_key, input_value, created_at) \
             SELECT ?, j.k, j.v, ? FROM JSON_TABLE(?, '$[*]' COLUMNS (\
             k VARCHAR(128) CHARACTER SET utf8mb4 PATH '$[0]', \
             v VARCHAR(255) CHARACTER SET utf8mb4 PATH '$[1]')) AS j"
        }
    }
}

/// The condition a list query adds for one [`InputMatch`], with two `?` arguments (key,
/// value): the saga is among those the search index finds for the pair.
pub(super) const MATCH_CLAUSE: &str =
    "tx_id IN (SELECT tx_id FROM rte_tx_input WHERE input_key = ? AND input_value = ?)";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_indexed_as_their_text_and_the_rest_is_not() {
        let mut input = json!({
            "account_id": "ACC-1007",
            "amount": 100,
            "rate": 1.5,
            "urgent": true,
            "note": "",
            "none": null,
            "tags": ["a"],
            "payee": {"id": 1},
            "long": "x".repeat(MAX_VALUE_CHARS + 1),
            "just_fits": "é".repeat(MAX_VALUE_CHARS),
            "nul": "a\u{0}b",
        });
        input
            .as_object_mut()
            .unwrap()
            .insert("k".repeat(MAX_KEY_CHARS + 1), json!("v"));
        let entries = indexed_entries(&input);
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "account_id",
                "amount",
                "just_fits",
                "note",
                "rate",
                "urgent"
            ]
        );
        let text = |k: &str| entries.iter().find(|(key, _)| *key == k).unwrap().1.clone();
        assert_eq!(text("account_id"), "ACC-1007");
        assert_eq!(text("amount"), "100");
        assert_eq!(text("rate"), "1.5");
        assert_eq!(text("urgent"), "true");
        assert_eq!(text("note"), "");
        let arg = entries_argument(&input).unwrap();
        let pairs: Vec<(String, String)> = serde_json::from_str(&arg).unwrap();
        assert_eq!(pairs.len(), 6);
        assert_eq!(pairs[0], ("account_id".into(), "ACC-1007".into()));
        assert!(entries_argument(&json!({"a": null})).is_none());
    }

    #[test]
    fn a_search_no_indexed_value_could_match_is_refused() {
        assert!(InputMatch::new("account_id", "ACC-1007").is_ok());
        assert!(InputMatch::new("note", "").is_ok());
        assert_eq!(InputMatch::new("", "x"), Err(InvalidInputMatch::EmptyKey));
        assert!(matches!(
            InputMatch::new("k".repeat(MAX_KEY_CHARS + 1), "x"),
            Err(InvalidInputMatch::KeyTooLong(_))
        ));
        assert!(matches!(
            InputMatch::new("k", "v".repeat(MAX_VALUE_CHARS + 1)),
            Err(InvalidInputMatch::ValueTooLong(_))
        ));
        assert!(InputMatch::new("k", "é".repeat(MAX_VALUE_CHARS)).is_ok());
        assert!(matches!(
            InputMatch::new("k", "a\u{0}"),
            Err(InvalidInputMatch::Nul(_))
        ));
    }
}
