//! What the run loop, the per-record tasks and the rebalance listener share: which
//! partitions may admit records, what runs and what is not committed yet, and the
//! counters users read through [`PipelineStats`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::commit::{CommitHandle, Ticket};

type Key = (Arc<str>, i32);

/// An admitted record's commit ticket and its place among its partition's admissions.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) ticket: Ticket,
    seq: u64,
}

/// One assigned partition.
#[derive(Debug, Default)]
struct PartitionState {
    /// Being revoked: admit nothing more.
    revoking: bool,
    /// Records admitted whose task has not ended.
    running: usize,
    /// Offsets admitted and not yet below a successful commit, in admission order. A
    /// rewind removes the offsets it will fetch again.
    uncommitted: VecDeque<i64>,
    /// The last offset committed successfully.
    committed: Option<i64>,
    /// Counts admissions and rewinds, to order them.
    seq: u64,
    /// Rewinds (sequence number, offset) that records still running may predate. A
    /// record admitted before a rewind to a lower offset is fetched again, so its answer
    /// is discarded (not produced, not done): producing it would produce it twice.
    /// Cleared whenever nothing of the partition runs.
    rewinds: Vec<(u64, i64)>,
}

/// Shared by the run loop, the record tasks and the rebalance listener.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) commits: CommitHandle,
    pub(crate) stats: PipelineStats,
    partitions: Mutex<HashMap<Key, PartitionState>>,
    /// Signalled whenever a record task ends (drains wait on it).
    pub(crate) progress: Notify,
}

impl Shared {
    pub(crate) fn new(stats: PipelineStats) -> Self {
        Shared {
            commits: CommitHandle::new(),
            stats,
            partitions: Mutex::new(HashMap::new()),
            progress: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, PartitionState>> {
        // Every method leaves the map consistent before anything could panic.
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partition was assigned to this member.
    pub(crate) fn assign(&self, topic: &Arc<str>, partition: i32) {
        self.commits.assign(topic, partition);
        self.lock()
            .insert((topic.clone(), partition), PartitionState::default());
    }

    /// Stop admitting records of the partition (a revoke is draining it).
    pub(crate) fn stop_admitting(&self, topic: &Arc<str>, partition: i32) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.revoking = true;
        }
    }

    /// Forgets the partition; returns the offset to commit for it, if it advanced.
    pub(crate) fn remove(&self, topic: &Arc<str>, partition: i32) -> Option<i64> {
        self.lock().remove(&(topic.clone(), partition));
        self.commits.revoke(topic, partition)
    }

    /// Admits a record: `None` when its partition is not (or no longer) ours.
    pub(crate) fn admit(&self, topic: &Arc<str>, partition: i32, offset: i64) -> Option<Admitted> {
        let mut parts = self.lock();
        let p = parts
            .get_mut(&(topic.clone(), partition))
            .filter(|p| !p.revoking)?;
        p.running += 1;
        p.seq += 1;
        let seq = p.seq;
        p.uncommitted.push_back(offset);
        drop(parts);
        Some(Admitted {
            ticket: self.commits.start(topic, partition, offset),
            seq,
        })
    }

    /// The record at `offset` failed retriably and will be fetched again.
    pub(crate) fn rewind(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.seq += 1;
            let seq = p.seq;
            p.rewinds.push((seq, offset));
            // They are admitted (and counted) again when fetched again; counting them
            // twice would fill the in-flight bound and stop the very fetch that clears it.
            p.uncommitted.retain(|&o| o < offset);
        }
    }

    /// Whether an earlier record of the partition is being fetched again, so this one's
    /// answer must be discarded (it will be processed again after the rewind).
    pub(crate) fn superseded(&self, topic: &Arc<str>, partition: i32, admitted: &Admitted) -> bool {
        let offset = admitted.ticket.offset();
        self.lock()
            .get(&(topic.clone(), partition))
            .is_some_and(|p| {
                p.rewinds
                    .iter()
                    .any(|&(seq, r)| seq > admitted.seq && offset > r)
            })
    }

    /// A record task ended, whatever its outcome.
    pub(crate) fn finish(&self, topic: &Arc<str>, partition: i32) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.running = p.running.saturating_sub(1);
            if p.running == 0 {
                p.rewinds.clear();
            }
        }
        self.progress.notify_waiters();
    }

    /// Record tasks still running for the partition.
    pub(crate) fn running(&self, topic: &Arc<str>, partition: i32) -> usize {
        self.lock()
            .get(&(topic.clone(), partition))
            .map_or(0, |p| p.running)
    }

    /// Records admitted and not yet committed, over every partition: what the in-flight
    /// bound limits (and so what a crash may redeliver).
    pub(crate) fn uncommitted(&self) -> usize {
        self.lock().values().map(|p| p.uncommitted.len()).sum()
    }

    /// The commit of `offset` succeeded.
    pub(crate) fn committed(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.commits.committed(topic, partition, offset);
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.uncommitted.retain(|&o| o >= offset);
            p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// The last offset committed for the partition by this member.
    pub(crate) fn committed_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lock()
            .iter()
            .find(|((t, p), _)| &**t == topic && *p == partition)
            .and_then(|(_, s)| s.committed)
    }

    /// The ticket's record finished: processed and its outputs acknowledged.
    pub(crate) fn done(&self, ticket: &Ticket) {
        self.commits.done(ticket);
    }
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
}

/// Live counters of a running [`Pipeline`](super::Pipeline), for progress displays and
/// tests. Clones share the counters; reading never blocks the pipeline.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    inner: Arc<Counters>,
}

impl PipelineStats {
    /// Records admitted into the stack (redeliveries count again).
    pub fn admitted(&self) -> u64 {
        self.inner.admitted.load(Ordering::Relaxed)
    }

    /// Records finished: processed with every output acknowledged, or dead-lettered.
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

    /// Successful offset commits.
    pub fn commits(&self) -> u64 {
        self.inner.committed.load(Ordering::Relaxed)
    }

    pub(crate) fn add_admitted(&self) {
        self.inner.admitted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_completed(&self, outputs: u64) {
        self.inner.completed.fetch_add(1, Ordering::Relaxed);
        self.inner.produced.fetch_add(outputs, Ordering::Relaxed);
    }

    pub(crate) fn add_redelivered(&self) {
        self.inner.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_commit(&self) {
        self.inner.committed.fetch_add(1, Ordering::Relaxed);
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
