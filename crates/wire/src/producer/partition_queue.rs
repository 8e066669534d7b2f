//! The queue of one partition: its batches, its in-flight count and its idempotence
//! sequence state, with the producer id and epoch those sequences belong to. The sender
//! and the response handling go through its methods; nothing else writes its state.
//!
//! Epoch bumps (as Java's `TransactionManager` with its `TxnPartitionEntry`): a batch,
//! once stamped, keeps its producer id, epoch and sequence for every resend. A bump
//! rewrites the sequences of the partitions that caused it only
//! ([`rewrite_sequences`](PartitionQueue::rewrite_sequences)); every other partition
//! finishes its stamped batches under its old epoch (the broker still recognises a
//! resend of a batch it has) and moves to the new one, from sequence 0, once it has no
//! stamped batch left. No new batch is drained before that: it would start at sequence
//! 0 while older batches of the partition may still be written.

use std::collections::VecDeque;

use super::batch::{Batch, ProducerIdEpoch, Stamp};
use crate::error::Result;
use crate::records::rewrite_producer_state;

/// Batches of one partition in flight at most with idempotence (the broker keeps the
/// last five per producer for duplicate detection).
const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// The queue of one partition, with its idempotence sequence state.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    /// Oldest first; the last one may be open. Batches sent and waiting for a retry are
    /// put back at their place (by id), so order is kept.
    pub(crate) batches: VecDeque<Batch>,
    /// Batches of this partition in requests not yet answered.
    in_flight: usize,
    /// The producer id and epoch the sequences below count under; `None` before the
    /// first stamp and after a rewrite.
    producer: Option<ProducerIdEpoch>,
    /// Next sequence to assign.
    next_sequence: i32,
    /// The sequence the broker expects next: one past the last acknowledged record.
    acked_sequence: i32,
    /// A stamped batch is being resent: send one at a time until the queue is past the
    /// batches that were in flight (as the Java client does).
    retrying: bool,
    /// The broker acknowledged a batch of this partition under `producer`.
    confirmed: bool,
    /// This partition's sequences are broken: the next epoch bump rewrites them from 0.
    rewrite: bool,
}

impl PartitionQueue {
    /// Puts a batch that must be resent back at its place: before every batch created
    /// after it (and, for parts of a split batch, before the parts after it).
    pub(crate) fn requeue(&mut self, batch: Batch) {
        let key = (batch.id, &batch.split_path);
        let at = self
            .batches
            .iter()
            .position(|b| (b.id, &b.split_path) > key)
            .unwrap_or(self.batches.len());
        self.batches.insert(at, batch);
    }

    /// Batches of this partition in requests not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether the head batch may be sent now as far as idempotence goes, with `current`
    /// the producer's id and epoch. A partition on an older epoch sends its stamped
    /// batches (one at a time) and no new one until they are done; until the broker
    /// confirmed a first batch, and while retrying, one batch at a time (a broker that
    /// does not know our producer id on a partition accepts any sequence, so a later
    /// batch could land before a first one that failed).
    pub(crate) fn may_send_head(&self, current: ProducerIdEpoch) -> bool {
        let Some(head) = self.batches.front() else {
            return false;
        };
        let stale = self.producer.is_some_and(|p| p != current);
        if stale && head.stamp.is_none() && self.has_stamped() {
            return false;
        }
        let one_at_a_time = self.retrying || !self.confirmed || stale;
        !(self.in_flight >= MAX_IN_FLIGHT_IDEMPOTENT || (one_at_a_time && self.in_flight > 0))
    }

    /// Any batch stamped and not yet acknowledged or failed: in flight or queued.
    fn has_stamped(&self) -> bool {
        self.in_flight > 0 || self.batches.iter().any(|b| b.stamp.is_some())
    }

    /// Finishes the batch and, with `current`, gives it a sequence (first send only: a
    /// resend keeps its stamp, epoch included) and writes producer id, epoch and
    /// sequence into its header. A partition whose sequences count under another id or
    /// epoch (and has nothing stamped left, see [`may_send_head`](Self::may_send_head))
    /// starts again at 0 under `current`.
    pub(crate) fn stamp(
        &mut self,
        batch: &mut Batch,
        current: Option<ProducerIdEpoch>,
    ) -> Result<()> {
        let payload = batch.finish()?.clone();
        let Some(current) = current else {
            return Ok(());
        };
        if batch.stamp.is_some() {
            return Ok(());
        }
        if self.producer != Some(current) {
            self.start_over(Some(current));
        }
        let sequence = self.next_sequence;
        let count = i32::try_from(batch.record_count()).unwrap_or(i32::MAX);
        let stamped = rewrite_producer_state(&payload, current.id, current.epoch, sequence)?;
        // Sequences wrap at i32::MAX, as the broker expects.
        self.next_sequence = sequence.wrapping_add(count) & i32::MAX;
        batch.payload = Some(stamped);
        batch.stamp = Some(Stamp {
            producer: current,
            sequence,
        });
        Ok(())
    }

    /// A batch of this partition was put in a request.
    pub(crate) fn on_sent(&mut self) {
        self.in_flight += 1;
    }

    /// A request with a batch of this partition came back (or failed).
    pub(crate) fn on_response(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The broker acknowledged `batch` (or reported it a duplicate).
    pub(crate) fn on_ack(&mut self, batch: &Batch) {
        if let Some(stamp) = batch.stamp.filter(|s| Some(s.producer) == self.producer) {
            let count = i32::try_from(batch.record_count()).unwrap_or(i32::MAX);
            let end = stamp.sequence.wrapping_add(count) & i32::MAX;
            // Only forward: a resent batch may be acknowledged (as a duplicate) after a
            // later one.
            let ahead = end.wrapping_sub(self.acked_sequence) & i32::MAX;
            if ahead > 0 && ahead < 1 << 30 {
                self.acked_sequence = end;
            }
            self.confirmed = true;
        }
        if self.batches.front().is_none_or(|b| b.stamp.is_none()) {
            self.retrying = false;
        }
    }

    /// Whether `batch` is the first unacknowledged one of the partition (or behind what
    /// the broker acknowledged): a sequence error on it cannot be repaired by resending.
    pub(crate) fn is_first_unacked(&self, batch: &Batch) -> bool {
        batch
            .stamp
            .filter(|s| Some(s.producer) == self.producer)
            .is_some_and(|s| {
                let behind = self.acked_sequence.wrapping_sub(s.sequence);
                (0..1 << 30).contains(&behind)
            })
    }

    /// Puts `batch` back for a resend after its backoff.
    pub(crate) fn on_retry(&mut self, batch: Batch) {
        if batch.stamp.is_some() {
            self.retrying = true;
        }
        self.requeue(batch);
    }

    /// This partition caused an epoch bump (a sequence error on its first unacknowledged
    /// batch, an unknown producer id, a stamped batch that failed for good or was split):
    /// the bump rewrites its sequences.
    pub(crate) fn request_rewrite(&mut self) {
        self.rewrite = true;
    }

    /// Whether [`request_rewrite`](Self::request_rewrite) was called since the last
    /// rewrite.
    pub(crate) fn rewrite_requested(&self) -> bool {
        self.rewrite
    }

    /// The epoch bump for a partition that caused it: every queued batch loses its stamp
    /// and is stamped again, from sequence 0, under the new epoch. Call with nothing of
    /// the partition in flight.
    pub(crate) fn rewrite_sequences(&mut self) {
        self.start_over(None);
        for b in self.batches.iter_mut() {
            b.stamp = None;
        }
    }

    fn start_over(&mut self, producer: Option<ProducerIdEpoch>) {
        self.producer = producer;
        self.next_sequence = 0;
        self.acked_sequence = 0;
        self.retrying = false;
        self.confirmed = false;
        self.rewrite = false;
    }
}
