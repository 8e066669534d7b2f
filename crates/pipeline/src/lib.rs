//! Tower layers for Kafka consume-process-produce pipelines.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod breaker;
pub mod commit;
pub mod concurrency;
pub mod dlq;
mod error;
pub mod metrics;
mod record;
pub mod retry;
#[cfg(test)]
mod test_support;

pub use error::{BoxError, Classify, Disposition, PipelineError};
pub use record::{ConsumedRecord, Delivered, Header, OutputRecord, Processed};
