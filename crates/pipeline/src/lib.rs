//! Tower layers and the pipeline runner for Sluice.
//!
//! Empty for now: the layers (retry, circuit breaker, dead-letter queue, commit tracking)
//! and the runner arrive with the pipeline issue. Nothing here claims to work yet.
#![warn(missing_docs)]
