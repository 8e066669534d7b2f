//! Keys declared hot up front ([`HotKeyConfig::known_hot_keys`]).

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::partition_for_key;

const N: i32 = 12;

#[test]
fn a_known_hot_key_under_sub_key_keeps_one_partition_per_sub_key_from_the_first_record() {
    let config = HotKeyConfig::new()
        .spread(4)
        .strategy(SpreadStrategy::SubKey)
        .decay_interval(2_000)
        .known_hot_keys([&b"acct-big"[..]]);
    let mut p = HotKeyPartitioner::new(config);
    let base = partition_for_key(b"acct-big", N);
    let mut placed: BTreeMap<u32, BTreeSet<i32>> = BTreeMap::new();
    for i in 0..20_000u32 {
        // The declared key is rare at first (well below the enter share), then common.
        let key: Vec<u8> = if i % 500 == 0 || i > 10_000 && i % 3 == 0 {
            b"acct-big".to_vec()
        } else {
            format!("acct-{}", i % 3_000).into_bytes()
        };
        let card = i % 8;
        let partition = p.partition_with_sub_key("payments", &key, &card.to_be_bytes(), 10, N);
        if key == b"acct-big" {
            assert!((partition + N - base) % N < 4, "outside its sub-range");
            placed.entry(card).or_default().insert(partition);
        }
    }
    assert!(
        placed.values().all(|used| used.len() == 1),
        "a card moved: {placed:?}"
    );
    let used: BTreeSet<i32> = placed.values().flatten().copied().collect();
    assert!(used.len() > 1, "spread by card: {used:?}");
}

#[test]
fn a_known_hot_key_is_spread_before_the_warm_up_and_never_turns_cold() {
    let config = HotKeyConfig::new()
        .spread(3)
        .warmup(1_000)
        .decay_interval(4_000)
        .known_hot_keys(["tenant-big"]);
    let mut p = HotKeyPartitioner::new(config);
    let base = partition_for_key(b"tenant-big", N);
    let mut used = BTreeSet::new();
    for _ in 0..3 {
        used.insert(p.partition("jobs", Some(b"tenant-big"), 10, N));
    }
    assert_eq!(used.len(), 3, "spread from its first records");
    let hot = p.hot_keys("jobs");
    assert_eq!(hot.len(), 1, "reported hot before the warm-up: {hot:?}");
    assert_eq!(hot[0].key, b"tenant-big");

    // Its share falls to 0.1 %, far below the exit share: still spread.
    used.clear();
    for i in 0..30_000u32 {
        if i % 1_000 == 0 {
            used.insert(p.partition("jobs", Some(b"tenant-big"), 10, N));
        } else {
            let key = format!("t-{}", i % 5_000);
            p.partition("jobs", Some(key.as_bytes()), 10, N);
        }
    }
    let expected: BTreeSet<i32> = (0..3).map(|i| (base + i) % N).collect();
    assert_eq!(used, expected, "still round robin over its sub-range");
}

#[test]
fn undeclared_keys_are_still_found_online_and_cold_ones_stay_put() {
    let config = HotKeyConfig::new()
        .hot_share(0.2, 0.1)
        .spread(3)
        .seed(1)
        .known_hot_keys([b"declared".to_vec()]);
    let mut p = HotKeyPartitioner::new(config);
    for i in 0..10_000u32 {
        let key = match i % 4 {
            0 | 1 => b"found".to_vec(),
            2 if i % 8 == 2 => b"declared".to_vec(),
            _ => format!("cold-{i}").into_bytes(),
        };
        let partition = p.partition("t", Some(&key), 10, N);
        if key.starts_with(b"cold-") {
            assert_eq!(partition, partition_for_key(&key, N), "a cold key moved");
        }
    }
    let hot: BTreeSet<Vec<u8>> = p.hot_keys("t").into_iter().map(|h| h.key).collect();
    let expected: BTreeSet<Vec<u8>> = [b"declared".to_vec(), b"found".to_vec()].into();
    assert_eq!(hot, expected);
    assert!(p.config().is_known_hot(b"declared"));
    assert!(!p.config().is_known_hot(b"found"), "found, not declared");
}
