//! The subcommands of the `rte` binary that need more than a few lines.

pub mod build;
pub mod step;
