//! The consumer against a real broker: manual assignment, the record stream, one group
//! member with commits, pause / resume, seeks and `auto.offset.reset`; typed JSON
//! records through `TypedProducer` and `value_as`.

mod consumer_common;

use std::collections::BTreeMap;
use std::time::Duration;

use consumer_common::*;
use futures::StreamExt;
use sluice::wire::codec::{Json, Utf8};
use sluice::wire::consumer::{Consumer, OffsetAndMetadata, OffsetReset, TopicPartition};
use sluice::wire::producer::{Producer, ProducerConfig, ProducerRecord};
use sluice::wire::ErrorKind;

#[tokio::test]
async fn assign_streams_every_record_in_order() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-assign", 2).await;
    // Batches of 500 records, about 8 KB each.
    produce(&cluster, &topic, 0, 0, 3000).await;
    produce(&cluster, &topic, 1, 0, 2000).await;
    // Small fetches: many round trips, each sent while the last is still being read.
    let mut config = config(None);
    config.max_partition_fetch_bytes = 10_000;
    let c = Consumer::with_cluster(cluster, config).unwrap();
    c.assign([
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    ])
    .unwrap();
    let records: Vec<_> = tokio::time::timeout(
        T,
        c.stream()
            .take(5000)
            .map(|r| r.expect("record"))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("5000 records");
    let by_partition = offsets_of(&records);
    assert_eq!(
        by_partition[&(topic.clone(), 0)],
        (0..3000).collect::<Vec<i64>>()
    );
    assert_eq!(
        by_partition[&(topic.clone(), 1)],
        (0..2000).collect::<Vec<i64>>()
    );
    for r in &records {
        assert_eq!(value(r), format!("{}-{}", r.partition(), r.offset()));
    }
    assert_eq!(c.position(&TopicPartition::new(&topic, 0)), Some(3000));
    // Nothing more arrives.
    assert!(tokio::time::timeout(Duration::from_millis(500), c.recv())
        .await
        .is_err());
    c.close().await.unwrap();
}

#[tokio::test]
async fn one_member_group_commits_and_the_next_member_resumes_there() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-group1", 3).await;
    for p in 0..3 {
        produce(&cluster, &topic, p, 0, 100).await;
    }
    let group = sluice_testkit::unique_topic("g1");
    let c = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    c.subscribe([topic.clone()]).unwrap();
    let first = recv_n(&c, 150, T).await;
    assert_eq!(
        c.assignment().len(),
        3,
        "a lone member owns every partition"
    );
    assert!(c.member_id().is_some());
    // Commit exactly what was processed, per partition.
    let mut offsets = BTreeMap::new();
    for r in &first {
        offsets.insert(
            r.topic_partition(),
            OffsetAndMetadata::with_metadata(r.offset() + 1, "done"),
        );
    }
    // Non-blocking variant first (its answer awaited here), then the blocking one.
    let pending = c.commit_async(offsets.clone());
    pending.await.unwrap();
    c.commit(&offsets).await.unwrap();
    let committed = c
        .committed(&offsets.keys().cloned().collect::<Vec<_>>())
        .await
        .unwrap();
    for (tp, om) in &offsets {
        let got = committed[tp].as_ref().expect("committed");
        assert_eq!(got.offset, om.offset);
        assert_eq!(got.metadata.as_deref(), Some("done"));
    }
    c.close().await.unwrap();

    // A new member of the same group starts where the commit says.
    let c = Consumer::with_cluster(cluster, config(Some(&group))).unwrap();
    c.subscribe([topic.clone()]).unwrap();
    let rest = recv_n(&c, 150, T).await;
    let mut seen: BTreeMap<TopicPartition, Vec<i64>> = BTreeMap::new();
    for r in first.iter().chain(rest.iter()) {
        seen.entry(r.topic_partition())
            .or_default()
            .push(r.offset());
    }
    for (tp, mut offs) in seen {
        offs.sort_unstable();
        assert_eq!(
            offs,
            (0..100).collect::<Vec<i64>>(),
            "{tp}: each record once"
        );
    }
    assert!(tokio::time::timeout(Duration::from_millis(500), c.recv())
        .await
        .is_err());
    c.close().await.unwrap();
}

#[tokio::test]
async fn paused_partitions_are_not_read_but_stay_assigned() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-pause", 2).await;
    produce(&cluster, &topic, 0, 0, 100).await;
    produce(&cluster, &topic, 1, 0, 100).await;
    let (p0, p1) = (
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    );
    let c = Consumer::with_cluster(cluster, config(None)).unwrap();
    c.assign([p0.clone(), p1.clone()]).unwrap();
    c.pause(std::slice::from_ref(&p0));
    assert_eq!(c.paused(), std::slice::from_ref(&p0));
    let got = recv_n(&c, 100, T).await;
    assert!(
        got.iter().all(|r| r.partition() == 1),
        "only the unpaused partition"
    );
    assert!(tokio::time::timeout(Duration::from_millis(700), c.recv())
        .await
        .is_err());
    assert_eq!(
        c.assignment(),
        [p0.clone(), p1.clone()],
        "paused stays assigned"
    );
    c.resume(std::slice::from_ref(&p0));
    let got = recv_n(&c, 100, T).await;
    assert_eq!(
        got.iter()
            .map(|r| (r.partition(), r.offset()))
            .collect::<Vec<_>>(),
        (0..100).map(|o| (0, o)).collect::<Vec<_>>()
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn seek_to_offset_beginning_end_and_timestamp() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-seek", 1).await;
    produce(&cluster, &topic, 0, 0, 100).await;
    let tp = TopicPartition::new(&topic, 0);
    let c = Consumer::with_cluster(cluster.clone(), config(None)).unwrap();
    c.assign([tp.clone()]).unwrap();
    assert_eq!(recv_n(&c, 10, T).await[9].offset(), 9);
    c.seek(&tp, 50).unwrap();
    assert_eq!(c.position(&tp), Some(50));
    let got = recv_n(&c, 5, T).await;
    assert_eq!(
        got.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        [50, 51, 52, 53, 54]
    );
    c.seek_to_beginning(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(recv_n(&c, 1, T).await[0].offset(), 0);
    // Records carry timestamps 1_700_000_000_000 + i.
    c.seek_to_timestamp(std::slice::from_ref(&tp), 1_700_000_000_030)
        .unwrap();
    assert_eq!(recv_n(&c, 1, T).await[0].offset(), 30);
    c.seek_to_end(std::slice::from_ref(&tp)).unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(700), c.recv())
        .await
        .is_err());
    assert_eq!(c.position(&tp), Some(100));
    produce(&cluster, &topic, 0, 100, 1).await;
    assert_eq!(recv_n(&c, 1, T).await[0].offset(), 100);
    assert!(
        c.seek(&TopicPartition::new(&topic, 7), 0).is_err(),
        "not assigned"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn auto_offset_reset_earliest_latest_and_none() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-reset", 1).await;
    produce(&cluster, &topic, 0, 0, 20).await;
    let tp = TopicPartition::new(&topic, 0);
    let group = sluice_testkit::unique_topic("g-reset");

    let earliest = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    earliest.assign([tp.clone()]).unwrap();
    assert_eq!(recv_n(&earliest, 1, T).await[0].offset(), 0);
    earliest.close().await.unwrap();

    let latest = Consumer::with_cluster(
        cluster.clone(),
        config(Some(&group)).auto_offset_reset(OffsetReset::Latest),
    )
    .unwrap();
    latest.assign([tp.clone()]).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(700), latest.recv())
            .await
            .is_err()
    );
    assert_eq!(latest.position(&tp), Some(20));
    produce(&cluster, &topic, 0, 20, 1).await;
    assert_eq!(recv_n(&latest, 1, T).await[0].offset(), 20);
    latest.close().await.unwrap();

    let none = Consumer::with_cluster(
        cluster.clone(),
        config(Some(&group)).auto_offset_reset(OffsetReset::None),
    )
    .unwrap();
    none.assign([tp.clone()]).unwrap();
    let err = tokio::time::timeout(T, none.recv())
        .await
        .expect("an answer")
        .expect_err("no committed offset and reset none");
    assert_eq!(
        err.kafka_code(),
        Some(sluice::wire::KafkaCode::OffsetOutOfRange),
        "{err}"
    );
    // With a committed offset, `none` starts there.
    let mut o = BTreeMap::new();
    o.insert(tp.clone(), OffsetAndMetadata::new(7));
    none.commit(&o).await.unwrap();
    none.assign(Vec::new()).unwrap();
    none.assign([tp.clone()]).unwrap();
    // The errors swallowed on the way (a stale "no committed offset" is expected), for
    // the message if no record comes: this once flaked under load (issue 13).
    let mut errors = Vec::new();
    let first = tokio::time::timeout(T, async {
        loop {
            match none.recv().await {
                Ok(r) => return r,
                Err(e) => errors.push(e.to_string()),
            }
        }
    })
    .await;
    let first = first.unwrap_or_else(|_| {
        panic!(
            "no record within {T:?}; position {:?}, {} errors, the last: {:?}",
            none.position(&tp),
            errors.len(),
            errors.last()
        )
    });
    assert_eq!(first.offset(), 7);
    none.close().await.unwrap();
}

/// With `auto.offset.reset=none` and nothing committed, a seek made after `assign` but
/// before the application polls wins, as in Java (positions are resolved in `poll`):
/// `recv` hands out the record at the seek, never "no committed offset". Here the
/// lookup has long answered (1 s) before the seek; a second partition seeks while its
/// lookup is delayed in flight by the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_after_assign_wins_over_reset_none() {
    use kafka_protocol::messages::ApiKey;
    use sluice_testkit::Rule;
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-seek-none", 2).await;
    produce(&cluster, &topic, 0, 0, 10).await;
    produce(&cluster, &topic, 1, 0, 10).await;
    let (p0, p1) = (
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    );
    let group = sluice_testkit::unique_topic("g-seek-none");
    let none = config(Some(&group)).auto_offset_reset(OffsetReset::None);

    // The lookup answered "nothing committed" long before the seek.
    let c = Consumer::with_cluster(cluster.clone(), none.clone()).unwrap();
    c.assign([p0.clone()]).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.seek(&p0, 4).unwrap();
    let r = tokio::time::timeout(T, c.recv())
        .await
        .expect("an answer")
        .expect("the seek wins: no error");
    assert_eq!((r.partition(), r.offset()), (0, 4));
    c.close().await.unwrap();

    // The lookup is still out (OffsetFetch answers held 1.5 s) when the seek comes.
    let faults = sluice_testkit::kafka_fault_cluster();
    let held = faults.add_rule(
        Rule::new(ApiKey::OffsetFetch)
            .always()
            .delay(Duration::from_millis(1500)),
    );
    let mut cfg = none;
    cfg.cluster = sluice::wire::cluster::ClusterConfig::new(faults.bootstrap());
    let c = Consumer::new(cfg).await.unwrap();
    c.assign([p1.clone()]).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.seek(&p1, 6).unwrap();
    let r = tokio::time::timeout(T, c.recv())
        .await
        .expect("an answer")
        .expect("the seek wins: no error");
    assert_eq!((r.partition(), r.offset()), (1, 6));
    // Nothing reported later either (the stale lookup answered meanwhile).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let r = tokio::time::timeout(T, c.recv())
        .await
        .expect("an answer")
        .expect("no stale error");
    assert_eq!(r.offset(), 7);
    assert!(held.hits() >= 1, "the lookup went through the proxy");
    c.close().await.unwrap();
}

/// A lookup of committed offsets that is no longer wanted (its partitions were
/// reassigned away) does not hold up the partitions assigned since, as Java drops a
/// pending OffsetFetch that is not the same request. Here the broker's answer for
/// partition 0 is rewritten to UNSTABLE_OFFSET_COMMIT every time, so its lookup retries
/// for the whole request timeout (30 s); partition 1, assigned after it, must start at
/// its committed offset long before that.
#[tokio::test]
async fn a_stale_offset_lookup_does_not_hold_up_a_new_assignment() {
    use kafka_protocol::messages::ApiKey;
    use sluice_testkit::{codes, Rule};
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-stale-lookup", 2).await;
    produce(&cluster, &topic, 0, 0, 10).await;
    produce(&cluster, &topic, 1, 0, 10).await;
    let (p0, p1) = (
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    );
    let group = sluice_testkit::unique_topic("g-stale-lookup");
    let direct = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    let mut o = BTreeMap::new();
    o.insert(p1.clone(), OffsetAndMetadata::new(3));
    direct.commit(&o).await.unwrap();
    direct.close().await.unwrap();

    let faults = sluice_testkit::kafka_fault_cluster();
    let unstable = faults.add_rule(
        Rule::new(ApiKey::OffsetFetch)
            .partition(&topic, 0)
            .always()
            .set_error(codes::UNSTABLE_OFFSET_COMMIT),
    );
    let mut cfg = config(Some(&group));
    cfg.cluster = sluice::wire::cluster::ClusterConfig::new(faults.bootstrap());
    let c = Consumer::new(cfg).await.unwrap();
    c.assign([p0.clone()]).unwrap();
    // The lookup of partition 0 is retrying by now.
    let started = std::time::Instant::now();
    while unstable.hits() < 2 {
        assert!(
            started.elapsed() < T,
            "the lookup of partition 0 never asked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.assign([p1.clone()]).unwrap();
    // Well inside the 30 s the stale lookup would go on retrying.
    let r = tokio::time::timeout(Duration::from_secs(10), c.recv())
        .await
        .expect("partition 1 was not held up by the stale lookup")
        .expect("a record");
    assert_eq!((r.partition(), r.offset()), (1, 3));
    c.close().await.unwrap();
}

#[tokio::test]
async fn lag_is_log_end_minus_committed_per_partition() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-lag", 2).await;
    produce(&cluster, &topic, 0, 0, 50).await;
    produce(&cluster, &topic, 1, 0, 40).await;
    let group = sluice_testkit::unique_topic("g-lag");
    let c = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    let (p0, p1) = (
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    );
    c.assign([p0.clone()]).unwrap();
    let got = recv_n(&c, 20, T).await;
    c.assign([p1.clone()]).unwrap();
    let got1 = recv_n(&c, 5, T).await;
    let mut o = BTreeMap::new();
    o.insert(p0.clone(), OffsetAndMetadata::new(got[19].offset() + 1));
    o.insert(p1.clone(), OffsetAndMetadata::new(got1[4].offset() + 1));
    c.commit(&o).await.unwrap();
    let lag = sluice::wire::admin::Admin::new(cluster)
        .lag(
            &group,
            sluice::wire::partition_client::IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    let per: BTreeMap<i32, (Option<i64>, i64, i64)> = lag
        .partitions
        .iter()
        .map(|p| (p.partition.partition, (p.committed, p.log_end, p.lag)))
        .collect();
    assert_eq!(per[&0], (Some(20), 50, 30));
    assert_eq!(per[&1], (Some(5), 40, 35));
    assert_eq!(lag.total, 65);
    assert_eq!(lag.per_topic()[&topic], 65);
    c.close().await.unwrap();
}

/// Auto-commit as Java's: the first `recv` after the interval commits the positions of
/// what the calls before it handed out (see also `tests/consumer_auto_commit.rs`).
#[tokio::test]
async fn auto_commit_commits_positions_on_the_next_recv_after_its_interval_and_on_close() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-auto", 1).await;
    produce(&cluster, &topic, 0, 0, 30).await;
    let group = sluice_testkit::unique_topic("g-auto");
    let tp = TopicPartition::new(&topic, 0);
    let mut cfg = config(Some(&group)).enable_auto_commit(true);
    cfg.auto_commit_interval = Duration::from_millis(200);
    let c = Consumer::with_cluster(cluster.clone(), cfg).unwrap();
    c.subscribe([topic.clone()]).unwrap();
    recv_n(&c, 10, T).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next call, past the interval, commits the position (10): everything handed out
    // by the calls before it.
    recv_n(&c, 1, T).await;
    let admin = sluice::wire::admin::Admin::new(cluster.clone());
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let o = admin.group_offsets(&group).await.unwrap();
        if o.get(&tp).map(|o| o.offset) == Some(10) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no auto-commit: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    recv_n(&c, 4, T).await;
    c.close().await.unwrap();
    assert_eq!(
        admin.group_offsets(&group).await.unwrap()[&tp].offset,
        15,
        "commit on close"
    );
}

/// A batch the client refuses to decode (it would decompress past the 64 MiB bound)
/// stops the partition at that offset, as Java's consumer does: every `recv` reports
/// the error, nothing after the batch is handed out, until the application seeks past
/// it. (The rest of the fetch used to be skipped after one error: records lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_batch_stops_the_partition_at_its_offset() {
    use sluice::wire::partition_client::{Acks, PartitionClient};
    use sluice::wire::records::{BatchOptions, Compression, RecordBatchBuilder};

    let cluster = cluster().await;
    let topic = topic(&cluster, "bad-batch", 1).await;
    let client = PartitionClient::new(cluster.clone(), &topic, 0);
    let one = |value: &[u8], compression| {
        let mut b = RecordBatchBuilder::new(BatchOptions {
            compression,
            ..BatchOptions::default()
        });
        b.append(1_700_000_000_000, None, Some(value), &[]).unwrap();
        b.finish().unwrap()
    };
    client
        .produce(one(b"before", Compression::None), Acks::All, T)
        .await
        .unwrap();
    // 65 MiB of zeros: a few KB compressed, more than the decoder may inflate.
    let huge = vec![0u8; 65 * 1024 * 1024];
    client
        .produce(one(&huge, Compression::Zstd), Acks::All, T)
        .await
        .unwrap();
    drop(huge);
    client
        .produce(one(b"after", Compression::None), Acks::All, T)
        .await
        .unwrap();

    let c = Consumer::new(config(None)).await.unwrap();
    let tp = TopicPartition::new(&topic, 0);
    c.assign([tp.clone()]).unwrap();
    let first = tokio::time::timeout(T, c.recv()).await.unwrap().unwrap();
    assert_eq!(first.value().map(|v| &v[..]), Some(&b"before"[..]));
    for attempt in 0..3 {
        let e = tokio::time::timeout(T, c.recv())
            .await
            .unwrap()
            .expect_err("the bad batch is reported, not skipped");
        assert_eq!(e.kind(), sluice::wire::ErrorKind::Records, "{attempt}: {e}");
        assert_eq!(c.position(&tp), Some(1), "stays at the bad offset");
    }
    c.seek(&tp, 2).unwrap();
    let after = tokio::time::timeout(T, c.recv()).await.unwrap().unwrap();
    assert_eq!(after.offset(), 2);
    assert_eq!(after.value().map(|v| &v[..]), Some(&b"after"[..]));
    c.close().await.unwrap();
}

/// OFFSET_OUT_OF_RANGE answered to a read-ahead fetch (its offset is past what `recv`
/// has taken) resets nothing: the buffered records before it are handed out, the
/// read-ahead is tried again, and not a record is lost. The answer is rewritten by the
/// Kafka-aware proxy in front of the real broker. (It used to reset the position, here
/// to `latest`, skipping everything still to be read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_out_of_range_on_a_read_ahead_fetch_keeps_the_buffered_records() {
    use kafka_protocol::messages::ApiKey;
    use sluice_testkit::{codes, Rule};

    let faults = sluice_testkit::kafka_fault_cluster();
    let cluster = cluster().await;
    let topic = topic(&cluster, "oor-read-ahead", 1).await;
    for from in (0..2000).step_by(100) {
        produce(&cluster, &topic, 0, from, 100).await;
    }
    let rule = faults.add_rule(
        Rule::new(ApiKey::Fetch)
            .partition(&topic, 0)
            .nth(2)
            .set_error(codes::OFFSET_OUT_OF_RANGE),
    );
    let mut config = sluice::wire::consumer::ConsumerConfig::new(faults.bootstrap())
        .auto_offset_reset(OffsetReset::Latest)
        .fetch_max_wait(Duration::from_millis(100));
    config.max_partition_fetch_bytes = 4096;
    let c = Consumer::new(config).await.unwrap();
    let tp = TopicPartition::new(&topic, 0);
    c.assign([tp.clone()]).unwrap();
    c.seek(&tp, 0).unwrap();
    assert!(
        rule.wait_for_hits(1, Duration::from_secs(20)),
        "the read-ahead fetch was never answered out of range"
    );
    // The hit counts when the proxy rewrites the answer, before the consumer reads it.
    // Taking the buffered records first would move the position up to the read-ahead
    // offset, and the answer would then be about the position: a real out-of-range,
    // which resets to latest, as it should (a run on a loaded machine lost 1,800 so).
    // Give the consumer time to read the answer while its position is still behind it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = recv_n(&c, 2000, Duration::from_secs(60)).await;
    let offsets: Vec<i64> = got.iter().map(|r| r.offset()).collect();
    assert_eq!(
        offsets,
        (0..2000).collect::<Vec<i64>>(),
        "lost or repeated records"
    );
    c.close().await.unwrap();
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    item: String,
}

#[tokio::test]
async fn typed_json_records_round_trip_and_a_malformed_one_is_that_records_error() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-typed", 1).await;
    let producer = Producer::with_cluster(
        cluster.clone(),
        ProducerConfig::new(sluice_testkit::bootstrap()),
    )
    .unwrap();
    let orders = producer.typed::<str, Order>(Utf8, Json);
    let tea = Order {
        id: 1,
        item: "tea".into(),
    };
    let cake = Order {
        id: 2,
        item: "cake".into(),
    };
    orders
        .send(&*topic, "user-1", &tea)
        .await
        .unwrap()
        .await
        .unwrap();
    // Someone else's bytes on the topic: not the JSON of an Order.
    let poison = ProducerRecord::new(&topic, "{\"id\": \"not a number\"").key("user-2");
    producer.send(poison).await.unwrap().await.unwrap();
    orders
        .send(&*topic, None, &cake)
        .await
        .unwrap()
        .await
        .unwrap();
    orders
        .send(&*topic, "user-1", None)
        .await
        .unwrap()
        .await
        .unwrap();
    producer.close(Duration::from_secs(10)).await.unwrap();

    let c = Consumer::with_cluster(cluster, config(None)).unwrap();
    c.assign([TopicPartition::new(&topic, 0)]).unwrap();
    let records = recv_n(&c, 4, T).await;
    let keys: Vec<Option<String>> = records.iter().map(|r| r.key_as(&Utf8).unwrap()).collect();
    assert_eq!(
        keys,
        [
            Some("user-1".into()),
            Some("user-2".into()),
            None,
            Some("user-1".into())
        ]
    );
    assert_eq!(records[0].value_as::<Order>(&Json).unwrap(), Some(tea));
    let e = records[1].value_as::<Order>(&Json).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialization);
    assert!(
        e.to_string().contains(&format!("{topic}-0 at offset 1")),
        "{e}"
    );
    // The consumer goes on: the next record reads, and so does a tombstone.
    assert_eq!(records[2].value_as::<Order>(&Json).unwrap(), Some(cake));
    assert_eq!(records[3].value_as::<Order>(&Json).unwrap(), None);
    c.close().await.unwrap();
}
