//! The one host-side `bindgen!` of the `rte:saga` world.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use exports::rte::saga::step::{StepContext, StepError, StepInfo};
pub use rte::saga::types::ExecuteOutcome;
