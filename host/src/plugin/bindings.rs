//! The host-side `bindgen!` of each `rte:saga` version the host loads: `v2` is the current
//! contract (`wit/saga.wit`), `v1` the one plugins built before it target
//! (`wit/0.1.0/saga.wit`).

/// `rte:saga@0.1.0`.
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `rte:saga@0.2.0`.
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}
