//! Micro-benchmark access to the accumulator (no network). Not a stable API.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::accumulator::{Accumulator, RecordParts};
use super::ack::Ack;
use crate::error::{Error, Result};

/// An accumulator with `buffer.memory`-style accounting but no sender: batches are
/// dropped as soon as they close.
#[derive(Debug)]
pub struct AccumulatorBench {
    acc: Accumulator,
    memory: Arc<Semaphore>,
    partitions: i32,
    next: i32,
}

impl AccumulatorBench {
    /// A bench over `partitions` partitions with this `batch.size`.
    pub fn new(batch_size: usize, partitions: i32) -> Self {
        AccumulatorBench {
            acc: Accumulator::new(batch_size, crate::records::Compression::None),
            memory: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            partitions,
            next: 0,
        }
    }

    /// Appends one record, round robin over the partitions; returns the number of
    /// closed batches dropped.
    pub fn append(&mut self, key: Option<&[u8]>, value: &[u8]) -> Result<usize> {
        let partition = self.next;
        self.next = (self.next + 1) % self.partitions.max(1);
        let parts = RecordParts {
            timestamp: 1_700_000_000_000,
            key,
            value: Some(value),
            headers: &[],
        };
        // A callback that does nothing (no allocation): the cost of the append itself.
        let ack = Ack::Callback(Box::new(|_| {}));
        if let Err(ack) = self.acc.try_append("bench", partition, &parts, ack)? {
            let need = u32::try_from(self.acc.batch_reservation(&parts)).unwrap_or(u32::MAX);
            let permit = Arc::clone(&self.memory)
                .try_acquire_many_owned(need)
                .map_err(|_| Error::buffer_exhausted("bench memory"))?;
            self.acc
                .append_new("bench", partition, &parts, ack, permit)?;
        }
        let queue = self.acc.queue_mut("bench", partition);
        let closed = queue.take_closed();
        let dropped = closed.len();
        for mut b in closed {
            b.finish()?;
            self.acc.untrack(b.id);
        }
        Ok(dropped)
    }
}

/// Keeps `Bytes` in the public signature set used by benches.
pub fn value(len: usize) -> Bytes {
    Bytes::from(vec![b'x'; len])
}
