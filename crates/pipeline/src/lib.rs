//! Tower layers for Kafka consume-process-produce pipelines.
//!
//! A pipeline takes one consumed record at a time ([`ConsumedRecord`]: topic, partition,
//! offset, key, value, headers, timestamp, delivery attempt) through your
//! `tower::Service`, which answers with the records to produce ([`Processed`], zero or
//! more [`OutputRecord`]s) or an error of your own: any type that says what should
//! happen to the record ([`Classify`]), a [`BoxError`] as tower services return, or a
//! [`PipelineError`]. The layers here wrap that service with
//! what every pipeline needs: retries, a circuit breaker, a dead-letter topic, commit
//! tracking, bounded and ordered concurrency, spans and metrics.
//!
//! The [`runner`] drives it all against Kafka: [`Pipeline`](runner::Pipeline) reads
//! records with `sluice-wire`'s consumer, admits each one when the stack is ready and the
//! in-flight bound allows, produces the answer's outputs with the producer, marks the
//! record done once they are acknowledged, commits, and handles rebalances and shutdown.
//! The layers themselves never touch the network: the DLQ publishes through any
//! `Service<OutputRecord>` sink ([`runner::ProducerSink`] for Kafka, [`dlq::MemorySink`]
//! in memory), and commits are read from a [`commit::CommitHandle`].
//!
//! # Example
//!
//! A pipeline against Kafka (`cargo xtask kafka up` starts a broker on
//! `127.0.0.1:19092`): every order is forwarded, enriched, to `orders-enriched`, in order
//! per key, with retries, a breaker and a dead-letter topic, committed at-least-once,
//! until Ctrl-C or SIGTERM (then it drains, commits and leaves the group):
//!
//! ```no_run
//! use sluice_pipeline::breaker::{BreakerConfig, BreakerLayer};
//! use sluice_pipeline::concurrency::{ConcurrencyLayer, Ordering};
//! use sluice_pipeline::dlq::DeadLetterLayer;
//! use sluice_pipeline::retry::{RetryLayer, RetryPolicy};
//! use sluice_pipeline::runner::{Pipeline, ProducerSink, Shutdown};
//! use sluice_pipeline::{ConsumedRecord, OutputRecord, PipelineError};
//! use sluice_wire::consumer::ConsumerConfig;
//! use sluice_wire::producer::{Producer, ProducerConfig};
//! use tower::{service_fn, ServiceBuilder};
//!
//! async fn enrich(record: ConsumedRecord) -> Result<Vec<OutputRecord>, PipelineError> {
//!     let order = record.value.clone().unwrap_or_default();
//!     let enriched = [&order[..], b" (checked)"].concat();
//!     Ok(vec![record.forward("orders-enriched", enriched)])
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:19092")).await?;
//! let stack = ServiceBuilder::new()
//!     .layer(ConcurrencyLayer::new(Ordering::PerKey, 256))
//!     .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group("enricher"))
//!     .layer(BreakerLayer::new(BreakerConfig::new()))
//!     .layer(RetryLayer::new(RetryPolicy::new().max_attempts(3)))
//!     .service(service_fn(enrich));
//! let consumer = ConsumerConfig::new("127.0.0.1:19092").group_id("enricher");
//! Pipeline::new(consumer, producer, ["orders"], stack)
//!     .shutdown(Shutdown::on_signals())
//!     .run()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`record`](ConsumedRecord) and [`error`](PipelineError): the request, the response,
//!   and the one error classification ([`Disposition`], [`Classify`]) all layers share.
//! - [`retry`]: retries retriable errors in place, with backoff, jitter and a budget.
//! - [`breaker`]: a circuit breaker that is *not ready* while open.
//! - [`dlq`]: publishes dead-letter errors to `<topic>-dlt` with Spring Kafka's headers.
//! - [`commit`]: which offsets may be committed when records finish out of order.
//! - [`concurrency`]: the in-flight bound (backpressure) and per-partition / per-key order.
//! - [`metrics`]: a span per record, counters, a latency histogram, the lag gauge.
//! - `schema` (feature `schema`): decode input records (Avro, JSON Schema, Protobuf in the
//!   Confluent wire format) before your service and encode its outputs after it.
//! - [`runner`]: [`Pipeline`](runner::Pipeline) (consumer → stack → producer, commits,
//!   rebalances, pause/resume), [`ProducerSink`](runner::ProducerSink),
//!   [`Shutdown`](runner::Shutdown).
//!
//! # Ordering the layers
//!
//! Like any tower stack, layers added first to a [`tower::ServiceBuilder`] are outermost:
//! they see the request first and the response last.
//!
//! ```text
//!                record from the consumer (runner)
//!                            │
//! ┌──────────────────────────▼─────────────────────────┐
//! │ InstrumentLayer    span + metrics for all inside    │
//! │ ┌────────────────────────────────────────────────┐ │
//! │ │ CommitLayer     started in call order, done on Ok│ │
//! │ │ ┌────────────────────────────────────────────┐ │ │
//! │ │ │ ConcurrencyLayer  in-flight bound; waits for│ │ │
//! │ │ │                   its partition's / key's   │ │ │
//! │ │ │                   previous record           │ │ │
//! │ │ │ ┌────────────────────────────────────────┐ │ │ │
//! │ │ │ │ DeadLetterLayer  dead letter → DLQ → Ok │ │ │ │
//! │ │ │ │ ┌────────────────────────────────────┐ │ │ │ │
//! │ │ │ │ │ BreakerLayer  open = not ready      │ │ │ │ │
//! │ │ │ │ │ ┌────────────────────────────────┐ │ │ │ │ │
//! │ │ │ │ │ │ RetryLayer  retriable → again   │ │ │ │ │ │
//! │ │ │ │ │ │ ┌────────────────────────────┐ │ │ │ │ │ │
//! │ │ │ │ │ │ │        your service        │ │ │ │ │ │ │
//! │ │ │ │ │ │ └────────────────────────────┘ │ │ │ │ │ │
//! │ │ │ │ │ └────────────────────────────────┘ │ │ │ │ │
//! │ │ │ │ └────────────────────────────────────┘ │ │ │ │
//! │ │ │ └────────────────────────────────────────┘ │ │ │
//! │ │ └────────────────────────────────────────────┘ │ │
//! │ └────────────────────────────────────────────────┘ │
//! └──────────────────────────┬─────────────────────────┘
//!                            ▼
//!           records to produce, or an error
//! ```
//!
//! Why this order:
//!
//! - **Retry inside the breaker**: one logical call, all its attempts, counts once in the
//!   breaker's window; an open breaker is not burnt through by retries.
//! - **DLQ outside the breaker**: the breaker counts a dead-letter error as a success (the
//!   downstream answered; the message is bad), and the DLQ sees final answers only.
//! - **Commit outside concurrency**: a record is "started" the moment it is admitted, in
//!   call order, so a record still queued behind its key can never be committed past.
//! - **Instrument outermost**: every outcome, including DLQ writes and queueing time.
//!
//! # Two kinds of failure
//!
//! Your service returns its own error type; every layer accepts a service whose error is
//! `Into<PipelineError>`, so `?` works inside it with no `map_err`. Your errors say which
//! kind they are through [`Classify`] (or the [`PipelineError::retriable`] /
//! [`dead_letter`](PipelineError::dead_letter) / [`fatal`](PipelineError::fatal)
//! constructors). A [`BoxError`] is classified by [`classify_boxed`]: a boxed
//! `PipelineError` keeps its disposition, a timeout or refused connection is retriable,
//! anything else is a dead letter. The [`PipelineError`] docs show both with `?` on
//! `serde_json`.
//!
//! - A failure of **this message** ([`Disposition::DeadLetter`]: it cannot be parsed, a
//!   business rule rejects it) is not retried; the DLQ layer publishes the original record
//!   with `kafka_dlt-*` headers and, once the write is acknowledged, the record counts as
//!   handled and the pipeline moves on.
//! - A failure of **the world** ([`Disposition::Retriable`]: a timeout, a downstream
//!   outage) is retried in place. If it persists, the breaker opens and stops admitting:
//!   lag grows visibly instead of the DLQ filling with good messages. A record whose
//!   retries ran out comes out as an error, is not committed, and is redelivered.
//! - [`Disposition::Fatal`] stops the pipeline (the runner's decision); nothing after it
//!   is committed past it.
//!
//! # Backpressure
//!
//! Readiness is the backpressure, as tower's `poll_ready` intends. The stack is not ready
//! when the in-flight bound is reached ([`concurrency`]) or the breaker is open
//! ([`breaker`]); the runner calls `poll_ready` before admitting each record and, while
//! it stays pending, pauses the partitions (the consumer keeps its group membership). An open breaker arms its own timer for the end of its wait, so nothing
//! spins. Errors from the layers never stand in for backpressure: a layer that refuses work
//! does it by not being ready.
//!
//! # Example without a broker
//!
//! A service that reads an order quantity, a stack around it, an in-memory DLQ sink, and
//! the commit position after a good record and a bad one:
//!
//! ```
//! use std::time::Duration;
//!
//! use sluice_pipeline::breaker::{BreakerConfig, BreakerLayer};
//! use sluice_pipeline::commit::{CommitHandle, CommitLayer};
//! use sluice_pipeline::concurrency::{ConcurrencyLayer, Ordering};
//! use sluice_pipeline::dlq::{DeadLetterLayer, MemorySink};
//! use sluice_pipeline::metrics::InstrumentLayer;
//! use sluice_pipeline::retry::{RetryLayer, RetryPolicy};
//! use sluice_pipeline::{Classify, ConsumedRecord, Disposition, OutputRecord, PipelineError};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! #[derive(Debug, thiserror::Error)]
//! enum OrderError {
//!     #[error("quantity is not a number")]
//!     BadQuantity,
//!     #[error("inventory service unavailable")]
//!     Unavailable,
//! }
//!
//! impl Classify for OrderError {
//!     fn disposition(&self) -> Disposition {
//!         match self {
//!             OrderError::BadQuantity => Disposition::DeadLetter,
//!             OrderError::Unavailable => Disposition::Retriable,
//!         }
//!     }
//! }
//!
//! async fn reserve(record: ConsumedRecord) -> Result<Vec<OutputRecord>, OrderError> {
//!     let value = record.value().unwrap_or_default();
//!     let qty: u32 = std::str::from_utf8(value)
//!         .ok()
//!         .and_then(|s| s.parse().ok())
//!         .ok_or(OrderError::BadQuantity)?;
//!     Ok(vec![record.forward("reservations", format!("reserved {qty}"))])
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), PipelineError> {
//! let dlq = MemorySink::new();
//! let commits = CommitHandle::new();
//! // Every builder takes a name as a `&str`, a `String`, a `&String` or an `Arc<str>`.
//! let group = String::from("orders-app");
//! let mut stack = ServiceBuilder::new()
//!     .layer(InstrumentLayer::new().consumer_group(&group))
//!     .layer(CommitLayer::new(commits.clone()))
//!     .layer(ConcurrencyLayer::new(Ordering::PerPartition, 256))
//!     .layer(DeadLetterLayer::new(dlq.clone()).consumer_group(&group))
//!     .layer(BreakerLayer::new(
//!         BreakerConfig::new().name(&group).wait_in_open(Duration::from_secs(30)),
//!     ))
//!     .layer(RetryLayer::new(RetryPolicy::new().max_attempts(3)))
//!     // The service's error is `OrderError`: no conversion needed.
//!     .service(service_fn(reserve));
//!
//! let topic = String::from("orders");
//! let good = ConsumedRecord::new(&topic, 0, 0).with_key("o-1").with_value("3");
//! let out = stack.ready().await?.call(good).await?;
//! assert_eq!(out[0].value.as_deref(), Some(&b"reserved 3"[..]));
//!
//! let bad = ConsumedRecord::new("orders", 0, 1).with_key("o-2").with_value("three");
//! let out = stack.ready().await?.call(bad).await?;
//! assert!(out.is_empty(), "dead-lettered: handled, nothing to produce");
//!
//! let dead = dlq.records();
//! assert_eq!(&*dead[0].topic, "orders-dlt");
//! assert_eq!(dead[0].header_value("kafka_dlt-exception-message"),
//!            Some(&b"quantity is not a number"[..]));
//! assert_eq!(dead[0].header_value("kafka_dlt-original-consumer-group"), Some(group.as_bytes()));
//!
//! // Both records are handled: the next offset to read is 2.
//! let topic = "orders".into();
//! assert_eq!(commits.committable(), vec![(topic, 0, 2)]);
//! # Ok(())
//! # }
//! ```
//!
//! When the stack runs under the [`runner`], leave the [`CommitLayer`](commit::CommitLayer)
//! out: it marks a record done when the stack answers `Ok`, before the outputs in that
//! answer are produced. The runner tracks commits itself and marks a record done only
//! once the producer acknowledged its outputs, so a crash never commits past an output
//! that was not written.
//!
//! # Running it against Kafka
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use sluice_pipeline::breaker::{BreakerConfig, BreakerLayer};
//! use sluice_pipeline::concurrency::{ConcurrencyLayer, Ordering};
//! use sluice_pipeline::dlq::DeadLetterLayer;
//! use sluice_pipeline::retry::{RetryLayer, RetryPolicy};
//! use sluice_pipeline::runner::{Pipeline, ProducerSink, Shutdown};
//! use sluice_pipeline::{ConsumedRecord, OutputRecord, PipelineError};
//! use sluice_wire::consumer::{ConsumerConfig, OffsetReset};
//! use sluice_wire::producer::{Producer, ProducerConfig};
//! use tower::{service_fn, ServiceBuilder};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092")).await?;
//! let stack = ServiceBuilder::new()
//!     .layer(ConcurrencyLayer::new(Ordering::PerPartition, 256))
//!     .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group("billing"))
//!     .layer(BreakerLayer::new(BreakerConfig::new().wait_in_open(Duration::from_secs(30))))
//!     .layer(RetryLayer::new(RetryPolicy::new().max_attempts(3)))
//!     .service(service_fn(|r: ConsumedRecord| async move {
//!         let value = r.value.clone().ok_or_else(|| PipelineError::dead_letter("empty order"))?;
//!         // Same key, new topic: the invoice keeps the order's key.
//!         Ok::<_, PipelineError>(vec![r.forward("invoices", value)])
//!     }));
//! let consumer = ConsumerConfig::new("127.0.0.1:9092")
//!     .group_id("billing")
//!     .auto_offset_reset(OffsetReset::Earliest);
//! // Runs until SIGINT/SIGTERM: then it drains, commits, leaves the group, flushes.
//! Pipeline::new(consumer, producer.clone(), ["orders"], stack)
//!     .max_in_flight(1000)
//!     .shutdown(Shutdown::on_signals())
//!     .run()
//!     .await?;
//! producer.close(Duration::from_secs(30)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! That pipeline is at-least-once: after a crash, up to `max_in_flight` records are
//! processed and produced again. For exactly-once, give the producer a `transactional.id`
//! (`ProducerConfig::transactional_id`, one per instance, stable across its restarts) and
//! call `.exactly_once(true)`: the outputs, the dead letters written through the same
//! producer and the input offsets then commit in one transaction, and `read_committed`
//! readers see each record's writes once. The [runner's docs](runner#exactly-once) explain
//! how transactions span records, abort, and meet rebalances.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod breaker;
pub mod commit;
pub mod concurrency;
pub mod dlq;
mod error;
pub mod metrics;
mod record;
pub mod retry;
pub mod runner;
#[cfg(feature = "schema")]
pub mod schema;
mod sync;
#[cfg(test)]
mod test_support;

pub use error::{classify_boxed, BoxError, Classify, Disposition, PipelineError};
pub use record::{ConsumedRecord, Delivered, OutputRecord, Processed};
pub use sluice_wire::Header;
