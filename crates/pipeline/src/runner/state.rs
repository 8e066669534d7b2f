//! What the run loop, the per-record tasks and the rebalance listener share: which
//! partitions may admit records, what runs and what is not committed yet, and the
//! counters users read through [`PipelineStats`].

use crate::sync;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{oneshot, watch, Notify};

use super::output::{OutputRejected, RejectedOutput};
use super::stats::PipelineStats;
use crate::commit::{CommitHandle, Ticket};

type Key = (Arc<str>, i32);

/// An admitted record's commit ticket, its place among its partition's admissions, and
/// how it learns of the partition's rewinds.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) ticket: Ticket,
    seq: u64,
    /// Changes on every rewind of the partition after the admission (see
    /// [`Shared::rewind`]); closed when the partition is forgotten.
    pub(crate) rewinds: watch::Receiver<u64>,
    /// Resolves (or closes) once the partition's previous admitted record handed its
    /// outputs to the producer, or ended without: outputs are sent in admission order.
    pub(crate) after: Option<oneshot::Receiver<()>>,
    /// Dropped once this record's outputs are handed to the producer (or the task ends),
    /// which lets the next record's outputs go.
    pub(crate) handed_over: Option<oneshot::Sender<()>>,
}

/// One assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// Being revoked: admit nothing more.
    revoking: bool,
    /// Records admitted whose task has not ended.
    running: usize,
    /// Counts admissions and rewinds, to order them.
    seq: u64,
    /// Rewinds (sequence number, offset) that records still running may predate. A
    /// record admitted before a rewind to a lower offset is fetched again, so its answer
    /// is discarded (not produced, not done): producing it would produce it twice.
    /// Cleared whenever nothing of the partition runs.
    rewinds: Vec<(u64, i64)>,
    /// Counts the rewinds, so that running records wake up to check whether a rewind
    /// superseded them (and drop their answer before the stack calls the inner service).
    rewound: watch::Sender<u64>,
    /// Offsets a record task rewound the partition to, whose `Redeliver` event the run
    /// loop has not handled yet: until it seeks, the consumer still hands out records
    /// fetched before the rewind, and a record at or after such an offset is dropped, not
    /// admitted (it is fetched again after the seek; admitted now, it would be produced
    /// twice).
    unfetched: Vec<i64>,
    /// The hand-off of the last admitted record, for the next one to wait on.
    handoff: Option<oneshot::Receiver<()>>,
    /// Retriable failures since the partition's last record that succeeded: the
    /// redelivery backoff doubles with each.
    failures: u32,
    /// Exactly-once: records that saw a refused output in an aborted transaction. Any
    /// record whose transaction failed may see the error (the producer fails every batch
    /// of a failed transaction with it), so each runs again in a transaction of its own.
    suspects: BTreeSet<i64>,
    /// Exactly-once: records whose output was refused in a transaction of their own:
    /// dead-lettered when fetched again, without calling the stack.
    refused: BTreeMap<i64, OutputRejected>,
    /// Read to its end (the consumer's `PartitionEof`) and nothing admitted or rewound
    /// since: what [`Pipeline::stop_at_end`](super::Pipeline::stop_at_end) waits for.
    at_end: bool,
}

impl PartitionState {
    fn new() -> Self {
        PartitionState {
            revoking: false,
            running: 0,
            seq: 0,
            rewinds: Vec::new(),
            rewound: watch::Sender::new(0),
            unfetched: Vec::new(),
            handoff: None,
            failures: 0,
            suspects: BTreeSet::new(),
            refused: BTreeMap::new(),
            at_end: false,
        }
    }
}

/// Shared by the run loop, the record tasks and the rebalance listener.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The one offset tracker: what is started, finished, committable, committed, and
    /// how many records are admitted and not committed (the in-flight bound).
    pub(crate) commits: CommitHandle,
    pub(crate) stats: PipelineStats,
    /// Looked up several times per record: a fast hasher, not SipHash (the keys are our
    /// own assignment, not attacker-chosen).
    partitions: Mutex<HashMap<Key, PartitionState, foldhash::fast::RandomState>>,
    /// Signalled whenever a record task ends (drains wait on it).
    pub(crate) progress: Notify,
    /// Exactly-once mode: records count as completed when their transaction commits.
    pub(crate) exactly_once: bool,
    /// Exactly-once mode: (records, outputs) finished in the open transaction, added to
    /// the stats when it commits and dropped when it aborts.
    in_transaction: Mutex<(u64, u64)>,
    /// What a record whose output the broker refuses becomes.
    pub(crate) rejected_output: RejectedOutput,
    /// The group id, for the dead letters' headers.
    pub(crate) group: String,
    /// At-least-once: held shared while outputs are in the producer, exclusively to send
    /// a refused output again alone (the producer fails every record of a refused batch:
    /// alone, a refusal is the record's own).
    pub(crate) producing: tokio::sync::RwLock<()>,
}

impl Shared {
    pub(crate) fn new(stats: PipelineStats, exactly_once: bool) -> Self {
        Shared {
            commits: CommitHandle::counting(),
            stats,
            partitions: Mutex::new(HashMap::default()),
            progress: Notify::new(),
            exactly_once,
            in_transaction: Mutex::new((0, 0)),
            rejected_output: RejectedOutput::default(),
            group: String::new(),
            producing: tokio::sync::RwLock::new(()),
        }
    }

    /// With `rejected_output` and the `group` id for dead letters.
    pub(crate) fn with_rejected_output(mut self, rejected: RejectedOutput, group: &str) -> Self {
        self.rejected_output = rejected;
        self.group = group.to_owned();
        self
    }

    /// A record of the partition failed retriably: the consecutive failures so far.
    pub(crate) fn failed(&self, topic: &Arc<str>, partition: i32) -> u32 {
        self.lock()
            .get_mut(&(topic.clone(), partition))
            .map_or(1, |p| {
                p.failures = p.failures.saturating_add(1);
                p.failures
            })
    }

    /// Exactly-once: the record saw its output refused in the transaction. The first
    /// time it becomes a suspect (false); a suspect, which ran in a transaction of its
    /// own, is the culprit: it is dead-lettered when fetched again (true).
    pub(crate) fn output_refused(
        &self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        error: OutputRejected,
    ) -> bool {
        let mut parts = self.lock();
        let Some(p) = parts.get_mut(&(topic.clone(), partition)) else {
            return false;
        };
        if p.suspects.remove(&offset) {
            p.refused.insert(offset, error);
            true
        } else {
            p.suspects.insert(offset);
            false
        }
    }

    /// Exactly-once: whether the record must run in a transaction of its own.
    pub(crate) fn is_suspect(&self, topic: &Arc<str>, partition: i32, offset: i64) -> bool {
        self.lock()
            .get(&(topic.clone(), partition))
            .is_some_and(|p| p.suspects.contains(&offset))
    }

    /// Exactly-once: the refused output of the record, if it is known to be refused.
    pub(crate) fn refused(
        &self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
    ) -> Option<OutputRejected> {
        self.lock()
            .get(&(topic.clone(), partition))
            .and_then(|p| p.refused.get(&offset).cloned())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, PartitionState, foldhash::fast::RandomState>> {
        // Every method leaves the map consistent before anything could panic.
        sync::lock(&self.partitions)
    }

    /// The partition was assigned to this member.
    pub(crate) fn assign(&self, topic: &Arc<str>, partition: i32) {
        self.commits.assign(topic, partition);
        self.lock()
            .insert((topic.clone(), partition), PartitionState::new());
    }

    /// The consumer read the partition to its end: nothing is left to admit until a record
    /// arrives (admitted) or it is rewound.
    pub(crate) fn reached_end(&self, topic: &Arc<str>, partition: i32) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.at_end = true;
        }
    }

    /// Whether the partition is assigned and read to its end (see
    /// [`reached_end`](Self::reached_end)).
    pub(crate) fn at_end(&self, topic: &Arc<str>, partition: i32) -> bool {
        self.lock()
            .get(&(topic.clone(), partition))
            .is_some_and(|p| p.at_end)
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
            .filter(|p| !p.revoking && !p.unfetched.iter().any(|&r| offset >= r))?;
        p.running += 1;
        p.seq += 1;
        p.at_end = false;
        let seq = p.seq;
        let rewinds = p.rewound.subscribe();
        let (handed_over, handoff) = oneshot::channel();
        let after = p.handoff.replace(handoff);
        drop(parts);
        Some(Admitted {
            ticket: self.commits.start(topic, partition, offset),
            seq,
            rewinds,
            after,
            handed_over: Some(handed_over),
        })
    }

    /// The partition is fetched again from `offset`: the record there failed retriably,
    /// or (exactly-once) the transaction that started there is aborted. Records at or
    /// after `offset` admitted before now are superseded: woken through
    /// [`Admitted::rewinds`], they drop their answers.
    pub(crate) fn rewind(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.seq += 1;
            p.at_end = false;
            let seq = p.seq;
            p.rewinds.push((seq, offset));
            // Lock order: the partitions, then the tracker (never the other way).
            self.commits.rewind(topic, partition, offset);
            p.rewound.send_modify(|n| *n += 1);
        }
    }

    /// A record task's [`rewind`](Self::rewind) to its own record, which the run loop
    /// follows with a seek when it handles the task's event ([`fetched_again`]
    /// (Self::fetched_again)); until then records at or after `offset` are not admitted.
    pub(crate) fn rewind_for_redelivery(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.unfetched.push(offset);
        }
        self.rewind(topic, partition, offset);
    }

    /// The run loop handled the event of a [`rewind_for_redelivery`]
    /// (Self::rewind_for_redelivery) to `offset`: the partition is fetched from there again
    /// (or from earlier), so its records are admitted again.
    pub(crate) fn fetched_again(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            if let Some(i) = p.unfetched.iter().position(|&r| r == offset) {
                p.unfetched.swap_remove(i);
            }
        }
    }

    /// Exactly-once: the transaction is aborted and the partition fetched again from
    /// `offset`, where it started in the transaction. Besides the [`rewind`](Self::rewind),
    /// the commit tracker forgets what the transaction admitted (a fresh assignment epoch,
    /// so late tickets are ignored), keeping the last committed offset.
    pub(crate) fn restart_at(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.rewind(topic, partition, offset);
        if self.lock().contains_key(&(topic.clone(), partition)) {
            self.commits.restart(topic, partition);
        }
    }

    /// Whether an earlier record of the partition (or this one, for an exactly-once
    /// abort) is being fetched again, so this one's answer must be discarded (it will be
    /// processed again after the rewind).
    pub(crate) fn superseded(&self, topic: &Arc<str>, partition: i32, admitted: &Admitted) -> bool {
        let offset = admitted.ticket.offset();
        self.lock()
            .get(&(topic.clone(), partition))
            .is_some_and(|p| {
                p.rewinds
                    .iter()
                    .any(|&(seq, r)| seq > admitted.seq && offset >= r)
            })
    }

    /// Whether every record of the partition admitted so far finished (exactly-once: the
    /// transaction may commit).
    pub(crate) fn all_done(&self, topic: &Arc<str>, partition: i32) -> bool {
        self.commits
            .with(|c| c.partition(topic, partition).map_or(0, |t| t.unfinished()))
            == 0
    }

    /// A record finished with `outputs` produced: counted now, or in exactly-once mode
    /// when its transaction commits.
    pub(crate) fn completed(&self, outputs: u64) {
        if self.exactly_once {
            let mut pending = sync::lock(&self.in_transaction);
            pending.0 += 1;
            pending.1 += outputs;
        } else {
            self.stats.add_completed(1, outputs);
        }
    }

    /// Exactly-once: the transaction ended; its records count as completed if it
    /// committed.
    pub(crate) fn transaction_ended(&self, committed: bool) {
        let (records, outputs) = std::mem::take(&mut *sync::lock(&self.in_transaction));
        if committed {
            self.stats.add_completed(records, outputs);
            self.stats.add_commit();
        } else {
            self.stats.add_abort();
        }
    }

    /// A record task ended, whatever its outcome; `succeeded` if it did not fail.
    pub(crate) fn finish(&self, topic: &Arc<str>, partition: i32, succeeded: bool) {
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            if succeeded {
                p.failures = 0;
            }
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
        self.commits.uncommitted()
    }

    /// The commit of `offset` succeeded.
    pub(crate) fn committed(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        self.commits.committed(topic, partition, offset);
        if let Some(p) = self.lock().get_mut(&(topic.clone(), partition)) {
            p.suspects.retain(|&o| o >= offset);
            p.refused.retain(|&o, _| o >= offset);
        }
    }

    /// The last offset committed for the partition by this member.
    pub(crate) fn committed_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.commits.committed_offset(topic, partition)
    }

    /// The ticket's record finished: processed and its outputs acknowledged.
    pub(crate) fn done(&self, ticket: &Ticket) {
        self.commits.done(ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewind_supersedes_the_records_at_or_after_it_admitted_before_it() {
        let shared = Shared::new(PipelineStats::default(), false);
        let t: Arc<str> = Arc::from("t");
        shared.assign(&t, 0);
        let a5 = shared.admit(&t, 0, 5).unwrap();
        let a6 = shared.admit(&t, 0, 6).unwrap();
        let a7 = shared.admit(&t, 0, 7).unwrap();
        assert!(!a7.rewinds.has_changed().unwrap());

        shared.rewind(&t, 0, 6);
        assert!(
            a5.rewinds.has_changed().unwrap(),
            "every running record wakes up"
        );
        assert!(a7.rewinds.has_changed().unwrap());
        assert!(!shared.superseded(&t, 0, &a5), "before the rewound offset");
        assert!(shared.superseded(&t, 0, &a6));
        assert!(shared.superseded(&t, 0, &a7));
        let again = shared.admit(&t, 0, 6).unwrap();
        assert!(
            !shared.superseded(&t, 0, &again),
            "admitted after the rewind: the redelivery itself"
        );
        assert_eq!(shared.uncommitted(), 2, "5, and 6 admitted again");
    }

    #[test]
    fn a_partition_is_at_its_end_until_a_record_is_admitted_or_it_is_rewound() {
        let shared = Shared::new(PipelineStats::default(), false);
        let t: Arc<str> = Arc::from("t");
        shared.reached_end(&t, 0);
        assert!(!shared.at_end(&t, 0), "not assigned");
        shared.assign(&t, 0);
        assert!(!shared.at_end(&t, 0), "not read yet");
        shared.reached_end(&t, 0);
        assert!(shared.at_end(&t, 0));
        let _a5 = shared.admit(&t, 0, 5).unwrap();
        assert!(!shared.at_end(&t, 0), "a record arrived after the end");
        shared.reached_end(&t, 0);
        shared.rewind(&t, 0, 5);
        assert!(!shared.at_end(&t, 0), "read again from 5");
        shared.reached_end(&t, 0);
        shared.remove(&t, 0);
        shared.assign(&t, 0);
        assert!(
            !shared.at_end(&t, 0),
            "assigned again: not read to its end yet"
        );
    }

    #[test]
    fn records_fetched_before_a_redelivery_seek_are_not_admitted() {
        let shared = Shared::new(PipelineStats::default(), false);
        let t: Arc<str> = Arc::from("t");
        shared.assign(&t, 0);
        let _a5 = shared.admit(&t, 0, 5).unwrap();
        shared.rewind_for_redelivery(&t, 0, 5);
        // The consumer still hands out what it fetched before the run loop seeks.
        assert!(shared.admit(&t, 0, 9).is_none(), "fetched before the seek");
        assert!(shared.admit(&t, 0, 5).is_none());
        assert!(shared.admit(&t, 1, 9).is_none(), "not assigned");
        shared.fetched_again(&t, 0, 5);
        let again = shared
            .admit(&t, 0, 5)
            .expect("fetched again after the seek");
        assert!(!shared.superseded(&t, 0, &again));
        assert!(shared.admit(&t, 0, 6).is_some());
    }

    #[test]
    fn an_abort_forgets_the_transaction_and_keeps_the_last_commit() {
        let stats = PipelineStats::default();
        let shared = Shared::new(stats.clone(), true);
        let t: Arc<str> = Arc::from("t");
        shared.assign(&t, 0);
        let a = shared.admit(&t, 0, 10).unwrap();
        shared.done(&a.ticket);
        shared.completed(1);
        assert_eq!(stats.completed(), 0, "counted when the transaction commits");
        for (t, p, o) in shared.commits.committable() {
            shared.committed(&t, p, o);
        }
        shared.transaction_ended(true);
        assert_eq!((stats.completed(), stats.commits()), (1, 1));

        let b = shared.admit(&t, 0, 11).unwrap();
        let c = shared.admit(&t, 0, 12).unwrap();
        shared.done(&b.ticket);
        shared.completed(1);
        assert!(!shared.all_done(&t, 0), "12 has not finished");
        shared.restart_at(&t, 0, 11);
        shared.transaction_ended(false);
        assert_eq!((stats.completed(), stats.aborts()), (1, 1));
        assert!(shared.superseded(&t, 0, &c));
        assert!(shared.all_done(&t, 0));
        assert!(shared.commits.committable().is_empty(), "nothing past 11");
        assert_eq!(shared.uncommitted(), 0);
        shared.done(&c.ticket);
        assert!(
            shared.commits.committable().is_empty(),
            "a ticket of the aborted transaction is ignored"
        );

        let b = shared.admit(&t, 0, 11).unwrap();
        shared.done(&b.ticket);
        assert_eq!(shared.commits.committable(), vec![(t.clone(), 0, 12)]);
    }
}
