//! The policy each step of a saga runs by: what the step declares, overridden by the
//! saga definition, then by the operator (see [`crate::policy`]). Resolved at each
//! attempt, so a reloaded plugin or a changed definition counts from its next call.

use crate::policy::{EffectivePolicy, PolicyDefaults, resolve};

use super::Engine;

impl Engine {
    /// The policy `step` runs by in a saga of `tx_type` whose retries are `max_retries`
    /// (the request's, else its definition's, else `max_retries`). While no loaded plugin
    /// serves the step, its declared policy is unknown and the rest still applies.
    pub fn step_policy(&self, tx_type: &str, step: &str, max_retries: u32) -> EffectivePolicy {
        let inner = &self.inner;
        let plugin = inner.plugins.plugin_for(step);
        let declared = plugin
            .as_ref()
            .and_then(|p| p.step(step))
            .and_then(|d| d.policy.as_ref());
        let saga = inner
            .definitions
            .get(tx_type)
            .and_then(|d| d.policy.get(step));
        let operator = inner.config.step_policy.get(step);
        resolve(
            declared,
            saga,
            operator,
            PolicyDefaults {
                max_retries,
                retry_interval: inner.config.retry_interval,
                retry_max_interval: inner.config.retry_max_interval,
                timeout: plugin
                    .as_ref()
                    .map_or(inner.plugins.default_limits().timeout, |p| p.limits.timeout),
            },
        )
    }
}

impl Engine {
    /// The effective policy of every step of the defined saga type `tx_type`, by step name
    /// (empty for an undefined type): what a saga of that type started now would run by.
    pub fn saga_type_policies(
        &self,
        tx_type: &str,
    ) -> std::collections::BTreeMap<String, EffectivePolicy> {
        let Some(def) = self.inner.definitions.get(tx_type) else {
            return Default::default();
        };
        let max_retries = def.max_retries.unwrap_or(self.inner.config.max_retries);
        def.steps
            .iter()
            .flat_map(|entry| match entry {
                super::StepEntry::Step(name) => vec![name.clone()],
                super::StepEntry::Parallel(group) => group.parallel.clone(),
            })
            .map(|step| {
                let policy = self.step_policy(tx_type, &step, max_retries);
                (step, policy)
            })
            .collect()
    }
}
