//! Sluice: a pure-Rust Apache Kafka client and pipeline framework.
//!
//! This facade re-exports the workspace crates so that one dependency brings all of
//! them. Depend on a single crate instead when that is all you need:
//!
//! - [`wire`] (`sluice-wire`): the Kafka client (connections, metadata, admin, record
//!   batches).
//! - [`partition`] (`sluice-partition`): partitioners, no I/O.
//! - [`pipeline`] (`sluice-pipeline`): tower layers and the pipeline runner.
//!
#![warn(missing_docs)]

pub use sluice_partition as partition;
pub use sluice_pipeline as pipeline;
pub use sluice_wire as wire;
