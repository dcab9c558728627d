//! Per-step run policy: how often a step is retried, how long its retries wait, how long
//! one call may run, and whether it is idempotent.
//!
//! A step declares its policy in code (`step-info.policy`, WIT 0.2.0); the saga definition
//! (`[sagas.TYPE.policy.STEP]` in `sagas.toml`) overrides it, and the operator
//! (`[step_policy.STEP]` in `rte.toml`) overrides both. Each setting is resolved on its own:
//! the most specific one set wins, and a setting nobody sets takes the host's default
//! (the saga's `max_retries`, `retry_interval`, `retry_max_interval`, the plugin's call
//! timeout, idempotent). [`resolve`] is the one place that order is written down.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest deadline one step call may have, whoever asks for it.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A partial policy: what a step declares, or what a saga definition or the operator
/// overrides. Unset fields defer to the level below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StepPolicy {
    /// Retries after a retryable failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Delay before the first retry; later ones double, with jitter.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "500ms")]
    pub retry_interval: Option<Duration>,
    /// Longest delay between retries.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub retry_max_interval: Option<Duration>,
    /// Deadline of one call.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "2s")]
    pub timeout: Option<Duration>,
    /// Whether execute may safely run twice; `false`: a failure whose effect is unknown
    /// (timeout, trap, lost call) is not retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
}

impl StepPolicy {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Each setting of `self`, else of `below`.
    pub fn over(self, below: StepPolicy) -> StepPolicy {
        StepPolicy {
            max_retries: self.max_retries.or(below.max_retries),
            retry_interval: self.retry_interval.or(below.retry_interval),
            retry_max_interval: self.retry_max_interval.or(below.retry_max_interval),
            timeout: self.timeout.or(below.timeout),
            idempotent: self.idempotent.or(below.idempotent),
        }
    }

    /// Refuse settings the host cannot honour: a zero or over-long timeout, a zero retry
    /// interval.
    pub fn check(&self) -> Result<(), String> {
        if let Some(t) = self.timeout
            && (t.is_zero() || t > MAX_STEP_TIMEOUT)
        {
            return Err(format!(
                "timeout {} is outside (0, {}]",
                humantime::format_duration(t),
                humantime::format_duration(MAX_STEP_TIMEOUT)
            ));
        }
        for (what, d) in [
            ("retry_interval", self.retry_interval),
            ("retry_max_interval", self.retry_max_interval),
        ] {
            if d.is_some_and(|d| d.is_zero() || d > MAX_STEP_TIMEOUT) {
                return Err(format!(
                    "{what} must be above zero and at most {}",
                    humantime::format_duration(MAX_STEP_TIMEOUT)
                ));
            }
        }
        Ok(())
    }
}

/// Where an effective setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// The host's default (or the saga's `max_retries`).
    Default,
    /// The step's code.
    Step,
    /// The saga definition.
    Saga,
    /// The operator's configuration.
    Operator,
}

/// The policy a step runs by, every setting resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EffectivePolicy {
    /// Retries after a retryable failure.
    pub max_retries: u32,
    /// Delay before the first retry.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "5s")]
    pub retry_interval: Duration,
    /// Longest delay between retries.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "1m")]
    pub retry_max_interval: Duration,
    /// Deadline of one call.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "10s")]
    pub timeout: Duration,
    /// Whether a failure whose effect is unknown is retried.
    pub idempotent: bool,
    /// Where `max_retries` came from.
    pub max_retries_from: PolicySource,
    /// Where `timeout` came from.
    pub timeout_from: PolicySource,
}

impl EffectivePolicy {
    /// Whether attempt `attempt` (1-based), failed with a retryable failure that `may_have_acted`
    /// (its effect unknown) or not, may be followed by another.
    pub fn may_retry(&self, attempt: u32, may_have_acted: bool) -> bool {
        attempt <= self.max_retries && (self.idempotent || !may_have_acted)
    }
}

/// The host's defaults a policy falls back to.
#[derive(Debug, Clone, Copy)]
pub struct PolicyDefaults {
    /// The saga's `max_retries` (request, else definition, else config).
    pub max_retries: u32,
    /// `retry_interval`.
    pub retry_interval: Duration,
    /// `retry_max_interval`.
    pub retry_max_interval: Duration,
    /// The plugin's call timeout (its manifest's, else `step_timeout`).
    pub timeout: Duration,
}

/// The policy a step runs by: `operator` over `saga` over `declared` over `defaults`,
/// setting by setting.
pub fn resolve(
    declared: Option<&StepPolicy>,
    saga: Option<&StepPolicy>,
    operator: Option<&StepPolicy>,
    defaults: PolicyDefaults,
) -> EffectivePolicy {
    let levels = [
        (
            PolicySource::Operator,
            operator.copied().unwrap_or_default(),
        ),
        (PolicySource::Saga, saga.copied().unwrap_or_default()),
        (PolicySource::Step, declared.copied().unwrap_or_default()),
    ];
    let merged = levels
        .iter()
        .fold(StepPolicy::default(), |acc, (_, p)| acc.over(*p));
    let source = |set: fn(&StepPolicy) -> bool| {
        levels
            .iter()
            .find(|(_, p)| set(p))
            .map_or(PolicySource::Default, |(s, _)| *s)
    };
    let retry_interval = merged.retry_interval.unwrap_or(defaults.retry_interval);
    EffectivePolicy {
        max_retries: merged.max_retries.unwrap_or(defaults.max_retries),
        retry_interval,
        retry_max_interval: merged
            .retry_max_interval
            .unwrap_or(defaults.retry_max_interval)
            .max(retry_interval),
        timeout: merged.timeout.unwrap_or(defaults.timeout),
        idempotent: merged.idempotent.unwrap_or(true),
        max_retries_from: source(|p| p.max_retries.is_some()),
        timeout_from: source(|p| p.timeout.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: PolicyDefaults = PolicyDefaults {
        max_retries: 3,
        retry_interval: Duration::from_secs(5),
        retry_max_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
    };

    #[test]
    fn the_most_specific_setting_wins_setting_by_setting() {
        let declared = StepPolicy {
            max_retries: Some(7),
            timeout: Some(Duration::from_secs(2)),
            idempotent: Some(false),
            ..StepPolicy::default()
        };
        let saga = StepPolicy {
            max_retries: Some(1),
            ..StepPolicy::default()
        };
        let operator = StepPolicy {
            timeout: Some(Duration::from_secs(30)),
            ..StepPolicy::default()
        };
        let p = resolve(Some(&declared), None, None, DEFAULTS);
        assert_eq!((p.max_retries, p.max_retries_from), (7, PolicySource::Step));
        assert_eq!(p.timeout, Duration::from_secs(2));
        assert!(!p.idempotent);
        let p = resolve(Some(&declared), Some(&saga), Some(&operator), DEFAULTS);
        assert_eq!((p.max_retries, p.max_retries_from), (1, PolicySource::Saga));
        assert_eq!(
            (p.timeout, p.timeout_from),
            (Duration::from_secs(30), PolicySource::Operator)
        );
        assert_eq!(p.retry_interval, Duration::from_secs(5));
        let p = resolve(None, None, None, DEFAULTS);
        assert_eq!(p.max_retries_from, PolicySource::Default);
        assert!(p.idempotent);
    }

    #[test]
    fn a_step_that_is_not_idempotent_is_not_retried_after_an_unknown_outcome() {
        let declared = StepPolicy {
            idempotent: Some(false),
            ..StepPolicy::default()
        };
        let p = resolve(Some(&declared), None, None, DEFAULTS);
        assert!(p.may_retry(1, false));
        assert!(!p.may_retry(1, true));
        assert!(!p.may_retry(4, false));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let p = StepPolicy {
            timeout: Some(Duration::ZERO),
            ..StepPolicy::default()
        };
        assert!(p.check().unwrap_err().contains("timeout"));
        let p = StepPolicy {
            retry_interval: Some(Duration::ZERO),
            ..StepPolicy::default()
        };
        assert!(p.check().unwrap_err().contains("retry_interval"));
    }
}
