//! Starting a saga while plugins are still loading: wait (bounded) for the steps it needs.

use super::{Engine, StepEntry};

impl Engine {
    /// While plugins are still loading, wait until every step a request needs (its
    /// `steps`, else its type's) is served, at most `plugin_load_wait`. Returns at once
    /// when nothing is loading; what is still missing afterwards is reported when the
    /// transaction is built (a `503` while loading goes on, else an unknown step).
    pub async fn wait_for_steps(&self, tx_type: Option<&str>, steps: Option<&[StepEntry]>) {
        let plugins = &self.inner.plugins;
        if plugins.loading().is_empty() {
            return;
        }
        let entries = match steps {
            Some(steps) => steps.to_vec(),
            None => tx_type
                .and_then(|t| self.inner.definitions.get(t))
                .map(|d| d.steps.clone())
                .unwrap_or_default(),
        };
        let deadline = tokio::time::Instant::now() + self.inner.config.plugin_load_wait;
        let names = entries.iter().flat_map(|entry| match entry {
            StepEntry::Step(name) => std::slice::from_ref(name),
            StepEntry::Parallel(group) => group.parallel.as_slice(),
        });
        for name in names {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if plugins.wait_for_step(name, left).await.is_none() {
                return;
            }
        }
    }
}
