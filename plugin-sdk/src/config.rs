//! Values the operator grants to the plugin in its manifest.

/// The value of `key`, or `None` when the operator did not grant it.
pub fn get(key: &str) -> Option<String> {
    crate::wit::rte::saga::config::get(key)
}
