//! Saga definitions (`sagas.toml`): each type's ordered steps, lock-key templates,
//! timeout and retries.
//!
//! ```toml
//! [sagas.fund_transfer]
//! steps = ["debit", "transfer", "credit"]
//! lock_keys = ["account:{from_account}", "account:{to_account}"]
//! timeout = "2m"
//! max_retries = 3
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// One saga type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SagaDefinition {
    /// Step names, in execution order.
    pub steps: Vec<String>,
    /// Lock keys; `{field}` is replaced by that field of the saga's input.
    #[serde(default)]
    pub lock_keys: Vec<String>,
    /// Saga timeout (default: `tx_timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Step retries (default: `max_retries`).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// One line for operators.
    #[serde(default)]
    pub description: String,
}

/// Every defined saga type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    /// Types by name.
    #[serde(default)]
    pub sagas: BTreeMap<String, SagaDefinition>,
}

impl Definitions {
    /// Parse a definitions file's text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let defs: Definitions =
            toml::from_str(text).map_err(|e| Error::Config(format!("sagas: {}", e.message())))?;
        for (name, def) in &defs.sagas {
            if def.steps.is_empty() {
                return Err(Error::Config(format!("saga `{name}` has no steps")));
            }
            if let Some(timeout) = def.timeout {
                super::check_tx_timeout(timeout)
                    .map_err(|e| Error::Config(format!("saga `{name}`: {e}")))?;
            }
        }
        Ok(defs)
    }

    /// Read `path`; a missing file means no defined types.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::Config(format!("{}: {e}", path.display()))),
        }
    }

    /// The definition of `tx_type`.
    pub fn get(&self, tx_type: &str) -> Option<&SagaDefinition> {
        self.sagas.get(tx_type)
    }
}

/// Fill `{field}` placeholders in lock-key templates from the input object.
pub fn render_lock_keys(templates: &[String], input: &Value) -> Result<Vec<String>> {
    templates.iter().map(|t| render(t, input)).collect()
}

fn render(template: &str, input: &Value) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| {
            Error::Invalid(format!(
                "lock key template `{template}` has an unclosed `{{`"
            ))
        })?;
        let field = &after[..close];
        let value = match input.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => {
                return Err(Error::Invalid(format!(
                    "lock key `{template}` needs input field `{field}` (a string or number)"
                )));
            }
        };
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_definitions_parse() {
        let defs = Definitions::from_toml(include_str!("../../../sagas.toml")).unwrap();
        let ft = defs.get("fund_transfer").unwrap();
        assert_eq!(ft.steps, ["debit", "transfer", "credit"]);
        let keys = render_lock_keys(
            &ft.lock_keys,
            &serde_json::json!({"from_account": "123", "to_account": 456}),
        )
        .unwrap();
        assert_eq!(keys, ["account:123", "account:456"]);
    }

    #[test]
    fn missing_template_field_is_a_clear_error() {
        let err = render("account:{from}", &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("from"), "{err}");
    }
}
