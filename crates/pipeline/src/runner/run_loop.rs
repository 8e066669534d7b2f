//! The run loop: admits records into the stack, reacts to the record tasks' events,
//! commits on its interval, pauses and resumes, backs off partitions after failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_wire::consumer::{Consumer, ConsumerEvent, ConsumerRecord, TopicPartition};
use sluice_wire::producer::Producer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tower::{Service, ServiceExt};

use super::event::Event;
use super::output::OutputRejected;
use super::shutdown::Shutdown;
use super::state::Shared;
use super::strategy::{Admission, CommitStrategy, Ctx, OnFailure};
use super::{task, RunError};
use crate::{ConsumedRecord, PipelineError, Processed};

/// The run loop's state.
pub(super) struct Runner<S> {
    pub(super) consumer: Consumer,
    pub(super) producer: Producer,
    pub(super) stack: S,
    pub(super) shared: Arc<Shared>,
    pub(super) group: String,
    pub(super) max_in_flight: usize,
    pub(super) pause_after: Duration,
    /// How often the consumer is told the member is alive while the run loop takes no
    /// record from it.
    pub(super) keep_alive: Duration,
    /// (initial, max) of the redelivery backoff.
    pub(super) redelivery_backoff: (Duration, Duration),
    /// Partitions paused until a redelivery backoff ends, with its end.
    pub(super) backoff: HashMap<TopicPartition, Instant>,
    /// One task per admitted record.
    pub(super) tasks: JoinSet<()>,
    pub(super) events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    /// Whether the runner paused the partitions (the stack stayed not ready).
    pub(super) paused: bool,
    /// Interned topic names.
    pub(super) topics: HashMap<String, Arc<str>, foldhash::fast::RandomState>,
    /// At-least-once or exactly-once.
    pub(super) strategy: CommitStrategy,
    /// Return once every assigned partition is read to its end and committed.
    pub(super) stop_at_end: bool,
}

impl<S> Runner<S>
where
    S: Service<ConsumedRecord, Response = Processed> + Send + 'static,
    S::Error: Into<PipelineError> + 'static,
    S::Future: Send + 'static,
{
    pub(super) async fn run_loop(
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
            // Exactly-once: events of tasks that have ended come first (a retriable failure
            // turns the transaction's end into an abort), then a due transaction ends.
            if self.strategy.events_first() {
                while let Ok(event) = self.events.1.try_recv() {
                    self.on_event(event, &mut held)?;
                }
                let running = self.tasks.len();
                let bound_reached = self.shared.uncommitted() >= self.max_in_flight;
                if self.strategy.end_due(running, bound_reached, &self.shared) {
                    let ctx = Ctx {
                        consumer: &self.consumer,
                        producer: &self.producer,
                        shared: &self.shared,
                    };
                    self.strategy.end_transaction(ctx, &mut held).await?;
                }
            }
            if self.stop_at_end && held.is_none() && self.finished_input() {
                tracing::info!("every assigned partition read to its end and committed: stopping");
                // The stats as of the end, whatever the last lag tick saw.
                self.publish_missing_topics();
                return Ok(());
            }
            let bound_reached = self.shared.uncommitted() >= self.max_in_flight;
            let admitting = self.strategy.admitting();
            let gate_open = !bound_reached && admitting;
            let drain_deadline = self.strategy.drain_deadline();
            let backoff_end = self.next_backoff_end();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(event) = self.events.1.recv() => {
                    self.on_event(event, &mut held)?;
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    // Every task that ended meanwhile, in this one turn of the loop.
                    while self.tasks.try_join_next().is_some() {}
                }
                signal = self.strategy.signal() => self.strategy.on_signal(signal, &self.shared),
                () = sleep_until_some(drain_deadline), if drain_deadline.is_some() =>
                {
                    self.strategy.drain_timed_out(self.tasks.len(), &self.shared);
                }
                _ = commit_tick.tick() => self.strategy.on_interval(&self.consumer, &self.shared),
                _ = self.shared.progress.notified(),
                    if !gate_open && self.strategy.commits_on_progress() =>
                {
                    self.strategy.on_progress(&self.consumer, &self.shared)
                }
                _ = lag_tick.tick() => self.publish_lag(),
                () = sleep_until_some(backoff_end), if backoff_end.is_some() => {
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
                    let svc = ready.map_err(|e| RunError::NotReady(e.into()))?;
                    if self.paused {
                        resume_unpaused(&self.consumer, &self.backoff, &self.shared);
                        self.paused = false;
                        tracing::info!("stack ready again: partitions resumed");
                    }
                    let Some(record) = held.take() else { continue };
                    // Exactly-once, a record may have to wait for the open transaction to end.
                    let alone = match self.strategy.admission(&record, &self.shared) {
                        Admission::Wait => {
                            held = Some(record);
                            continue;
                        }
                        Admission::Admit { alone } => alone,
                    };
                    let (topic, partition, offset) =
                        (Arc::clone(&record.topic), record.partition, record.offset);
                    // A record of a partition no longer ours is dropped (its next
                    // owner reads it), and so is one fetched before a rewind the run
                    // loop has not sought to yet (it is fetched again).
                    if let Some(admitted) = self.shared.admit(&topic, partition, offset) {
                        if let Err(e) = self.strategy.join(&self.producer, &record).await {
                            self.shared.finish(&topic, partition, false);
                            return Err(e);
                        }
                        task::spawn(svc, record, admitted, &self.shared, &self.producer,
                            &self.events.0, &mut self.tasks);
                        self.strategy.after_admit(alone, &self.shared);
                    } else {
                        tracing::debug!(%topic, partition, offset,
                            "partition not ours any more, or to be fetched again: record dropped");
                    }
                }
                () = sleep_until_some(Some(pause_at)), if held.is_some() && admitting && !self.paused => {
                    self.consumer.pause(&self.consumer.assignment());
                    self.paused = true;
                    self.shared.stats.set_paused(true);
                    tracing::info!("stack not ready: partitions paused");
                }
                event = self.consumer.recv_event(), if held.is_none() && gate_open => {
                    match event? {
                        ConsumerEvent::Record(record) => {
                            held = Some(self.consumed(&record));
                            pause_at = Instant::now() + self.pause_after;
                        }
                        ConsumerEvent::PartitionEof { partition, .. } => {
                            let topic = self.intern(&partition.topic);
                            self.shared.reached_end(&topic, partition.partition);
                        }
                        ConsumerEvent::TopicNotAvailable { .. } => self.publish_missing_topics(),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Whether every assigned partition is read to its end and everything admitted is
    /// done and committed (exactly-once: its transaction committed), with nothing left
    /// to redeliver: [`Pipeline::stop_at_end`](super::Pipeline::stop_at_end).
    fn finished_input(&mut self) -> bool {
        if !self.tasks.is_empty()
            || !self.events.1.is_empty()
            || !self.backoff.is_empty()
            || self.shared.uncommitted() > 0
        {
            return false;
        }
        let assignment = self.consumer.assignment();
        !assignment.is_empty()
            && assignment.iter().all(|tp| {
                let topic = self.intern(&tp.topic);
                self.shared.at_end(&topic, tp.partition)
            })
    }

    /// Publishes the subscribed topics the cluster does not have: the stats' list and the
    /// `sluice_pipeline_missing_topics` gauge.
    fn publish_missing_topics(&self) {
        let missing = self.consumer.missing_topics();
        let n = missing.len();
        if self.shared.stats.set_missing_topics(missing) {
            crate::metrics::record_missing_topics(&self.group, n);
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

    /// The earliest end of a redelivery backoff, if any.
    fn next_backoff_end(&self) -> Option<Instant> {
        self.backoff.values().min().copied()
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

    pub(super) fn on_event(
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
        // The task marked the rewind; records fetched before it are admitted again once
        // the seek below (or the abort's) is made, which happens before the next admission.
        self.shared.fetched_again(&topic, partition, offset);
        let failures = self.shared.failed(&topic, partition);
        self.back_off(TopicPartition::new(topic.as_ref(), partition), failures);
        if let OnFailure::Aborting = self.strategy.on_failure(&self.shared) {
            tracing::debug!(%topic, partition, offset, "aborting the transaction");
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
        if self.strategy.transactional() {
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
        // A topic created since it went missing leaves the list.
        self.publish_missing_topics();
    }

    /// The interned name of `topic`.
    fn intern(&mut self, topic: &str) -> Arc<str> {
        match self.topics.get(topic) {
            Some(t) => Arc::clone(t),
            None => {
                let t: Arc<str> = Arc::from(topic);
                self.topics.insert(topic.to_owned(), Arc::clone(&t));
                t
            }
        }
    }

    fn consumed(&mut self, r: &ConsumerRecord) -> ConsumedRecord {
        ConsumedRecord {
            topic: self.intern(r.topic()),
            partition: r.partition(),
            offset: r.offset(),
            key: r.key().cloned(),
            value: r.value().cloned(),
            headers: r.headers().collect(),
            timestamp: r.timestamp(),
            attempt: 1,
        }
    }
}

/// Sleeps until `deadline`; never without one. For the run loop's timers: `select!`
/// builds every branch's future on each turn, disabled ones too, and this one costs
/// nothing until polled (a `Sleep` looks up the runtime's timer when made).
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
