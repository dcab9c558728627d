//! Values the operator grants to the plugin in its manifest.
//!
//! On any target but `wasm32` (in unit tests), the values are those granted through
//! [`testing`](crate::testing).

/// The value of `key`, or `None` when the operator did not grant it.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::rte::saga::config::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::fake::config_get(key);
}
