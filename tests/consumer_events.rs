//! The consumer's signals against a real broker: the end of a partition
//! (`enable.partition.eof`, `recv_event`) and a subscribed topic that does not exist
//! (`missing_topics`).

mod consumer_common;

use std::collections::BTreeMap;
use std::time::Duration;

use consumer_common::*;
use sluice::wire::cluster::ClusterConfig;
use sluice::wire::consumer::{Consumer, ConsumerEvent, TopicPartition};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::types::IsolationLevel;

/// Reads until `partitions` partitions reported their end, collecting the
/// records (values) and how many ends each partition reported.
async fn read_to_ends(
    c: &Consumer,
    partitions: usize,
) -> (Vec<String>, BTreeMap<TopicPartition, Vec<i64>>) {
    let mut values = Vec::new();
    let mut ends: BTreeMap<TopicPartition, Vec<i64>> = BTreeMap::new();
    tokio::time::timeout(T, async {
        while ends.len() < partitions {
            match c.recv_event().await.expect("recv_event") {
                ConsumerEvent::Record(r) => {
                    assert!(
                        !ends.contains_key(&r.topic_partition()),
                        "a record of {} after its end",
                        r.topic_partition()
                    );
                    values.push(value(&r));
                }
                ConsumerEvent::PartitionEof { partition, offset } => {
                    ends.entry(partition).or_default().push(offset);
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {partitions} ends within {T:?}", ends.len()));
    (values, ends)
}

#[tokio::test]
async fn partition_eof_once_per_arrival_at_the_end() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-eof", 3).await;
    for (p, n) in [(0, 40), (1, 25), (2, 0)] {
        produce(&cluster, &topic, p, 0, n).await;
    }
    let c =
        Consumer::with_cluster(cluster.clone(), config(None).enable_partition_eof(true)).unwrap();
    let tps: Vec<_> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    c.assign(tps.clone()).unwrap();

    let (values, ends) = read_to_ends(&c, 3).await;
    assert_eq!(values.len(), 65, "exactly the records written");
    let expected: BTreeMap<_, _> = tps
        .iter()
        .cloned()
        .zip([vec![40], vec![25], vec![0]])
        .collect();
    assert_eq!(
        ends, expected,
        "one end per partition, at its high watermark"
    );

    // Nothing new: no second end for the same position, however long we wait.
    let quiet = tokio::time::timeout(Duration::from_secs(2), c.recv_event()).await;
    assert!(quiet.is_err(), "an event with nothing new: {quiet:?}");

    // More records in partition 1: they come, then its new end; the others stay quiet.
    produce(&cluster, &topic, 1, 25, 10).await;
    let mut more = Vec::new();
    let end = tokio::time::timeout(T, async {
        loop {
            match c.recv_event().await.expect("recv_event") {
                ConsumerEvent::Record(r) => more.push(value(&r)),
                ConsumerEvent::PartitionEof { partition, offset } => break (partition, offset),
                other => panic!("unexpected event {other:?}"),
            }
        }
    })
    .await
    .expect("a new end");
    assert_eq!(end, (tps[1].clone(), 35));
    let want: Vec<String> = (25..35).map(|i| format!("1-{i}")).collect();
    assert_eq!(more, want);
    let quiet = tokio::time::timeout(Duration::from_secs(2), c.recv_event()).await;
    assert!(quiet.is_err(), "an event with nothing new: {quiet:?}");
}

#[tokio::test]
async fn partition_eof_is_off_by_default() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-eof-off", 1).await;
    produce(&cluster, &topic, 0, 0, 3).await;
    let c = Consumer::with_cluster(cluster, config(None)).unwrap();
    c.assign([TopicPartition::new(&topic, 0)]).unwrap();
    for _ in 0..3 {
        let e = tokio::time::timeout(T, c.recv_event())
            .await
            .unwrap()
            .unwrap();
        assert!(e.record().is_some(), "{e:?}");
    }
    let quiet = tokio::time::timeout(Duration::from_secs(2), c.recv_event()).await;
    assert!(
        quiet.is_err(),
        "an end without enable.partition.eof: {quiet:?}"
    );
}

#[tokio::test]
async fn a_missing_subscribed_topic_is_reported_until_created() {
    let cluster = cluster().await;
    let missing = sluice_testkit::unique_topic("c-missing");
    let mut cconfig = ClusterConfig::new(sluice_testkit::bootstrap());
    // The group checks its topics every metadata.max.age.ms.
    cconfig.metadata_max_age = Duration::from_millis(500);
    let group_cluster = sluice::wire::cluster::Cluster::connect(cconfig)
        .await
        .expect("connect");
    let group = sluice_testkit::unique_topic("g-missing");
    let c = Consumer::with_cluster(group_cluster, config(Some(&group))).unwrap();
    c.subscribe([missing.clone()]).unwrap();
    let event = tokio::time::timeout(T, c.recv_event())
        .await
        .expect("an event for the missing topic")
        .expect("recv_event");
    match event {
        ConsumerEvent::TopicNotAvailable { topic } => assert_eq!(topic, missing),
        other => panic!("unexpected event {other:?}"),
    }
    assert_eq!(c.missing_topics(), vec![missing.clone()]);
    // Reported once, not on every metadata check (every 500 ms here).
    let quiet = tokio::time::timeout(Duration::from_secs(2), c.recv_event()).await;
    assert!(quiet.is_err(), "a second event: {quiet:?}");
    assert_eq!(c.missing_topics(), vec![missing.clone()]);

    consumer_common::create(&cluster, &missing, 1).await;
    produce(&cluster, &missing, 0, 0, 5).await;
    let records = recv_n(&c, 5, T).await;
    assert_eq!(records.len(), 5);
    assert!(c.missing_topics().is_empty(), "{:?}", c.missing_topics());
}

#[tokio::test]
async fn under_read_committed_the_end_is_the_last_stable_offset() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-eof-rc", 1).await;
    produce(&cluster, &topic, 0, 0, 3).await;
    let p = Producer::new(
        ProducerConfig::new(sluice_testkit::bootstrap())
            .transactional_id(sluice_testkit::unique_topic("tx-eof"))
            .transaction_timeout(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    p.init_transactions().await.unwrap();
    p.begin().await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..4 {
        let record = ProducerRecord::new(&topic, format!("open-{i}")).partition(0);
        deliveries.push(p.send(record).await.unwrap());
    }
    p.flush().await;
    for d in deliveries {
        d.await.expect("written, not committed yet");
    }

    let config = config(None)
        .enable_partition_eof(true)
        .isolation_level(IsolationLevel::ReadCommitted);
    let c = Consumer::with_cluster(cluster.clone(), config).unwrap();
    let tp = TopicPartition::new(&topic, 0);
    c.assign([tp.clone()]).unwrap();
    // The open transaction's records are on the log (high watermark 7), not stable.
    let (values, ends) = read_to_ends(&c, 1).await;
    assert_eq!(values, ["0-0", "0-1", "0-2"]);
    assert_eq!(ends[&tp], [3], "the end is the last stable offset");

    p.commit().await.unwrap();
    let (values, ends) = read_to_ends(&c, 1).await;
    assert_eq!(values, ["open-0", "open-1", "open-2", "open-3"]);
    // Past the commit marker at 7.
    assert_eq!(ends[&tp], [8]);
}
