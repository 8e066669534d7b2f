//! Kafka partitioners (work in progress: filled in by the partitioner issue).
#![warn(missing_docs)]
