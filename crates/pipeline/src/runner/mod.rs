//! The runner: drives `sluice-wire`'s consumer into a stack and its producer out of it.
//!
//! [`Pipeline::run`] subscribes to the input topics and loops:
//!
//! 1. **Admit.** It takes the next record only while fewer than
//!    [`max_in_flight`](Pipeline::max_in_flight) records are *admitted and not yet
//!    committed*, then waits for the stack's `poll_ready`. While the stack stays not ready
//!    for longer than [`pause_after`](Pipeline::pause_after) (an open breaker, or a full
//!    concurrency bound) it pauses every assigned partition (lag grows visibly) and
//!    resumes them once the stack is ready again. Pausing is polling: while it takes no
//!    record the runner tells the consumer the member is alive
//!    ([`Consumer::keep_alive`]), so the member stays in the group however long the
//!    stack stays not ready, past `max.poll.interval.ms`.
//! 2. **Process and produce.** Each admitted record runs in its own task: the stack's
//!    answer is produced through the [`Producer`], and only when every output is
//!    acknowledged by the broker is the record marked done in the commit tracker. (The
//!    runner does this tracking itself; do not add a [`CommitLayer`](crate::commit::CommitLayer)
//!    to the stack you give it, whose `Ok` comes before the outputs are produced.)
//! 3. **Commit.** Every [`commit_interval`](Pipeline::commit_interval), and at once when
//!    the in-flight bound is reached, it commits the tracker's committable offsets (one
//!    commit in flight at a time). Since admitted-and-uncommitted records are bounded, a
//!    crash redelivers at most `max_in_flight` records. (In exactly-once mode the offsets
//!    commit inside the producer's transaction instead: see [below](#exactly-once).)
//!
//! Errors out of the stack: a [`Retriable`](crate::Disposition::Retriable) one (retries
//! spent, an output not acknowledged for a retriable reason) is never skipped: the
//! partition is rewound to the record (`seek`) and it is fetched again, after a backoff
//! ([`redelivery_backoff`](Pipeline::redelivery_backoff)) that doubles with each
//! consecutive failure of the partition, during which the partition is paused. That partition's later records admitted
//! before the rewind are *superseded*: they are fetched again too, so their tasks drop
//! their answers at once (nothing produced, nothing committed). With the concurrency
//! layer's per-partition order such a record is still queued behind the failed one
//! inside its answer future, so dropping that future means its service is never called:
//! a dead letter among them is written once, when it is fetched again, not twice. The
//! concurrency layer starts the next record when the failed record's answer future is
//! *dropped*, and the task marks the rewind before dropping it, so no worker thread can
//! start a queued record in between. What remains: a record whose inner call had already
//! started (per-key or unordered concurrency lets later records overlap the failed one)
//! keeps whatever it did. Exactly-once mode aborts such writes with the transaction.
//! [`Fatal`](crate::Disposition::Fatal), and a dead-letter error no DLQ layer handled,
//! stop the pipeline with [`RunError::Fatal`].
//!
//! **Outputs the broker refuses.** A producer error on an output is classified like any
//! other failure ([`output`] has the table): a retriable one is redelivered with the
//! backoff above; an output the broker will never accept (too large for the topic's
//! `max.message.bytes`, INVALID_RECORD such as a null key on a compacted topic, not
//! authorized) is this record's failure: it is dead-lettered or stops the pipeline, as
//! [`on_rejected_output`](Pipeline::on_rejected_output) says, and never loops.
//!
//! **Rebalances.** On revoke the listener stops admitting records of those partitions,
//! waits for their records in flight (at most [`drain_timeout`](Pipeline::drain_timeout)),
//! commits what finished and releases them. On lost it releases them without committing.
//!
//! **Shutdown.** When the [`Shutdown`] token is cancelled (for example by
//! [`Shutdown::on_signals`]: the first SIGINT/SIGTERM drains, a second exits at once) the
//! runner stops fetching, drains (bounded), commits, leaves the group and flushes the
//! producer.
//!
//! **Output order.** A record's outputs are handed to the producer only after those of
//! the record admitted before it in the same partition (or once that one ended without
//! any), whatever the concurrency layer lets overlap; so outputs keep the input order per
//! partition (and, through the producer's partitioner, per key). The concurrency layer
//! alone does not ensure it: it lets the next record run as soon as an answer is
//! dropped, before the task holding that answer has sent its outputs.
//!
//! # Exactly-once
//!
//! With [`exactly_once(true)`](Pipeline::exactly_once) and a producer with a
//! `transactional.id`, the input offsets commit inside the producer's transaction instead
//! of through the consumer: a `read_committed` reader of the outputs (and of the dead
//! letters) sees every input record's writes exactly once, across crashes, restarts,
//! rebalances and retriable failures. As in Java's consume-transform-produce loop and
//! Spring Kafka's transactional listener containers:
//!
//! - **Setup.** `run` calls `init_transactions` (unless you did), before joining the
//!   group: that fences an older instance with the same `transactional.id` and aborts its
//!   open transaction. It sets the consumer's `isolation.level` to `read_committed`:
//!   input written in transactions is read committed-only, and committed offsets are
//!   fetched with `require_stable`, so a partition's new owner waits for a transaction
//!   still committing its offsets instead of reading around it. Give each instance its
//!   own `transactional.id`, stable across its restarts (a restart then fences its
//!   predecessor); members of one group are told apart by the group generation
//!   (KIP-447), not by the id.
//! - **Many records per transaction.** A transaction begins just before a record is
//!   admitted while none is open. When the [`commit_interval`](Pipeline::commit_interval)
//!   passes or the in-flight bound is reached, admission stops, the records in flight
//!   finish (their outputs are sent inside the transaction), the finished offsets are
//!   added with `send_offsets_to_transaction` and the consumer's group metadata (the
//!   group coordinator refuses a member that lost its partitions), and the transaction
//!   commits; then admission resumes. Each transaction costs that drain and a few
//!   coordinator round trips; `read_committed` readers see outputs at the commit.
//! - **Dead letters** join the transaction when the
//!   [`DeadLetterLayer`](crate::dlq::DeadLetterLayer) writes through a [`ProducerSink`]
//!   of the same producer (another producer would write them outside it, at-least-once).
//! - **Aborts.** A retriable record failure, a failed produce, a failed commit, lost
//!   partitions, or records still running [`drain_timeout`](Pipeline::drain_timeout)
//!   after the transaction began to end abort it: the records still running drop their
//!   answers, and every partition with records in the transaction is sought back to where
//!   the transaction started in it and read again ([`PipelineStats::aborts`]). Keep
//!   `drain_timeout` below the producer's `transaction.timeout.ms`, so a stuck record
//!   (a long-open breaker) aborts the transaction before the coordinator does. Records of
//!   an aborted transaction are processed again: effects of your service outside this
//!   producer's writes are at-least-once.
//! - **Fatal producer errors** (fenced by a newer instance with the same id, and the rest
//!   of [`Error::is_fatal_producer_error`](sluice_wire::Error::is_fatal_producer_error))
//!   stop the pipeline with [`RunError::Transaction`].
//! - **Rebalances.** On revoke the listener asks the run loop to end the transaction and
//!   waits: admission stops, the records in flight finish (bounded by `drain_timeout`),
//!   the transaction commits with their offsets (or aborts), and only then are the
//!   partitions released. On lost the transaction aborts. The listener runs on the
//!   consumer's group task and waits on a channel the run loop answers; the run loop
//!   never waits for the group task, so the two cannot deadlock.
//! - **Shutdown** drains, commits the open transaction, and leaves the group; after a
//!   fatal error the open transaction is aborted instead.

mod error;
pub mod output;
mod rebalance;
mod shutdown;
mod sink;
mod state;
mod task;
mod transaction;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use sluice_wire::cluster::Cluster;
use sluice_wire::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetAndMetadata, TopicPartition,
};
use sluice_wire::partition_client::IsolationLevel;
use sluice_wire::producer::Producer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tower::{Service, ServiceExt};

pub use self::error::RunError;
pub use self::output::{OutputRejected, RejectedOutput};
use self::rebalance::Rebalance;
pub use self::shutdown::Shutdown;
pub(crate) use self::sink::producer_record;
pub use self::sink::ProducerSink;
pub use self::state::PipelineStats;
use self::state::Shared;
use self::transaction::{Ending, Transaction};
use crate::{ConsumedRecord, PipelineError, Processed};

/// Consumer → stack → producer, with commits after the outputs are acknowledged. See the
/// [module docs](self).
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
}

/// Messages from record tasks and commit tasks to the run loop.
enum Event {
    /// A record failed retriably: fetch it again.
    Redeliver {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    /// A record failed fatally.
    Fatal {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        error: PipelineError,
    },
    /// Exactly-once: an output of the record was refused; the transaction aborts.
    Refused {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        error: OutputRejected,
    },
    /// A commit finished.
    Committed {
        offsets: Vec<(Arc<str>, i32, i64)>,
        result: sluice_wire::Result<()>,
    },
}

impl<S> Pipeline<S>
where
    S: Service<ConsumedRecord, Response = Processed, Error = PipelineError> + Send + 'static,
    S::Future: Send + 'static,
{
    /// A pipeline reading `topics` with `consumer` (a `group.id` is required;
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
        T: Into<String>,
    {
        Pipeline {
            consumer,
            producer,
            topics: topics.into_iter().map(Into::into).collect(),
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
        }
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
    /// [module docs](self#exactly-once).
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

    /// Runs until the shutdown token is cancelled (then `Ok`) or something fatal happens.
    /// Either way it drains, commits, leaves the group and flushes the producer first.
    pub async fn run(self) -> Result<(), RunError> {
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
        } = self;
        let group = consumer
            .group_id
            .clone()
            .ok_or(RunError::Config("the pipeline's consumer needs a group.id"))?;
        consumer.enable_auto_commit = false;
        // Often enough that a member taking no record (paused) never reaches the poll
        // interval.
        let keep_alive = (consumer.max_poll_interval / 4).max(Duration::from_millis(10));
        let (requests, txn) = if exactly_once {
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
            (Some(tx), Some(Transaction::new(rx, drain_timeout)))
        } else {
            (None, None)
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
            commit_in_flight: false,
            paused: false,
            topics: HashMap::new(),
            txn,
        };
        let outcome = runner
            .run_loop(&shutdown, commit_interval, lag_interval)
            .await;
        let closed = runner.close(drain_timeout, outcome.is_ok()).await;
        outcome.and(closed)
    }
}

/// The run loop's state.
struct Runner<S> {
    consumer: Consumer,
    producer: Producer,
    stack: S,
    shared: Arc<Shared>,
    group: String,
    max_in_flight: usize,
    pause_after: Duration,
    /// How often the consumer is told the member is alive while the run loop takes no
    /// record from it.
    keep_alive: Duration,
    /// (initial, max) of the redelivery backoff.
    redelivery_backoff: (Duration, Duration),
    /// Partitions paused until a redelivery backoff ends, with its end.
    backoff: HashMap<TopicPartition, Instant>,
    /// One task per admitted record.
    tasks: JoinSet<()>,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    /// At-least-once: a consumer commit is running.
    commit_in_flight: bool,
    /// Whether the runner paused the partitions (the stack stayed not ready).
    paused: bool,
    /// Interned topic names.
    topics: HashMap<String, Arc<str>>,
    /// `Some` in exactly-once mode.
    txn: Option<Transaction>,
}

/// The next listener request in exactly-once mode; never in at-least-once mode.
async fn next_request(txn: &mut Option<Transaction>) -> Option<transaction::Request> {
    match txn {
        Some(t) => t.request().await,
        None => std::future::pending().await,
    }
}

impl<S> Runner<S>
where
    S: Service<ConsumedRecord, Response = Processed, Error = PipelineError> + Send + 'static,
    S::Future: Send + 'static,
{
    async fn run_loop(
        &mut self,
        shutdown: &Shutdown,
        commit_interval: Duration,
        lag_interval: Duration,
    ) -> Result<(), RunError> {
        let mut commit_tick = tokio::time::interval(commit_interval);
        commit_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut lag_tick = tokio::time::interval(lag_interval);
        lag_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut keep_alive_tick = tokio::time::interval(self.keep_alive);
        keep_alive_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // A record taken from the consumer, waiting for the stack to be ready.
        let mut held: Option<ConsumedRecord> = None;
        let mut pause_at = Instant::now();
        loop {
            if self.paused && held.is_none() {
                // The record waiting for readiness was dropped (a rewind or a revoke):
                // the next one must come from the consumer, which pauses nothing then.
                self.resume();
            }
            if self.txn.is_some() {
                // Events sent by tasks that have ended come first: a retriable failure
                // turns the transaction's end into an abort.
                while let Ok(event) = self.events.1.try_recv() {
                    self.on_event(event, &mut held)?;
                }
                let running = self.tasks.len();
                let bound_reached = self.shared.uncommitted() >= self.max_in_flight;
                if let Some(txn) = self.txn.as_mut() {
                    if bound_reached {
                        txn.end(Ending::Commit, &self.shared);
                    }
                    if txn.ready_to_end(running) {
                        self.end_transaction(&mut held).await?;
                    }
                }
            }
            let bound_reached = self.shared.uncommitted() >= self.max_in_flight;
            let admitting = self.txn.as_ref().is_none_or(Transaction::admitting);
            let gate_open = !bound_reached && admitting;
            let drain_deadline = self.txn.as_ref().and_then(Transaction::deadline);
            let backing_off = !self.backoff.is_empty();

            let backoff_end = self.next_backoff_end();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(event) = self.events.1.recv() => {
                    self.on_event(event, &mut held)?;
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                Some(request) = next_request(&mut self.txn) => {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.on_request(request, &self.shared);
                    }
                }
                _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(Instant::now)),
                    if drain_deadline.is_some() =>
                {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.drain_timed_out(self.tasks.len(), &self.shared);
                    }
                }
                _ = commit_tick.tick() => self.commit_due(),
                _ = self.shared.progress.notified(), if !gate_open && self.txn.is_none() => {
                    self.start_commit()
                }
                _ = lag_tick.tick() => self.publish_lag(),
                _ = tokio::time::sleep_until(backoff_end), if backing_off => {
                    self.end_backoffs();
                }
                // Not taking records (the stack is not ready, the in-flight bound is
                // reached, or a transaction is ending): pausing is polling, as Java's
                // poll() with every partition paused, so the member stays in the group
                // however long an outage keeps the breaker open.
                _ = keep_alive_tick.tick(), if held.is_some() || !gate_open => {
                    self.consumer.keep_alive()?;
                }
                ready = ServiceExt::<ConsumedRecord>::ready(&mut self.stack),
                    if held.is_some() && admitting =>
                {
                    let svc = ready.map_err(RunError::NotReady)?;
                    if self.paused {
                        resume_unpaused(&self.consumer, &self.backoff, &self.shared);
                        self.paused = false;
                        tracing::info!("stack ready again: partitions resumed");
                    }
                    let isolate = self.txn.is_some()
                        && held.as_ref().is_some_and(|r| {
                            self.shared.is_suspect(&r.topic, r.partition, r.offset)
                        });
                    if isolate && self.txn.as_ref().is_some_and(Transaction::is_open) {
                        // A record that saw a refused output runs in a transaction of its
                        // own, to tell whether the refused output is its own: the open
                        // transaction ends first, the record stays held.
                        if let Some(txn) = self.txn.as_mut() {
                            txn.end(Ending::Commit, &self.shared);
                        }
                        continue;
                    }
                    if let Some(record) = held.take() {
                        let (topic, partition, offset) =
                            (Arc::clone(&record.topic), record.partition, record.offset);
                        // A record of a partition no longer ours is dropped (its next
                        // owner reads it).
                        if let Some(admitted) = self.shared.admit(&topic, partition, offset) {
                            if let Some(txn) = self.txn.as_mut() {
                                if let Err(e) = txn.join(&self.producer, &record).await {
                                    self.shared.finish(&topic, partition, false);
                                    return Err(e);
                                }
                            }
                            task::spawn(svc, record, admitted, &self.shared, &self.producer,
                                &self.events.0, &mut self.tasks);
                            if isolate {
                                if let Some(txn) = self.txn.as_mut() {
                                    txn.end(Ending::Commit, &self.shared);
                                }
                            }
                        } else {
                            tracing::debug!(%topic, partition, offset,
                                "partition not ours any more: record dropped");
                        }
                    }
                }
                _ = tokio::time::sleep_until(pause_at), if held.is_some() && admitting && !self.paused => {
                    self.consumer.pause(&self.consumer.assignment());
                    self.paused = true;
                    self.shared.stats.set_paused(true);
                    tracing::info!("stack not ready: partitions paused");
                }
                record = self.consumer.recv(), if held.is_none() && gate_open => {
                    let record = record?;
                    held = Some(self.consumed(&record));
                    pause_at = Instant::now() + self.pause_after;
                }
            }
        }
    }

    fn resume(&mut self) {
        resume_unpaused(&self.consumer, &self.backoff, &self.shared);
        self.paused = false;
        tracing::info!("partitions resumed (the record waiting for readiness was dropped)");
    }

    /// A record of `tp` failed retriably for the `failures`-th time in a row: the
    /// partition is paused for the backoff.
    fn back_off(&mut self, tp: TopicPartition, failures: u32) {
        let (initial, max) = self.redelivery_backoff;
        let factor = 1u32 << failures.saturating_sub(1).min(20);
        let delay = initial.saturating_mul(factor).min(max);
        if delay.is_zero() {
            return;
        }
        tracing::debug!(%tp, failures, ?delay, "retriable failure: backing off");
        self.consumer.pause(std::slice::from_ref(&tp));
        let until = Instant::now() + delay;
        let end = self.backoff.entry(tp).or_insert(until);
        *end = (*end).max(until);
    }

    /// The earliest end of a redelivery backoff (now when there is none).
    fn next_backoff_end(&self) -> Instant {
        self.backoff
            .values()
            .min()
            .copied()
            .unwrap_or_else(Instant::now)
    }

    /// Resumes the partitions whose backoff ended (unless the runner's pause holds them).
    fn end_backoffs(&mut self) {
        let now = Instant::now();
        let ended: Vec<TopicPartition> = self
            .backoff
            .iter()
            .filter(|(_, end)| **end <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in &ended {
            self.backoff.remove(tp);
        }
        if !self.paused {
            self.consumer.resume(&ended);
        }
    }

    /// The commit interval passed: commit through the consumer, or end the transaction.
    fn commit_due(&mut self) {
        match self.txn.as_mut() {
            None => self.start_commit(),
            Some(txn) => txn.end(Ending::Commit, &self.shared),
        }
    }

    fn on_event(
        &mut self,
        event: Event,
        held: &mut Option<ConsumedRecord>,
    ) -> Result<(), RunError> {
        match event {
            Event::Redeliver {
                topic,
                partition,
                offset,
            } => self.redeliver(topic, partition, offset, held),
            Event::Fatal {
                topic,
                partition,
                offset,
                error,
            } => Err(self.fatal(topic.to_string(), partition, offset, error)),
            Event::Refused {
                topic,
                partition,
                offset,
                error,
            } => {
                if self.shared.output_refused(&topic, partition, offset, error) {
                    tracing::warn!(%topic, partition, offset, "exactly-once: the record's \
                        output was refused in a transaction of its own; it is dead-lettered \
                        when fetched again");
                } else {
                    tracing::debug!(%topic, partition, offset, "an output was refused; the \
                        record runs again on its own, to tell whether the refused output is \
                        its own (the producer fails a whole batch, and exactly-once the whole \
                        transaction)");
                }
                self.redeliver(topic, partition, offset, held)
            }
            Event::Committed { offsets, result } => {
                self.commit_in_flight = false;
                match result {
                    Ok(()) => {
                        self.shared.stats.add_commit();
                        for (t, p, o) in offsets {
                            self.shared.committed(&t, p, o);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "commit failed; retrying on the next tick")
                    }
                }
                Ok(())
            }
        }
    }

    /// The record failed retriably (or saw a refused output): the partition backs off
    /// and is fetched again from it (exactly-once: the transaction aborts).
    fn redeliver(
        &mut self,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        held: &mut Option<ConsumedRecord>,
    ) -> Result<(), RunError> {
        self.shared.stats.add_redelivered();
        let failures = self.shared.failed(&topic, partition);
        self.back_off(TopicPartition::new(topic.as_ref(), partition), failures);
        if let Some(txn) = self.txn.as_mut() {
            // The whole transaction is redone: its other records' outputs and offsets
            // cannot commit without this one's.
            tracing::debug!(%topic, partition, offset, "aborting the transaction");
            txn.end(Ending::Abort, &self.shared);
            return Ok(());
        }
        let tp = TopicPartition::new(topic.as_ref(), partition);
        // Rewind only forwards of the record: after a rewind, later failures of the same
        // partition are already covered.
        if self.consumer.position(&tp).is_some_and(|p| p > offset) {
            tracing::debug!(%topic, partition, offset, "rewinding");
            self.consumer.seek(&tp, offset)?;
            if held
                .as_ref()
                .is_some_and(|h| h.topic == topic && h.partition == partition)
            {
                *held = None;
            }
        }
        Ok(())
    }

    /// The error a fatal record failure stops the pipeline with: a refused output as
    /// [`RunError::OutputRejected`]; in exactly-once mode a producer that cannot go on
    /// as [`RunError::Transaction`].
    fn fatal(&self, topic: String, partition: i32, offset: i64, error: PipelineError) -> RunError {
        if self.txn.is_some() {
            if let Some(e) = error
                .downcast_ref::<sluice_wire::Error>()
                .filter(|e| e.is_fatal_producer_error())
            {
                return RunError::Transaction(e.clone());
            }
        }
        if error.downcast_ref::<OutputRejected>().is_none() {
            return RunError::Fatal {
                topic,
                partition,
                offset,
                error,
            };
        }
        match error.into_inner().downcast::<OutputRejected>() {
            Ok(rejected) => RunError::OutputRejected {
                topic,
                partition,
                offset,
                error: *rejected,
            },
            // Checked above; kept whole all the same.
            Err(other) => RunError::Fatal {
                topic,
                partition,
                offset,
                error: PipelineError::fatal(other),
            },
        }
    }

    fn start_commit(&mut self) {
        if self.commit_in_flight {
            return;
        }
        let offsets = self.shared.commits.committable();
        if offsets.is_empty() {
            return;
        }
        let map = commit_map(&offsets);
        let pending = self.consumer.commit_async(map);
        let events = self.events.0.clone();
        self.commit_in_flight = true;
        tokio::spawn(async move {
            let result = pending.await;
            let _ = events.send(Event::Committed { offsets, result });
        });
    }

    fn publish_lag(&self) {
        let mut total = 0;
        for tp in self.consumer.assignment() {
            let Some(high) = self.consumer.high_watermark(&tp) else {
                continue;
            };
            let base = self
                .shared
                .committed_offset(&tp.topic, tp.partition)
                .or_else(|| self.consumer.position(&tp))
                .unwrap_or(0);
            let lag = (high - base).max(0);
            total += lag;
            crate::metrics::record_consumer_lag(&self.group, &tp.topic, tp.partition, lag);
        }
        self.shared.stats.set_lag(total);
    }

    fn consumed(&mut self, r: &ConsumerRecord) -> ConsumedRecord {
        let topic = match self.topics.get(r.topic()) {
            Some(t) => Arc::clone(t),
            None => {
                let t: Arc<str> = Arc::from(r.topic());
                self.topics.insert(r.topic().to_owned(), Arc::clone(&t));
                t
            }
        };
        ConsumedRecord {
            topic,
            partition: r.partition(),
            offset: r.offset(),
            key: r.key().cloned(),
            value: r.value().cloned(),
            headers: r
                .headers()
                .map(|h| (String::from_utf8_lossy(&h.key).into_owned(), h.value))
                .collect(),
            timestamp: r.timestamp(),
            attempt: 1,
        }
    }

    /// Stops fetching, drains (bounded), commits (exactly-once: ends the transaction,
    /// committing it only if the run loop stopped cleanly), leaves the group, flushes the
    /// producer.
    async fn close(mut self, drain_timeout: Duration, clean: bool) -> Result<(), RunError> {
        self.consumer.pause(&self.consumer.assignment());
        let mut result = match self.txn.is_some() {
            true => self.close_transaction(clean).await,
            false => self.drain_and_commit(drain_timeout).await,
        };
        // Revokes through the listener (nothing left to drain) and leaves the group.
        let closed = self.consumer.close().await;
        self.producer.flush().await;
        if result.is_ok() {
            result = closed.map_err(RunError::Kafka);
        }
        result
    }

    /// At-least-once shutdown: waits for the records in flight (bounded), commits what
    /// finished through the consumer.
    async fn drain_and_commit(&mut self, drain_timeout: Duration) -> Result<(), RunError> {
        let drained = tokio::time::timeout(drain_timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = self.tasks.len(),
                "shutdown: records still in flight after the drain timeout are abandoned \
                 uncommitted"
            );
            self.tasks.abort_all();
        }
        let offsets = self.shared.commits.committable();
        if offsets.is_empty() {
            return Ok(());
        }
        self.consumer.commit(&commit_map(&offsets)).await?;
        self.shared.stats.add_commit();
        for (t, p, o) in offsets {
            self.shared.committed(&t, p, o);
        }
        Ok(())
    }

    /// Exactly-once shutdown: ends the open transaction (commits it after a clean stop
    /// once its records finished within the drain timeout, aborts it otherwise), then
    /// answers the listener so `Consumer::close`'s revoke does not wait for a run loop
    /// that is gone.
    async fn close_transaction(&mut self, clean: bool) -> Result<(), RunError> {
        let mut held = None;
        let result = async {
            if let Some(txn) = self.txn.as_mut() {
                txn.end(
                    if clean { Ending::Commit } else { Ending::Abort },
                    &self.shared,
                );
            }
            loop {
                let Some(deadline) = self.txn.as_ref().and_then(Transaction::deadline) else {
                    return Ok(());
                };
                if self
                    .txn
                    .as_ref()
                    .is_some_and(|t| t.ready_to_end(self.tasks.len()))
                {
                    return self.end_transaction(&mut held).await;
                }
                let timed_out = tokio::select! {
                    _ = self.tasks.join_next() => false,
                    Some(event) = self.events.1.recv() => {
                        // Retriable failures abort; a fatal one changes nothing more.
                        if let Event::Redeliver { .. } = event {
                            self.on_event(event, &mut held)?;
                        }
                        false
                    }
                    _ = tokio::time::sleep_until(deadline) => true,
                };
                if timed_out {
                    if let Some(txn) = self.txn.as_mut() {
                        txn.drain_timed_out(self.tasks.len(), &self.shared);
                    }
                }
            }
        }
        .await;
        if let Some(txn) = self.txn.as_mut() {
            txn.close_requests();
        }
        if result.is_err() {
            // Whatever still runs cannot commit; let it go.
            self.tasks.abort_all();
        }
        result
    }
}

/// Ends the runner's pause: resumes every paused partition but those waiting out a
/// redelivery backoff.
fn resume_unpaused(
    consumer: &Consumer,
    backoff: &HashMap<TopicPartition, Instant>,
    shared: &Shared,
) {
    let paused: Vec<TopicPartition> = consumer
        .paused()
        .into_iter()
        .filter(|tp| !backoff.contains_key(tp))
        .collect();
    consumer.resume(&paused);
    shared.stats.set_paused(false);
}

fn commit_map(offsets: &[(Arc<str>, i32, i64)]) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
    offsets
        .iter()
        .map(|(t, p, o)| {
            (
                TopicPartition::new(t.as_ref(), *p),
                OffsetAndMetadata::new(*o),
            )
        })
        .collect()
}
