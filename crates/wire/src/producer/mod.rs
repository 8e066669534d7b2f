//! The batching producer: `send` buffers a record and hands back a [`Delivery`] future
//! (or, with [`send_with`](Producer::send_with), calls a callback when it is done: no
//! future per record, for high-volume callers that do not await each record); a
//! background sender batches records per partition, sends them to each partition's
//! leader, retries, and resolves the futures.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run() -> Result<(), sluice_wire::Error> {
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:19092").linger(Duration::from_millis(10))).await?;
//! // `send` returns once the record is buffered; await the delivery for its offset.
//! let delivery = producer.send(ProducerRecord::new("orders", "hello").key("user-1")).await?;
//! let written = delivery.await?;
//! println!("{}-{} @ {}", written.topic, written.partition, written.offset);
//! producer.close(Duration::from_secs(30)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `config.rs`: [`ProducerConfig`], Java defaults and keys.
//! - `record.rs`: [`ProducerRecord`], [`RecordMetadata`], [`Delivery`].
//! - `partition_counts.rs`: the partition counts `send` places records with, waited
//!   for up to `max.block.ms`.
//! - `append.rs`: the body of `send` and `send_with`: size checks, partitioning, the
//!   append under the state lock, the wait for `buffer.memory`.
//! - `ack.rs`: where a record's outcome goes: a [`Delivery`] or a `send_with` callback.
//! - `accumulator.rs`: the partition queues of the producer, `buffer.memory`
//!   reservations, the ids `flush` waits for.
//! - `batch.rs`: one batch: records encoded in place, finished, stamped, split when
//!   too large.
//! - `partition_queue.rs`: one partition's batches, in-flight count and sequences, the
//!   one owner of that state: appends, expiry, the drain of its head, and what an
//!   acknowledgement, an error (retry, split, fail) or an epoch bump does to it.
//! - `sender.rs`: drains ready batches into one Produce request per broker; one task per
//!   broker writes them in order, another completes their responses in that order.
//! - `completion.rs`: responses resolve deliveries, or hand the batch to its queue's
//!   `on_error`; the producer-wide consequences (epoch bump, refresh, lost transaction).
//! - `idempotence.rs`: producer id and epoch, the KIP-360 epoch bump.
//! - `metrics.rs`: counters and histograms through the `metrics` facade.
//! - `typed.rs`: [`TypedProducer`], keys and values serialized with a
//!   [`Serializer`](crate::codec::Serializer) each.
//! - `transaction/`: the public transactional calls (`mod.rs`), the state machine
//!   (`state.rs`, no I/O) and the coordinator requests (`requests.rs`).
//!
//! # Semantics (as the Java client)
//! - `send` waits up to `max.block.ms` for topic metadata and for buffer space; past it,
//!   [`ErrorKind::UnknownTopicOrPartition`](crate::ErrorKind) or
//!   [`ErrorKind::BufferExhausted`](crate::ErrorKind). A record larger than
//!   `max.request.size` (or `buffer.memory`) fails at once with
//!   [`ErrorKind::RecordTooLarge`](crate::ErrorKind).
//! - A batch is sent when full (`batch.size`), when `linger.ms` passed, on `flush`/`close`,
//!   or when a `send` waits for memory.
//! - Retriable errors (not leader, leader not available, not enough replicas, timeouts,
//!   network) refresh metadata and resend after an exponential backoff with ±20 % jitter
//!   (`retry.backoff.ms` doubling up to `retry.backoff.max.ms`), until
//!   `delivery.timeout.ms` is spent or `retries` are used up. A retried batch goes back
//!   to the head of its partition's queue.
//! - A batch the broker refuses as too large (MESSAGE_TOO_LARGE, say a topic's
//!   `max.message.bytes` below `batch.size`) is split in record order and resent, as Java
//!   does; a single record too large for the broker fails.
//! - Ordering: with idempotence (the default) order per partition holds across retries
//!   (sequence numbers; after a failure one batch at a time until the retried batches are
//!   through). Without idempotence and with `max.in.flight.requests.per.connection > 1`,
//!   a retry may reorder batches of a partition, as in Java; use 1 to avoid that.
//! - Every future is cancel-safe: dropping a [`Delivery`] never drops its record, and
//!   dropping a `send` future before it returned leaves nothing buffered.
//! - Dropping the last [`Producer`] handle delivers what is buffered in the background
//!   (bounded by `delivery.timeout.ms`); call [`close`](Producer::close) to wait for it.
//!
//! # Transactions
//! With `transactional.id` set ([`ProducerConfig::transactional_id`]) the producer writes
//! in transactions: read_committed consumers see a transaction's records, and the
//! consumer offsets sent with it, all or nothing. Call
//! [`init_transactions`](Producer::init_transactions) once (it fences any older producer
//! with the same id), then per transaction [`begin`](Producer::begin), sends,
//! optionally [`send_offsets_to_transaction`](Producer::send_offsets_to_transaction),
//! and [`commit`](Producer::commit) or [`abort`](Producer::abort). Partitions are added
//! to the transaction automatically, several per request. `transaction.timeout.ms`
//! (default 60 s) bounds how long the coordinator lets a transaction stay open.
//!
//! Errors come in two kinds. [`Error::is_abortable`]: the transaction is lost but the
//! producer is fine: abort it, rewind the input, try again.
//! [`Error::is_fatal_producer_error`]: the producer was fenced by a newer instance with
//! the same id (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH) or is otherwise dead: drop it.
//! The loop of a consume-transform-produce application (`examples/exactly_once.rs` is a
//! complete one):
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use sluice_wire::consumer::{Consumer, OffsetAndMetadata};
//! use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn run(consumer: Consumer) -> Result<(), sluice_wire::Error> {
//! let producer = Producer::new(
//!     ProducerConfig::new("127.0.0.1:19092").transactional_id("orders-enricher-1"),
//! )
//! .await?;
//! producer.init_transactions().await?;
//! loop {
//!     let record = consumer.recv().await?;
//!     let attempt = async {
//!         producer.begin().await?;
//!         let value = record.value().cloned().unwrap_or_default();
//!         let _delivery = producer.send(ProducerRecord::new("enriched", value)).await?;
//!         let offsets = BTreeMap::from([(
//!             record.topic_partition(),
//!             OffsetAndMetadata::new(record.offset() + 1),
//!         )]);
//!         let group = consumer.group_metadata().expect("consumer has a group.id");
//!         producer.send_offsets_to_transaction(&offsets, &group).await?;
//!         producer.commit().await
//!     };
//!     match attempt.await {
//!         Ok(()) => {}
//!         Err(e) if e.is_abortable() => {
//!             producer.abort().await?;
//!             // Read the record again.
//!             consumer.seek(&record.topic_partition(), record.offset())?;
//!         }
//!         // Fenced or otherwise dead: a newer instance took over.
//!         Err(e) => return Err(e),
//!     }
//! }
//! # }
//! ```
//!
//! Like Java: a send outside a transaction fails with
//! [`ErrorKind::IllegalState`](crate::ErrorKind::IllegalState); after a failed record
//! the transaction only allows `abort`, and `commit` returns the record's error; after
//! an abort that followed a sequence gap, the coordinator bumps the epoch (KIP-360).
//! On the wire we use transaction version 1 (explicit AddPartitionsToTxn, EndTxn v4,
//! transactional Produce at most v11), which Kafka 3.9 and 4.x both accept; the
//! transaction version 2 protocol of KIP-890 (implicit partition adds, an epoch bump per
//! transaction) is not used even where the broker offers it.

mod accumulator;
mod ack;
mod append;
mod batch;
mod completion;
mod config;
mod idempotence;
mod metrics;
mod partition_counts;
mod partition_queue;
mod record;
mod sender;
mod transaction;
mod typed;

use crate::sync;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sluice_partition::Partitioner;
use tokio::sync::{watch, Notify, Semaphore};

pub use config::{PartitionerChoice, PartitionerFactory, ProducerConfig};
pub use record::{Delivery, IntoTopic, ProducerRecord, RecordMetadata};
pub use typed::TypedProducer;

use accumulator::Accumulator;
use ack::Ack;
use idempotence::Idempotence;
use metrics::ProducerMetrics;
use partition_counts::PartitionCounts;
use transaction::{TxnContext, TxnState};

use crate::cluster::{Cluster, ClusterConfig};
use crate::error::{Error, Result};

/// A Kafka producer. Clones share one producer; it stops once every clone is dropped
/// (after delivering what is buffered) or [`close`](Producer::close) is called.
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// Closes the producer when the last [`Producer`] clone goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.wake.notify_one();
    }
}

/// What the handle, the sender and its tasks share.
pub(crate) struct Shared {
    pub(crate) config: ProducerConfig,
    pub(crate) cluster: Cluster,
    state: Mutex<State>,
    partitioner: Mutex<Box<dyn Partitioner>>,
    /// Permits are bytes of `buffer.memory`; batches hold theirs until done.
    pub(crate) memory: Arc<Semaphore>,
    /// `send` calls waiting for memory: while any, every batch is ready (Java does the
    /// same so the wait is short).
    pub(crate) blocked_senders: AtomicUsize,
    /// Wakes the sender: a batch opened or filled, a response came, flush, close.
    pub(crate) wake: Notify,
    /// Bumped whenever batches complete; `flush` waits on it.
    pub(crate) completed: watch::Sender<u64>,
    /// Batches no longer tracked by the accumulator whose records' outcomes are still
    /// being handed over (raised under the state lock when they are untracked, lowered
    /// once their deliveries and callbacks ran): `flush` returns only after them.
    pub(crate) resolving: AtomicUsize,
    /// Set when the sender loop has ended; helper tasks stop.
    pub(crate) stopped: AtomicBool,
    pub(crate) metrics: ProducerMetrics,
    /// Coordinators of a transactional producer.
    pub(crate) txn: Option<TxnContext>,
    /// The partition count of each topic `send` places records in.
    partition_counts: PartitionCounts,
}

/// The mutable state, behind one lock that is never held across an `.await`.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) acc: Accumulator,
    /// `Some` for an idempotent producer.
    pub(crate) idem: Option<Idempotence>,
    /// Produce requests in flight per broker node id.
    pub(crate) broker_in_flight: HashMap<i32, usize>,
    pub(crate) total_in_flight: usize,
    /// No more sends; the sender delivers what is buffered and stops.
    pub(crate) closed: bool,
    /// Some partition had no leader or a retriable error: refresh metadata.
    pub(crate) refresh_wanted: bool,
    /// `Some` for a transactional producer.
    pub(crate) txn: Option<TxnState>,
    /// When the sender will drain next at the latest (it may wake earlier), as it
    /// decided after its last drain; `None` before the first.
    pub(crate) sender_wake: Option<tokio::time::Instant>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    fn partitioner(&self) -> MutexGuard<'_, Box<dyn Partitioner>> {
        sync::lock(&self.partitioner)
    }

    /// Wakes flushers after batches completed.
    pub(crate) fn notify_completed(&self) {
        self.completed.send_modify(|n| *n = n.wrapping_add(1));
        self.metrics
            .buffer_available(self.memory.available_permits());
    }

    /// Counts `batches` as resolving (see [`Shared::resolving`]) until the guard drops:
    /// take it under the state lock, where they are untracked, and drop it once their
    /// outcomes have been handed over. Dropping it wakes flushers (if it counted any).
    pub(crate) fn resolving(&self, batches: usize) -> Resolving<'_> {
        self.resolving.fetch_add(batches, Ordering::SeqCst);
        Resolving {
            shared: self,
            batches,
        }
    }
}

/// Batches whose outcomes are being handed over; see [`Shared::resolving`].
pub(crate) struct Resolving<'a> {
    shared: &'a Shared,
    batches: usize,
}

impl Drop for Resolving<'_> {
    fn drop(&mut self) {
        if self.batches > 0 {
            self.shared
                .resolving
                .fetch_sub(self.batches, Ordering::SeqCst);
            self.shared.notify_completed();
        }
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("client_id", &self.handle.shared.config.client_id)
            .field("idempotent", &self.handle.shared.config.idempotent())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Connects to `config.bootstrap_servers` and starts the producer. Fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for an invalid config.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let mut cluster_config = ClusterConfig::new(&config.bootstrap_servers)
            .client_id(config.client_id.clone())
            .request_timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .security(config.security.clone());
        cluster_config.connection.max_in_flight = config.effective_max_in_flight();
        cluster_config.metadata_max_age = config.metadata_max_age;
        cluster_config.reconnect_backoff = config.reconnect_backoff;
        cluster_config.reconnect_backoff_max = config.reconnect_backoff_max;
        let cluster = Cluster::connect(cluster_config).await?;
        Producer::with_cluster(cluster, config)
    }

    /// Starts a producer on an existing cluster handle (its connections are shared;
    /// `bootstrap_servers` is ignored). Must be called inside a Tokio runtime.
    pub fn with_cluster(cluster: Cluster, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let memory = Arc::new(Semaphore::new(
            config.buffer_memory.min(Semaphore::MAX_PERMITS),
        ));
        let mut acc = Accumulator::new(config.batch_size, config.compression);
        acc.transactional = config.transactional();
        let txn = config
            .transactional_id
            .as_deref()
            .map(|id| TxnContext::new(&cluster, id, config.retry_backoff));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                acc,
                idem: config.idempotent().then(Idempotence::new),
                broker_in_flight: HashMap::new(),
                total_in_flight: 0,
                closed: false,
                refresh_wanted: false,
                txn: config.transactional().then(TxnState::new),
                sender_wake: None,
            }),
            txn,
            partitioner: Mutex::new(config.partitioner.build()),
            metrics: ProducerMetrics::new(&config.client_id),
            config,
            cluster,
            memory,
            blocked_senders: AtomicUsize::new(0),
            wake: Notify::new(),
            completed: watch::channel(0).0,
            resolving: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            partition_counts: PartitionCounts::default(),
        });
        let watched = Arc::clone(&shared);
        crate::task::spawn_watched(
            "producer's sender",
            sender::run(Arc::clone(&shared)),
            move |message| {
                // Nothing will send what is queued: fail it, and every later send.
                watched.state().closed = true;
                watched.stopped.store(true, Ordering::SeqCst);
                completion::abort_queued(&watched, &Error::producer_closed(message));
            },
        );
        Ok(Producer {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProducerConfig {
        &self.handle.shared.config
    }

    /// The producer id and epoch in use, once an idempotent producer has one (`None`
    /// without idempotence). The epoch rises when the producer recovers from a sequence
    /// gap (KIP-360); useful in logs and tests.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        match self.handle.shared.state().idem.as_ref().map(|i| i.state) {
            Some(idempotence::ProducerIdState::Ready { id, epoch }) => Some((id, epoch)),
            _ => None,
        }
    }

    /// Bytes of `buffer.memory` not held by buffered batches right now.
    pub fn buffer_available(&self) -> usize {
        self.handle.shared.memory.available_permits()
    }

    /// The cluster handle the producer uses.
    pub fn cluster(&self) -> &Cluster {
        &self.handle.shared.cluster
    }

    /// Buffers `record` and returns its [`Delivery`].
    ///
    /// Waits at most `max.block.ms` for the topic's metadata and for buffer space. Errors
    /// here mean the record was not buffered: [`ErrorKind::RecordTooLarge`],
    /// [`ErrorKind::BufferExhausted`], [`ErrorKind::UnknownTopicOrPartition`],
    /// [`ErrorKind::ProducerClosed`]. Cancel-safe.
    ///
    /// [`ErrorKind::RecordTooLarge`]: crate::ErrorKind::RecordTooLarge
    /// [`ErrorKind::BufferExhausted`]: crate::ErrorKind::BufferExhausted
    /// [`ErrorKind::UnknownTopicOrPartition`]: crate::ErrorKind::UnknownTopicOrPartition
    /// [`ErrorKind::ProducerClosed`]: crate::ErrorKind::ProducerClosed
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery> {
        let (ack, delivery) = Ack::channel();
        self.append(record, ack).await?;
        Ok(delivery)
    }

    /// Buffers `record` like [`send`](Self::send), and calls `on_delivery` with its
    /// outcome instead of returning a [`Delivery`] (Java: `send(record, callback)`): no
    /// future and no channel per record, for callers that do not await each record.
    ///
    /// `on_delivery` runs exactly once per buffered record, with its metadata or its
    /// error (including [`ErrorKind::ProducerClosed`] when the producer stops first),
    /// on the producer's task that read the broker's response, in record order within a
    /// partition, and before [`flush`](Self::flush) returns. Keep it short: until it
    /// returns, no other outcome is handed over. A panic in it is caught and logged.
    /// When `send_with` itself returns an error the record was not buffered and
    /// `on_delivery` is not called.
    ///
    /// ```no_run
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use sluice_wire::producer::{Producer, ProducerConfig, ProducerRecord};
    ///
    /// # async fn run() -> Result<(), sluice_wire::Error> {
    /// let producer = Producer::new(ProducerConfig::new("127.0.0.1:19092")).await?;
    /// let failed = Arc::new(AtomicU64::new(0));
    /// for i in 0..1_000 {
    ///     let failed = Arc::clone(&failed);
    ///     let record = ProducerRecord::new("events", format!("event {i}"));
    ///     producer
    ///         .send_with(record, move |outcome| {
    ///             if outcome.is_err() {
    ///                 failed.fetch_add(1, Ordering::Relaxed);
    ///             }
    ///         })
    ///         .await?;
    /// }
    /// producer.flush().await;
    /// assert_eq!(failed.load(Ordering::Relaxed), 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`ErrorKind::ProducerClosed`]: crate::ErrorKind::ProducerClosed
    pub async fn send_with<F>(&self, record: ProducerRecord, on_delivery: F) -> Result<()>
    where
        F: FnOnce(Result<RecordMetadata>) + Send + 'static,
    {
        self.append(record, Ack::Callback(Box::new(on_delivery)))
            .await
    }

    /// Sends everything buffered now (ignoring `linger.ms`) and waits until every record
    /// buffered before this call is delivered or failed, and its
    /// [`send_with`](Self::send_with) callback ran.
    pub async fn flush(&self) {
        let shared = &self.handle.shared;
        let mut completed = shared.completed.subscribe();
        let upto = {
            let mut st = shared.state();
            let upto = st.acc.next_batch_id();
            st.acc.flush_upto = st.acc.flush_upto.max(upto);
            upto
        };
        shared.wake.notify_one();
        loop {
            // Under the lock: a batch is untracked and counted as resolving at once.
            let done = {
                let st = shared.state();
                st.acc.done_before(upto) && shared.resolving.load(Ordering::SeqCst) == 0
            };
            if done {
                return;
            }
            if completed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops accepting records, delivers what is buffered (waiting at most `timeout`),
    /// then stops the sender. If `timeout` passes before every record is delivered, this
    /// call fails with [`ErrorKind::ProducerClosed`](crate::ErrorKind::ProducerClosed)
    /// saying how many records it abandoned: those still buffered fail with it too, and
    /// those already sent complete a moment later through their [`Delivery`] or
    /// callback.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let shared = &self.handle.shared;
        shared.state().closed = true;
        shared.wake.notify_one();
        if tokio::time::timeout(timeout, self.flush()).await.is_ok() {
            return Ok(());
        }
        let err = Error::producer_closed(format!(
            "the producer was closed before delivering every record (timeout {timeout:?})"
        ));
        let abandoned = completion::abort_queued(shared, &err);
        shared.wake.notify_one();
        Err(err.context(format!("{abandoned} records abandoned")))
    }
}

/// Micro-benchmark access to the accumulator (no network). Not a stable API.
#[doc(hidden)]
pub mod bench;

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    /// Compiles only if the futures can be spawned on a multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(producer: &Producer) {
        is_send(&producer.send(ProducerRecord::new("t", "v")));
        is_send(&producer.flush());
        is_send(&producer.close(Duration::ZERO));
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        fn send<T: Send + 'static>() {}
        check::<Producer>();
        send::<Delivery>();
    }
}
