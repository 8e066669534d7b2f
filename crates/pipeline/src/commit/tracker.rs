//! Which offsets are safe to commit, per partition, when records finish out of order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Tracks one partition: the offsets started and not yet finished.
///
/// The committable offset is one past the highest offset below which everything started
/// has finished: the lowest unfinished offset, or `highest started + 1` when nothing is
/// unfinished. Offsets the consumer never delivered (compacted away, transaction markers)
/// are never started, so they never hold the commit back.
#[derive(Debug, Clone, Default)]
pub struct OffsetTracker {
    /// Started offsets, sorted, without duplicates, each with whether it finished; the
    /// front one is unfinished (finished ones at the front are popped). A set, not a
    /// count: an offset is finished once any of its deliveries finished, so a failed
    /// attempt followed by a successful redelivery releases it, and a duplicate still
    /// running cannot hold the partition back. A sorted `VecDeque` rather than a
    /// `BTreeSet`: offsets start in increasing order (a push at the back), and its buffer
    /// is reused, so the hot path does not allocate. Finished offsets are flagged, not
    /// removed: records finish slightly out of order, and removing from the middle
    /// shifted hundreds of entries per record with thousands in flight.
    pending: VecDeque<(i64, bool)>,
    /// How many of `pending` are unfinished.
    unfinished: usize,
    /// The highest offset ever started.
    highest: Option<i64>,
}

impl PartialEq for OffsetTracker {
    /// Equal when the same offsets are unfinished and the same one is the highest
    /// started (finished offsets not yet popped are no part of the state).
    fn eq(&self, other: &Self) -> bool {
        self.highest == other.highest && self.unfinished_offsets().eq(other.unfinished_offsets())
    }
}

impl Eq for OffsetTracker {}

impl OffsetTracker {
    /// An empty tracker: nothing to commit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record at `offset` was admitted.
    pub fn mark_started(&mut self, offset: i64) {
        match self.pending.back() {
            Some(&(last, _)) if last >= offset => {
                match self.pending.binary_search_by_key(&offset, |&(o, _)| o) {
                    // Finished and started again (a redelivery): unfinished once more.
                    Ok(at) => {
                        if let Some(entry) = self.pending.get_mut(at).filter(|e| e.1) {
                            entry.1 = false;
                            self.unfinished += 1;
                        }
                    }
                    Err(at) => {
                        self.pending.insert(at, (offset, false));
                        self.unfinished += 1;
                    }
                }
            }
            _ => {
                self.pending.push_back((offset, false));
                self.unfinished += 1;
            }
        }
        self.highest = Some(self.highest.map_or(offset, |h| h.max(offset)));
    }

    /// The record at `offset` finished (processed and produced, or dead-lettered).
    /// Returns `false` if it was not started.
    pub fn mark_done(&mut self, offset: i64) -> bool {
        let Ok(at) = self.pending.binary_search_by_key(&offset, |&(o, _)| o) else {
            return false;
        };
        match self.pending.get_mut(at) {
            Some(entry) if !entry.1 => entry.1 = true,
            _ => return false,
        }
        self.unfinished -= 1;
        while self.pending.front().is_some_and(|&(_, done)| done) {
            self.pending.pop_front();
        }
        true
    }

    /// The offset to commit (the next offset to read), or `None` if nothing was started.
    pub fn committable(&self) -> Option<i64> {
        // Everything below the lowest unfinished offset has finished (the front one, as
        // finished ones at the front are popped). When that offset is the first we
        // started, committing it re-commits the start position: harmless.
        match self.pending.front() {
            Some(&(low, _)) => Some(low),
            None => self.highest.map(|h| h + 1),
        }
    }

    /// The unfinished offsets, in order.
    fn unfinished_offsets(&self) -> impl Iterator<Item = i64> + '_ {
        self.pending
            .iter()
            .filter(|(_, done)| !done)
            .map(|&(o, _)| o)
    }

    /// How many offsets are started and unfinished (in flight, or failed and awaiting
    /// redelivery).
    pub fn unfinished(&self) -> usize {
        self.unfinished
    }
}

/// A record's place in the [`CommitTracker`]: hand it back to
/// [`mark_done`](CommitTracker::mark_done). It names the assignment it was started in, so a
/// record that finishes after its partition was revoked (and perhaps assigned again) is
/// ignored rather than finishing someone else's offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    key: (Arc<str>, i32),
    offset: i64,
    epoch: u64,
}

impl Ticket {
    /// The record's partition.
    pub fn partition(&self) -> i32 {
        self.key.1
    }

    /// The record's offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

#[derive(Debug, Default)]
struct Assigned {
    epoch: u64,
    tracker: OffsetTracker,
    committed: Option<i64>,
    /// With [`CommitTracker::counting`]: the offsets started and not yet below a
    /// successful commit, in start order, less those a rewind will deliver again.
    uncommitted: VecDeque<i64>,
}

impl Assigned {
    fn start(&mut self, offset: i64, counting: bool) {
        self.tracker.mark_started(offset);
        if counting {
            self.uncommitted.push_back(offset);
        }
    }
}

/// One [`OffsetTracker`] per assigned partition, with assignment epochs.
#[derive(Debug, Default)]
pub struct CommitTracker {
    /// Looked up twice per record: a fast hasher, not SipHash (the keys are our own
    /// assignment, not attacker-chosen).
    partitions: HashMap<(Arc<str>, i32), Assigned, foldhash::fast::RandomState>,
    next_epoch: u64,
    /// Whether started offsets are kept until committed, to count them
    /// ([`uncommitted`](Self::uncommitted)). Off for the commit layer, whose users may
    /// never report a commit.
    counting: bool,
}

impl CommitTracker {
    /// No partitions assigned.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that also counts the records started and not yet committed: the runner's
    /// in-flight bound, and so what a crash may redeliver. It relies on every successful
    /// commit being reported ([`committed`](Self::committed)).
    pub(crate) fn counting() -> Self {
        CommitTracker {
            counting: true,
            ..Self::default()
        }
    }

    /// The partition was assigned: start tracking it afresh (a previous assignment's
    /// stragglers will be ignored).
    pub fn assign(&mut self, topic: &Arc<str>, partition: i32) {
        self.next_epoch += 1;
        let assigned = Assigned {
            epoch: self.next_epoch,
            ..Assigned::default()
        };
        self.partitions.insert((topic.clone(), partition), assigned);
    }

    /// The partition is being revoked: stop tracking it and return the offset to commit
    /// for it, if it advanced past the last [`committed`](Self::committed) one.
    pub fn revoke(&mut self, topic: &Arc<str>, partition: i32) -> Option<i64> {
        let a = self.partitions.remove(&(topic.clone(), partition))?;
        a.tracker
            .committable()
            .filter(|&c| a.committed.is_none_or(|done| c > done))
    }

    /// A record was admitted. An unknown partition is assigned on the spot, so the layers
    /// work without a runner (tests, benchmarks, hand-driven pipelines).
    pub fn mark_started(&mut self, topic: &Arc<str>, partition: i32, offset: i64) -> Ticket {
        let key = (topic.clone(), partition);
        let counting = self.counting;
        let epoch = match self.partitions.get_mut(&key) {
            Some(assigned) => {
                assigned.start(offset, counting);
                assigned.epoch
            }
            None => {
                self.next_epoch += 1;
                let mut assigned = Assigned {
                    epoch: self.next_epoch,
                    ..Assigned::default()
                };
                assigned.start(offset, counting);
                self.partitions.insert(key.clone(), assigned);
                self.next_epoch
            }
        };
        Ticket { key, offset, epoch }
    }

    /// The record finished. Returns `false` (and changes nothing) when its partition was
    /// revoked since it started.
    pub fn mark_done(&mut self, ticket: &Ticket) -> bool {
        match self.partitions.get_mut(&ticket.key) {
            Some(a) if a.epoch == ticket.epoch => a.tracker.mark_done(ticket.offset),
            _ => false,
        }
    }

    /// The offsets to commit now: every partition whose committable offset moved past the
    /// last one reported [`committed`](Self::committed). For the runner's commit interval.
    pub fn committable(&self) -> Vec<(Arc<str>, i32, i64)> {
        let mut out: Vec<_> = self
            .partitions
            .iter()
            .filter_map(|((t, p), a)| {
                let c = a.tracker.committable()?;
                a.committed
                    .is_none_or(|done| c > done)
                    .then(|| (t.clone(), *p, c))
            })
            .collect();
        out.sort();
        out
    }

    /// The commit of `offset` for the partition succeeded.
    pub fn committed(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        if let Some(a) = self.partitions.get_mut(&(topic.clone(), partition)) {
            a.committed = Some(a.committed.map_or(offset, |c| c.max(offset)));
            a.uncommitted.retain(|&o| o >= offset);
        }
    }

    /// The last offset reported [`committed`](Self::committed) for the partition.
    pub(crate) fn committed_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .iter()
            .find(|((t, p), _)| &**t == topic && *p == partition)
            .and_then(|(_, a)| a.committed)
    }

    /// The partition is fetched again from `offset`: the offsets at or after it stop
    /// counting as [`uncommitted`](Self::uncommitted) (they are started again when
    /// fetched again; counting them twice would fill the in-flight bound and stop the
    /// very fetch that clears it). Unfinished ones still hold the commit back.
    pub(crate) fn rewind(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        if let Some(a) = self.partitions.get_mut(&(topic.clone(), partition)) {
            a.uncommitted.retain(|&o| o < offset);
        }
    }

    /// Forgets what the partition started since its last commit (an aborted
    /// transaction), under a fresh assignment epoch so its late tickets are ignored;
    /// keeps the last committed offset and the uncommitted count (rewind first).
    pub(crate) fn restart(&mut self, topic: &Arc<str>, partition: i32) {
        self.next_epoch += 1;
        if let Some(a) = self.partitions.get_mut(&(topic.clone(), partition)) {
            a.epoch = self.next_epoch;
            a.tracker = OffsetTracker::new();
        }
    }

    /// Records started and not yet committed, over every partition (with
    /// [`counting`](Self::counting); else 0).
    pub(crate) fn uncommitted(&self) -> usize {
        self.partitions.values().map(|a| a.uncommitted.len()).sum()
    }

    /// The tracker of one partition, if assigned.
    pub fn partition(&self, topic: &Arc<str>, partition: i32) -> Option<&OffsetTracker> {
        self.partitions
            .get(&(topic.clone(), partition))
            .map(|a| &a.tracker)
    }
}
