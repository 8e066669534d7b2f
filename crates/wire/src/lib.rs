//! `sluice-wire`: a pure-Rust Apache Kafka client.
//!
//! No librdkafka and no C compiler: `CC=false cargo build -p sluice-wire` passes. Request
//! and response messages come from the `kafka-protocol` crate; record batches, the hot
//! path, are encoded and decoded here, straight into and out of `bytes` buffers.
//!
//! # Example
//! Produce a record and consume it as a member of a group (`cargo xtask kafka up`
//! starts a broker on `127.0.0.1:19092`):
//! ```no_run
//! use std::time::Duration;
//! use sluice_wire::consumer::{Consumer, ConsumerConfig, OffsetReset};
//! use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:19092")).await?;
//! // `send` returns once the record is buffered; the delivery resolves when the
//! // broker has it (batching, retries and ordering are the producer's business).
//! let delivery = producer.send(ProducerRecord::new("orders", "order 1").key("user-1")).await?;
//! let written = delivery.await?;
//! println!("written to {}-{} at offset {}", written.topic, written.partition, written.offset);
//! producer.close(Duration::from_secs(30)).await?;
//!
//! let consumer = Consumer::new(
//!     ConsumerConfig::new("127.0.0.1:19092")
//!         .group_id("billing")
//!         .auto_offset_reset(OffsetReset::Earliest),
//! )
//! .await?;
//! consumer.subscribe(["orders"])?;
//! let record = consumer.recv().await?;
//! println!("{}-{}@{}: {:?}", record.topic(), record.partition(), record.offset(), record.value());
//! // Processed: commit the positions, so the group goes on after this record.
//! consumer.commit_positions().await?;
//! consumer.close().await?;
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
//! Shared vocabulary and cluster services at the bottom; the producer, the consumer and
//! admin stand on them and never on each other.
//! - [`types`]: the vocabulary every client shares: [`TopicPartition`](types::TopicPartition),
//!   [`OffsetAndMetadata`](types::OffsetAndMetadata), [`Acks`](types::Acks),
//!   [`IsolationLevel`](types::IsolationLevel), [`ConsumerGroupMetadata`](types::ConsumerGroupMetadata).
//!   Imports nothing of this crate.
//! - `header.rs`: [`Header`], the one record header type: what a
//!   [`ProducerRecord`](producer::ProducerRecord) carries, what a
//!   [`ConsumerRecord`](consumer::ConsumerRecord) yields (zero-copy) and what the
//!   pipeline's records hold. Every record type looks headers up with `last_header(name)`
//!   and `header_value(name)` (`header` is the producer-side builder). A leaf.
//! - `config.rs`: reading Java-style values (`"5000"`, `"true"`), shared by every
//!   config type's `set` / `from_properties`, so errors name the key alike.
//! - [`error`]: one [`Error`] with a [`kind`](Error::kind), the [`KafkaCode`] when the
//!   broker sent one, [`is_retriable`](Error::is_retriable) and
//!   [`is_fatal`](Error::is_fatal).
//! - [`codec`]: typed keys and values: the [`Serializer`](codec::Serializer) and
//!   [`Deserializer`](codec::Deserializer) traits (Java's shape), strings, bytes, Java's
//!   numbers, `Json` (feature `json`). The producer's
//!   [`TypedProducer`](producer::TypedProducer) and the consumer record's `key_as` /
//!   `value_as` use them; nothing else does.
//! - [`records`]: record batch v2: an encoder that appends in place, a zero-copy decoder,
//!   gzip / snappy / lz4 / zstd in pure Rust, CRC-32C. No I/O.
//! - [`net`]: one broker connection. Framing (no I/O) apart from the socket; ApiVersions
//!   negotiation against one table of the versions we implement; pipelined requests;
//!   TLS (rustls; graviola as the C-free provider) and SASL (PLAIN, SCRAM-SHA-256/512,
//!   OAUTHBEARER, re-authentication per KIP-368), owned by the connection.
//! - [`cluster`]: bootstrap (one try, or retried within
//!   [`bootstrap_timeout`](cluster::ClusterConfig::bootstrap_timeout)), a metadata cache
//!   (brokers, topics, partitions, leaders, leader epochs) refreshed on demand and on a
//!   timer, one pooled connection per broker; the services every client needs:
//!   ListOffsets and the coordinator lookup.
//! - [`producer`]: the batching producer: `send` returns a delivery future,
//!   `send_with` calls a callback instead (no future per record); linger,
//!   `batch.size`, bounded `buffer.memory`, acks, retries in order, idempotence,
//!   transactions (with consumer offsets in the transaction, KIP-447).
//! - [`consumer`]: the consumer: manual assignment or group membership (classic
//!   protocol, range / roundrobin / cooperative-sticky assignors in Java's wire format,
//!   static membership), a fetcher with fetch sessions and a bounded prefetch buffer,
//!   records as a cancel-safe async stream, commits when the application says so.
//! - [`admin`]: create and delete topics, list offsets, describe the cluster; list and
//!   describe consumer groups, their committed offsets and their lag (every partition,
//!   committed or not), with Burrow-style status over a window of looks and the
//!   replica count KEDA would choose (`admin::lag`).
//! - [`partition_client`]: a low-level client of one partition: produce a finished
//!   record batch to it, fetch from an offset, with no batching, groups or idempotence.
//!   For tools and tests; the producer and the consumer do not use it.
//!
//! # Configuration
//! Every config ([`ClusterConfig`](cluster::ClusterConfig),
//! [`ProducerConfig`](producer::ProducerConfig),
//! [`ConsumerConfig`](consumer::ConsumerConfig),
//! [`SecurityConfig`](net::SecurityConfig)) follows one convention:
//! - typed builder methods that take `self` and return `Self`; a string setting takes
//!   `impl Into<String>` (`&str`, `String`, `&String`);
//! - `set(key, value) -> Result<&mut Self>` for Java-style keys, chainable with `?`; an
//!   unknown key or a bad value is an [`ErrorKind::Config`] error naming the key, as in the
//!   Java client. `ClusterConfig` and `SecurityConfig` also have `try_set -> Result<bool>`,
//!   which answers `Ok(false)` for a key that is not theirs, for callers that route a mixed
//!   list of properties.
//! - `from_properties(pairs)` on the producer and consumer configs: `set` for each pair.
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
//!
//! # Record batches
//! The codec needs no broker: build a record batch and read it back.
//! ```
//! use sluice_wire::records::{BatchOptions, Compression, HeaderRef, RecordBatchBuilder, RecordBatches};
//!
//! # fn main() -> Result<(), sluice_wire::Error> {
//! let mut batch = RecordBatchBuilder::new(BatchOptions {
//!     compression: Compression::Zstd,
//!     ..BatchOptions::default()
//! });
//! batch.append(1_700_000_000_000, Some(b"user-1"), Some(b"signed up"), &[HeaderRef::new("source", Some(b"web"))])?;
//! let bytes = batch.finish()?;
//! let decoded = RecordBatches::new(bytes).next().expect("one batch")?;
//! let record = decoded.records()?.next().expect("one record")?;
//! assert_eq!(record.value().map(|v| &v[..]), Some(&b"signed up"[..]));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod admin;
mod backoff;
pub mod cluster;
pub mod codec;
mod config;
pub mod consumer;
pub mod error;
mod header;
pub mod net;
pub mod partition_client;
pub mod producer;
pub mod records;
mod sync;
mod task;
pub mod types;

pub use error::{Error, ErrorKind, KafkaCode, LogTruncation, Result};
pub use header::Header;

#[doc(hidden)]
pub mod fuzzing;
