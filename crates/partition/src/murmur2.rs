//! Java-compatible key placement: `Utils.murmur2` and `toPositive(hash) % n`.
//!
//! The Java client places a keyed record with
//! `Utils.toPositive(Utils.murmur2(key)) % numPartitions`. Producers in both languages must
//! agree on this to the bit, or records of one key end up on two partitions. The tests check
//! this module against vectors produced by the real `kafka-clients` jar.

use crate::partitioner::{PartitionLoad, Partitioner};
use crate::sticky::UniformStickyPartitioner;

/// Java's `Utils.murmur2`: 32-bit MurmurHash2 with Kafka's seed, returned as Java's `int`.
///
/// Bytes are read as unsigned (Java masks with `& 0xff`), little-endian in blocks of four,
/// and the tail is mixed exactly as Java's fall-through `switch` does.
#[inline]
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java computes `seed ^ length` on `int`s; a key longer than `i32::MAX` cannot exist in
    // Java, so truncating the length here only matters for inputs Java could not hash.
    let mut h = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        if let Some(&b) = tail.get(2) {
            h ^= u32::from(b) << 16;
        }
        if let Some(&b) = tail.get(1) {
            h ^= u32::from(b) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (it is not `abs`, which overflows on
/// `i32::MIN`).
#[inline]
pub fn to_positive(hash: i32) -> i32 {
    hash & 0x7fff_ffff
}

/// The partition the Java client chooses for `key` among `partitions` partitions
/// (`BuiltInPartitioner.partitionForKey`).
///
/// Returns 0 when `partitions` is 0 or negative: there is no valid answer, and this
/// function never panics. Use [`Partitioner::choose`] to get an error instead.
#[inline]
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % partitions
}

/// The Java client's default placement: keyed records by murmur2, keyless records by
/// uniform sticky partitioning (KIP-794).
///
/// A keyed record lands on the same partition as from the Java client. Keyless records are
/// handed to an inner [`UniformStickyPartitioner`]; batch completions and load updates are
/// passed on to it.
///
/// ```
/// use sluice_partition::{Murmur2Partitioner, Partitioner};
///
/// let mut p = Murmur2Partitioner::new();
/// // The Java client puts "hello" on partition 9 of 12 as well.
/// assert_eq!(p.partition("orders", Some(b"hello"), 10, 12), 9);
/// ```
#[derive(Debug, Default)]
pub struct Murmur2Partitioner {
    keyless: UniformStickyPartitioner,
}

impl Murmur2Partitioner {
    /// Murmur2 for keys and a default [`UniformStickyPartitioner`] (16 KiB, Java's default
    /// `batch.size`) for keyless records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Murmur2 for keys and the given sticky partitioner for keyless records.
    pub fn with_keyless(keyless: UniformStickyPartitioner) -> Self {
        Self { keyless }
    }

    /// The partitioner used for keyless records.
    pub fn keyless(&self) -> &UniformStickyPartitioner {
        &self.keyless
    }
}

impl Partitioner for Murmur2Partitioner {
    #[inline]
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: i32,
    ) -> i32 {
        match key {
            Some(key) => partition_for_key(key, partitions),
            None => self.keyless.partition(topic, None, value_len, partitions),
        }
    }

    fn on_batch_complete(&mut self, topic: &str, partition: i32) {
        self.keyless.on_batch_complete(topic, partition);
    }

    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        self.keyless.update_load(topic, loads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Spot checks from the Java fixture; the full set lives in tests/murmur2_java.rs.
        assert_eq!(murmur2(b""), 275_646_681);
        assert_eq!(partition_for_key(b"hello", 12), 9);
    }

    #[test]
    fn to_positive_is_not_abs() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn zero_partitions_does_not_panic() {
        assert_eq!(partition_for_key(b"k", 0), 0);
    }

    #[test]
    fn negative_partitions_do_not_panic() {
        assert_eq!(partition_for_key(b"k", -1), 0);
        assert_eq!(partition_for_key(b"k", i32::MIN), 0);
        assert_eq!(Murmur2Partitioner::new().partition("t", None, 5, -4), 0);
    }
}
