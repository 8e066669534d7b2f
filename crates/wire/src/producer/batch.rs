//! One batch of one partition: records encoded in place while it is open, then the
//! finished bytes, sent and resent until acknowledged or failed; and the split of a batch
//! the broker refused as too large.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::ack::{Ack, Pending};
use super::record::RecordMetadata;
use crate::error::{Error, Result};
use crate::records::{
    rewrite_producer_state, BatchOptions, Compression, HeaderRef, Record, RecordBatchBuilder,
    RecordBatches,
};

/// Bytes a record may take beyond its key, value and headers: the length, attribute,
/// timestamp and offset deltas and the counts, as varints (at most 5 + 1 + 10 + 5 + 5 +
/// 5 + 5).
pub(crate) const RECORD_OVERHEAD: usize = 36;

/// One record's parts, borrowed from the caller's [`ProducerRecord`](super::ProducerRecord).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordParts<'a> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [HeaderRef<'a>],
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

/// A producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdEpoch {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

/// What an idempotent batch carries: the producer id and epoch it was stamped under and
/// the sequence of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) producer: ProducerIdEpoch,
    pub(crate) sequence: i32,
}

/// Where a record's outcome goes and where the record sits in its batch.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) ack: Pending,
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
    pub(super) split_path: Vec<u32>,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(super) builder: Option<RecordBatchBuilder>,
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
    /// Producer id, epoch and first sequence once stamped (idempotence); kept for every
    /// resend, so the broker recognises a batch it already has.
    pub(crate) stamp: Option<Stamp>,
    pub(crate) last_error: Option<Error>,
    /// The most bytes the batch may hold (`batch.size`, or its one record when larger).
    pub(super) capacity: usize,
    /// The `buffer.memory` the batch holds: what its buffer has room for, at most
    /// `capacity`.
    pub(super) _memory: OwnedSemaphorePermit,
}

/// Makes sure `memory` (and the builder's buffer) covers `needed` bytes, taking more
/// permits from its semaphore if need be: twice what it holds (as a buffer grows), at
/// most `limit`, or just `needed` when that much is not free. False when even that is
/// not free (or the producer is closed): the batch closes and the record waits for a new
/// batch's memory, so growing never takes memory a waiting `send` queued for first
/// (tokio's semaphore hands released permits to waiters before `try_acquire`).
fn grow(
    memory: &mut OwnedSemaphorePermit,
    builder: &mut RecordBatchBuilder,
    needed: usize,
    limit: usize,
) -> bool {
    let held = memory.num_permits();
    if needed <= held {
        return true;
    }
    let semaphore = Arc::clone(memory.semaphore());
    let doubled = needed.max(held.saturating_mul(2)).min(limit);
    let more = [doubled, needed].into_iter().find_map(|target| {
        let extra = u32::try_from(target - held).ok()?;
        Arc::clone(&semaphore).try_acquire_many_owned(extra).ok()
    });
    match more {
        Some(more) => {
            memory.merge(more);
            builder.reserve_total(memory.num_permits());
            true
        }
        None => false,
    }
}

impl Batch {
    /// A new open batch `id` of `topic`-`partition` holding `memory` and growing it (from
    /// the same semaphore) as records are appended, up to `limit` bytes (`batch.size`, or
    /// the record when it is larger), with `record` in it, its outcome going to `ack`;
    /// with whether the batch is full already.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        id: u64,
        topic: &str,
        partition: i32,
        options: BatchOptions,
        record: &RecordParts<'_>,
        ack: Ack,
        memory: OwnedSemaphorePermit,
        limit: usize,
    ) -> Result<(Batch, bool)> {
        let capacity = limit.max(memory.num_permits());
        let mut builder = RecordBatchBuilder::with_capacity(options, memory.num_permits());
        let offset_delta =
            builder.append(record.timestamp, record.key, record.value, record.headers)?;
        let full = builder.estimated_size() + RECORD_OVERHEAD >= capacity;
        let batch = Batch {
            id,
            split_path: Vec::new(),
            topic: Arc::from(topic),
            partition,
            builder: Some(builder),
            payload: None,
            waiters: vec![Waiter {
                ack: Pending::new(ack),
                offset_delta,
                timestamp: record.timestamp,
            }],
            created: Instant::now(),
            closed: full,
            attempts: 0,
            retry_at: None,
            stamp: None,
            last_error: None,
            capacity,
            _memory: memory,
        };
        Ok((batch, full))
    }

    /// Appends `record` if the batch is open and it fits, its outcome going to `ack`;
    /// `Ok(full)` says whether the batch is full now, `Err(ack)` gives the ack back when
    /// the record was not appended. A record that does not fit closes the batch.
    pub(crate) fn try_append(
        &mut self,
        record: &RecordParts<'_>,
        ack: Ack,
    ) -> Result<std::result::Result<bool, Ack>> {
        if self.closed || self.payload.is_some() {
            return Ok(Err(ack));
        }
        let Some(builder) = self.builder.as_mut() else {
            return Ok(Err(ack));
        };
        let size =
            builder.record_size(record.timestamp, record.key, record.value, record.headers)?;
        let needed = builder.estimated_size() + size;
        if needed > self.capacity || !grow(&mut self._memory, builder, needed, self.capacity) {
            self.closed = true;
            return Ok(Err(ack));
        }
        let offset_delta =
            builder.append(record.timestamp, record.key, record.value, record.headers)?;
        self.waiters.push(Waiter {
            ack: Pending::new(ack),
            offset_delta,
            timestamp: record.timestamp,
        });
        // Full when not even a minimal record fits any more.
        let full = builder.estimated_size() + RECORD_OVERHEAD >= self.capacity;
        if full {
            self.closed = true;
        }
        Ok(Ok(full))
    }

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
            w.ack.resolve(Ok(RecordMetadata {
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
            w.ack.resolve(Err(err.clone()));
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
    ///
    /// A stamped batch's parts are stamped with its producer id and epoch and take its
    /// sequence range in order (Java does the same): the broker wrote none of it, so the
    /// parts fill the range exactly and the batches behind keep their sequences; no
    /// epoch bump is needed, which matters in a transaction, where none is possible.
    pub(crate) fn split(
        mut self,
        target: usize,
        compression: Compression,
    ) -> std::result::Result<Vec<Batch>, Box<Batch>> {
        let parts = match self.split_records(target, compression) {
            Ok(parts) if parts.len() >= 2 => parts,
            _ => return Err(Box::new(self)),
        };
        let parts = match self.stamp_parts(parts) {
            Ok(parts) => parts,
            Err(_) => return Err(Box::new(self)),
        };
        let mut waiters = std::mem::take(&mut self.waiters).into_iter();
        let total = self._memory.num_permits();
        let n = parts.len();
        let mut out = Vec::with_capacity(n);
        for (i, (payload, count, stamp)) in parts.into_iter().enumerate() {
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
                stamp,
                last_error: self.last_error.clone(),
                capacity: share,
                _memory: memory,
            });
        }
        Ok(out)
    }

    /// The parts of a stamped batch with its producer state and consecutive sequences
    /// from its own; unstamped parts as they are.
    #[allow(clippy::type_complexity)]
    fn stamp_parts(
        &self,
        parts: Vec<(Bytes, usize)>,
    ) -> Result<Vec<(Bytes, usize, Option<Stamp>)>> {
        let Some(stamp) = self.stamp else {
            return Ok(parts.into_iter().map(|(p, c)| (p, c, None)).collect());
        };
        let mut sequence = stamp.sequence;
        let mut out = Vec::with_capacity(parts.len());
        for (payload, count) in parts {
            let producer = stamp.producer;
            let stamped = rewrite_producer_state(&payload, producer.id, producer.epoch, sequence)?;
            out.push((stamped, count, Some(Stamp { producer, sequence })));
            let count = i32::try_from(count).unwrap_or(i32::MAX);
            // Sequences wrap at i32::MAX, as the broker expects.
            sequence = sequence.wrapping_add(count) & i32::MAX;
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
            let headers: Vec<crate::Header> = r.headers().collect();
            let headers: Vec<HeaderRef<'_>> = headers.iter().map(HeaderRef::from).collect();
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
