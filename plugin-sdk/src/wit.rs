//! Bindings generated from the crate's own `wit/saga.wit` (a copy of the repository's
//! `wit/saga.wit`, kept inside the crate so it can be published).
//!
//! Hidden from the docs: step authors use the SDK's own types, and `export_steps!` is the only
//! thing that reaches in here.

wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
    // `export_steps!` expands in the plugin crate, so the export macro must be reachable from
    // there, and must find these bindings through the SDK rather than a local `self` module.
    pub_export_macro: true,
    default_bindings_module: "rte_plugin_sdk::wit",
});
