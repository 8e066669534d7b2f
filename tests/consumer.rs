//! The consumer against a real broker: manual assignment, the record stream, one group
//! member with commits, pause / resume, seeks and `auto.offset.reset`.

mod consumer_common;

use std::collections::BTreeMap;
use std::time::Duration;

use consumer_common::*;
use futures::StreamExt;
use sluice::wire::consumer::{Consumer, OffsetAndMetadata, TopicPartition};

#[tokio::test]
async fn assign_streams_every_record_in_order() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "c-assign", 2).await;
    produce(&cluster, &topic, 0, 0, 300).await;
    produce(&cluster, &topic, 1, 0, 200).await;
    let c = Consumer::with_cluster(cluster, config(None)).unwrap();
    c.assign([
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    ])
    .unwrap();
    let records: Vec<_> = tokio::time::timeout(
        T,
        c.stream()
            .take(500)
            .map(|r| r.expect("record"))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("500 records");
    let by_partition = offsets_of(&records);
    assert_eq!(
        by_partition[&(topic.clone(), 0)],
        (0..300).collect::<Vec<i64>>()
    );
    assert_eq!(
        by_partition[&(topic.clone(), 1)],
        (0..200).collect::<Vec<i64>>()
    );
    for r in &records {
        assert_eq!(value(r), format!("{}-{}", r.partition(), r.offset()));
    }
    assert_eq!(c.position(&TopicPartition::new(&topic, 0)), Some(300));
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
