//! [`Pipeline`]: the builder and its settings; [`run`](Pipeline::run) sets up the consumer,
//! the producer's transactions and the rebalance listener, then hands over to the run loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_wire::cluster::Cluster;
use sluice_wire::consumer::{Consumer, ConsumerConfig};
use sluice_wire::producer::Producer;
use sluice_wire::types::IsolationLevel;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tower::Service;

use super::at_least_once::AtLeastOnce;
use super::output::RejectedOutput;
use super::rebalance::Rebalance;
use super::run_loop::Runner;
use super::shutdown::Shutdown;
use super::state::Shared;
use super::stats::PipelineStats;
use super::strategy::CommitStrategy;
use super::transaction::Transaction;
use super::RunError;
use crate::{ConsumedRecord, PipelineError, Processed};

/// Consumer → stack → producer, with commits after the outputs are acknowledged. See the
/// [module docs](super).
#[derive(Debug)]
pub struct Pipeline<S> {
    consumer: ConsumerConfig,
    producer: Producer,
    topics: Vec<String>,
    stack: S,
    shutdown: Shutdown,
    stats: PipelineStats,
    max_in_flight: usize,
    commit_interval: Duration,
    pause_after: Duration,
    drain_timeout: Duration,
    lag_interval: Duration,
    exactly_once: bool,
    rejected_output: RejectedOutput,
    redelivery_backoff: (Duration, Duration),
    stop_at_end: bool,
}

impl<S> Pipeline<S>
where
    S: Service<ConsumedRecord, Response = Processed> + Send + 'static,
    S::Error: Into<PipelineError> + 'static,
    S::Future: Send + 'static,
{
    /// A pipeline reading `topics` (`&str`s, `String`s, `&String`s, ...) with `consumer`
    /// (a `group.id` is required;
    /// `enable.auto.commit` is turned off: the runner commits) into `stack`, producing
    /// its outputs with `producer`.
    ///
    /// Defaults: `max_in_flight` 1000, `commit_interval` 100 ms, `pause_after` 100 ms,
    /// `drain_timeout` 30 s, `lag_interval` 1 s, a [`Shutdown`] nobody cancels (see
    /// [`shutdown`](Self::shutdown)), at-least-once (see
    /// [`exactly_once`](Self::exactly_once)), refused outputs dead-lettered (see
    /// [`on_rejected_output`](Self::on_rejected_output)), `redelivery_backoff` 100 ms
    /// doubling up to 5 s.
    pub fn new<I, T>(consumer: ConsumerConfig, producer: Producer, topics: I, stack: S) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        Pipeline {
            consumer,
            producer,
            topics: topics.into_iter().map(|t| t.as_ref().to_owned()).collect(),
            stack,
            shutdown: Shutdown::new(),
            stats: PipelineStats::default(),
            max_in_flight: 1000,
            commit_interval: Duration::from_millis(100),
            pause_after: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(30),
            lag_interval: Duration::from_secs(1),
            exactly_once: false,
            rejected_output: RejectedOutput::DeadLetter,
            redelivery_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            stop_at_end: false,
        }
    }

    /// Ends [`run`](Self::run) (with `Ok`, after the usual drain, final commit and leave)
    /// once the input is used up: every partition assigned to this member has been read
    /// to its end (the consumer's `enable.partition.eof`, which this turns on), every
    /// record admitted is done, its outputs acknowledged, and its offset committed (in
    /// exactly-once mode: its transaction committed), with no redelivery pending. For
    /// batch jobs, backfills and tests. Default off: the pipeline waits for new records.
    ///
    /// "The end" is the high watermark (the last stable offset under `read_committed`)
    /// when the partition was read to it; records written later are not waited for. A
    /// topic the cluster does not have has no partitions and is not waited for either
    /// (see [`PipelineStats::missing_topics`]); with no partition assigned at all the
    /// pipeline keeps waiting for an assignment. In a group of several members each
    /// stops once its own partitions are done, and its partitions then move to the
    /// others.
    ///
    /// ```no_run
    /// # use sluice_pipeline::runner::Pipeline;
    /// # use sluice_pipeline::{ConsumedRecord, PipelineError};
    /// # use sluice_wire::consumer::{ConsumerConfig, OffsetReset};
    /// # use sluice_wire::producer::{Producer, ProducerConfig};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092")).await?;
    /// let copy = tower::service_fn(|r: ConsumedRecord| async move {
    ///     Ok::<_, PipelineError>(vec![r.forward("orders-copy", r.value.clone().unwrap_or_default())])
    /// });
    /// let consumer = ConsumerConfig::new("127.0.0.1:9092")
    ///     .group_id("orders-backfill")
    ///     .auto_offset_reset(OffsetReset::Earliest);
    /// let pipeline = Pipeline::new(consumer, producer, ["orders"], copy).stop_at_end(true);
    /// let stats = pipeline.stats();
    /// pipeline.run().await?; // returns once `orders` is copied and committed
    /// println!("copied {} records", stats.produced());
    /// # Ok(())
    /// # }
    /// ```
    pub fn stop_at_end(mut self, on: bool) -> Self {
        self.stop_at_end = on;
        self
    }

    /// What happens to a record one of whose outputs the broker refuses for good (too
    /// large, invalid, not authorized): dead-lettered (the default) or the pipeline stops
    /// with [`RunError::OutputRejected`]. See [`RejectedOutput`].
    pub fn on_rejected_output(mut self, what: RejectedOutput) -> Self {
        self.rejected_output = what;
        self
    }

    /// How long a partition waits before a record that failed retriably is fetched again:
    /// `initial` after its first failure, doubling with each consecutive one, at most
    /// `max` (a success of the partition starts again from `initial`). The partition is
    /// paused meanwhile; the others go on. Default 100 ms to 5 s.
    pub fn redelivery_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.redelivery_backoff = (initial, max.max(initial));
        self
    }

    /// At most `n` records admitted and not yet committed (at least 1). This is the
    /// runner's backpressure and the bound on duplicates after a crash. In exactly-once
    /// mode it also bounds a transaction: reaching it commits.
    ///
    /// It also bounds throughput: at most `n` records per round trip of produce
    /// acknowledgement and commit. With acks=all and a 5 ms linger, the default of 1,000
    /// let 100 B records through at ~23,000/s on one local broker, and 10,000 at
    /// ~100,000/s (the `pipeline` scenario of `cargo xtask bench`).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// How often finished offsets are committed (in exactly-once mode: how long a
    /// transaction stays open at most, before its drain).
    pub fn commit_interval(mut self, d: Duration) -> Self {
        self.commit_interval = d;
        self
    }

    /// How long the stack may stay not ready before the partitions are paused.
    pub fn pause_after(mut self, d: Duration) -> Self {
        self.pause_after = d;
        self
    }

    /// The longest a revoke or a shutdown waits for records in flight. In exactly-once
    /// mode every transaction's drain is bounded by it (past it the transaction is
    /// aborted), so keep it below the producer's `transaction.timeout.ms`.
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }

    /// How often consumer lag is published (`kafka_consumergroup_lag` and
    /// [`PipelineStats::lag`]).
    pub fn lag_interval(mut self, d: Duration) -> Self {
        self.lag_interval = d;
        self
    }

    /// Exactly-once mode (default off): the outputs of many records, the dead letters the
    /// stack writes through the same producer, and the input offsets commit together in
    /// one transaction of the producer, which needs a `transactional.id`. See the
    /// [module docs](super#exactly-once).
    pub fn exactly_once(mut self, on: bool) -> Self {
        self.exactly_once = on;
        self
    }

    /// Stops the pipeline when `token` is cancelled.
    pub fn shutdown(mut self, token: Shutdown) -> Self {
        self.shutdown = token;
        self
    }

    /// The token that stops this pipeline (a clone).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The live counters of this pipeline (a clone).
    pub fn stats(&self) -> PipelineStats {
        self.stats.clone()
    }

    /// Runs until the shutdown token is cancelled (then `Ok`), the input is used up with
    /// [`stop_at_end`](Self::stop_at_end) (then `Ok`), or something fatal happens.
    /// Either way it drains, commits, leaves the group and flushes the producer first;
    /// unless the token is [forced](Shutdown::force), which ends the run at once with
    /// [`RunError::Interrupted`] (what a caller does then is its own choice: the library
    /// never exits the process).
    pub async fn run(self) -> Result<(), RunError> {
        let shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            // Dropping the run drops its record tasks (aborted), the consumer and the
            // open transaction (never committed): the effect of a crash, in-process.
            () = shutdown.forced() => {
                tracing::warn!("shutdown forced: stopped without draining");
                Err(RunError::Interrupted)
            }
            result = self.run_to_end() => result,
        }
    }

    async fn run_to_end(self) -> Result<(), RunError> {
        let Pipeline {
            mut consumer,
            producer,
            topics,
            stack,
            shutdown,
            stats,
            max_in_flight,
            commit_interval,
            pause_after,
            drain_timeout,
            lag_interval,
            exactly_once,
            rejected_output,
            redelivery_backoff,
            stop_at_end,
        } = self;
        let group = consumer
            .group_id
            .clone()
            .ok_or(RunError::Config("the pipeline's consumer needs a group.id"))?;
        consumer.enable_auto_commit = false;
        if stop_at_end {
            consumer.enable_partition_eof = true;
        }
        // Often enough that a member taking no record (paused) never reaches the poll
        // interval.
        let keep_alive = (consumer.max_poll_interval / 4).max(Duration::from_millis(10));
        let (requests, strategy) = if exactly_once {
            if !producer.config().transactional() {
                return Err(RunError::Config(
                    "exactly-once mode needs a producer with a transactional.id",
                ));
            }
            // Committed offsets are read with require_stable: a transaction still
            // committing offsets is waited for, not read around.
            consumer.isolation_level = IsolationLevel::ReadCommitted;
            // Before joining the group: fencing a previous instance with the same id
            // aborts its open transaction, whose pending offsets would hold up ours.
            if producer.producer_id().is_none() {
                producer
                    .init_transactions()
                    .await
                    .map_err(RunError::Transaction)?;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            (
                Some(tx),
                CommitStrategy::ExactlyOnce(Transaction::new(rx, drain_timeout)),
            )
        } else {
            (None, CommitStrategy::AtLeastOnce(AtLeastOnce::default()))
        };
        let shared = Arc::new(
            Shared::new(stats, exactly_once).with_rejected_output(rejected_output, &group),
        );
        let listener = Arc::new(Rebalance {
            shared: Arc::clone(&shared),
            drain_timeout,
            transactions: requests,
            // The drain, then a commit or an abort, each bounded by max.block.ms.
            transaction_wait: drain_timeout + producer.config().max_block * 3,
        });
        let cluster = Cluster::connect(consumer.cluster.clone()).await?;
        let consumer = Consumer::with_listener(cluster, consumer, listener)?;
        consumer.subscribe(topics)?;

        let mut runner = Runner {
            consumer,
            producer,
            stack,
            shared,
            group,
            max_in_flight,
            pause_after,
            keep_alive,
            redelivery_backoff,
            backoff: HashMap::new(),
            tasks: JoinSet::new(),
            events: mpsc::unbounded_channel(),
            paused: false,
            topics: HashMap::default(),
            strategy,
            stop_at_end,
        };
        let outcome = runner
            .run_loop(&shutdown, commit_interval, lag_interval)
            .await;
        let closed = runner.close(drain_timeout, outcome.is_ok()).await;
        outcome.and(closed)
    }
}
