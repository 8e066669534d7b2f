//! What one poll does (`recv`, `recv_batch`, `keep_alive`): it counts for
//! `max.poll.interval.ms`, auto-commits what the calls before it handed out, reports a
//! waiting error, and takes records from the prefetch buffer, moving positions, without
//! an `.await` between taking and moving (so `recv` is cancel-safe).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tracing::warn;

use super::event::ConsumerEvent;
use super::record::{ConsumerRecord, PartitionRecords};
use super::state::{Shared, State};
use super::{group, offsets};
use crate::error::Result;
use crate::types::IsolationLevel;

/// The next record (see [`Consumer::recv`](super::Consumer::recv)).
pub(super) async fn recv(shared: &Arc<Shared>) -> Result<ConsumerRecord> {
    let mut slot: Option<ConsumerRecord> = None;
    wait_until(shared, &mut slot, Option::take).await
}

/// The next record or end of a partition (see
/// [`Consumer::recv_event`](super::Consumer::recv_event)).
pub(super) async fn recv_event(shared: &Arc<Shared>) -> Result<ConsumerEvent> {
    let mut slot: Option<ConsumerEvent> = None;
    wait_until(shared, &mut slot, Option::take).await
}

/// The buffered records of one partition from one fetch (see
/// [`Consumer::recv_batch`](super::Consumer::recv_batch)).
pub(super) async fn recv_batch(shared: &Arc<Shared>) -> Result<PartitionRecords> {
    let mut records = Vec::new();
    wait_until(shared, &mut records, |records| {
        let partition = records.first().map(ConsumerRecord::topic_partition)?;
        Some(PartitionRecords {
            partition,
            records: std::mem::take(records),
        })
    })
    .await
}

/// Takes from the buffer into `out` until `done` has an answer, waiting for fetches
/// in between; fails with the first error a take reports.
async fn wait_until<T: TakeInto, R>(
    shared: &Arc<Shared>,
    out: &mut T,
    done: impl Fn(&mut T) -> Option<R>,
) -> Result<R> {
    loop {
        // Try first: with records buffered (the common case) no waiter is registered
        // with `data_ready` at all.
        if let Some(r) = take(shared, out) {
            r?;
            if let Some(answer) = done(out) {
                return Ok(answer);
            }
        }
        let ready = shared.data_ready.notified();
        tokio::pin!(ready);
        // Registered before the second look, so a fetch landing in between wakes us.
        ready.as_mut().enable();
        if let Some(r) = take(shared, out) {
            r?;
            if let Some(answer) = done(out) {
                return Ok(answer);
            }
        }
        let _polling = WaitingRecv::new(shared);
        wait_for(shared, ready).await;
    }
}

/// Counts a `recv` waiting for records while it lives (see `State::waiting_recvs`); a
/// guard, so a cancelled `recv` is uncounted too. Leaving it refreshes the poll time.
struct WaitingRecv<'a>(&'a Shared);

impl<'a> WaitingRecv<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.lock().waiting_recvs += 1;
        WaitingRecv(shared)
    }
}

impl Drop for WaitingRecv<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.waiting_recvs = state.waiting_recvs.saturating_sub(1);
        state.last_poll = Instant::now();
    }
}

/// Waits for `ready` (records arrived, an error is waiting), or, with
/// `enable.auto.commit`, until the next auto-commit is due: a `recv` that waits long
/// commits meanwhile, as Java's `poll` does while it waits.
async fn wait_for(shared: &Shared, ready: Pin<&mut tokio::sync::futures::Notified<'_>>) {
    if !shared.config.enable_auto_commit || shared.coordinator.is_none() {
        ready.await;
        return;
    }
    let due = tokio::time::Instant::from_std(shared.lock().next_auto_commit);
    tokio::select! {
        () = ready => {}
        () = tokio::time::sleep_until(due) => {}
    }
}

/// With `enable.auto.commit`, once `auto.commit.interval.ms` has passed: commits the
/// positions of every assigned partition, that is of the records handed out by the
/// calls before this one (Java: `maybeAutoCommitOffsetsAsync` at the start of
/// `poll`). Called before this call takes a record, under the state lock; the commit
/// runs in the background (one attempt, in turn after the commits before it, as
/// `commit_async`) and never holds up the records.
fn maybe_auto_commit(shared: &Arc<Shared>, state: &mut State, now: Instant) {
    if !shared.config.enable_auto_commit || now < state.next_auto_commit {
        return;
    }
    state.next_auto_commit = now + shared.config.auto_commit_interval;
    if shared.coordinator.is_none() {
        // No group.id: nothing to commit to (Java refuses this configuration).
        return;
    }
    let subscribed = state.subscription.is_some();
    if state.membership.rebalancing || (subscribed && state.membership.generation < 0) {
        // Not a member now: the revoke before the rebalance commits instead.
        return;
    }
    let offsets = group::positions_of(state, state.assignment.keys());
    if offsets.is_empty() {
        return;
    }
    let turn = shared.commits.join();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let result =
            offsets::commit_in_turn(&shared, &offsets, turn, offsets::Attempts::Once).await;
        if let Err(e) = result {
            warn!(error = %e, "auto-commit failed");
            if e.is_retriable() {
                // Java tries again after retry.backoff.ms rather than a whole interval.
                let mut state = shared.lock();
                state.next_auto_commit = state
                    .next_auto_commit
                    .min(Instant::now() + shared.config.retry_backoff);
            }
        }
    });
}

/// Counts as a poll for `max.poll.interval.ms` without taking a record, as Java's
/// `poll()` does while every partition is paused: for an application that paused its
/// partitions, or holds a record it cannot process yet, and must stay in the group
/// meanwhile (a member that neither calls [`recv`](super::Consumer::recv) nor this for
/// `max.poll.interval.ms` leaves the group). Hands out no record. Fails, as `recv`
/// would, with the error a failed fetch or group operation left for the next poll.
pub(super) fn keep_alive(shared: &Arc<Shared>) -> Result<()> {
    let mut state = shared.lock();
    let now = Instant::now();
    if now.duration_since(state.last_poll) > shared.config.max_poll_interval / 2 {
        // A member that left after a poll timeout rejoins.
        shared.group_wake.notify_one();
    }
    state.last_poll = now;
    maybe_auto_commit(shared, &mut state, now);
    match state.error.take().or_else(|| state.take_no_offset()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Takes records from the buffer into `out`, moving positions, without awaiting
/// anything: one record for `recv`, the rest of one partition's fetch for
/// `recv_batch`. `None` when nothing was buffered.
///
/// The lock is taken once per call and each partition is looked up once per fetch,
/// not per record: the records of a fetch are decoded in a tight loop under the
/// lock, straight into `out`.
fn take(shared: &Arc<Shared>, out: &mut impl TakeInto) -> Option<Result<()>> {
    let mut guard = shared.lock();
    let now = Instant::now();
    if now.duration_since(guard.last_poll) > shared.config.max_poll_interval / 2 {
        shared.group_wake.notify_one();
    }
    guard.last_poll = now;
    // Before this call hands out anything: what earlier calls handed out is processed.
    maybe_auto_commit(shared, &mut guard, now);
    if let Some(e) = guard.error.take() {
        return Some(Err(e));
    }
    // Checked here, when the application polls, not when the lookup answered: a
    // seek made in between wins (Java resolves positions inside `poll`).
    if let Some(e) = guard.take_no_offset() {
        return Some(Err(e));
    }
    if guard.membership.rebalancing {
        return None;
    }
    let state = &mut *guard;
    // An end first: the partition it names has nothing buffered, so it cannot overtake
    // a record of its own, and a busy partition does not hold back the others' ends.
    if out.wants_events() {
        if let Some(topic) = state.take_missing_topic() {
            out.put_event(ConsumerEvent::TopicNotAvailable { topic });
            return Some(Ok(()));
        }
        let read_committed = shared.config.isolation_level == IsolationLevel::ReadCommitted;
        if let Some((partition, offset)) = shared
            .config
            .enable_partition_eof
            .then(|| state.take_eof(read_committed))
            .flatten()
        {
            out.put_event(ConsumerEvent::PartitionEof { partition, offset });
            return Some(Ok(()));
        }
    }
    let mut freed = false;
    let mut i = 0;
    let result = loop {
        let Some(f) = state.buffer.get_mut(i) else {
            break None;
        };
        let ps = state.assignment.get_mut(&f.tp);
        let Some(ps) = ps.filter(|ps| ps.epoch == f.epoch && ps.position.is_some()) else {
            if let Some(f) = state.buffer.remove(i) {
                state.buffered_bytes -= f.bytes;
            }
            freed = true;
            continue;
        };
        if ps.paused {
            i += 1;
            continue;
        }
        let mut position = ps.position.unwrap_or(0);
        let mut taken = false;
        out.reserve(f.records_hint());
        let step = loop {
            match f.next_record(position) {
                Ok(Some(record)) => {
                    position = record.offset() + 1;
                    taken = true;
                    let more = out.put(ConsumerRecord {
                        topic: Arc::clone(&f.topic),
                        partition: f.tp.partition,
                        record,
                        leader_epoch: f.last_epoch.filter(|e| *e >= 0),
                    });
                    if !more {
                        break Ok(false);
                    }
                }
                Ok(None) => break Ok(true),
                Err(e) => break Err(e),
            }
        };
        ps.position = Some(position);
        if step.is_ok() {
            if let Some(e) = f.last_epoch {
                ps.offset_epoch = (e >= 0).then_some(e);
            }
        }
        match step {
            // `out` is full; the fetch may have more.
            Ok(false) => break Some(Ok(())),
            Ok(true) => {
                if f.next_offset > position {
                    ps.position = Some(f.next_offset);
                }
                if let Some(f) = state.buffer.remove(i) {
                    state.buffered_bytes -= f.bytes;
                }
                freed = true;
                if taken {
                    break Some(Ok(()));
                }
            }
            Err(e) => {
                // Stay at the bad offset, as Java does: what is buffered past it is
                // dropped and fetched again from it, so every `recv` reports the error
                // until the application seeks past it. Nothing after it is handed out
                // (it used to be, after one error: the bad batch was skipped silently).
                let tp = f.tp.clone();
                ps.fetch_position = Some(position);
                let mut dropped = 0;
                state.buffer.retain(|b| {
                    let keep = b.tp != tp;
                    if !keep {
                        dropped += b.bytes;
                    }
                    keep
                });
                state.buffered_bytes -= dropped;
                freed = true;
                if taken {
                    // Hand out what was decoded before the bad batch (its position
                    // has moved past them); the error comes with the next call.
                    state.error = Some(e);
                    break Some(Ok(()));
                }
                break Some(Err(e));
            }
        }
    };
    drop(guard);
    if freed {
        shared.fetcher_wake.notify_one();
    }
    result
}

/// Where [`take`] puts records: `recv` takes one, `recv_batch` a whole fetch.
trait TakeInto {
    /// Room for about `n` more records.
    fn reserve(&mut self, n: usize);
    /// Stores `record`; false when no more are wanted.
    fn put(&mut self, record: ConsumerRecord) -> bool;
    /// Whether events other than records are taken too (`recv_event`).
    fn wants_events(&self) -> bool {
        false
    }
    /// Stores an event that is not a record.
    fn put_event(&mut self, _event: ConsumerEvent) {}
}

impl TakeInto for Option<ConsumerEvent> {
    fn reserve(&mut self, _: usize) {}

    #[inline]
    fn put(&mut self, record: ConsumerRecord) -> bool {
        *self = Some(ConsumerEvent::Record(record));
        false
    }

    fn wants_events(&self) -> bool {
        true
    }

    fn put_event(&mut self, event: ConsumerEvent) {
        *self = Some(event);
    }
}

impl TakeInto for Option<ConsumerRecord> {
    fn reserve(&mut self, _: usize) {}

    #[inline]
    fn put(&mut self, record: ConsumerRecord) -> bool {
        *self = Some(record);
        false
    }
}

impl TakeInto for Vec<ConsumerRecord> {
    #[inline]
    fn reserve(&mut self, n: usize) {
        Vec::reserve(self, n);
    }

    #[inline]
    fn put(&mut self, record: ConsumerRecord) -> bool {
        self.push(record);
        true
    }
}
