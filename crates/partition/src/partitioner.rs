//! The [`Partitioner`] trait, the optional load input, and the explicit-partition rule.

use std::fmt;

/// Chooses the partition of each record.
///
/// A partitioner belongs to one producer task at a time: every method takes `&mut self`, so
/// implementations keep their state (sticky partitions, counters, sketches) without locks.
/// The trait is object safe; a producer holds a `Box<dyn Partitioner>`.
///
/// `partitions` is the topic's current partition count. It may change between calls (topics
/// grow); implementations must cope. When it is 0 there is no valid answer: implementations
/// return 0 and never panic. [`Partitioner::choose`] turns that case into an error.
pub trait Partitioner: Send {
    /// The partition for a record of `topic` with this serialized `key` (if any) and
    /// serialized value of `value_len` bytes. The result is `< partitions` whenever
    /// `partitions > 0`.
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: u32,
    ) -> u32;

    /// The producer closed the open batch of `partition` (it filled up or its linger
    /// expired). Sticky strategies use this to switch partitions at batch boundaries.
    /// Optional: the default ignores it.
    fn on_batch_complete(&mut self, topic: &str, partition: u32) {
        let _ = (topic, partition);
    }

    /// Optional input: the producer's view of each partition of `topic`, indexed by
    /// partition number. Sticky strategies prefer partitions with less queued data and
    /// avoid unavailable ones (a leader slower than `partitioner.availability.timeout.ms`,
    /// KIP-794). An empty slice forgets earlier input. The default ignores it.
    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        let _ = (topic, loads);
    }

    /// The partition for a record, honouring a partition the record names itself.
    ///
    /// A record that names its partition bypasses the partitioner (as in the Java client):
    /// `Some(p)` is returned as is when `p < partitions`. Otherwise this calls
    /// [`Partitioner::partition`].
    ///
    /// # Errors
    /// [`PartitionError::NoPartitions`] when `partitions` is 0, and
    /// [`PartitionError::OutOfRange`] when the record names a partition the topic does
    /// not have.
    ///
    /// ```
    /// use sluice_partition::{Murmur2Partitioner, PartitionError, Partitioner};
    ///
    /// let mut p = Murmur2Partitioner::new();
    /// assert_eq!(p.choose(Some(5), "t", Some(b"k"), 0, 12), Ok(5));
    /// assert_eq!(
    ///     p.choose(Some(12), "t", None, 0, 12),
    ///     Err(PartitionError::OutOfRange { partition: 12, partitions: 12 })
    /// );
    /// ```
    fn choose(
        &mut self,
        record_partition: Option<u32>,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: u32,
    ) -> Result<u32, PartitionError> {
        if partitions == 0 {
            return Err(PartitionError::NoPartitions);
        }
        match record_partition {
            Some(partition) if partition < partitions => Ok(partition),
            Some(partition) => Err(PartitionError::OutOfRange {
                partition,
                partitions,
            }),
            None => Ok(self.partition(topic, key, value_len, partitions)),
        }
    }
}

impl<P: Partitioner + ?Sized> Partitioner for Box<P> {
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: u32,
    ) -> u32 {
        (**self).partition(topic, key, value_len, partitions)
    }

    fn on_batch_complete(&mut self, topic: &str, partition: u32) {
        (**self).on_batch_complete(topic, partition);
    }

    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        (**self).update_load(topic, loads);
    }
}

/// One partition's state as the producer sees it; input to [`Partitioner::update_load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionLoad {
    /// Bytes queued in the producer for this partition and not yet acknowledged.
    pub queued_bytes: u64,
    /// `false` when the partition should get no new keyless records for now: it has no
    /// leader, or its leader has not answered within `partitioner.availability.timeout.ms`.
    pub available: bool,
}

impl PartitionLoad {
    /// An available partition with `queued_bytes` waiting.
    pub fn new(queued_bytes: u64) -> Self {
        Self {
            queued_bytes,
            available: true,
        }
    }

    /// An unavailable partition.
    pub fn unavailable() -> Self {
        Self {
            queued_bytes: 0,
            available: false,
        }
    }
}

/// Why no partition could be chosen for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionError {
    /// The topic has no partitions (its metadata is missing or not loaded yet).
    NoPartitions,
    /// The record names a partition the topic does not have.
    OutOfRange {
        /// The partition the record named.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },
}

impl fmt::Display for PartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPartitions => f.write_str("the topic has no partitions"),
            Self::OutOfRange {
                partition,
                partitions,
            } => write!(
                f,
                "the record names partition {partition} but the topic has {partitions} partitions"
            ),
        }
    }
}

impl std::error::Error for PartitionError {}
