//! Round robin: every record to the next partition, keys ignored.

use crate::partitioner::{partition_id, positive_count, PartitionLoad, Partitioner};
use crate::topics::TopicMap;

/// Places records on partitions 0, 1, 2, ... in turn, per topic, ignoring keys (Java's
/// `RoundRobinPartitioner`).
///
/// Each record makes its own batch unless several arrive for one partition within
/// `linger.ms`; prefer [`UniformStickyPartitioner`](crate::UniformStickyPartitioner) for
/// throughput and use this one when an even record count per partition matters more.
/// Partitions marked unavailable through [`Partitioner::update_load`] are skipped.
///
/// ```
/// use sluice_partition::{Partitioner, RoundRobinPartitioner};
///
/// let mut p = RoundRobinPartitioner::new();
/// let placed: Vec<i32> = (0..5).map(|_| p.partition("t", Some(b"k"), 0, 3)).collect();
/// assert_eq!(placed, [0, 1, 2, 0, 1]);
/// ```
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    topics: TopicMap<RoundRobinTopic>,
}

#[derive(Debug, Default)]
struct RoundRobinTopic {
    next: u32,
    /// Available partitions from the last load update and the partition count it was for.
    available: Vec<u32>,
    available_for: u32,
}

impl RoundRobinPartitioner {
    /// A round robin partitioner starting at partition 0 for every topic.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(
        &mut self,
        topic: &str,
        _key: Option<&[u8]>,
        _value_len: usize,
        partitions: i32,
    ) -> i32 {
        let Some(partitions) = positive_count(partitions) else {
            return 0;
        };
        let state = self
            .topics
            .get_or_insert_with(topic, RoundRobinTopic::default);
        let turn = state.next;
        state.next = state.next.wrapping_add(1);
        if state.available_for == partitions && !state.available.is_empty() {
            let len = state.available.len() as u32;
            if let Some(&p) = state.available.get((turn % len) as usize) {
                return partition_id(p);
            }
        }
        partition_id(turn % partitions)
    }

    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        let state = self
            .topics
            .get_or_insert_with(topic, RoundRobinTopic::default);
        state.available_for = u32::try_from(loads.len()).unwrap_or(u32::MAX);
        state.available.clear();
        state.available.extend(
            loads
                .iter()
                .enumerate()
                .filter(|(_, l)| l.available)
                .filter_map(|(i, _)| u32::try_from(i).ok()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_unavailable() {
        let mut p = RoundRobinPartitioner::new();
        p.update_load(
            "t",
            &[
                PartitionLoad::new(0),
                PartitionLoad::unavailable(),
                PartitionLoad::new(9),
            ],
        );
        let placed: Vec<i32> = (0..4).map(|_| p.partition("t", None, 0, 3)).collect();
        assert_eq!(placed, [0, 2, 0, 2]);
        // Another topic is unaffected.
        assert_eq!(p.partition("u", None, 0, 3), 0);
        assert_eq!(p.partition("u", None, 0, 3), 1);
    }

    #[test]
    fn zero_partitions() {
        assert_eq!(RoundRobinPartitioner::new().partition("t", None, 0, 0), 0);
        assert_eq!(RoundRobinPartitioner::new().partition("t", None, 0, -2), 0);
    }
}
