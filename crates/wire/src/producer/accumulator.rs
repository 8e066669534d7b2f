//! The accumulator: per-partition queues of batches. Records are encoded in place into
//! the open (last) batch of their partition with the `records` encoder; a batch is
//! closed when the next record does not fit in `batch.size`.
//!
//! Memory: every batch holds a permit of the producer's `buffer.memory` semaphore for the
//! bytes it reserved (`max(batch.size, record)`), released when the batch is dropped
//! (delivered or failed). So the bytes of buffered batches never exceed
//! `buffer.memory`, and `send` waits (up to `max.block.ms`) for permits: that is the
//! backpressure. Sizes are counted before compression, an upper bound.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::record::RecordMetadata;
use crate::error::{Error, Result};
use crate::records::{
    BatchOptions, Compression, Header, Record, RecordBatchBuilder, RecordBatches, RecordHeader,
    BATCH_HEADER_LEN,
};

/// Bytes a record may take beyond its key, value and headers: the length, attribute,
/// timestamp and offset deltas and the counts, as varints (at most 5 + 1 + 10 + 5 + 5 +
/// 5 + 5).
pub(crate) const RECORD_OVERHEAD: usize = 36;

/// A record's outcome channel and where it sits in its batch.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) tx: oneshot::Sender<Result<RecordMetadata>>,
    pub(crate) offset_delta: u32,
    pub(crate) timestamp: i64,
}

/// One batch of one partition: open (appendable), then finished bytes sent and resent
/// until it is acknowledged or fails.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Increasing in creation order over the whole producer (flush waits by id).
    pub(crate) id: u64,
    /// Empty, or for a part of a split batch: its index, after its parent's path. The
    /// queue is ordered by `(id, split_path)`.
    split_path: Vec<u32>,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    builder: Option<RecordBatchBuilder>,
    /// The encoded batch once finished (stamped with producer state when idempotent).
    pub(crate) payload: Option<Bytes>,
    pub(crate) waiters: Vec<Waiter>,
    pub(crate) created: Instant,
    /// No more appends: the next record did not fit.
    pub(crate) closed: bool,
    /// Sends so far.
    pub(crate) attempts: u32,
    /// Not to be resent before this (backoff).
    pub(crate) retry_at: Option<Instant>,
    /// Sequence of the first record once assigned (idempotence), with the epoch it was
    /// assigned under.
    pub(crate) sequence: Option<(i32, i16)>,
    pub(crate) last_error: Option<Error>,
    capacity: usize,
    _memory: OwnedSemaphorePermit,
}

impl Batch {
    pub(crate) fn record_count(&self) -> usize {
        self.waiters.len()
    }

    /// Encoded bytes so far (uncompressed size while open).
    pub(crate) fn size(&self) -> usize {
        match (&self.payload, &self.builder) {
            (Some(p), _) => p.len(),
            (None, Some(b)) => b.estimated_size(),
            (None, None) => 0,
        }
    }

    /// Finishes the builder (compressing) if not done yet.
    pub(crate) fn finish(&mut self) -> Result<&Bytes> {
        if self.payload.is_none() {
            if let Some(builder) = self.builder.take() {
                self.payload = Some(builder.finish()?);
            }
        }
        self.closed = true;
        self.payload
            .as_ref()
            .ok_or_else(|| Error::protocol("a producer batch has neither records nor bytes"))
    }

    /// Resolves every record of the batch with `base_offset + offset delta`.
    pub(crate) fn complete(self, base_offset: i64, log_append_time: i64) {
        // Memory first: whoever sees the outcome may count on the buffer being free.
        let Batch {
            waiters,
            topic,
            partition,
            _memory,
            ..
        } = self;
        drop(_memory);
        for w in waiters {
            let offset = if base_offset < 0 {
                -1
            } else {
                base_offset + i64::from(w.offset_delta)
            };
            let _ = w.tx.send(Ok(RecordMetadata {
                topic: Arc::clone(&topic),
                partition,
                offset,
                timestamp: if log_append_time >= 0 {
                    log_append_time
                } else {
                    w.timestamp
                },
            }));
        }
    }

    /// Fails every record of the batch with `err`.
    pub(crate) fn fail(self, err: &Error) {
        let Batch {
            waiters, _memory, ..
        } = self;
        drop(_memory);
        for w in waiters {
            let _ = w.tx.send(Err(err.clone()));
        }
    }
}

impl Batch {
    /// Splits a finished batch the broker refused as too large (MESSAGE_TOO_LARGE) into
    /// batches of at most `target` bytes before compression, in record order, each
    /// record keeping its delivery, as Java's `splitAndReenqueue`. The parts keep the
    /// original's id (its place in the queue and for `flush`), creation time (delivery
    /// timeout) and memory, shared out between them. Gives the batch back when there is
    /// nothing to split: one record, or one part.
    pub(crate) fn split(
        mut self,
        target: usize,
        compression: Compression,
    ) -> std::result::Result<Vec<Batch>, Box<Batch>> {
        let parts = match self.split_records(target, compression) {
            Ok(parts) if parts.len() >= 2 => parts,
            _ => return Err(Box::new(self)),
        };
        let mut waiters = std::mem::take(&mut self.waiters).into_iter();
        let total = self._memory.num_permits();
        let n = parts.len();
        let mut out = Vec::with_capacity(n);
        for (i, (payload, count)) in parts.into_iter().enumerate() {
            let share = if i + 1 == n {
                self._memory.num_permits()
            } else {
                total / n
            };
            let Some(memory) = self._memory.split(share) else {
                return Err(Box::new(self));
            };
            let mut part_waiters: Vec<Waiter> = waiters.by_ref().take(count).collect();
            for (delta, w) in part_waiters.iter_mut().enumerate() {
                w.offset_delta = u32::try_from(delta).unwrap_or(u32::MAX);
            }
            let mut split_path = self.split_path.clone();
            split_path.push(u32::try_from(i).unwrap_or(u32::MAX));
            out.push(Batch {
                id: self.id,
                split_path,
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                builder: None,
                payload: Some(payload),
                waiters: part_waiters,
                created: self.created,
                closed: true,
                attempts: 0,
                retry_at: None,
                sequence: None,
                last_error: self.last_error.clone(),
                capacity: share,
                _memory: memory,
            });
        }
        Ok(out)
    }

    /// Re-encodes the records of the finished batch into batches of about `target`
    /// bytes (halving at least, so repeated splits end at single records).
    fn split_records(
        &self,
        target: usize,
        compression: Compression,
    ) -> Result<Vec<(Bytes, usize)>> {
        let payload = self
            .payload
            .clone()
            .ok_or_else(|| Error::protocol("splitting a batch that was never finished"))?;
        let batch = RecordBatches::new(payload)
            .next()
            .ok_or_else(|| Error::protocol("splitting an empty batch"))??;
        let records: Vec<Record> = batch.records()?.collect::<Result<_, _>>()?;
        let uncompressed: usize = records
            .iter()
            .map(|r| {
                r.key().map_or(0, Bytes::len) + r.value().map_or(0, Bytes::len) + RECORD_OVERHEAD
            })
            .sum();
        let target = target.min(uncompressed / 2).max(1);
        let options = BatchOptions {
            compression,
            transactional: batch.is_transactional(),
            ..BatchOptions::default()
        };
        let mut parts = Vec::new();
        let mut builder = RecordBatchBuilder::with_capacity(options, target);
        for r in &records {
            let headers: Vec<RecordHeader> = r.headers().collect();
            let headers: Vec<Header<'_>> = headers
                .iter()
                .map(|h| Header::new(h.key_str().unwrap_or(""), h.value.as_deref()))
                .collect();
            let (key, value) = (r.key().map(|b| &b[..]), r.value().map(|b| &b[..]));
            let size = builder.record_size(r.timestamp(), key, value, &headers)?;
            if !builder.is_empty() && builder.estimated_size() + size > target {
                let full = std::mem::replace(
                    &mut builder,
                    RecordBatchBuilder::with_capacity(options, target),
                );
                let count = full.len();
                parts.push((full.finish()?, count));
            }
            builder.append(r.timestamp(), key, value, &headers)?;
        }
        if !builder.is_empty() {
            let count = builder.len();
            parts.push((builder.finish()?, count));
        }
        Ok(parts)
    }
}

/// The queue of one partition, with its idempotence sequence state.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    /// Oldest first; the last one may be open. Batches sent and waiting for a retry are
    /// put back at their place (by id), so order is kept.
    pub(crate) batches: VecDeque<Batch>,
    /// Batches of this partition in requests not yet answered.
    pub(crate) in_flight: usize,
    /// Next sequence to assign (idempotence).
    pub(crate) next_sequence: i32,
    /// The sequence the broker expects next: one past the last acknowledged record.
    pub(crate) acked_sequence: i32,
    /// A sequenced batch is being resent: send one at a time until the queue is past
    /// the batches that were in flight (as the Java client does).
    pub(crate) retrying: bool,
    /// The broker acknowledged a batch of this partition under the current epoch.
    pub(crate) confirmed: bool,
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
}

/// One record's parts, borrowed from the caller's [`ProducerRecord`](super::ProducerRecord).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordParts<'a> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [Header<'a>],
}

impl RecordParts<'_> {
    /// An upper bound of the record's encoded size.
    pub(crate) fn size_bound(&self) -> usize {
        let mut size =
            RECORD_OVERHEAD + self.key.map_or(0, <[u8]>::len) + self.value.map_or(0, <[u8]>::len);
        for h in self.headers {
            size += 10 + h.key.len() + h.value.map_or(0, <[u8]>::len);
        }
        size
    }
}

/// What an append did, for the sender's wake-up and the partitioner.
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) rx: oneshot::Receiver<Result<RecordMetadata>>,
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

    /// The memory a new batch for this record reserves.
    pub(crate) fn batch_reservation(&self, record: &RecordParts<'_>) -> usize {
        self.batch_size.max(BATCH_HEADER_LEN + record.size_bound())
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

    /// Appends to the open batch of the partition if the record fits there; `None` when
    /// a new batch (and memory for it) is needed.
    pub(crate) fn try_append(
        &mut self,
        topic: &str,
        partition: i32,
        record: &RecordParts<'_>,
    ) -> Result<Option<Appended>> {
        let queue = self.queue_mut(topic, partition);
        let Some(batch) = queue.batches.back_mut() else {
            return Ok(None);
        };
        if batch.closed || batch.payload.is_some() {
            return Ok(None);
        }
        let Some(builder) = batch.builder.as_mut() else {
            return Ok(None);
        };
        let size =
            builder.record_size(record.timestamp, record.key, record.value, record.headers)?;
        if builder.estimated_size() + size > batch.capacity {
            batch.closed = true;
            return Ok(None);
        }
        let offset_delta =
            builder.append(record.timestamp, record.key, record.value, record.headers)?;
        let (tx, rx) = oneshot::channel();
        batch.waiters.push(Waiter {
            tx,
            offset_delta,
            timestamp: record.timestamp,
        });
        // Full when not even a minimal record fits any more.
        let full = builder.estimated_size() + RECORD_OVERHEAD >= batch.capacity;
        if full {
            batch.closed = true;
        }
        Ok(Some(Appended {
            rx,
            new_batch: false,
            batch_closed: full,
        }))
    }

    /// Opens a new batch holding `memory` and appends the record to it.
    pub(crate) fn append_new(
        &mut self,
        topic: &str,
        partition: i32,
        record: &RecordParts<'_>,
        memory: OwnedSemaphorePermit,
    ) -> Result<Appended> {
        let capacity = memory.num_permits();
        let id = self.next_batch_id;
        let options = BatchOptions {
            compression: self.compression,
            transactional: self.transactional,
            ..BatchOptions::default()
        };
        let mut builder = RecordBatchBuilder::with_capacity(options, capacity);
        let offset_delta =
            builder.append(record.timestamp, record.key, record.value, record.headers)?;
        let (tx, rx) = oneshot::channel();
        let full = builder.estimated_size() + RECORD_OVERHEAD >= capacity;
        let batch = Batch {
            id,
            split_path: Vec::new(),
            topic: Arc::from(topic),
            partition,
            builder: Some(builder),
            payload: None,
            waiters: vec![Waiter {
                tx,
                offset_delta,
                timestamp: record.timestamp,
            }],
            created: Instant::now(),
            closed: full,
            attempts: 0,
            retry_at: None,
            sequence: None,
            last_error: None,
            capacity,
            _memory: memory,
        };
        self.next_batch_id += 1;
        self.incomplete.insert(id, 1);
        let queue = self.queue_mut(topic, partition);
        // A batch still here and not sent was open until this record did not fit.
        let mut closed_previous = false;
        if let Some(open) = queue.batches.back_mut() {
            closed_previous = open.payload.is_none();
            open.closed = true;
        }
        queue.batches.push_back(batch);
        Ok(Appended {
            rx,
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
    use super::*;
    use tokio::sync::Semaphore;

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
    ) -> Option<Appended> {
        let record = parts(value);
        if let Some(a) = acc.try_append("t", p, &record).unwrap() {
            return Some(a);
        }
        let need = u32::try_from(acc.batch_reservation(&record)).unwrap();
        let permit = Arc::clone(memory).try_acquire_many_owned(need).ok()?;
        Some(acc.append_new("t", p, &record, permit).unwrap())
    }

    #[test]
    fn batches_fill_to_batch_size_then_close() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(1024, Compression::None);
        let value = [7u8; 100];
        let first = append(&mut acc, &memory, 0, &value).unwrap();
        assert!(first.new_batch && !first.batch_closed);
        let mut closed = 0;
        for _ in 0..20 {
            let a = append(&mut acc, &memory, 0, &value).unwrap();
            closed += usize::from(a.batch_closed);
        }
        let queue = acc.queue_mut("t", 0);
        assert!(queue.batches.len() >= 2);
        assert!(closed >= 1);
        for b in queue.batches.iter().take(queue.batches.len() - 1) {
            assert!(b.closed);
            assert!(b.size() <= 1024, "{}", b.size());
        }
        assert_eq!(acc.incomplete.len(), acc.queue_mut("t", 0).batches.len());
        let ids: Vec<u64> = acc.queue_mut("t", 0).batches.iter().map(|b| b.id).collect();
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
        let batch = acc.queue_mut("t", 0).batches.pop_front().unwrap();
        batch.fail(&Error::producer_closed("test"));
        assert_eq!(memory.available_permits(), 1024);
    }

    #[test]
    fn requeue_keeps_creation_order() {
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(200, Compression::None);
        for _ in 0..6 {
            append(&mut acc, &memory, 0, &[0u8; 150]).unwrap();
        }
        let queue = acc.queue_mut("t", 0);
        let first = queue.batches.pop_front().unwrap();
        let second = queue.batches.pop_front().unwrap();
        // Responses may come back in any order; both go back before the rest, in order.
        queue.requeue(second);
        queue.requeue(first);
        let ids: Vec<u64> = queue.batches.iter().map(|b| b.id).collect();
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
        let batch = acc.queue_mut("t", 3).batches.pop_front().unwrap();
        batch.complete(40, -1);
        let (mut a, mut b) = (a.rx, b.rx);
        let a = a.try_recv().unwrap().unwrap();
        let b = b.try_recv().unwrap().unwrap();
        assert_eq!(
            (a.partition, a.offset, a.timestamp),
            (3, 40, 1_700_000_000_000)
        );
        assert_eq!(b.offset, 41);
    }
}
