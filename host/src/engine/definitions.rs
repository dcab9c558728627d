//! Saga definitions (`sagas.toml`): each type's ordered steps, lock-key templates,
//! timeout and retries.
//!
//! ```toml
//! [sagas.fund_transfer]
//! steps = ["debit", "transfer", "credit"]
//! lock_keys = ["account:{from_account}", "account:{to_account}"]
//! timeout = "2m"
//! max_retries = 3
//!
//! [sagas.fund_transfer.policy.debit]
//! # Overrides what the `debit` step declares, in this saga type only.
//! max_retries = 5
//! timeout = "2s"
//!
//! [sagas.trip]
//! # A parallel group: the three bookings run at once (at most two at a time here);
//! # `charge` runs once all three completed.
//! steps = ["reserve", { parallel = ["book_flight", "book_hotel", "book_car"], max_concurrent = 2 }, "charge"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::StepGroup;

/// Most branches one parallel group may have.
pub const MAX_GROUP_BRANCHES: usize = 32;

/// One entry of a saga's `steps`: a step, or a group of steps that run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum StepEntry {
    /// A step, by name; it runs once the entries before it are done.
    Step(String),
    /// Steps that run concurrently; the group is done when every branch is.
    Parallel(ParallelGroup),
}

/// A parallel group: `{ parallel = ["a", "b"], max_concurrent = 2 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ParallelGroup {
    /// The branches, each one step (2 to 32 of them).
    pub parallel: Vec<String>,
    /// How many branches may run at once (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

impl From<&str> for StepEntry {
    fn from(name: &str) -> Self {
        StepEntry::Step(name.to_string())
    }
}

impl From<String> for StepEntry {
    fn from(name: String) -> Self {
        StepEntry::Step(name)
    }
}

impl<'de> Deserialize<'de> for StepEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> serde::de::Visitor<'de> for EntryVisitor {
    type Value = StepEntry;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a step name or a parallel group `{ parallel = [\"a\", \"b\"] }`")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> std::result::Result<StepEntry, E> {
        Ok(StepEntry::Step(name.to_string()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<StepEntry, A::Error> {
        use serde::de::Error as _;
        let mut parallel: Option<Vec<String>> = None;
        let mut max_concurrent: Option<u32> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "parallel" => parallel = Some(map.next_value()?),
                "max_concurrent" => max_concurrent = Some(map.next_value()?),
                other => {
                    return Err(A::Error::custom(format!(
                        "unknown key `{other}` in a parallel group (expected `parallel` and optionally `max_concurrent`)"
                    )));
                }
            }
        }
        let parallel =
            parallel.ok_or_else(|| A::Error::custom("a parallel group needs `parallel`"))?;
        Ok(StepEntry::Parallel(ParallelGroup {
            parallel,
            max_concurrent,
        }))
    }
}

/// One step of a saga as it will run: its name, and its parallel group if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    /// The step's name.
    pub name: String,
    /// The group it is a branch of.
    pub group: Option<StepGroup>,
}

/// Check `entries` and lay them out as the saga's steps, in order (a group's branches
/// next to each other, in the order given).
pub fn plan_steps(entries: &[StepEntry]) -> std::result::Result<Vec<PlannedStep>, String> {
    let mut steps = Vec::new();
    for entry in entries {
        match entry {
            StepEntry::Step(name) => {
                check_name(name)?;
                steps.push(PlannedStep {
                    name: name.clone(),
                    group: None,
                });
            }
            StepEntry::Parallel(g) => {
                if g.parallel.len() < 2 || g.parallel.len() > MAX_GROUP_BRANCHES {
                    return Err(format!(
                        "a parallel group needs 2 to {MAX_GROUP_BRANCHES} steps, got {}",
                        g.parallel.len()
                    ));
                }
                let limit = match g.max_concurrent {
                    None => g.parallel.len() as u32,
                    Some(0) => {
                        return Err("a parallel group's `max_concurrent` must be at least 1".into());
                    }
                    Some(n) => n.min(g.parallel.len() as u32),
                };
                let group = StepGroup {
                    first: steps.len() as u32,
                    max_concurrent: limit,
                };
                for name in &g.parallel {
                    check_name(name)?;
                    steps.push(PlannedStep {
                        name: name.clone(),
                        group: Some(group),
                    });
                }
            }
        }
    }
    Ok(steps)
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.trim().is_empty() || name.len() > 128 {
        return Err(format!(
            "step names must be 1 to 128 characters, got `{}`",
            crate::error::truncate_text(name.to_string(), 40)
        ));
    }
    Ok(())
}

/// One saga type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SagaDefinition {
    /// Steps in execution order: names, or parallel groups of names.
    pub steps: Vec<StepEntry>,
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
    /// Per-step policy overrides in this saga type, by step name: over what each step
    /// declares, under the operator's `step_policy`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy: BTreeMap<String, crate::policy::StepPolicy>,
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
            plan_steps(&def.steps).map_err(|e| Error::Config(format!("saga `{name}`: {e}")))?;
            if let Some(timeout) = def.timeout {
                super::check_tx_timeout(timeout)
                    .map_err(|e| Error::Config(format!("saga `{name}`: {e}")))?;
            }
            for (step, policy) in &def.policy {
                policy.check().map_err(|e| {
                    Error::Config(format!("saga `{name}`: policy of step `{step}`: {e}"))
                })?;
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
        assert_eq!(
            ft.steps,
            ["debit", "transfer", "credit"].map(StepEntry::from)
        );
        let keys = render_lock_keys(
            &ft.lock_keys,
            &serde_json::json!({"from_account": "123", "to_account": 456}),
        )
        .unwrap();
        assert_eq!(keys, ["account:123", "account:456"]);
    }

    #[test]
    fn parallel_groups_parse_and_lay_out_their_branches() {
        let defs = Definitions::from_toml(
            r#"
            [sagas.trip]
            steps = ["reserve", { parallel = ["flight", "hotel", "car"], max_concurrent = 2 }, "charge"]
            "#,
        )
        .unwrap();
        let plan = plan_steps(&defs.get("trip").unwrap().steps).unwrap();
        let names: Vec<_> = plan.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["reserve", "flight", "hotel", "car", "charge"]);
        let group = Some(StepGroup {
            first: 1,
            max_concurrent: 2,
        });
        let groups: Vec<_> = plan.iter().map(|p| p.group).collect();
        assert_eq!(groups, [None, group, group, group, None]);
    }

    #[test]
    fn malformed_groups_are_refused_clearly() {
        for (toml, expected) in [
            (r#"steps = [{ parallel = ["a"] }]"#, "2 to 32 steps, got 1"),
            (
                r#"steps = [{ parallel = ["a", "b"], max_concurrent = 0 }]"#,
                "at least 1",
            ),
            (
                r#"steps = [{ paralel = ["a", "b"] }]"#,
                "unknown key `paralel`",
            ),
            (r#"steps = [{ max_concurrent = 2 }]"#, "needs `parallel`"),
            (r#"steps = [{ parallel = [["a"], "b"] }]"#, "invalid type"),
            (r#"steps = [3]"#, "a step name or a parallel group"),
        ] {
            let err = Definitions::from_toml(&format!("[sagas.bad]\n{toml}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{toml}: {err}");
        }
        let json: std::result::Result<Vec<StepEntry>, _> =
            serde_json::from_str(r#"["a", {"parallel": ["b", "c"], "max_concurrent": 1}]"#);
        assert_eq!(
            json.unwrap()[1],
            StepEntry::Parallel(ParallelGroup {
                parallel: vec!["b".into(), "c".into()],
                max_concurrent: Some(1)
            })
        );
    }

    #[test]
    fn missing_template_field_is_a_clear_error() {
        let err = render("account:{from}", &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("from"), "{err}");
    }
}
