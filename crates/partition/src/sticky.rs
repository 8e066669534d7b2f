//! Uniform sticky partitioning for keyless records (KIP-794); the user-facing explanation
//! is on [`UniformStickyPartitioner`].

use crate::partitioner::{partition_id, positive_count, PartitionLoad, Partitioner};
use crate::rng::Rng;
use crate::topics::TopicMap;

/// Java's default `batch.size`.
const DEFAULT_BATCH_SIZE: usize = 16 * 1024;

/// Keyless placement: stay on one partition until about `batch_size` bytes went there, then
/// switch (KIP-794).
///
/// Sending each keyless record to a random partition makes many tiny batches. Sticking to
/// one partition until about `batch.size` bytes went there fills batches and then moves on,
/// so over time every partition gets the same number of bytes. KIP-480's older rule
/// (switch when a batch completes) sent *more* data to slow partitions, whose batches fill
/// before they are sent; switching on bytes produced does not.
///
/// With [`Partitioner::update_load`] (optional) the next partition is drawn with weights
/// `max_queue + 1 - queue`, so partitions with less queued data are more likely, and
/// unavailable partitions (no leader, or a leader slower than
/// `partitioner.availability.timeout.ms`) are skipped, as the Java client's adaptive
/// partitioning does. Load figures given for another partition count than the current one
/// are ignored.
///
/// Keys are ignored: every record counts towards the current partition. Wrap it in
/// [`Murmur2Partitioner`](crate::Murmur2Partitioner) to place keyed records by murmur2.
///
/// ```
/// use sluice_partition::{Partitioner, UniformStickyPartitioner};
///
/// let mut p = UniformStickyPartitioner::new(1000).with_seed(7);
/// let first = p.partition("logs", None, 400, 6);
/// assert_eq!(p.partition("logs", None, 400, 6), first);
/// assert_eq!(p.partition("logs", None, 400, 6), first);
/// // 1200 bytes went to `first`: the next record may go elsewhere.
/// let _next = p.partition("logs", None, 400, 6);
/// ```
#[derive(Debug)]
pub struct UniformStickyPartitioner {
    batch_size: usize,
    align_with_batches: bool,
    rng: Rng,
    topics: TopicMap<StickyTopic>,
}

#[derive(Debug, Default)]
struct StickyTopic {
    current: Option<u32>,
    /// Bytes placed on `current` since it was chosen.
    produced: usize,
    /// The producer reported `current`'s open batch closed and no record went there since.
    at_batch_boundary: bool,
    /// Partition count the `cumulative` table was built for; stale stats are ignored.
    stats_partitions: u32,
    /// Candidate partitions (available ones) and their cumulative weights.
    ids: Vec<u32>,
    cumulative: Vec<u64>,
}

impl Default for UniformStickyPartitioner {
    fn default() -> Self {
        Self::new(DEFAULT_BATCH_SIZE)
    }
}

impl UniformStickyPartitioner {
    /// Switch after `batch_size` bytes (key plus value) went to the current partition; use
    /// the producer's `batch.size`. A `batch_size` of 0 is treated as 1.
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            align_with_batches: false,
            rng: Rng::from_entropy(),
            topics: TopicMap::default(),
        }
    }

    /// Seed the random choice of the next partition, for reproducible placements.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = Rng::seeded(seed);
        self
    }

    /// Switch only at a batch boundary: after `batch_size` bytes, wait until the producer
    /// reports (through [`Partitioner::on_batch_complete`]) that the current partition's
    /// batch closed, but never stay past `2 * batch_size` bytes. This avoids a small
    /// leftover batch when `linger.ms` closes batches before they are full, as the Java
    /// client does. Off by default; turn it on only if the producer reports batches.
    pub fn align_with_batches(mut self, align: bool) -> Self {
        self.align_with_batches = align;
        self
    }

    /// The `batch_size` this partitioner switches after.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
}

impl StickyTopic {
    fn should_switch(&self, batch_size: usize, align_with_batches: bool) -> bool {
        let full = self.produced >= batch_size;
        let overfull = self.produced >= batch_size.saturating_mul(2);
        overfull || (full && (!align_with_batches || self.at_batch_boundary))
    }

    fn next_partition(&self, rng: &mut Rng, partitions: u32) -> u32 {
        if self.stats_partitions == partitions {
            if let Some(&total) = self.cumulative.last() {
                let r = rng.below_u64(total);
                // First entry strictly greater than r.
                let i = self.cumulative.partition_point(|&c| c <= r);
                if let Some(&id) = self.ids.get(i) {
                    return id;
                }
            }
        }
        rng.below(partitions)
    }

    fn set_loads(&mut self, loads: &[PartitionLoad]) {
        self.ids.clear();
        self.cumulative.clear();
        self.stats_partitions = u32::try_from(loads.len()).unwrap_or(u32::MAX);
        let available = loads.iter().enumerate().filter(|(_, l)| l.available);
        let max = available.clone().map(|(_, l)| l.queued_bytes).max();
        let Some(max) = max else {
            // Nothing available: fall back to all partitions rather than stall.
            return;
        };
        let mut sum = 0u64;
        for (i, load) in available {
            let Ok(id) = u32::try_from(i) else { break };
            sum = sum.saturating_add(max - load.queued_bytes + 1);
            self.ids.push(id);
            self.cumulative.push(sum);
        }
        let all_equal =
            self.ids.len() == loads.len() && loads.iter().all(|l| l.queued_bytes == max);
        if all_equal {
            // Uniform choice is the same thing, and cheaper.
            self.ids.clear();
            self.cumulative.clear();
        }
    }
}

impl Partitioner for UniformStickyPartitioner {
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: i32,
    ) -> i32 {
        let Some(partitions) = positive_count(partitions) else {
            return 0;
        };
        let state = self.topics.get_or_insert_with(topic, StickyTopic::default);
        let keep = state.current.filter(|&p| {
            p < partitions && !state.should_switch(self.batch_size, self.align_with_batches)
        });
        let current = match keep {
            Some(p) => p,
            None => {
                let p = state.next_partition(&mut self.rng, partitions);
                state.current = Some(p);
                state.produced = 0;
                p
            }
        };
        let size = key.map_or(0, <[u8]>::len).saturating_add(value_len);
        state.produced = state.produced.saturating_add(size);
        state.at_batch_boundary = false;
        partition_id(current)
    }

    fn on_batch_complete(&mut self, topic: &str, partition: i32) {
        let state = self.topics.get_or_insert_with(topic, StickyTopic::default);
        if state
            .current
            .is_some_and(|p| i64::from(p) == i64::from(partition))
        {
            state.at_batch_boundary = true;
        }
    }

    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        self.topics
            .get_or_insert_with(topic, StickyTopic::default)
            .set_loads(loads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &mut UniformStickyPartitioner, records: usize, size: usize, n: i32) -> Vec<i32> {
        (0..records)
            .map(|_| p.partition("t", None, size, n))
            .collect()
    }

    #[test]
    fn sticks_for_a_batch_then_switches() {
        let mut p = UniformStickyPartitioner::new(1000).with_seed(1);
        let placed = run(&mut p, 40, 100, 1_000_000);
        // 10 records of 100 bytes fill a batch; a run never exceeds that.
        for run in placed.chunk_by(|a, b| a == b) {
            assert!(run.len() <= 10);
        }
        assert!(placed.chunks(10).all(|c| c.iter().all(|&x| x == c[0])));
    }

    #[test]
    fn spreads_bytes_evenly() {
        let mut p = UniformStickyPartitioner::new(1000).with_seed(2);
        let mut counts = [0u32; 4];
        for x in run(&mut p, 40_000, 100, 4) {
            counts[x as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn avoids_unavailable_and_prefers_idle_partitions() {
        let mut p = UniformStickyPartitioner::new(100).with_seed(3);
        let loads = [
            PartitionLoad::new(0),
            PartitionLoad::unavailable(),
            PartitionLoad::new(1_000_000),
            PartitionLoad::new(0),
        ];
        p.update_load("t", &loads);
        let mut counts = [0u32; 4];
        for x in run(&mut p, 10_000, 100, 4) {
            counts[x as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[2] < 50, "{counts:?}");
        assert!(counts[0] > 4_000 && counts[3] > 4_000, "{counts:?}");
        // Stats for another partition count are stale and ignored.
        let mut counts = [0u32; 5];
        for x in run(&mut p, 10_000, 100, 5) {
            counts[x as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 1_000), "{counts:?}");
    }

    #[test]
    fn aligned_switch_waits_for_batch_boundary() {
        let mut p = UniformStickyPartitioner::new(1000)
            .with_seed(4)
            .align_with_batches(true);
        let first = p.partition("t", None, 600, 1000);
        assert_eq!(p.partition("t", None, 600, 1000), first);
        // 1200 bytes but the batch is still open: stay.
        assert_eq!(p.partition("t", None, 600, 1000), first);
        // 1800 bytes: still below 2x. Batch now closes.
        p.on_batch_complete("t", first);
        let next = p.partition("t", None, 600, 1000);
        // Switched at the boundary (a fresh draw; with 1000 partitions almost surely new).
        assert_ne!(next, first);
    }

    #[test]
    fn zero_partitions_and_one() {
        let mut p = UniformStickyPartitioner::new(10);
        assert_eq!(p.partition("t", None, 5, 0), 0);
        assert_eq!(p.partition("t", None, 5, -7), 0);
        assert!(run(&mut p, 100, 7, 1).iter().all(|&x| x == 0));
    }
}
