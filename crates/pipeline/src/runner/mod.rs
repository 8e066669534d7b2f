//! The runner: drives `sluice-wire`'s consumer into a stack and its producer out of it.
//!
//! [`Pipeline::run`] subscribes to the input topics and loops:
//!
//! 1. **Admit.** It takes the next record only while fewer than
//!    [`max_in_flight`](Pipeline::max_in_flight) records are *admitted and not yet
//!    committed*, then waits for the stack's `poll_ready`. While the stack stays not ready
//!    for longer than [`pause_after`](Pipeline::pause_after) (an open breaker, or a full
//!    concurrency bound) it pauses every assigned partition (the consumer keeps its group
//!    membership; lag grows visibly) and resumes them once the stack is ready again.
//! 2. **Process and produce.** Each admitted record runs in its own task: the stack's
//!    answer is produced through the [`Producer`], and only when every output is
//!    acknowledged by the broker is the record marked done in the commit tracker. (The
//!    runner does this tracking itself; do not add a [`CommitLayer`](crate::commit::CommitLayer)
//!    to the stack you give it, whose `Ok` comes before the outputs are produced.)
//! 3. **Commit.** Every [`commit_interval`](Pipeline::commit_interval), and at once when
//!    the in-flight bound is reached, it commits the tracker's committable offsets (one
//!    commit in flight at a time). Since admitted-and-uncommitted records are bounded, a
//!    crash redelivers at most `max_in_flight` records.
//!
//! Errors out of the stack: a [`Retriable`](crate::Disposition::Retriable) one (retries
//! spent, an output not acknowledged) is never skipped: the partition is rewound to the
//! record (`seek`) and it is fetched again. Answers of that partition's later records
//! admitted before the rewind are discarded (not produced, not committed): they are
//! fetched again too, and producing them now would produce them twice. (Their service
//! calls did happen; a dead letter among them may be written twice.) [`Fatal`](crate::Disposition::Fatal), and a
//! dead-letter error no DLQ layer handled, stop the pipeline with [`RunError::Fatal`].
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
//! **Not here: exactly-once.** Committing the input offsets inside the output transaction
//! needs the transactional producer, which is being written separately; this runner
//! commits through the consumer after the outputs are acknowledged (at-least-once, with
//! duplicates bounded by `max_in_flight`).
//!
//! **Output order.** Outputs are sent when the stack answers. With the concurrency layer's
//! per-partition order, a record's answer comes after its predecessor's, and its outputs
//! are handed to the producer in the same task poll, so outputs keep the input order
//! unless the producer has to wait for buffer space or metadata.

mod error;
mod rebalance;
mod shutdown;
mod sink;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sluice_wire::cluster::Cluster;
use sluice_wire::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetAndMetadata, TopicPartition,
};
use sluice_wire::producer::Producer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tower::{Service, ServiceExt};

pub use self::error::RunError;
use self::rebalance::Rebalance;
pub use self::shutdown::Shutdown;
pub(crate) use self::sink::producer_record;
pub use self::sink::ProducerSink;
pub use self::state::PipelineStats;
use self::state::{Admitted, Shared};
use crate::{ConsumedRecord, Disposition, PipelineError, Processed};

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
    /// [`shutdown`](Self::shutdown)).
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
        }
    }

    /// At most `n` records admitted and not yet committed (at least 1). This is the
    /// runner's backpressure and the bound on duplicates after a crash.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// How often finished offsets are committed.
    pub fn commit_interval(mut self, d: Duration) -> Self {
        self.commit_interval = d;
        self
    }

    /// How long the stack may stay not ready before the partitions are paused.
    pub fn pause_after(mut self, d: Duration) -> Self {
        self.pause_after = d;
        self
    }

    /// The longest a revoke or a shutdown waits for records in flight.
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
        } = self;
        let group = consumer
            .group_id
            .clone()
            .ok_or(RunError::Config("the pipeline's consumer needs a group.id"))?;
        consumer.enable_auto_commit = false;
        let shared = Arc::new(Shared::new(stats));
        let listener = Arc::new(Rebalance {
            shared: Arc::clone(&shared),
            drain_timeout,
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
            tasks: JoinSet::new(),
            events: mpsc::unbounded_channel(),
            commit_in_flight: false,
            paused: false,
            topics: HashMap::new(),
        };
        let outcome = runner
            .run_loop(&shutdown, commit_interval, lag_interval)
            .await;
        let closed = runner.close(drain_timeout).await;
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
    /// One task per admitted record.
    tasks: JoinSet<()>,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    commit_in_flight: bool,
    /// Whether the runner paused the partitions (the stack stayed not ready).
    paused: bool,
    /// Interned topic names.
    topics: HashMap<String, Arc<str>>,
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
        // A record taken from the consumer, waiting for the stack to be ready.
        let mut held: Option<ConsumedRecord> = None;
        let mut pause_at = Instant::now();
        loop {
            if self.paused && held.is_none() {
                // The record waiting for readiness was dropped (a rewind or a revoke):
                // the next one must come from the consumer, which pauses nothing then.
                self.resume();
            }
            let gate_open = self.shared.uncommitted() < self.max_in_flight;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(event) = self.events.1.recv() => {
                    self.on_event(event, &mut held)?;
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                _ = commit_tick.tick() => self.start_commit(),
                _ = self.shared.progress.notified(), if !gate_open => self.start_commit(),
                _ = lag_tick.tick() => self.publish_lag(),
                ready = ServiceExt::<ConsumedRecord>::ready(&mut self.stack), if held.is_some() => {
                    let svc = ready.map_err(RunError::NotReady)?;
                    if self.paused {
                        self.consumer.resume(&self.consumer.paused());
                        self.paused = false;
                        self.shared.stats.set_paused(false);
                        tracing::info!("stack ready again: partitions resumed");
                    }
                    if let Some(record) = held.take() {
                        admit(svc, record, &self.shared, &self.producer, &self.events.0, &mut self.tasks);
                    }
                }
                _ = tokio::time::sleep_until(pause_at), if held.is_some() && !self.paused => {
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
        self.consumer.resume(&self.consumer.paused());
        self.paused = false;
        self.shared.stats.set_paused(false);
        tracing::info!("partitions resumed (the record waiting for readiness was dropped)");
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
            } => {
                self.shared.stats.add_redelivered();
                let tp = TopicPartition::new(topic.as_ref(), partition);
                // Rewind only forwards of the record: after a rewind, later failures of
                // the same partition are already covered.
                if self.consumer.position(&tp).is_some_and(|p| p > offset) {
                    tracing::debug!(%topic, partition, offset, "retriable failure: rewinding");
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
            Event::Fatal {
                topic,
                partition,
                offset,
                error,
            } => Err(RunError::Fatal {
                topic: topic.to_string(),
                partition,
                offset,
                error,
            }),
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

    /// Stops fetching, drains (bounded), commits, leaves the group, flushes the producer.
    async fn close(mut self, drain_timeout: Duration) -> Result<(), RunError> {
        self.consumer.pause(&self.consumer.assignment());
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
        let mut result = Ok(());
        let offsets = self.shared.commits.committable();
        if !offsets.is_empty() {
            match self.consumer.commit(&commit_map(&offsets)).await {
                Ok(()) => {
                    self.shared.stats.add_commit();
                    for (t, p, o) in offsets {
                        self.shared.committed(&t, p, o);
                    }
                }
                Err(e) => result = Err(RunError::Kafka(e)),
            }
        }
        // Revokes through the listener (nothing left to drain) and leaves the group.
        let closed = self.consumer.close().await;
        self.producer.flush().await;
        result.and(closed.map_err(RunError::Kafka))
    }
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

/// Calls the stack with `record` and spawns the task that produces its outputs and marks
/// it done. A record of a partition no longer ours is dropped (its next owner reads it).
fn admit<S>(
    svc: &mut S,
    record: ConsumedRecord,
    shared: &Arc<Shared>,
    producer: &Producer,
    events: &mpsc::UnboundedSender<Event>,
    tasks: &mut JoinSet<()>,
) where
    S: Service<ConsumedRecord, Response = Processed, Error = PipelineError>,
    S::Future: Send + 'static,
{
    let (topic, partition, offset) = (Arc::clone(&record.topic), record.partition, record.offset);
    let Some(admitted) = shared.admit(&topic, partition, offset) else {
        tracing::debug!(%topic, partition, offset, "partition not ours any more: record dropped");
        return;
    };
    shared.stats.add_admitted();
    let answer = svc.call(record);
    let task = RecordTask {
        topic,
        partition,
        offset,
        admitted,
        shared: Arc::clone(shared),
        producer: producer.clone(),
        events: events.clone(),
    };
    tasks.spawn(task.run(answer));
}

/// What one record's task needs after the stack answered.
struct RecordTask {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    admitted: Admitted,
    shared: Arc<Shared>,
    producer: Producer,
    events: mpsc::UnboundedSender<Event>,
}

impl RecordTask {
    async fn run<F>(self, answer: F)
    where
        F: Future<Output = Result<Processed, PipelineError>>,
    {
        let outcome = match answer.await {
            // An earlier record of the partition failed and is fetched again; so is this
            // one. Producing now would produce it twice.
            Ok(_)
                if self
                    .shared
                    .superseded(&self.topic, self.partition, &self.admitted) =>
            {
                self.shared.finish(&self.topic, self.partition);
                return;
            }
            Ok(outputs) => self.produce(outputs).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(n) => {
                self.shared.done(&self.admitted.ticket);
                self.shared.stats.add_completed(n);
            }
            Err(error) if error.disposition() == Disposition::Retriable => {
                tracing::debug!(topic = %self.topic, partition = self.partition,
                    offset = self.offset, %error, "retriable failure: fetching it again");
                self.shared.rewind(&self.topic, self.partition, self.offset);
                let _ = self.events.send(Event::Redeliver {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: self.offset,
                });
            }
            Err(error) => {
                let _ = self.events.send(Event::Fatal {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: self.offset,
                    error,
                });
            }
        }
        self.shared.finish(&self.topic, self.partition);
    }

    /// Sends every output, then waits for every acknowledgement. A failure is retriable:
    /// the record is processed again (its acknowledged outputs are then duplicated).
    async fn produce(&self, outputs: Processed) -> Result<u64, PipelineError> {
        let mut deliveries = Vec::with_capacity(outputs.len());
        for output in outputs {
            let delivery = self
                .producer
                .send(producer_record(output))
                .await
                .map_err(PipelineError::retriable)?;
            deliveries.push(delivery);
        }
        let n = deliveries.len() as u64;
        for delivery in deliveries {
            delivery.await.map_err(PipelineError::retriable)?;
        }
        Ok(n)
    }
}
