//! State shared by the [`Consumer`](super::Consumer) handle, the fetcher task and the
//! group task: the assigned partitions with their positions, the prefetch buffer, and a
//! fatal error to hand to the next `recv`. Guarded by one `std` mutex that is never held
//! across an `.await`.

use crate::sync;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;
use tracing::{info, warn};

use super::commit_queue::CommitQueue;
use super::completed_fetch::CompletedFetch;
use super::config::ConsumerConfig;
use super::TopicPartition;
use crate::cluster::coordinator::Coordinator;
use crate::cluster::Cluster;
use crate::cluster::OffsetSpec;
use crate::error::{Error, KafkaCode};

/// Where a partition without a position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The committed offset of the group, else `auto.offset.reset`.
    Committed,
    /// `auto.offset.reset` (after OFFSET_OUT_OF_RANGE).
    Reset,
    /// An explicit seek to an offset spec.
    Spec(OffsetSpec),
}

#[derive(Debug, Clone)]
pub(crate) struct PartitionState {
    /// The offset of the next record `recv` returns; `None` until resolved.
    pub(crate) position: Option<i64>,
    /// Where the next fetch starts: past whatever is buffered, so the fetcher reads
    /// ahead while `recv` works through the buffer. Set together with `position` on
    /// every seek and reset.
    pub(crate) fetch_position: Option<i64>,
    /// The leader epoch of the record batch the position came from (the last batch
    /// consumed, or the committed offset's leader epoch): the epoch validated after a
    /// leader change (KIP-320). `None` after a seek or a reset: no validation then, as in
    /// Java.
    pub(crate) offset_epoch: Option<i32>,
    /// The leader (node id, leader epoch) the position was last checked against; the
    /// epoch goes out as the fetch's `current_leader_epoch`. When metadata names another
    /// one, a position with an `offset_epoch` is validated before fetching again.
    pub(crate) current_leader: Option<(i32, i32)>,
    /// Waiting for OffsetForLeaderEpoch to say whether the log was truncated below the
    /// position (Java: `AWAIT_VALIDATION`): not fetched, nothing handed out.
    pub(crate) validating: bool,
    /// The lookup found no committed offset and `auto.offset.reset` is none: the next
    /// `recv` reports it (Java's `NoOffsetForPartitionException`, thrown from `poll`),
    /// unless a seek gives the partition a position first. Set only for the seek epoch
    /// the lookup was made for, so a seek made while it was out wins.
    pub(crate) no_offset: bool,
    /// How to resolve a missing position.
    pub(crate) start: Start,
    pub(crate) paused: bool,
    /// Bumped on every seek and (re)assignment, so fetches and lookups started before it
    /// are recognised as stale.
    pub(crate) epoch: u64,
    pub(crate) high_watermark: i64,
    pub(crate) last_stable_offset: i64,
    /// The position at which the end of the partition was last reported
    /// (`enable.partition.eof`), so it is reported once per arrival there. Cleared by a
    /// seek or a reset.
    eof_reported: Option<i64>,
    /// After a failed fetch (the leader moved, the broker went away), not fetched again
    /// before this: a backoff, not a tight loop against a broker that cannot answer.
    pub(crate) retry_at: Option<tokio::time::Instant>,
}

impl PartitionState {
    pub(crate) fn new(start: Start, epoch: u64) -> Self {
        PartitionState {
            position: None,
            fetch_position: None,
            offset_epoch: None,
            current_leader: None,
            validating: false,
            no_offset: false,
            start,
            paused: false,
            epoch,
            high_watermark: -1,
            last_stable_offset: -1,
            eof_reported: None,
            retry_at: None,
        }
    }

    /// Moves the position and the fetch position to `offset` (`None`: to be resolved
    /// again), whose record came from a batch of leader epoch `offset_epoch` when known.
    /// Ends a validation: a seek or a reset is trusted as it is, as in Java.
    pub(crate) fn set_position(&mut self, offset: Option<i64>, offset_epoch: Option<i32>) {
        self.position = offset;
        self.fetch_position = offset;
        self.offset_epoch = offset_epoch;
        self.validating = false;
        self.no_offset = false;
        self.eof_reported = None;
    }

    /// The position, when it has reached the end of the partition (the high watermark,
    /// or the last stable offset when `read_committed`) of the latest fetch and that was
    /// not reported yet. The caller checks that nothing of the partition is buffered.
    pub(crate) fn eof_due(&self, read_committed: bool) -> Option<i64> {
        let end = if read_committed {
            self.last_stable_offset
        } else {
            self.high_watermark
        };
        let position = self.position?;
        let due = !self.paused
            && !self.validating
            && end >= 0
            && position >= end
            && self.eof_reported != Some(position);
        due.then_some(position)
    }
}

/// What the group task knows about our membership, for commits.
#[derive(Debug, Clone, Default)]
pub(crate) struct Membership {
    pub(crate) member_id: String,
    pub(crate) generation: i32,
    /// True while a rebalance is under way (records are not handed out).
    pub(crate) rebalancing: bool,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) assignment: BTreeMap<TopicPartition, PartitionState>,
    pub(crate) buffer: VecDeque<CompletedFetch>,
    pub(crate) buffered_bytes: usize,
    /// A failure for the next `recv` (OFFSET_OUT_OF_RANGE with reset none, a fenced
    /// static member, ...).
    pub(crate) error: Option<Error>,
    pub(crate) subscription: Option<Vec<String>>,
    /// Subscribed topics the last metadata check did not find (librdkafka: "Subscribed
    /// topic not available"); each warned about once, when it went missing.
    pub(crate) missing_topics: BTreeSet<String>,
    /// Of those, the ones `recv_event` has not reported yet.
    unreported_missing: BTreeSet<String>,
    pub(crate) membership: Membership,
    pub(crate) last_poll: Instant,
    /// `recv` / `recv_batch` calls waiting for records right now. A member waiting in
    /// `recv` is polling (as Java's `poll` resets the poll timer while it waits), so the
    /// group task never counts that time against `max.poll.interval.ms`.
    pub(crate) waiting_recvs: usize,
    pub(crate) closed: bool,
    pub(crate) next_epoch: u64,
    /// With `enable.auto.commit`, when the next `recv` commits the positions of what
    /// the calls before it handed out (Java's `nextAutoCommitTimer`).
    pub(crate) next_auto_commit: Instant,
}

impl State {
    /// Nothing assigned or subscribed yet; the first auto-commit due at
    /// `next_auto_commit`.
    pub(crate) fn new(next_auto_commit: Instant) -> Self {
        State {
            assignment: BTreeMap::new(),
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            error: None,
            subscription: None,
            missing_topics: BTreeSet::new(),
            unreported_missing: BTreeSet::new(),
            membership: Membership::default(),
            last_poll: Instant::now(),
            waiting_recvs: 0,
            closed: false,
            next_epoch: 0,
            next_auto_commit,
        }
    }

    pub(crate) fn bump(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// Drops buffered records of `tp` (after a seek, pause-independent).
    pub(crate) fn drop_buffered(&mut self, tp: &TopicPartition) {
        let mut freed = 0;
        self.buffer.retain(|f| {
            let keep = &f.tp != tp;
            if !keep {
                freed += f.bytes;
            }
            keep
        });
        self.buffered_bytes -= freed;
    }

    /// Assigns `tp` with no position yet.
    pub(crate) fn add(&mut self, tp: TopicPartition, start: Start) {
        let epoch = self.bump();
        self.assignment
            .insert(tp, PartitionState::new(start, epoch));
    }

    /// Forgets a log truncation of `tp` waiting for `recv`: the application moved the
    /// position (a seek), so it no longer applies.
    pub(crate) fn clear_truncation(&mut self, tp: &TopicPartition) {
        let stale = self
            .error
            .as_ref()
            .and_then(Error::truncation)
            .is_some_and(|t| t.topic == tp.topic && t.partition == tp.partition);
        if stale {
            self.error = None;
        }
    }

    /// The error for partitions the lookup found without a committed offset under
    /// `auto.offset.reset=none` and that still have no position (no seek since), taken:
    /// the lookup, retried every `retry.backoff.ms`, raises it again if it still holds.
    pub(crate) fn take_no_offset(&mut self) -> Option<Error> {
        let mut missing = Vec::new();
        for (tp, ps) in self.assignment.iter_mut() {
            if std::mem::take(&mut ps.no_offset) && ps.position.is_none() {
                missing.push(tp.to_string());
            }
        }
        if missing.is_empty() {
            return None;
        }
        Some(Error::kafka(
            KafkaCode::OffsetOutOfRange,
            format!(
                "{} has no committed offset (or it is out of range) and auto.offset.reset is none",
                missing.join(", ")
            ),
        ))
    }

    /// A partition whose end is due to be reported (see [`PartitionState::eof_due`]) and
    /// that has nothing buffered, marked as reported.
    pub(crate) fn take_eof(&mut self, read_committed: bool) -> Option<(TopicPartition, i64)> {
        let buffer = &self.buffer;
        let (tp, ps) = self.assignment.iter_mut().find(|(tp, ps)| {
            ps.eof_due(read_committed).is_some() && !buffer.iter().any(|f| &f.tp == *tp)
        })?;
        let offset = ps.position?;
        ps.eof_reported = Some(offset);
        Some((tp.clone(), offset))
    }

    /// Records what a metadata check found of the subscribed topics: `missing` are
    /// those it did not find, each with the broker's error code for it (`None`: the
    /// topic was absent from the answer). Warns once for a topic that went missing and
    /// says when it came back, not on every check. True when a topic went missing (a
    /// `recv_event` has something to report).
    pub(crate) fn set_missing_topics(&mut self, missing: Vec<(String, Option<KafkaCode>)>) -> bool {
        let now: BTreeSet<String> = missing.iter().map(|(t, _)| t.clone()).collect();
        let mut news = false;
        for (topic, code) in missing {
            if !self.missing_topics.contains(&topic) {
                news = true;
                self.unreported_missing.insert(topic.clone());
                let code = code.unwrap_or(KafkaCode::UnknownTopicOrPartition);
                warn!(
                    %topic,
                    "Subscribed topic not available: {topic}: {code}: {}",
                    code.description()
                );
            }
        }
        for topic in self.missing_topics.difference(&now) {
            info!(%topic, "subscribed topic is available again");
        }
        self.unreported_missing.retain(|t| now.contains(t));
        self.missing_topics = now;
        news
    }

    /// A missing subscribed topic `recv_event` has not reported yet, taken.
    pub(crate) fn take_missing_topic(&mut self) -> Option<String> {
        self.unreported_missing.pop_first()
    }

    pub(crate) fn remove(&mut self, tp: &TopicPartition) {
        self.assignment.remove(tp);
        self.drop_buffered(tp);
    }
}

pub(crate) struct Shared {
    pub(crate) config: ConsumerConfig,
    pub(crate) cluster: Cluster,
    pub(crate) state: Mutex<State>,
    /// Wakes `recv`: records arrived or an error is waiting.
    pub(crate) data_ready: Notify,
    /// Wakes the fetcher: assignment, positions or pauses changed, or buffer space freed.
    pub(crate) fetcher_wake: Notify,
    /// Wakes the group task: subscription changed, a poll after a poll timeout, close.
    pub(crate) group_wake: Notify,
    pub(crate) coordinator: Option<Coordinator>,
    /// The order of the group's offset commits from this consumer (see [`CommitQueue`]).
    pub(crate) commits: CommitQueue,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("group_id", &self.config.group_id)
            .finish()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    /// Hands `err` to the next `recv`.
    pub(crate) fn fail(&self, err: Error) {
        self.lock().error = Some(err);
        self.wake_recv();
    }

    /// Sets the position of an assigned partition (a seek); false when `tp` is not
    /// assigned.
    pub(crate) fn seek_to(&self, tp: &TopicPartition, offset: i64) -> bool {
        {
            let mut state = self.lock();
            if !state.assignment.contains_key(tp) {
                return false;
            }
            let epoch = state.bump();
            state.drop_buffered(tp);
            state.clear_truncation(tp);
            if let Some(ps) = state.assignment.get_mut(tp) {
                ps.set_position(Some(offset), None);
                ps.epoch = epoch;
            }
        }
        self.fetcher_wake.notify_one();
        true
    }

    /// Wakes `recv`: records or an error are waiting.
    pub(crate) fn wake_recv(&self) {
        self.data_ready.notify_waiters();
        self.data_ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn at(position: i64, high_watermark: i64, last_stable_offset: i64) -> PartitionState {
        let mut ps = PartitionState::new(Start::Committed, 1);
        ps.set_position(Some(position), None);
        ps.high_watermark = high_watermark;
        ps.last_stable_offset = last_stable_offset;
        ps
    }

    #[test]
    fn the_end_is_the_high_watermark_or_under_read_committed_the_last_stable_offset() {
        assert_eq!(at(10, 10, 10).eof_due(false), Some(10));
        assert_eq!(at(9, 10, 10).eof_due(false), None);
        // An open transaction: the high watermark is ahead of the last stable offset.
        assert_eq!(at(7, 10, 7).eof_due(false), None);
        assert_eq!(at(7, 10, 7).eof_due(true), Some(7));
        // No fetch answered yet: the end is unknown.
        assert_eq!(at(0, -1, -1).eof_due(false), None);
        assert_eq!(
            PartitionState::new(Start::Committed, 1).eof_due(false),
            None
        );
    }

    #[test]
    fn the_end_is_due_once_per_position_and_again_after_a_seek() {
        let mut ps = at(10, 10, 10);
        ps.eof_reported = Some(10);
        assert_eq!(ps.eof_due(false), None);
        // More records came and were handed out.
        ps.high_watermark = 12;
        ps.position = Some(12);
        assert_eq!(ps.eof_due(false), Some(12));
        ps.eof_reported = Some(12);
        ps.set_position(Some(12), None);
        assert_eq!(ps.eof_due(false), Some(12), "a seek re-arms the end");
        ps.paused = true;
        assert_eq!(
            ps.eof_due(false),
            None,
            "a paused partition reports nothing"
        );
    }

    /// Counts WARN events, as a `tracing` subscriber.
    struct WarnCounter(Arc<AtomicUsize>);

    impl tracing::Subscriber for WarnCounter {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn a_missing_topic_is_warned_about_once_until_it_comes_back() {
        let warns = Arc::new(AtomicUsize::new(0));
        let counter = WarnCounter(Arc::clone(&warns));
        let mut state = State::new(Instant::now());
        let missing = |topics: &[&str]| {
            topics
                .iter()
                .map(|t| (t.to_string(), None))
                .collect::<Vec<_>>()
        };
        let count = || warns.load(Ordering::Relaxed);
        tracing::subscriber::with_default(counter, || {
            assert!(state.set_missing_topics(missing(&["a", "b"])));
            assert_eq!(count(), 2);
            assert_eq!(state.take_missing_topic().as_deref(), Some("a"));
            // Every metadata check after that: no new warning, no new event.
            assert!(!state.set_missing_topics(missing(&["a", "b"])));
            assert!(!state.set_missing_topics(missing(&["a", "b"])));
            assert_eq!(count(), 2);
            // b came back before its event was taken: no event for it.
            assert!(!state.set_missing_topics(missing(&["a"])));
            assert_eq!(state.missing_topics.iter().collect::<Vec<_>>(), ["a"]);
            assert_eq!(state.take_missing_topic(), None);
            // Gone again after it had come back: warned and reported again.
            assert!(state.set_missing_topics(missing(&["a", "b"])));
            assert_eq!(count(), 3);
            assert_eq!(state.take_missing_topic().as_deref(), Some("b"));
        });
    }
}
