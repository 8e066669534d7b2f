//! `sluice-wire`: a pure-Rust Apache Kafka client.
//!
//! No librdkafka and no C compiler: `CC=false cargo build -p sluice-wire` passes. Request
//! and response messages come from the `kafka-protocol` crate; record batches, the hot
//! path, are encoded and decoded here, straight into and out of `bytes` buffers.
//!
//! # Example
//! Build a record batch and read it back, with no broker needed:
//! ```
//! use sluice_wire::records::{BatchOptions, Compression, Header, RecordBatchBuilder, RecordBatches};
//!
//! # fn main() -> Result<(), sluice_wire::Error> {
//! let mut batch = RecordBatchBuilder::new(BatchOptions {
//!     compression: Compression::Zstd,
//!     ..BatchOptions::default()
//! });
//! batch.append(1_700_000_000_000, Some(b"user-1"), Some(b"signed up"), &[Header::new("source", Some(b"web"))])?;
//! let bytes = batch.finish()?;
//! let decoded = RecordBatches::new(bytes).next().expect("one batch")?;
//! let record = decoded.records()?.next().expect("one record")?;
//! assert_eq!(record.value().map(|v| &v[..]), Some(&b"signed up"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! Against a cluster (`cargo xtask kafka up` starts one on `127.0.0.1:19092`):
//! ```no_run
//! use std::time::Duration;
//! use sluice_wire::admin::{Admin, NewTopic};
//! use sluice_wire::cluster::{Cluster, ClusterConfig};
//! use sluice_wire::partition_client::{Acks, PartitionClient};
//! use sluice_wire::records::{BatchOptions, RecordBatchBuilder};
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let cluster = Cluster::connect(ClusterConfig::new("127.0.0.1:19092")).await?;
//! Admin::new(cluster.clone())
//!     .create_topics(&[NewTopic::new("orders", 3)], Duration::from_secs(30))
//!     .await?;
//! let mut batch = RecordBatchBuilder::new(BatchOptions::default());
//! batch.append(0, Some(b"k"), Some(b"v"), &[])?;
//! let ack = PartitionClient::new(cluster, "orders", 0)
//!     .produce(batch.finish()?, Acks::All, Duration::from_secs(30))
//!     .await?;
//! println!("written at offset {}", ack.base_offset);
//! # Ok(())
//! # }
//! ```
//!
//! Against a secured cluster, with the keys a Java client's `client.properties` has
//! (every config type takes them: [`ClusterConfig::set`](cluster::ClusterConfig::set),
//! `ProducerConfig::set`, `ConsumerConfig::set`):
//! ```no_run
//! use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let config = ProducerConfig::from_properties([
//!     ("bootstrap.servers", "broker-1.example.com:9093"),
//!     ("security.protocol", "SASL_SSL"),
//!     ("sasl.mechanism", "SCRAM-SHA-512"),
//!     ("sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";"#),
//!     ("ssl.truststore.location", "/etc/kafka/ca.pem"),
//! ])?;
//! let producer = Producer::new(config).await?; // Authentication / Tls errors fail here
//! producer.send(ProducerRecord::new("orders", "hello")).await?.await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`records`]: record batch v2: an encoder that appends in place, a zero-copy decoder,
//!   gzip / snappy / lz4 / zstd in pure Rust, CRC-32C. No I/O.
//! - [`net`]: one broker connection. Framing (no I/O) apart from the socket; ApiVersions
//!   negotiation against one table of the versions we implement; pipelined requests;
//!   TLS (rustls; graviola as the C-free provider) and SASL (PLAIN, SCRAM-SHA-256/512,
//!   OAUTHBEARER, re-authentication per KIP-368), owned by the connection.
//! - [`cluster`]: bootstrap, a metadata cache (brokers, topics, partitions, leaders,
//!   leader epochs) refreshed on demand and on a timer, one pooled connection per broker.
//! - [`admin`]: create and delete topics, list offsets, describe the cluster; list and
//!   describe consumer groups, their committed offsets and their lag.
//! - [`consumer`]: the consumer: manual assignment or group membership (classic
//!   protocol, range / roundrobin / cooperative-sticky assignors in Java's wire format,
//!   static membership), a fetcher with fetch sessions and a bounded prefetch buffer,
//!   records as a cancel-safe async stream, commits when the application says so.
//! - [`partition_client`]: produce a batch to, and fetch from, one partition; the
//!   producer and the consumer stand on it.
//! - [`producer`]: the batching producer: `send` returns a delivery future; linger,
//!   `batch.size`, bounded `buffer.memory`, acks, retries in order, idempotence,
//!   transactions (with consumer offsets in the transaction, KIP-447).
//! - [`error`]: one [`Error`] with a [`kind`](Error::kind), the Kafka code when the broker
//!   sent one, and [`is_retriable`](Error::is_retriable).
//!
//! # Pipelining
//! Kafka answers the requests of one connection in order, so a connection keeps a FIFO of
//! requests in flight (at most `max_in_flight`, default 5) and matches each response to
//! the head of the FIFO, checking its correlation id. Many callers share one connection
//! without waiting for each other's round trips:
//!
//! | callers on one connection | round trips paid by the last caller |
//! | --- | --- |
//! | 1 | 1 |
//! | 5 (pipelined) | about 1, the broker works through the five back to back |
//! | 5 (one at a time, no pipelining) | 5 |
//!
//! Every future this crate hands out is cancel-safe: dropping it never corrupts a
//! connection (the response is read and discarded). A request that times out, an I/O
//! error or an undecodable frame closes the connection and fails every waiter with the
//! same cause; the next request opens a fresh one.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod admin;
mod backoff;
pub mod cluster;
mod config;
pub mod consumer;
pub mod error;
pub mod net;
pub mod partition_client;
pub mod producer;
pub mod records;
mod sync;
mod task;
pub mod types;

pub use error::{Error, ErrorKind, KafkaCode, LogTruncation, Result};

#[doc(hidden)]
pub mod fuzzing;
