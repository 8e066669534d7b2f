//! Settings of the [`HotKeyPartitioner`](super::HotKeyPartitioner).

/// How a hot key's records are spread over its sub-range of partitions.
///
/// Whatever the strategy, records of a hot key no longer share one partition, so their
/// relative order is lost except as noted below. Cold keys are not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpreadStrategy {
    /// Each record of a hot key goes to the next partition of its sub-range in turn. The
    /// most even spread, deterministic; no order at all across the key's records. The
    /// default.
    #[default]
    RoundRobin,
    /// Each record goes to a random partition of the sub-range (seeded, see
    /// [`HotKeyConfig::seed`]). Even on average; useful when several producers send the
    /// same hot key and lock-step round robin would make them hit the same partition
    /// together.
    Random,
    /// The partition within the sub-range is chosen by a caller-given sub-key
    /// (`murmur2(sub_key) % width`), passed with
    /// [`Partitioner::partition_with_sub_key`](crate::Partitioner::partition_with_sub_key)
    /// (on a `sluice-wire` producer: `ProducerRecord::sub_key`).
    /// Records with the same key and sub-key stay in order, as long as the key stays hot and
    /// its sub-range width does not change. Choose it when consumers need order per
    /// (key, sub-key), e.g. per (user, session) or per (key, time bucket) with
    /// [`time_bucket`](super::time_bucket). Without a sub-key (plain
    /// [`Partitioner::partition`](crate::Partitioner::partition)) a hot key stays on its
    /// normal partition.
    SubKey,
}

/// Settings of a [`HotKeyPartitioner`](super::HotKeyPartitioner). Built with chained
/// setters from [`HotKeyConfig::default`]; out-of-range values are clamped, never rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct HotKeyConfig {
    pub(crate) enter_share: f64,
    pub(crate) exit_share: f64,
    pub(crate) spread: u32,
    pub(crate) strategy: SpreadStrategy,
    pub(crate) load_cap: Option<f64>,
    pub(crate) capacity: usize,
    pub(crate) decay_interval: u64,
    pub(crate) warmup: u64,
    pub(crate) seed: Option<u64>,
    /// Keys spread from their first record, whatever their share; sorted, no repeats.
    pub(crate) known_hot: Vec<Vec<u8>>,
}

impl Default for HotKeyConfig {
    /// Hot at 1% of recent records, cold again below 0.8%; spread over 4 partitions round
    /// robin; no load cap; a 256-counter sketch (error bound 1/256 ≈ 0.4%); decay every
    /// 100,000 records; no key is hot before 1,000 records were seen; random seed.
    fn default() -> Self {
        Self {
            enter_share: 0.01,
            exit_share: 0.008,
            spread: 4,
            strategy: SpreadStrategy::RoundRobin,
            load_cap: None,
            capacity: 256,
            decay_interval: 100_000,
            warmup: 1_000,
            seed: None,
            known_hot: Vec::new(),
        }
    }
}

impl HotKeyConfig {
    /// The defaults; see [`HotKeyConfig::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A key becomes hot when its share of recent records reaches `enter` and cold again
    /// when it falls below `exit`. The gap is hysteresis, so a key near the threshold does
    /// not flap between spread and normal placement. `enter` is clamped to `(0, 1]` and
    /// `exit` to `[0, enter]`. Default: 0.01 and 0.008.
    pub fn hot_share(mut self, enter: f64, exit: f64) -> Self {
        let enter = if enter.is_nan() {
            1.0
        } else {
            enter.clamp(f64::MIN_POSITIVE, 1.0)
        };
        let exit = if exit.is_nan() {
            0.0
        } else {
            exit.clamp(0.0, enter)
        };
        self.enter_share = enter;
        self.exit_share = exit;
        self
    }

    /// A hot key is spread over `k` partitions: `(base + i) % n` for `i` in `0..k`, where
    /// `base` is its murmur2 partition and `n` the partition count (`k` is capped at `n`).
    /// Clamped to at least 1 (1 means no spreading unless a load cap widens it). Default: 4.
    pub fn spread(mut self, k: u32) -> Self {
        self.spread = k.max(1);
        self
    }

    /// How records are spread within the sub-range. Default: [`SpreadStrategy::RoundRobin`].
    pub fn strategy(mut self, strategy: SpreadStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Per-key load cap: a hot key may put at most `share` of all records onto any one
    /// partition. A key with estimated share `s` gets `ceil(s / share)` partitions when that
    /// is more than [`spread`](Self::spread), up to all of them. For an even load, set it
    /// well below the fair share `1 / n`: sub-ranges of different hot keys overlap and their
    /// loads add up. With Zipf(1.2) keys on 12 partitions, `0.25 / n` gave a max/mean
    /// partition load of 1.33 (`0.5 / n`: 1.61; murmur2 alone: 3.0). Values that are not
    /// positive turn the cap off. Default: off.
    pub fn load_cap(mut self, share: f64) -> Self {
        self.load_cap = (share > 0.0).then_some(share);
        self
    }

    /// Counters in the heavy-hitter sketch, per topic (memory: this many keys). The sketch
    /// underestimates a share by at most `1 / capacity`, see
    /// [`error_bound`](Self::error_bound); keep that well below the enter share. Clamped to
    /// `1..=16384`. Default: 256.
    pub fn sketch_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.clamp(1, super::sketch::MAX_CAPACITY);
        self
    }

    /// Every `records` records all counts are halved, so shares describe recent traffic and
    /// a key that cools down returns to normal placement. 0 never decays. Default: 100,000.
    pub fn decay_interval(mut self, records: u64) -> Self {
        self.decay_interval = records;
        self
    }

    /// No key is hot until the sketch has counted `records` (decayed) records, so the first
    /// few records do not all look hot. Capped at half the decay interval, since decay keeps
    /// the decayed total between half the interval and twice it. Default: 1,000.
    pub fn warmup(mut self, records: u64) -> Self {
        self.warmup = records;
        self
    }

    /// Seed for [`SpreadStrategy::Random`] and keyless sticky placement, for reproducible
    /// placements. Default: a random seed per partitioner.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Keys known to be hot before any record is seen (a large tenant, a celebrity
    /// account, a device known to be chatty): in every topic they are spread from their
    /// first record, with no warm-up and whatever their share, and they never turn cold,
    /// so they never move (the online detection still finds the others). Without a load
    /// cap their sub-range is [`spread`](Self::spread) wide from the start, so under
    /// [`SpreadStrategy::SubKey`] a (key, sub-key) keeps one partition for good; a
    /// [`load_cap`](Self::load_cap) may still widen it as the key's share grows. Adds to
    /// the keys given before. Default: none.
    ///
    /// ```
    /// use sluice_partition::{partition_for_key, HotKeyConfig, HotKeyPartitioner, Partitioner};
    ///
    /// let config = HotKeyConfig::new().spread(3).known_hot_keys(["tenant-big"]);
    /// let mut p = HotKeyPartitioner::new(config);
    /// let base = partition_for_key(b"tenant-big", 12);
    /// // Round robin over its 3 partitions from the very first record.
    /// let first: Vec<i32> = (0..3).map(|_| p.partition("jobs", Some(b"tenant-big"), 10, 12)).collect();
    /// assert_eq!(first, [base, (base + 1) % 12, (base + 2) % 12]);
    /// assert_eq!(p.hot_keys("jobs")[0].key, b"tenant-big");
    /// ```
    pub fn known_hot_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        self.known_hot
            .extend(keys.into_iter().map(|k| k.as_ref().to_vec()));
        self.known_hot.sort_unstable();
        self.known_hot.dedup();
        self
    }

    /// The place of `key` among the keys declared with
    /// [`known_hot_keys`](Self::known_hot_keys), if it is one.
    pub(crate) fn known_hot_index(&self, key: &[u8]) -> Option<usize> {
        if self.known_hot.is_empty() {
            return None;
        }
        self.known_hot
            .binary_search_by(|k| k.as_slice().cmp(key))
            .ok()
    }

    /// Whether `key` was declared hot with [`known_hot_keys`](Self::known_hot_keys).
    pub(crate) fn is_known_hot(&self, key: &[u8]) -> bool {
        self.known_hot_index(key).is_some()
    }

    /// The warm-up actually applied: see [`warmup`](Self::warmup).
    pub(crate) fn effective_warmup(&self) -> u64 {
        if self.decay_interval > 0 {
            self.warmup.min(self.decay_interval / 2)
        } else {
            self.warmup
        }
    }

    /// The sketch's worst-case underestimate of a key's share: `1 / capacity`. A key whose
    /// true share of recent records is at least `enter + error_bound()` is always hot once
    /// the warm-up is over.
    pub fn error_bound(&self) -> f64 {
        1.0 / self.capacity as f64
    }
}
