//! The Sluice Kafka client (work in progress).
#![warn(missing_docs)]

pub mod records;
