//! A partitioner on a real producer against a real broker: the hot-key partitioner's
//! sub-key strategy through `ProducerRecord::sub_key`. One hot key with four sub-keys
//! spreads over several partitions while each (key, sub-key) keeps one partition and its
//! send order; a cold key keeps its murmur2 partition.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use common::{cluster, create_topic, read_partition, WARMUP};
use sluice::partition::{partition_for_key, HotKeyConfig, HotKeyPartitioner, SpreadStrategy};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};

const PARTITIONS: i32 = 12;
const HOT: &[u8] = b"account-hot";
const COLD: &[u8] = b"account-cold-7";
const SUB_KEYS: u64 = 4;
/// Records before the partitioner may call a key hot; sent as warm-up and not checked.
const WARMUP_RECORDS: u64 = 400;
const RECORDS: u64 = 2_000;

/// Every other record is the hot key; the rest cycle through 100 cold keys.
fn key_of(i: u64) -> Vec<u8> {
    if i.is_multiple_of(2) {
        HOT.to_vec()
    } else {
        format!("account-cold-{}", (i / 2) % 100).into_bytes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_key_sub_keys_spread_and_keep_order_per_sub_key() {
    let bootstrap = sluice_testkit::bootstrap();
    let cluster = cluster(&bootstrap).await;
    let topic = sluice_testkit::unique_topic("producer-sub-key");
    create_topic(&cluster, &topic, PARTITIONS).await;
    let config = ProducerConfig::new(&bootstrap)
        .linger(Duration::from_millis(5))
        .partitioner(|| {
            Box::new(HotKeyPartitioner::new(
                HotKeyConfig::new()
                    .spread(4)
                    .strategy(SpreadStrategy::SubKey)
                    .hot_share(0.2, 0.1)
                    .warmup(WARMUP_RECORDS)
                    .decay_interval(0)
                    .seed(5),
            ))
        });
    let producer = Producer::new(config).await.unwrap();

    for i in 0..WARMUP_RECORDS {
        let record = ProducerRecord::new(&topic, WARMUP)
            .key(key_of(i))
            .sub_key((i % SUB_KEYS).to_be_bytes().to_vec());
        drop(producer.send(record).await.unwrap());
    }
    let mut deliveries = Vec::new();
    for i in 0..RECORDS {
        let key = key_of(i);
        let sub = (i / 2) % SUB_KEYS;
        // The value names the sub-key and the send order: "<seq> <sub-key>".
        let record = ProducerRecord::new(&topic, format!("{i:06} {sub}"))
            .key(key.clone())
            .sub_key(sub.to_be_bytes().to_vec());
        deliveries.push((key, sub, producer.send(record).await.unwrap()));
    }
    let mut hot_partitions: HashMap<u64, BTreeSet<i32>> = HashMap::new();
    let mut cold_partitions = BTreeSet::new();
    for (key, sub, delivery) in deliveries {
        let meta = delivery.await.unwrap();
        if key == HOT {
            hot_partitions
                .entry(sub)
                .or_default()
                .insert(meta.partition);
        } else if key == COLD {
            cold_partitions.insert(meta.partition);
        } else {
            assert_eq!(meta.partition, partition_for_key(&key, PARTITIONS));
        }
    }
    producer.close(Duration::from_secs(30)).await.unwrap();

    assert_eq!(hot_partitions.len() as u64, SUB_KEYS);
    for (sub, partitions) in &hot_partitions {
        assert_eq!(partitions.len(), 1, "sub-key {sub} on {partitions:?}");
    }
    let used: BTreeSet<i32> = hot_partitions.values().flatten().copied().collect();
    assert!(used.len() > 1, "the hot key stayed on {used:?}");
    let base = partition_for_key(HOT, PARTITIONS);
    for p in &used {
        assert!(
            (p - base).rem_euclid(PARTITIONS) < 4,
            "{p} outside the sub-range of {base}"
        );
    }
    assert_eq!(
        cold_partitions,
        BTreeSet::from([partition_for_key(COLD, PARTITIONS)]),
        "a cold key keeps its murmur2 partition"
    );

    // In the log: each (key, sub-key) in send order, every record once.
    let mut seen = 0;
    for p in 0..PARTITIONS {
        let mut last: HashMap<(Bytes, String), u64> = HashMap::new();
        for r in read_partition(&cluster, &topic, p).await {
            let key = r.key.expect("keyed");
            let value = String::from_utf8(r.value.expect("value").to_vec()).unwrap();
            let (seq, sub) = value.split_once(' ').unwrap();
            let seq: u64 = seq.parse().unwrap();
            assert_eq!(key_of(seq), key.to_vec(), "value and key agree");
            if let Some(before) = last.insert((key, sub.to_string()), seq) {
                assert!(
                    before < seq,
                    "partition {p}: {before} then {seq} for sub-key {sub}"
                );
            }
            seen += 1;
        }
    }
    assert_eq!(seen, RECORDS, "every record read back once");
}
