//! The Sluice Kafka client (work in progress).
#![warn(missing_docs)]

pub mod admin;
pub mod cluster;
pub mod error;
pub mod net;
pub mod partition_client;
pub mod records;

pub use error::{Error, ErrorKind, KafkaCode, Result};
