//! Kafka partitioners: Java-compatible key placement, uniform sticky placement for keyless
//! records, and hot-key spreading. No I/O, no dependencies: the producer in `sluice-wire`
//! uses this crate, and so can anyone else.
//!
//! # On a producer
//! `sluice-wire`'s producer takes any partitioner through `ProducerConfig::partitioner`
//! (a function that makes one per producer) and hands it each record's topic, key, value
//! size and partition count. A record's `ProducerRecord::sub_key` reaches
//! [`Partitioner::partition_with_sub_key`]: with [`HotKeyPartitioner`] and
//! [`SpreadStrategy::SubKey`] a hot key spreads by sub-key, and order then holds per
//! (key, sub-key) instead of per key. Payments keyed by account, the big accounts spread
//! by card, one of them known to be hot from the start:
//!
//! ```no_run
//! use sluice_partition::{HotKeyConfig, HotKeyPartitioner, SpreadStrategy};
//! use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let config = ProducerConfig::new("127.0.0.1:9092").partitioner(|| {
//!     Box::new(HotKeyPartitioner::new(
//!         HotKeyConfig::new()
//!             .spread(4)
//!             .strategy(SpreadStrategy::SubKey)
//!             .known_hot_keys(["acct-big"]),
//!     ))
//! });
//! let producer = Producer::new(config).await?;
//! let payment = ProducerRecord::new("payments", r#"{"cents": 1200}"#)
//!     .key("acct-big")
//!     .sub_key("card-7");
//! let written = producer.send(payment).await?.await?;
//! println!("acct-big/card-7 is on partition {}", written.partition);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `partitioner`: the [`Partitioner`] trait every strategy implements, the
//!   optional [`PartitionLoad`] input, and [`Partitioner::choose`] for records that name
//!   their own partition.
//! - `murmur2`: [`murmur2`], [`partition_for_key`] and [`Murmur2Partitioner`], byte for byte
//!   the Java client's placement of keyed records (checked against vectors from the real
//!   `kafka-clients` jar).
//! - `sticky`: [`UniformStickyPartitioner`] for keyless records (KIP-794): one partition
//!   until about `batch.size` bytes went there, optionally weighted by queued bytes and
//!   avoiding unavailable partitions.
//! - `round_robin`: [`RoundRobinPartitioner`].
//! - `hot_key`: [`HotKeyPartitioner`], murmur2 placement that spreads heavy keys over a
//!   few partitions, found online by a decaying Space-Saving sketch.
//!
//! # Threading
//! Methods take `&mut self`: a partitioner belongs to one producer task at a time and needs
//! no locks. All partitioners are `Send`, and the trait is object safe
//! (`Box<dyn Partitioner>`).
//!
//! # Partition numbers
//! Partitions and partition counts are `i32`, as in the Kafka protocol, the Java client and
//! `sluice-wire`, so a partition passes between them without a conversion.
//! `partition(..., n)` for `n <= 0` has no valid answer; every partitioner returns 0 and
//! never panics. [`Partitioner::choose`] reports those counts as
//! [`PartitionError::NoPartitions`] and [`PartitionError::InvalidCount`], and a negative
//! or too large partition named by a record as [`PartitionError::OutOfRange`].
//!
//! # Example
//! ```
//! use sluice_partition::{
//!     partition_for_key, HotKeyConfig, HotKeyPartitioner, Murmur2Partitioner, Partitioner,
//! };
//!
//! // Keyed records land where the Java client puts them.
//! let mut murmur = Murmur2Partitioner::new();
//! assert_eq!(murmur.partition("orders", Some(b"hello"), 42, 12), 9);
//!
//! // A record that names its partition bypasses the partitioner.
//! assert_eq!(murmur.choose(Some(4), "orders", Some(b"hello"), None, 42, 12), Ok(4));
//!
//! // Keyless records stick to one partition until a batch is full.
//! let first = murmur.partition("orders", None, 100, 12);
//! assert_eq!(murmur.partition("orders", None, 100, 12), first);
//!
//! // Hot keys are spread over up to 4 neighbouring partitions; cold keys stay put.
//! let mut hot: Box<dyn Partitioner> =
//!     Box::new(HotKeyPartitioner::new(HotKeyConfig::new().spread(4).seed(7)));
//! let mut used = std::collections::BTreeSet::new();
//! for i in 0..20_000 {
//!     let key = if i % 4 == 0 { b"big-tenant".to_vec() } else { format!("t{}", i % 5000).into_bytes() };
//!     let p = hot.partition("orders", Some(&key), 100, 12);
//!     if key == b"big-tenant" {
//!         used.insert(p);
//!     } else {
//!         assert_eq!(p, partition_for_key(&key, 12));
//!     }
//! }
//! assert_eq!(used.len(), 4);
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod hot_key;
mod murmur2;
mod partitioner;
mod rng;
mod round_robin;
mod sticky;
mod topics;

pub use hot_key::{time_bucket, HotKey, HotKeyConfig, HotKeyPartitioner, SpreadStrategy};
pub use murmur2::{murmur2, partition_for_key, to_positive, Murmur2Partitioner};
pub use partitioner::{PartitionError, PartitionLoad, Partitioner};
pub use round_robin::RoundRobinPartitioner;
pub use sticky::UniformStickyPartitioner;
