//! The accumulator: per-partition queues of batches. Records are encoded in place into
//! the open (last) batch of their partition with the `records` encoder; a batch is
//! closed when the next record does not fit in `batch.size`.
//!
//! Memory: every batch holds a permit of the producer's `buffer.memory` semaphore for the
//! bytes its buffer has room for, released when the batch is dropped (delivered or
//! failed). A new batch takes [`INITIAL_RESERVATION`] (or its first record, if larger)
//! and grows as records are appended, doubling up to `batch.size`, while memory is
//! free; when it is not, the batch closes. So the bytes of buffered batches never exceed
//! `buffer.memory`, and `send` waits (up to `max.block.ms`) for a new batch's permits:
//! that is the backpressure. Sizes are counted before compression, an upper bound.
//!
//! Java's producer takes all of `batch.size` for every batch. With many partitions that
//! caps how many can have a batch open (32 MiB holds 512 batches of 64 KiB), and beyond
//! it every send waits for a delivery; growing instead lets the memory go where the
//! records are.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::OwnedSemaphorePermit;

use super::ack::Ack;
use super::batch::Batch;
pub(crate) use super::batch::RecordParts;
use super::partition_queue::PartitionQueue;
use crate::error::Result;
use crate::records::{BatchOptions, Compression, BATCH_HEADER_LEN};

/// The `buffer.memory` a new batch takes at first (unless `batch.size` or its first
/// record says otherwise); it grows from there.
pub(crate) const INITIAL_RESERVATION: usize = 4096;

/// What an append did, for the sender's wake-up and the partitioner.
#[derive(Debug)]
pub(crate) struct Appended {
    /// A new batch was opened (the sender should time its linger).
    pub(crate) new_batch: bool,
    /// A batch was closed (it is ready; sticky partitioners move on): the new record's
    /// own batch is full, or the record did not fit in the open one.
    pub(crate) batch_closed: bool,
}

/// All partition queues of a producer.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    /// Looked up twice per record: a fast hasher (topic names are the application's,
    /// not an attacker's).
    pub(crate) topics: HashMap<String, Vec<PartitionQueue>, foldhash::fast::RandomState>,
    next_batch_id: u64,
    /// Ids of batches not yet delivered or failed, with how many batches carry the id
    /// (more than one after a split).
    incomplete: BTreeMap<u64, usize>,
    /// Batches with an id below this are ready regardless of linger (flush).
    pub(crate) flush_upto: u64,
    pub(crate) batch_size: usize,
    pub(crate) compression: Compression,
    /// New batches carry the transactional attribute (a transactional producer).
    pub(crate) transactional: bool,
}

impl Accumulator {
    pub(crate) fn new(batch_size: usize, compression: Compression) -> Self {
        Accumulator {
            batch_size,
            compression,
            ..Accumulator::default()
        }
    }

    /// The memory a new batch for this record reserves at first.
    pub(crate) fn batch_reservation(&self, record: &RecordParts<'_>) -> usize {
        let record = BATCH_HEADER_LEN + record.size_bound();
        self.batch_limit(record)
            .min(record.max(INITIAL_RESERVATION))
    }

    /// The most a batch whose first record takes `record` bytes may hold.
    fn batch_limit(&self, record: usize) -> usize {
        self.batch_size.max(record)
    }

    pub(crate) fn queue_mut(&mut self, topic: &str, partition: i32) -> &mut PartitionQueue {
        let index = usize::try_from(partition).unwrap_or(0);
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_string(), Vec::new());
        }
        let queues = self
            .topics
            .get_mut(topic)
            .unwrap_or_else(|| unreachable!("inserted above"));
        if queues.len() <= index {
            queues.resize_with(index + 1, PartitionQueue::default);
        }
        &mut queues[index]
    }

    /// Appends to the open batch of the partition if the record fits there, its outcome
    /// going to `ack`; `Err(ack)` when a new batch (and memory for it) is needed.
    pub(crate) fn try_append(
        &mut self,
        topic: &str,
        partition: i32,
        record: &RecordParts<'_>,
        ack: Ack,
    ) -> Result<std::result::Result<Appended, Ack>> {
        let appended = self.queue_mut(topic, partition).try_append(record, ack)?;
        Ok(appended.map(|full| Appended {
            new_batch: false,
            batch_closed: full,
        }))
    }

    /// Opens a new batch holding `memory` and appends the record to it, its outcome going
    /// to `ack`.
    pub(crate) fn append_new(
        &mut self,
        topic: &str,
        partition: i32,
        record: &RecordParts<'_>,
        ack: Ack,
        memory: OwnedSemaphorePermit,
    ) -> Result<Appended> {
        let id = self.next_batch_id;
        let options = BatchOptions {
            compression: self.compression,
            transactional: self.transactional,
            ..BatchOptions::default()
        };
        let limit = self.batch_limit(BATCH_HEADER_LEN + record.size_bound());
        let (batch, full) = Batch::open(id, topic, partition, options, record, ack, memory, limit)?;
        self.next_batch_id += 1;
        self.incomplete.insert(id, 1);
        let closed_previous = self.queue_mut(topic, partition).push_new(batch);
        Ok(Appended {
            new_batch: true,
            batch_closed: full || closed_previous,
        })
    }

    /// The id the next batch will get: a flush waits for every batch below it.
    pub(crate) fn next_batch_id(&self) -> u64 {
        self.next_batch_id
    }

    /// Whether every batch created before `id` is delivered or failed.
    pub(crate) fn done_before(&self, id: u64) -> bool {
        self.incomplete
            .first_key_value()
            .is_none_or(|(&first, _)| first >= id)
    }

    /// `more` extra batches now carry `id` (a batch was split).
    pub(crate) fn track_more(&mut self, id: u64, more: usize) {
        *self.incomplete.entry(id).or_default() += more;
    }

    /// A batch with `id` is delivered or failed.
    pub(crate) fn untrack(&mut self, id: u64) {
        if let Some(n) = self.incomplete.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.incomplete.remove(&id);
            }
        }
    }

    /// True when no batch is buffered or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.incomplete.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::error::Error;
    use crate::producer::partition_queue::OnError;
    use crate::producer::{Delivery, ProducerConfig};
    use futures::FutureExt;

    fn parts(value: &[u8]) -> RecordParts<'_> {
        RecordParts {
            timestamp: 1_700_000_000_000,
            key: Some(b"k"),
            value: Some(value),
            headers: &[],
        }
    }

    /// Appends like `Producer::send` does, without waiting: `None` when memory is out.
    fn append(
        acc: &mut Accumulator,
        memory: &Arc<Semaphore>,
        p: i32,
        value: &[u8],
    ) -> Option<(Appended, Delivery)> {
        let record = parts(value);
        let (ack, delivery) = Ack::channel();
        let ack = match acc.try_append("t", p, &record, ack).unwrap() {
            Ok(a) => return Some((a, delivery)),
            Err(ack) => ack,
        };
        let need = u32::try_from(acc.batch_reservation(&record)).unwrap();
        let permit = Arc::clone(memory).try_acquire_many_owned(need).ok()?;
        Some((
            acc.append_new("t", p, &record, ack, permit).unwrap(),
            delivery,
        ))
    }

    #[test]
    fn batches_fill_to_batch_size_then_close() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(1024, Compression::None);
        let value = [7u8; 100];
        let (first, _) = append(&mut acc, &memory, 0, &value).unwrap();
        assert!(first.new_batch && !first.batch_closed);
        let mut closed = 0;
        for _ in 0..20 {
            let (a, _) = append(&mut acc, &memory, 0, &value).unwrap();
            closed += usize::from(a.batch_closed);
        }
        let queue = acc.queue_mut("t", 0);
        let queued = queue.batches().count();
        assert!(queued >= 2);
        assert!(closed >= 1);
        for b in queue.batches().take(queued - 1) {
            assert!(b.closed);
            assert!(b.size() <= 1024, "{}", b.size());
        }
        assert_eq!(acc.incomplete.len(), queued);
        let ids: Vec<u64> = acc.queue_mut("t", 0).batches().map(|b| b.id).collect();
        for id in ids {
            acc.untrack(id);
        }
        assert!(acc.is_empty());
    }

    #[test]
    fn memory_bounds_what_is_buffered_and_comes_back_on_drop() {
        let memory = Arc::new(Semaphore::new(4096));
        let mut acc = Accumulator::new(1024, Compression::None);
        let value = [1u8; 200];
        let mut appended = 0;
        // Spread over partitions: every partition's first record opens a 1 KiB batch.
        for p in 0..10 {
            if append(&mut acc, &memory, p, &value).is_some() {
                appended += 1;
            }
        }
        assert_eq!(appended, 4, "4 KiB of memory holds four 1 KiB batches");
        assert_eq!(memory.available_permits(), 0);
        let batch = acc.queue_mut("t", 0).drain_ready(None).unwrap().unwrap();
        batch.fail(&Error::producer_closed("test"));
        assert_eq!(memory.available_permits(), 1024);
    }

    #[test]
    fn batches_take_memory_as_they_grow_and_close_when_it_runs_out() {
        // Room for one whole batch: at batch.size apiece only one partition could have
        // a batch; growing, ten can.
        let memory = Arc::new(Semaphore::new(64 * 1024));
        let mut acc = Accumulator::new(64 * 1024, Compression::None);
        let value = [3u8; 100];
        for p in 0..10 {
            let (a, _) = append(&mut acc, &memory, p, &value).unwrap();
            assert!(a.new_batch);
        }
        assert_eq!(
            memory.available_permits(),
            64 * 1024 - 10 * INITIAL_RESERVATION
        );
        // Partition 0 grows until the memory is gone, then its batch closes.
        let mut records = 1;
        while acc
            .try_append("t", 0, &parts(&value), Ack::channel().0)
            .unwrap()
            .is_ok()
        {
            records += 1;
        }
        let queue = acc.queue_mut("t", 0);
        let batch = queue.batches().next().unwrap();
        assert!(batch.closed);
        let held = batch._memory.num_permits();
        assert!(batch.size() <= held, "{} bytes in {held}", batch.size());
        assert!(records * 100 > 24 * 1024, "grew to {records} records");
        assert_eq!(
            held + 9 * INITIAL_RESERVATION + memory.available_permits(),
            64 * 1024
        );
        // The next record needs a new batch's memory, and there is not enough free.
        assert!(memory.available_permits() < INITIAL_RESERVATION);
        assert!(append(&mut acc, &memory, 0, &value).is_none());
    }

    #[test]
    fn requeue_keeps_creation_order() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(200, Compression::None);
        for _ in 0..6 {
            let _delivery = append(&mut acc, &memory, 0, &[0u8; 150]).unwrap();
        }
        let queue = acc.queue_mut("t", 0);
        let first = queue.drain_ready(None).unwrap().unwrap();
        let second = queue.drain_ready(None).unwrap().unwrap();
        // Responses may come back in any order; both go back before the rest, in order.
        let config = ProducerConfig::new("127.0.0.1:9092");
        let lost = Error::timeout("produce", std::time::Duration::from_secs(1));
        let now = std::time::Instant::now();
        for b in [second, first] {
            let retry = queue.on_error(b, lost.clone(), &config, now);
            assert!(matches!(retry, OnError::Retry { bump: false }), "{retry:?}");
        }
        let ids: Vec<u64> = queue.batches().map(|b| b.id).collect();
        assert_eq!(ids.len(), 6);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn outcomes_carry_offsets_and_timestamps() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(16 * 1024, Compression::None);
        let a = append(&mut acc, &memory, 3, b"a").unwrap();
        let b = append(&mut acc, &memory, 3, b"b").unwrap();
        let batch = acc.queue_mut("t", 3).drain_ready(None).unwrap().unwrap();
        batch.complete(40, -1);
        let a = a.1.now_or_never().unwrap().unwrap();
        let b = b.1.now_or_never().unwrap().unwrap();
        assert_eq!(
            (a.partition, a.offset, a.timestamp),
            (3, 40, 1_700_000_000_000)
        );
        assert_eq!(b.offset, 41);
    }
}
