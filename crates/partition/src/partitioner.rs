//! The [`Partitioner`] trait, the optional load input, and the explicit-partition rule.

use std::fmt;

/// Chooses the partition of each record.
///
/// A partitioner belongs to one producer task at a time: every method takes `&mut self`, so
/// implementations keep their state (sticky partitions, counters, sketches) without locks.
/// The trait is object safe; a producer holds a `Box<dyn Partitioner>`.
///
/// Partitions and counts are `i32`, Kafka's type (the wire protocol's and the Java
/// client's). `partitions` is the topic's current partition count. It may change between
/// calls (topics grow); implementations must cope. When it is 0 or negative there is no
/// valid answer: implementations return 0 and never panic. [`Partitioner::choose`] turns
/// those cases into errors.
pub trait Partitioner: Send {
    /// The partition for a record of `topic` with this serialized `key` (if any) and
    /// serialized value of `value_len` bytes. The result is in `0..partitions` whenever
    /// `partitions > 0`; for a count of 0 or less there is no valid answer and
    /// implementations return 0 ([`Partitioner::choose`] reports it as an error).
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: i32,
    ) -> i32;

    /// Like [`Partitioner::partition`] for a keyed record that also carries a sub-key
    /// (`ProducerRecord::sub_key` in `sluice-wire`).
    ///
    /// Only strategies that spread one key over several partitions use it: the
    /// [`HotKeyPartitioner`](crate::HotKeyPartitioner) with
    /// [`SpreadStrategy::SubKey`](crate::SpreadStrategy::SubKey) sends the records of a hot
    /// key with equal sub-keys to one partition, so order holds per (key, sub-key) and no
    /// longer per key. The default ignores the sub-key.
    fn partition_with_sub_key(
        &mut self,
        topic: &str,
        key: &[u8],
        sub_key: &[u8],
        value_len: usize,
        partitions: i32,
    ) -> i32 {
        let _ = sub_key;
        self.partition(topic, Some(key), value_len, partitions)
    }

    /// The producer closed the open batch of `partition` (it filled up or its linger
    /// expired). Sticky strategies use this to switch partitions at batch boundaries.
    /// Optional: the default ignores it.
    fn on_batch_complete(&mut self, topic: &str, partition: i32) {
        let _ = (topic, partition);
    }

    /// Optional input: the producer's view of each partition of `topic`, indexed by
    /// partition number. Sticky strategies prefer partitions with less queued data and
    /// avoid unavailable ones (a leader slower than `partitioner.availability.timeout.ms`,
    /// KIP-794). An empty slice forgets earlier input. The default ignores it.
    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        let _ = (topic, loads);
    }

    /// The partition for a record, honouring a partition the record names itself and
    /// checking every input and the answer.
    ///
    /// A record that names its partition bypasses the partitioner (as in the Java client):
    /// `Some(p)` is returned as is when `0 <= p < partitions`. Otherwise this calls
    /// [`Partitioner::partition_with_sub_key`] when the record has a key and a sub-key, and
    /// [`Partitioner::partition`] when not.
    ///
    /// # Errors
    /// [`PartitionError::NoPartitions`] when `partitions` is 0,
    /// [`PartitionError::InvalidCount`] when it is negative,
    /// [`PartitionError::OutOfRange`] when the record names a partition the topic does
    /// not have (negative ones included), and [`PartitionError::BadChoice`] when the
    /// partitioner answers outside `0..partitions`.
    ///
    /// ```
    /// use sluice_partition::{Murmur2Partitioner, PartitionError, Partitioner};
    ///
    /// let mut p = Murmur2Partitioner::new();
    /// assert_eq!(p.choose(Some(5), "t", Some(b"k"), None, 0, 12), Ok(5));
    /// assert_eq!(
    ///     p.choose(Some(12), "t", None, None, 0, 12),
    ///     Err(PartitionError::OutOfRange { partition: 12, partitions: 12 })
    /// );
    /// assert_eq!(
    ///     p.choose(Some(-1), "t", None, None, 0, 12),
    ///     Err(PartitionError::OutOfRange { partition: -1, partitions: 12 })
    /// );
    /// assert_eq!(
    ///     p.choose(None, "t", Some(b"k"), None, 0, -3),
    ///     Err(PartitionError::InvalidCount { partitions: -3 })
    /// );
    /// ```
    fn choose(
        &mut self,
        record_partition: Option<i32>,
        topic: &str,
        key: Option<&[u8]>,
        sub_key: Option<&[u8]>,
        value_len: usize,
        partitions: i32,
    ) -> Result<i32, PartitionError> {
        match partitions {
            0 => return Err(PartitionError::NoPartitions),
            n if n < 0 => return Err(PartitionError::InvalidCount { partitions }),
            _ => {}
        }
        let in_range = |p: i32| (0..partitions).contains(&p);
        match record_partition {
            Some(partition) if in_range(partition) => Ok(partition),
            Some(partition) => Err(PartitionError::OutOfRange {
                partition,
                partitions,
            }),
            None => {
                let partition = match (key, sub_key) {
                    (Some(key), Some(sub_key)) => {
                        self.partition_with_sub_key(topic, key, sub_key, value_len, partitions)
                    }
                    _ => self.partition(topic, key, value_len, partitions),
                };
                if in_range(partition) {
                    Ok(partition)
                } else {
                    Err(PartitionError::BadChoice {
                        partition,
                        partitions,
                    })
                }
            }
        }
    }
}

impl<P: Partitioner + ?Sized> Partitioner for Box<P> {
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: i32,
    ) -> i32 {
        (**self).partition(topic, key, value_len, partitions)
    }

    fn partition_with_sub_key(
        &mut self,
        topic: &str,
        key: &[u8],
        sub_key: &[u8],
        value_len: usize,
        partitions: i32,
    ) -> i32 {
        (**self).partition_with_sub_key(topic, key, sub_key, value_len, partitions)
    }

    fn on_batch_complete(&mut self, topic: &str, partition: i32) {
        (**self).on_batch_complete(topic, partition);
    }

    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        (**self).update_load(topic, loads);
    }
}

/// A partition count as the strategies compute with it: `None` for 0 and negative counts,
/// which have no valid answer.
pub(crate) fn positive_count(partitions: i32) -> Option<u32> {
    u32::try_from(partitions).ok().filter(|&n| n > 0)
}

/// A partition chosen below a positive `i32` count, as the public `i32`. Never fails for
/// such a partition; 0 otherwise rather than a panic.
pub(crate) fn partition_id(partition: u32) -> i32 {
    i32::try_from(partition).unwrap_or(0)
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
#[non_exhaustive]
pub enum PartitionError {
    /// The topic has no partitions (its metadata is missing or not loaded yet).
    NoPartitions,
    /// The partition count is negative (a caller's bug; Kafka never reports one).
    InvalidCount {
        /// The count given.
        partitions: i32,
    },
    /// The record names a partition the topic does not have (a negative one, or one at
    /// or past the count).
    OutOfRange {
        /// The partition the record named.
        partition: i32,
        /// The topic's partition count.
        partitions: i32,
    },
    /// The partitioner answered with a partition outside `0..partitions` (a bug in a
    /// custom [`Partitioner`]).
    BadChoice {
        /// The partition the partitioner chose.
        partition: i32,
        /// The topic's partition count.
        partitions: i32,
    },
}

impl fmt::Display for PartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPartitions => f.write_str("the topic has no partitions"),
            Self::InvalidCount { partitions } => {
                write!(f, "invalid partition count {partitions}")
            }
            Self::OutOfRange {
                partition,
                partitions,
            } => write!(
                f,
                "the record names partition {partition} but the topic has {partitions} partitions"
            ),
            Self::BadChoice {
                partition,
                partitions,
            } => write!(
                f,
                "the partitioner chose partition {partition} but the topic has {partitions} partitions"
            ),
        }
    }
}

impl std::error::Error for PartitionError {}
