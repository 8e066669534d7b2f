//! Hot-key spreading on top of murmur2 placement. The user-facing explanation (what it
//! gives up, how it works, which strategy to choose) is on [`HotKeyPartitioner`], since
//! this module is private.

mod config;
mod sketch;

pub use config::{HotKeyConfig, SpreadStrategy};

use crate::murmur2::{murmur2, to_positive, Murmur2Partitioner};
use crate::partitioner::{partition_id, positive_count, PartitionLoad, Partitioner};
use crate::rng::Rng;
use crate::sticky::UniformStickyPartitioner;
use crate::topics::TopicMap;
use sketch::SpaceSaving;

/// Murmur2 placement that spreads hot keys over a bounded sub-range of partitions.
///
/// With skewed keys (a few users, tenants or devices produce most records) murmur2 puts
/// each heavy key's whole traffic on one partition, and that partition's consumer falls
/// behind while the others idle. [`HotKeyPartitioner`] finds heavy keys online and spreads
/// only those over a few neighbouring partitions.
///
/// # What it gives up
/// **Per-key order, for hot keys only.** Records of a hot key land on several partitions,
/// and consumers see them in no particular relative order. Cold keys keep exact murmur2
/// placement (the partition the Java client would choose) and full order. A key also moves
/// when it turns hot or cold, so records sent around that moment may be reordered (a key
/// declared hot up front, [`HotKeyConfig::known_hot_keys`], never moves). If the
/// consumers need order per key, do not spread: use [`Murmur2Partitioner`]. If they need
/// order per (key, something finer), use [`SpreadStrategy::SubKey`].
///
/// # How it works
/// - A Space-Saving sketch per topic counts recent records per key (bounded memory: the
///   sketch capacity), with counts halved every `decay_interval` records.
/// - A key is hot when the lower bound of its share reaches the enter share, and cold again
///   below the exit share (hysteresis). Keys known to be hot can be declared up front
///   ([`HotKeyConfig::known_hot_keys`]): they are spread from their first record and
///   never move.
/// - A hot key with normal partition `base` goes to `(base + i) % n` for `i` in `0..k`,
///   with `i` from the [`SpreadStrategy`]. With a load cap, `k` grows with the key's share.
///
/// # Choosing a strategy
/// | strategy | spread | order kept |
/// |---|---|---|
/// | [`RoundRobin`](SpreadStrategy::RoundRobin) (default) | exactly even | none for hot keys |
/// | [`Random`](SpreadStrategy::Random) | even on average, no lock-step between producers | none for hot keys |
/// | [`SubKey`](SpreadStrategy::SubKey) | as even as the sub-keys are | per (key, sub-key) |
///
/// Keyless records are placed by uniform sticky partitioning, as in [`Murmur2Partitioner`].
///
/// # Example
/// ```
/// use sluice_partition::{HotKeyConfig, HotKeyPartitioner, Partitioner, partition_for_key};
///
/// let mut p = HotKeyPartitioner::new(HotKeyConfig::new().hot_share(0.2, 0.1).spread(3).seed(1));
/// for i in 0..10_000u32 {
///     let key = if i % 2 == 0 { b"celebrity".to_vec() } else { i.to_be_bytes().to_vec() };
///     let partition = p.partition("posts", Some(&key), 100, 12);
///     let base = partition_for_key(&key, 12);
///     // Every key stays within `k = 3` partitions of its murmur2 partition.
///     assert!((partition + 12 - base) % 12 < 3);
/// }
/// let hot = p.hot_keys("posts");
/// assert_eq!(hot.len(), 1);
/// assert_eq!(hot[0].key, b"celebrity");
/// assert!(hot[0].share > 0.45);
/// ```
#[derive(Debug)]
pub struct HotKeyPartitioner {
    config: HotKeyConfig,
    keyless: Murmur2Partitioner,
    topics: TopicMap<SpaceSaving>,
    rng: Rng,
    /// The round-robin turn of each key declared hot (by its place in the config), kept
    /// here rather than in the sketch, which forgets a key while it is rare.
    known_turns: Vec<u32>,
}

/// A key the partitioner currently spreads, for metrics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HotKey {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// Estimated share of the topic's recent records (a lower bound, off by at most
    /// [`HotKeyConfig::error_bound`]).
    pub share: f64,
}

impl HotKeyPartitioner {
    /// A hot-key partitioner with these settings.
    pub fn new(config: HotKeyConfig) -> Self {
        let (rng, keyless) = match config.seed {
            Some(seed) => (
                Rng::seeded(seed),
                UniformStickyPartitioner::default().with_seed(seed ^ 0x5bd1_e995),
            ),
            None => (Rng::from_entropy(), UniformStickyPartitioner::default()),
        };
        Self {
            known_turns: vec![0; config.known_hot.len()],
            config,
            keyless: Murmur2Partitioner::with_keyless(keyless),
            topics: TopicMap::default(),
            rng,
        }
    }

    /// Use `keyless` for records without a key (by default a
    /// [`UniformStickyPartitioner`] with Java's default `batch.size`, seeded from the
    /// config's seed if it has one).
    pub fn with_keyless(mut self, keyless: UniformStickyPartitioner) -> Self {
        self.keyless = Murmur2Partitioner::with_keyless(keyless);
        self
    }

    /// The settings.
    pub fn config(&self) -> &HotKeyConfig {
        &self.config
    }

    /// The keys of `topic` that are hot now, with their estimated shares, largest first.
    pub fn hot_keys(&self, topic: &str) -> Vec<HotKey> {
        let Some(sketch) = self.topics.get(topic) else {
            return Vec::new();
        };
        let total = sketch.total();
        let warm = total > 0 && total >= self.config.effective_warmup();
        let mut hot: Vec<HotKey> = sketch
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.hot)
            .map(|(i, e)| HotKey {
                key: e.key.clone(),
                share: sketch.guaranteed(i) as f64 / total.max(1) as f64,
            })
            // A key flagged hot that was not seen since decay may have cooled already;
            // a key declared hot stays hot.
            .filter(|h| {
                self.config.is_known_hot(&h.key) || warm && h.share >= self.config.exit_share
            })
            .collect();
        hot.sort_by(|a, b| b.share.total_cmp(&a.share));
        hot
    }

    fn place(&mut self, topic: &str, key: &[u8], sub_key: Option<&[u8]>, partitions: i32) -> i32 {
        let Some(partitions) = positive_count(partitions) else {
            return 0;
        };
        partition_id(self.place_in(topic, key, sub_key, partitions))
    }

    /// [`HotKeyPartitioner::place`] for a positive count, in unsigned arithmetic.
    fn place_in(
        &mut self,
        topic: &str,
        key: &[u8],
        sub_key: Option<&[u8]>,
        partitions: u32,
    ) -> u32 {
        let hash = murmur2(key);
        let base = to_positive(hash).unsigned_abs() % partitions;
        let config = &self.config;
        let sketch = self.topics.get_or_insert_with(topic, || {
            SpaceSaving::new(config.capacity, config.decay_interval)
        });
        let i = sketch.observe(key, hash as u32);
        let total = sketch.total();
        let guaranteed = sketch.guaranteed(i);
        let Some(entry) = sketch.entry_mut(i) else {
            return base;
        };

        // Divisions are a large part of the per-record cost, so shares are compared by
        // multiplying and the round-robin turn is kept below the width.
        let guaranteed = guaranteed as f64;
        let total = total as f64;
        let warm = total >= config.effective_warmup() as f64 && total > 0.0;
        let threshold = if entry.hot {
            config.exit_share
        } else {
            config.enter_share
        };
        let known = config.known_hot_index(key);
        entry.hot = known.is_some() || warm && guaranteed >= threshold * total;
        if !entry.hot || partitions == 1 {
            return base;
        }

        let mut width = config.spread.min(partitions);
        if let Some(cap) = config.load_cap {
            // ceil without a libm call; `as` saturates and the result is capped anyway.
            let ratio = guaranteed / (cap * total);
            let floor = ratio as u32;
            let needed = floor.saturating_add(u32::from(f64::from(floor) < ratio));
            width = width.max(needed.min(partitions));
        }
        let offset = match config.strategy {
            SpreadStrategy::RoundRobin => {
                let slot = match known.and_then(|k| self.known_turns.get_mut(k)) {
                    Some(slot) => slot,
                    None => &mut entry.turn,
                };
                let turn = if *slot >= width { 0 } else { *slot };
                *slot = turn + 1;
                turn
            }
            SpreadStrategy::Random => self.rng.below(width),
            SpreadStrategy::SubKey => {
                sub_key.map_or(0, |s| to_positive(murmur2(s)).unsigned_abs() % width)
            }
        };
        // base < partitions and offset < width <= partitions: one subtraction wraps.
        let (sum, overflow) = base.overflowing_add(offset);
        if overflow || sum >= partitions {
            sum.wrapping_sub(partitions)
        } else {
            sum
        }
    }
}

impl Partitioner for HotKeyPartitioner {
    #[inline]
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value_len: usize,
        partitions: i32,
    ) -> i32 {
        match key {
            Some(key) => self.place(topic, key, None, partitions),
            None => self.keyless.partition(topic, None, value_len, partitions),
        }
    }

    /// Records of a hot key with equal sub-keys go to the same partition under
    /// [`SpreadStrategy::SubKey`]; with other strategies the sub-key is ignored.
    fn partition_with_sub_key(
        &mut self,
        topic: &str,
        key: &[u8],
        sub_key: &[u8],
        _value_len: usize,
        partitions: i32,
    ) -> i32 {
        self.place(topic, key, Some(sub_key), partitions)
    }

    fn on_batch_complete(&mut self, topic: &str, partition: i32) {
        self.keyless.on_batch_complete(topic, partition);
    }

    fn update_load(&mut self, topic: &str, loads: &[PartitionLoad]) {
        self.keyless.update_load(topic, loads);
    }
}

/// A sub-key for [`SpreadStrategy::SubKey`] that groups records by time: the index of the
/// `bucket_ms`-wide window holding `timestamp_ms`, as 8 big-endian bytes.
///
/// With it a hot key's records stay in order within each time bucket (all of a bucket goes
/// to one partition) while successive buckets spread over the sub-range. A `bucket_ms` of 0
/// is treated as 1.
///
/// ```
/// use sluice_partition::{
///     time_bucket, HotKeyConfig, HotKeyPartitioner, Partitioner, SpreadStrategy,
/// };
///
/// let mut p = HotKeyPartitioner::new(HotKeyConfig::new().strategy(SpreadStrategy::SubKey));
/// let ts = 1_764_000_000_123;
/// let sub_key = time_bucket(ts, 60_000);
/// let partition = p.partition_with_sub_key("clicks", b"user-1", &sub_key, 100, 12);
/// assert!((0..12).contains(&partition));
/// assert_eq!(time_bucket(ts, 60_000), time_bucket(ts + 1_000, 60_000));
/// ```
pub fn time_bucket(timestamp_ms: i64, bucket_ms: u64) -> [u8; 8] {
    let bucket_ms = i64::try_from(bucket_ms.max(1)).unwrap_or(i64::MAX);
    timestamp_ms.div_euclid(bucket_ms).to_be_bytes()
}

#[cfg(test)]
mod tests;
