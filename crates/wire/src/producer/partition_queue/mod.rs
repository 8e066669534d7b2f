//! The queue of one partition: its batches, its in-flight count and its idempotence
//! sequence state, with the producer id and epoch those sequences belong to. Its fields
//! are private; the events of a partition are its methods: a record is appended
//! ([`try_append`](PartitionQueue::try_append), [`push_new`](PartitionQueue::push_new)),
//! batches expire ([`expire`](PartitionQueue::expire)), the head is drained when ready
//! ([`head`](PartitionQueue::head), [`drain_ready`](PartitionQueue::drain_ready)), a
//! response acknowledges a batch ([`on_ack`](PartitionQueue::on_ack)) or fails it
//! ([`on_error`](PartitionQueue::on_error): retry, split or fail), the queue is failed
//! ([`take_queued`](PartitionQueue::take_queued)), an epoch bump rewrites it
//! ([`rewrite_sequences`](PartitionQueue::rewrite_sequences)).
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
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::ack::Ack;
use super::batch::{Batch, ProducerIdEpoch, RecordParts, Stamp};
use super::config::ProducerConfig;
use crate::error::{Error, KafkaCode, Result};
use crate::records::rewrite_producer_state;

/// Batches of one partition in flight at most with idempotence (the broker keeps the
/// last five per producer for duplicate detection).
const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// What the sender's drain asks of every partition's head batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainRules {
    pub(crate) now: Instant,
    /// `linger.ms`.
    pub(crate) linger: Duration,
    /// Send without lingering: the producer is closing, or a `send` waits for memory.
    pub(crate) urgent: bool,
    /// Batches with a lower id are flushed: send without lingering.
    pub(crate) flush_upto: u64,
    /// The producer id and epoch to stamp with: `Some` for an idempotent producer.
    pub(crate) producer: Option<ProducerIdEpoch>,
    /// Without idempotence and with `max.in.flight.requests.per.connection=1`: one
    /// batch of the partition in flight at a time.
    pub(crate) one_in_flight: bool,
}

/// Where a partition's head batch stands for the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// Nothing queued.
    Empty,
    /// Waiting for its retry backoff or its linger to pass at this instant.
    Until(Instant),
    /// Held back by the ordering rules until a response comes.
    Blocked,
    /// May be sent now; its size in bytes.
    Ready { size: usize },
}

/// What [`PartitionQueue::on_error`] did with a batch the broker or the network failed.
#[derive(Debug)]
pub(crate) enum OnError {
    /// Too large for the broker: split into `1 + more` batches carrying `id`, queued at
    /// its place.
    Split { id: u64, more: usize },
    /// Queued again for a resend after its backoff. `bump`: the producer's epoch must be
    /// bumped first (this partition's sequences are rewritten then).
    Retry { bump: bool },
    /// Failed for good with `error`. `bump`: its sequences left a gap in the partition,
    /// an epoch bump must follow.
    Fail {
        batch: Box<Batch>,
        error: Error,
        bump: bool,
    },
}

/// Errors that call for an epoch bump when the batch is the first unacknowledged one of
/// its partition (OUT_OF_ORDER_SEQUENCE_NUMBER), or always (UNKNOWN_PRODUCER_ID).
fn sequence_error(err: &Error) -> Option<KafkaCode> {
    match err.kafka_code() {
        Some(c @ (KafkaCode::OutOfOrderSequenceNumber | KafkaCode::UnknownProducerId)) => Some(c),
        _ => None,
    }
}

/// The queue of one partition, with its idempotence sequence state.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    /// Oldest first; the last one may be open. Batches sent and waiting for a retry are
    /// put back at their place (by id), so order is kept.
    batches: VecDeque<Batch>,
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
    fn requeue(&mut self, batch: Batch) {
        let key = (batch.id, &batch.split_path);
        let at = self
            .batches
            .iter()
            .position(|b| (b.id, &b.split_path) > key)
            .unwrap_or(self.batches.len());
        self.batches.insert(at, batch);
    }

    /// Appends `record` to the open (last) batch if it fits there, its outcome going to
    /// `ack`; `Ok(full)`: whether the batch is full now; `Err(ack)`: a new batch is
    /// needed.
    pub(crate) fn try_append(
        &mut self,
        record: &RecordParts<'_>,
        ack: Ack,
    ) -> Result<std::result::Result<bool, Ack>> {
        match self.batches.back_mut() {
            Some(batch) => batch.try_append(record, ack),
            None => Ok(Err(ack)),
        }
    }

    /// Queues a new open batch behind the others, closing the one before; whether that
    /// one was still open (not sent) until now.
    pub(crate) fn push_new(&mut self, batch: Batch) -> bool {
        let mut closed_previous = false;
        if let Some(open) = self.batches.back_mut() {
            closed_previous = open.payload.is_none();
            open.closed = true;
        }
        self.batches.push_back(batch);
        closed_previous
    }

    /// The queued batches, oldest first.
    #[cfg(test)]
    pub(crate) fn batches(&self) -> impl Iterator<Item = &Batch> {
        self.batches.iter()
    }

    /// Takes the batches whose delivery timeout (`timeout` from their creation) passed by
    /// `now`, for the caller to fail; with the earliest deadline of those left. A stamped
    /// batch that expires leaves a gap in the sequences: the partition asks for a
    /// rewrite.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        timeout: Duration,
    ) -> (Vec<Batch>, Option<Instant>) {
        // Batches are queued in creation order (ids are given as they are created, and
        // a retried or split batch goes back in its place): they expire from the front,
        // and the first that has not expired says when the next will. The sender asks
        // every partition on every drain, so this looks no further than that.
        let mut expired = Vec::new();
        while let Some(front) = self.batches.front() {
            let deadline = front.created + timeout;
            if deadline > now {
                return (expired, Some(deadline));
            }
            if let Some(b) = self.batches.pop_front() {
                if b.stamp.is_some() {
                    self.rewrite = true;
                }
                expired.push(b);
            }
        }
        (expired, None)
    }

    /// Where the head batch stands under `rules`: waiting for its backoff or linger,
    /// held back by the ordering rules, or ready.
    pub(crate) fn head(&self, rules: &DrainRules) -> Head {
        let Some(head) = self.batches.front() else {
            return Head::Empty;
        };
        if let Some(at) = head.retry_at.filter(|&at| at > rules.now) {
            return Head::Until(at);
        }
        let lingered = head.created + rules.linger;
        let ready =
            head.closed || rules.urgent || head.id < rules.flush_upto || lingered <= rules.now;
        if !ready {
            return Head::Until(lingered);
        }
        if rules
            .producer
            .is_some_and(|current| !self.may_send_head(current))
        {
            return Head::Blocked;
        }
        // Without idempotence, max.in.flight.requests.per.connection=1 is how order is
        // kept: the limit per connection alone does not hold across a leader change (the
        // next batch would go to the new leader while the previous one is still in
        // flight to the old). Java mutes the partition.
        if rules.producer.is_none() && rules.one_in_flight && self.in_flight > 0 {
            return Head::Blocked;
        }
        Head::Ready { size: head.size() }
    }

    /// Takes the head batch for a request: finished, stamped with `producer` (see
    /// [`stamp`](Self::stamp)) and counted in flight. Call after [`head`](Self::head)
    /// said it is ready. A batch that cannot be finished or stamped comes back with the
    /// error, to be failed.
    #[allow(clippy::type_complexity)]
    pub(crate) fn drain_ready(
        &mut self,
        producer: Option<ProducerIdEpoch>,
    ) -> Option<std::result::Result<Batch, (Batch, Error)>> {
        let mut batch = self.batches.pop_front()?;
        if let Err(e) = self.stamp(&mut batch, producer) {
            return Some(Err((batch, e)));
        }
        batch.attempts += 1;
        batch.retry_at = None;
        self.in_flight += 1;
        Some(Ok(batch))
    }

    /// Takes every queued (not in-flight) batch, for the caller to fail: the producer
    /// closes, or the transaction is lost or aborted.
    pub(crate) fn take_queued(&mut self) -> Vec<Batch> {
        self.batches.drain(..).collect()
    }

    /// Takes every batch but the open one (micro-benchmarks: no sender drains them).
    pub(crate) fn take_closed(&mut self) -> Vec<Batch> {
        let keep = usize::from(!self.batches.is_empty());
        self.batches.drain(..self.batches.len() - keep).collect()
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
    fn stamp(&mut self, batch: &mut Batch, current: Option<ProducerIdEpoch>) -> Result<()> {
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

    /// The broker acknowledged `batch` (or reported it a duplicate), drained from this
    /// queue; the caller completes it.
    pub(crate) fn on_ack(&mut self, batch: &Batch) {
        self.in_flight = self.in_flight.saturating_sub(1);
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
    fn is_first_unacked(&self, batch: &Batch) -> bool {
        batch
            .stamp
            .filter(|s| Some(s.producer) == self.producer)
            .is_some_and(|s| {
                let behind = self.acked_sequence.wrapping_sub(s.sequence);
                (0..1 << 30).contains(&behind)
            })
    }

    /// A request with `batch`, drained from this queue, failed with `error` (the
    /// broker's code for the partition, or the request's failure) at `now`. Decides as
    /// Java's `Sender.completeBatch`:
    /// - too large for the broker (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE) with more
    ///   than one record: split and resend the parts (Java: `splitAndReenqueue`); with
    ///   idempotence the parts take the batch's sequence range (see [`Batch::split`]),
    ///   the batches behind keep theirs, no epoch bump;
    /// - retriable, within `delivery.timeout.ms` and `retries`: queued again at its
    ///   place after its backoff. With idempotence a sequence error on the first
    ///   unacknowledged batch, or UNKNOWN_PRODUCER_ID, cannot be repaired by resending:
    ///   the partition asks for the epoch bump that rewrites its sequences;
    /// - otherwise failed (a timeout when the delivery timeout passed); a stamped
    ///   batch's gap would stall every later batch of the partition: an epoch bump
    ///   rewrites it.
    pub(crate) fn on_error(
        &mut self,
        mut batch: Batch,
        error: Error,
        config: &ProducerConfig,
        now: Instant,
    ) -> OnError {
        self.in_flight = self.in_flight.saturating_sub(1);
        let too_large = matches!(
            error.kafka_code(),
            Some(KafkaCode::MessageTooLarge | KafkaCode::RecordListTooLarge)
        );
        if too_large && batch.record_count() > 1 && batch.created + config.delivery_timeout > now {
            match batch.split(config.batch_size, config.compression) {
                Ok(parts) => {
                    debug!(topic = %parts[0].topic, partition = parts[0].partition, parts = parts.len(), "batch too large for the broker, split");
                    let (id, more) = (parts[0].id, parts.len() - 1);
                    for mut part in parts {
                        part.last_error = Some(error.clone());
                        self.on_retry(part);
                    }
                    return OnError::Split { id, more };
                }
                Err(unsplit) => batch = *unsplit,
            }
        }
        let idempotent = config.idempotent();
        let sequence_error = idempotent.then(|| sequence_error(&error)).flatten();
        // At the head, or behind what the broker already acknowledged: resending cannot
        // fix it, only a new epoch can.
        let bump = match sequence_error {
            Some(KafkaCode::UnknownProducerId) => true,
            Some(_) => self.is_first_unacked(&batch),
            None => false,
        };
        let retriable = bump || sequence_error.is_some() || error.is_retriable();
        let expired = batch.created + config.delivery_timeout <= now;
        let out_of_retries = batch.attempts > config.retries;
        if retriable && !expired && !out_of_retries {
            debug!(topic = %batch.topic, partition = batch.partition, attempt = batch.attempts, error = %error, "produce retried");
            batch.retry_at = Some(now + config.retry_backoff_for(batch.attempts));
            batch.last_error = Some(error);
            self.on_retry(batch);
            if bump {
                self.rewrite = true;
            }
            return OnError::Retry { bump };
        }
        let error = if expired {
            Error::timeout(
                format!("delivering to {}-{}", batch.topic, batch.partition),
                config.delivery_timeout,
            )
            .context(format!("last error: {error}"))
        } else {
            error
        };
        warn!(topic = %batch.topic, partition = batch.partition, records = batch.record_count(), error = %error, "produce failed");
        let bump = idempotent && batch.stamp.is_some();
        if bump {
            self.rewrite = true;
        }
        OnError::Fail {
            batch: Box::new(batch),
            error,
            bump,
        }
    }

    /// Puts `batch` back for a resend after its backoff.
    fn on_retry(&mut self, batch: Batch) {
        if batch.stamp.is_some() {
            self.retrying = true;
        }
        self.requeue(batch);
    }

    /// Whether this partition caused an epoch bump since its last rewrite (a sequence
    /// error on its first unacknowledged batch, an unknown producer id, a stamped batch
    /// that expired or failed for good): the bump rewrites its sequences.
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

#[cfg(test)]
mod tests;
