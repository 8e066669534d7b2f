//! Laws every partitioner keeps, checked with proptest.

use proptest::prelude::*;
use sluice_partition::{
    partition_for_key, HotKeyConfig, HotKeyPartitioner, Murmur2Partitioner, PartitionLoad,
    Partitioner, RoundRobinPartitioner, SpreadStrategy, UniformStickyPartitioner,
};

const TOPIC: &str = "t";

/// Keys from a small alphabet, skewed so that some become hot: key 0 is drawn often.
fn skewed_stream(max_len: usize) -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(
        prop_oneof![4 => Just(0u16), 2 => 0u16..4, 3 => 0u16..300],
        0..max_len,
    )
}

fn key(i: u16) -> Vec<u8> {
    // Varying lengths exercise every murmur2 tail.
    let mut k = format!("key-{i}").into_bytes();
    k.truncate(1 + usize::from(i % 9));
    k.extend_from_slice(&i.to_le_bytes());
    k
}

fn strategy() -> impl Strategy<Value = SpreadStrategy> {
    prop_oneof![
        Just(SpreadStrategy::RoundRobin),
        Just(SpreadStrategy::Random),
        Just(SpreadStrategy::SubKey),
    ]
}

fn config() -> impl Strategy<Value = HotKeyConfig> {
    config_with_spread().prop_map(|(config, _)| config)
}

/// A config and the sub-range width `k` it was given.
fn config_with_spread() -> impl Strategy<Value = (HotKeyConfig, u32)> {
    (
        0.02f64..0.5,
        0.0f64..1.0,
        1u32..6,
        strategy(),
        1usize..64,
        0u64..500,
        0u64..200,
        any::<u64>(),
    )
        .prop_map(|(enter, exit_frac, k, strategy, m, decay, warmup, seed)| {
            let config = HotKeyConfig::new()
                .hot_share(enter, enter * exit_frac)
                .spread(k)
                .strategy(strategy)
                .sketch_capacity(m)
                .decay_interval(decay)
                .warmup(warmup)
                .seed(seed);
            (config, k)
        })
}

fn place(p: &mut HotKeyPartitioner, k: &[u8], i: usize, n: i32) -> i32 {
    if i.is_multiple_of(3) {
        p.partition_with_sub_key(TOPIC, k, &(i as u64 % 5).to_be_bytes(), 10, n)
    } else {
        p.partition(TOPIC, Some(k), 10, n)
    }
}

proptest! {
    /// A key placed anywhere but its murmur2 partition is hot right after.
    #[test]
    fn only_hot_keys_leave_their_murmur2_partition(
        config in config(), stream in skewed_stream(1500), n in 1i32..40,
    ) {
        let mut p = HotKeyPartitioner::new(config);
        for (i, &k) in stream.iter().enumerate() {
            let k = key(k);
            let placed = place(&mut p, &k, i, n);
            if placed != partition_for_key(&k, n) {
                prop_assert!(p.hot_keys(TOPIC).iter().any(|h| h.key == k));
            }
        }
    }

    /// When no key can reach the enter share, every key keeps exact murmur2 placement.
    #[test]
    fn cold_keys_map_to_murmur2(
        stream in prop::collection::vec(0u16..1000, 0..2000), n in 1i32..1000, seed in any::<u64>(),
    ) {
        // 40 records per key at most out of >= 1000 after warm-up: share < 0.04 < 0.05.
        let mut counts = std::collections::HashMap::new();
        let stream: Vec<u16> = stream.into_iter().filter(|&k| {
            let c = counts.entry(k).or_insert(0);
            *c += 1;
            *c <= 40
        }).collect();
        let config = HotKeyConfig::new().hot_share(0.05, 0.04).sketch_capacity(4096).warmup(1000).seed(seed);
        let mut p = HotKeyPartitioner::new(config);
        for (i, &k) in stream.iter().enumerate() {
            let k = key(k);
            prop_assert_eq!(place(&mut p, &k, i, n), partition_for_key(&k, n));
        }
    }

    /// A hot key stays within `(base + i) % n` for `i < k` (or the load cap's width).
    #[test]
    fn hot_keys_stay_in_their_sub_range(
        (config, spread) in config_with_spread(), cap in prop::option::of(0.01f64..0.5),
        stream in skewed_stream(1500), n in 1i32..40,
    ) {
        let config = match cap { Some(c) => config.load_cap(c), None => config };
        let width = match cap {
            Some(c) => spread.max((1.0 / c).ceil() as u32),
            None => spread,
        }.min(n.unsigned_abs());
        let width = i32::try_from(width).unwrap();
        let mut p = HotKeyPartitioner::new(config);
        for (i, &k) in stream.iter().enumerate() {
            let k = key(k);
            let base = partition_for_key(&k, n);
            let placed = place(&mut p, &k, i, n);
            prop_assert!((0..n).contains(&placed));
            prop_assert!((placed + n - base) % n < width, "base {} placed {} width {}", base, placed, width);
        }
    }

    /// Same seed, same input: same placements.
    #[test]
    fn seeded_placements_are_reproducible(
        config in config(), stream in skewed_stream(1000), n in 1i32..40,
    ) {
        let mut a = HotKeyPartitioner::new(config.clone());
        let mut b = HotKeyPartitioner::new(config);
        for (i, &k) in stream.iter().enumerate() {
            let k = key(k);
            let keyless = i % 7 == 0;
            let (pa, pb) = if keyless {
                (a.partition(TOPIC, None, i, n), b.partition(TOPIC, None, i, n))
            } else {
                (place(&mut a, &k, i, n), place(&mut b, &k, i, n))
            };
            prop_assert_eq!(pa, pb);
        }
        prop_assert_eq!(a.hot_keys(TOPIC), b.hot_keys(TOPIC));
    }

    /// Every partitioner answers in `0..n` for any input, and 0 for `n == 1` (and for
    /// `n <= 0`, which has no valid answer).
    #[test]
    fn partitions_are_in_range(
        ops in prop::collection::vec(
            (any::<Option<u16>>(), 0usize..50_000, -5i32..3000, 0u8..10, prop::collection::vec((any::<u16>(), any::<bool>()), 0..20)),
            0..300,
        ),
        seed in any::<u64>(),
    ) {
        let mut partitioners: Vec<Box<dyn Partitioner>> = vec![
            Box::new(Murmur2Partitioner::with_keyless(UniformStickyPartitioner::new(1000).with_seed(seed))),
            Box::new(UniformStickyPartitioner::new(500).with_seed(seed).align_with_batches(seed % 2 == 0)),
            Box::new(RoundRobinPartitioner::new()),
            Box::new(HotKeyPartitioner::new(HotKeyConfig::new().warmup(10).hot_share(0.1, 0.05).load_cap(0.02).seed(seed))),
        ];
        for (key, value_len, n, action, loads) in ops {
            let key = key.map(self::key);
            for p in &mut partitioners {
                match action {
                    0 => {
                        let loads: Vec<PartitionLoad> = loads.iter()
                            .map(|&(q, a)| PartitionLoad { queued_bytes: u64::from(q), available: a })
                            .collect();
                        p.update_load(TOPIC, &loads);
                    }
                    1 => p.on_batch_complete(TOPIC, n % 7),
                    _ => {}
                }
                let placed = p.partition(TOPIC, key.as_deref(), value_len, n);
                match n {
                    n if n <= 1 => prop_assert_eq!(placed, 0),
                    n => prop_assert!((0..n).contains(&placed)),
                }
            }
        }
    }

    /// The sketch's bound: with true share at least `enter + 1/capacity`, a key is hot.
    #[test]
    fn heavy_keys_are_always_reported_hot(
        stream in skewed_stream(3000), enter in 0.02f64..0.4, m in 4usize..64,
    ) {
        let config = HotKeyConfig::new().hot_share(enter, enter * 0.8).sketch_capacity(m).warmup(0).decay_interval(0);
        let bound = config.error_bound();
        let mut p = HotKeyPartitioner::new(config);
        let mut counts = std::collections::HashMap::new();
        for &k in &stream {
            p.partition(TOPIC, Some(&key(k)), 0, 12);
            *counts.entry(k).or_insert(0u64) += 1;
        }
        let hot = p.hot_keys(TOPIC);
        let total = stream.len() as f64;
        for (&k, &c) in &counts {
            if c as f64 / total >= enter + bound + 1e-9 {
                prop_assert!(hot.iter().any(|h| h.key == key(k)), "key {} share {}", k, c as f64 / total);
            }
        }
    }
}

#[test]
fn one_partition_works() {
    let mut p = HotKeyPartitioner::new(HotKeyConfig::new().warmup(0).hot_share(0.1, 0.05));
    for _ in 0..1000 {
        assert_eq!(p.partition(TOPIC, Some(b"hot"), 1, 1), 0);
    }
    assert_eq!(p.hot_keys(TOPIC).len(), 1);
}

#[test]
fn a_key_that_cools_down_returns_to_murmur2() {
    let n = 12;
    let config = HotKeyConfig::new()
        .hot_share(0.1, 0.05)
        .spread(4)
        .decay_interval(5_000)
        .seed(3);
    let mut p = HotKeyPartitioner::new(config);
    let base = partition_for_key(b"hot", n);
    let mut used = std::collections::BTreeSet::new();
    for i in 0..20_000u32 {
        used.insert(p.partition(TOPIC, Some(b"hot"), 1, n));
        p.partition(TOPIC, Some(&(i % 1000).to_be_bytes()), 1, n);
    }
    assert_eq!(used.len(), 4);
    assert_eq!(p.hot_keys(TOPIC)[0].key, b"hot");
    // Now the key is rare: decay forgets its past.
    for i in 0..50_000u32 {
        p.partition(TOPIC, Some(&(i % 1000).to_be_bytes()), 1, n);
    }
    assert!(p.hot_keys(TOPIC).is_empty());
    assert_eq!(p.partition(TOPIC, Some(b"hot"), 1, n), base);
}

#[test]
fn hysteresis_keeps_a_key_hot_between_exit_and_enter() {
    let n = 12;
    let config = HotKeyConfig::new()
        .hot_share(0.3, 0.1)
        .spread(3)
        .warmup(100)
        .decay_interval(1_000)
        .seed(5);
    let mut p = HotKeyPartitioner::new(config);
    let base = partition_for_key(b"k", n);
    // Phase 1: 50% share, hot.
    for i in 0..5_000u32 {
        p.partition(TOPIC, Some(b"k"), 1, n);
        p.partition(TOPIC, Some(&(i % 500).to_be_bytes()), 1, n);
    }
    // Phase 2: 20% share, between exit and enter: stays hot and spread.
    let mut used = std::collections::BTreeSet::new();
    for i in 0..20_000u32 {
        if i % 5 == 0 {
            used.insert(p.partition(TOPIC, Some(b"k"), 1, n));
        } else {
            p.partition(TOPIC, Some(&(i % 500).to_be_bytes()), 1, n);
        }
    }
    assert_eq!(used.len(), 3);
    // A fresh partitioner that only ever sees 20% never makes the key hot.
    let mut fresh = HotKeyPartitioner::new(
        HotKeyConfig::new()
            .hot_share(0.3, 0.1)
            .spread(3)
            .warmup(100)
            .seed(5),
    );
    for i in 0..20_000u32 {
        if i % 5 == 0 {
            assert_eq!(fresh.partition(TOPIC, Some(b"k"), 1, n), base);
        } else {
            fresh.partition(TOPIC, Some(&(i % 500).to_be_bytes()), 1, n);
        }
    }
}

#[test]
fn sub_key_strategy_keeps_order_per_sub_key() {
    let n = 12;
    let config = HotKeyConfig::new()
        .hot_share(0.2, 0.1)
        .spread(4)
        .strategy(SpreadStrategy::SubKey)
        .seed(9);
    let mut p = HotKeyPartitioner::new(config);
    let mut seen = std::collections::HashMap::new();
    let mut used = std::collections::BTreeSet::new();
    for i in 0..20_000u32 {
        let sub = (i % 16).to_be_bytes();
        let placed = p.partition_with_sub_key(TOPIC, b"hot", &sub, 1, n);
        if i >= 2_000 {
            // Past warm-up the key is hot: each sub-key has one partition.
            assert_eq!(*seen.entry(sub).or_insert(placed), placed);
            used.insert(placed);
        }
        p.partition(TOPIC, Some(&(i % 1000).to_be_bytes()), 1, n);
    }
    assert!(used.len() > 1);
}

#[test]
fn short_decay_interval_does_not_block_warm_up() {
    // Decay every 500 records keeps the decayed total below 1,000: the warm-up is capped.
    let config = HotKeyConfig::new()
        .decay_interval(500)
        .warmup(1_000)
        .hot_share(0.2, 0.1);
    let mut p = HotKeyPartitioner::new(config);
    for i in 0..5_000u32 {
        p.partition(TOPIC, Some(b"hot"), 1, 12);
        p.partition(TOPIC, Some(&(i % 100).to_be_bytes()), 1, 12);
    }
    assert_eq!(p.hot_keys(TOPIC).len(), 1);
}
