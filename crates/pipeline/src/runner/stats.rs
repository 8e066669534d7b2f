//! [`PipelineStats`]: the live counters of a pipeline, and the task-local through which
//! the layers inside a stack count into the pipeline running them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::futures::TaskLocalFuture;

use crate::sync;

tokio::task_local! {
    /// The stats of the pipeline whose record task is running (see
    /// [`PipelineStats::scope`]).
    static CURRENT: PipelineStats;
}

#[derive(Debug, Default)]
struct Counters {
    admitted: AtomicU64,
    completed: AtomicU64,
    produced: AtomicU64,
    redelivered: AtomicU64,
    pauses: AtomicU64,
    paused: AtomicBool,
    lag: AtomicI64,
    committed: AtomicU64,
    aborted: AtomicU64,
    dead_lettered: AtomicU64,
    retried: AtomicU64,
    /// The subscribed topics the cluster does not have, sorted.
    missing_topics: Mutex<Vec<String>>,
}

/// Live counters of a running [`Pipeline`](super::Pipeline), for progress displays and
/// tests. Clones share the counters; reading never blocks the pipeline.
///
/// The [`dead_lettered`](Self::dead_lettered) and [`retried`](Self::retried) counts come
/// from the layers inside the stack (the [`DeadLetterLayer`](crate::dlq::DeadLetterLayer)
/// and the [`RetryLayer`](crate::retry::RetryLayer)) as well as from the runner itself:
/// the runner polls each record's answer with these stats in scope (a tokio task-local),
/// and the layers count into whichever pipeline polls them. A stack that polls the
/// layers' futures on a task of its own (`tower::buffer`, a spawn) leaves them out of
/// these counts; the metrics ([`crate::metrics`]) count them either way.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    inner: Arc<Counters>,
}

impl PipelineStats {
    /// Records admitted into the stack (redeliveries count again).
    pub fn admitted(&self) -> u64 {
        self.inner.admitted.load(Ordering::Relaxed)
    }

    /// Records finished: processed with every output acknowledged, or dead-lettered. In
    /// exactly-once mode they count once their transaction committed.
    pub fn completed(&self) -> u64 {
        self.inner.completed.load(Ordering::Relaxed)
    }

    /// Output records acknowledged by the producer.
    pub fn produced(&self) -> u64 {
        self.inner.produced.load(Ordering::Relaxed)
    }

    /// Records that came out of the stack with a retriable error (retries spent, or an
    /// output not acknowledged) and were sent back to be fetched again.
    pub fn redelivered(&self) -> u64 {
        self.inner.redelivered.load(Ordering::Relaxed)
    }

    /// How many times the runner paused its partitions because the stack stayed not
    /// ready (an open breaker, or the in-flight bound of a slow stack).
    pub fn pauses(&self) -> u64 {
        self.inner.pauses.load(Ordering::Relaxed)
    }

    /// Whether the partitions are paused now.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Relaxed)
    }

    /// The total lag (high watermark minus committed offset) over the assigned
    /// partitions at the last lag update.
    pub fn lag(&self) -> i64 {
        self.inner.lag.load(Ordering::Relaxed)
    }

    /// Successful offset commits (in exactly-once mode: committed transactions).
    pub fn commits(&self) -> u64 {
        self.inner.committed.load(Ordering::Relaxed)
    }

    /// Transactions aborted (exactly-once mode): after a retriable failure, a failed
    /// commit, a lost partition or a drain that timed out. Their records are processed
    /// again.
    pub fn aborts(&self) -> u64 {
        self.inner.aborted.load(Ordering::Relaxed)
    }

    /// Records published to a dead-letter topic and acknowledged: by the
    /// [`DeadLetterLayer`](crate::dlq::DeadLetterLayer) (records the stack rejects) and
    /// by the runner (records whose output the broker refused, see
    /// [`RejectedOutput`](super::RejectedOutput)). A record dead-lettered again after a
    /// redelivery (or in an aborted transaction) counts again, as the
    /// `sluice_pipeline_records_dead_lettered_total` metric does.
    pub fn dead_lettered(&self) -> u64 {
        self.inner.dead_lettered.load(Ordering::Relaxed)
    }

    /// Retries made by the [`RetryLayer`](crate::retry::RetryLayer): one per attempt
    /// after the first (not the redeliveries, see [`redelivered`](Self::redelivered)).
    pub fn retried(&self) -> u64 {
        self.inner.retried.load(Ordering::Relaxed)
    }

    /// The subscribed topics the cluster does not have (sorted), as of the consumer's
    /// last metadata check: a misspelt or not yet created topic. The pipeline reads the
    /// others meanwhile, and a topic created later leaves this list (and is read). The
    /// same count is the `sluice_pipeline_missing_topics` gauge
    /// ([`MISSING_TOPICS`](crate::metrics::MISSING_TOPICS)); the consumer logs each at
    /// WARN when it goes missing.
    pub fn missing_topics(&self) -> Vec<String> {
        sync::lock(&self.inner.missing_topics).clone()
    }

    /// Runs `future` (a record's task) with these stats in scope: the layers' dead
    /// letters and retries made while it is polled count here.
    pub(crate) fn scope<F: Future>(&self, future: F) -> TaskLocalFuture<PipelineStats, F> {
        CURRENT.scope(self.clone(), future)
    }

    /// Calls `f` with the stats of the pipeline polling the current task, if any.
    pub(crate) fn with_current(f: impl FnOnce(&PipelineStats)) {
        let _ = CURRENT.try_with(f);
    }

    pub(crate) fn add_dead_lettered(&self) {
        self.inner.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_retried(&self) {
        self.inner.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the missing topics; true if they changed.
    pub(crate) fn set_missing_topics(&self, mut topics: Vec<String>) -> bool {
        topics.sort();
        let mut missing = sync::lock(&self.inner.missing_topics);
        if *missing == topics {
            return false;
        }
        *missing = topics;
        true
    }

    pub(crate) fn add_admitted(&self) {
        self.inner.admitted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_completed(&self, records: u64, outputs: u64) {
        self.inner.completed.fetch_add(records, Ordering::Relaxed);
        self.inner.produced.fetch_add(outputs, Ordering::Relaxed);
    }

    pub(crate) fn add_redelivered(&self) {
        self.inner.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_commit(&self) {
        self.inner.committed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_abort(&self) {
        self.inner.aborted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        if paused {
            self.inner.pauses.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.paused.store(paused, Ordering::Relaxed);
    }

    pub(crate) fn set_lag(&self, lag: i64) {
        self.inner.lag.store(lag, Ordering::Relaxed);
    }
}
