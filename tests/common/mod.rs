//! Helpers shared by the producer tests: a cluster handle, topics, and reading a topic
//! back with `PartitionClient::fetch` (independent of the consumer).

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::partition_client::{Acks, FetchOptions, PartitionClient};
use sluice::wire::records::{BatchOptions, RecordBatchBuilder, RecordBatches};

pub const T: Duration = Duration::from_secs(30);

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

pub async fn cluster(bootstrap: &str) -> Cluster {
    Cluster::connect(ClusterConfig::new(bootstrap))
        .await
        .unwrap()
}

pub async fn create_topic(cluster: &Cluster, topic: &str, partitions: i32) {
    create_topic_cold(cluster, topic, partitions).await;
    // Metadata can name a leader a moment before the leader accepts writes; one write
    // per partition (retried on NOT_LEADER by PartitionClient) makes sure it does. A
    // producer without idempotence may otherwise reorder its first retried batches, as
    // the Java client may. Readers skip these records.
    // A current timestamp: with timestamp 0 the broker's retention (7 days) deletes the
    // record's segment as soon as a new one rolls, and reads from offset 0 then fail
    // with OFFSET_OUT_OF_RANGE.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for p in 0..partitions {
        let mut batch = RecordBatchBuilder::new(BatchOptions::default());
        batch.append(now, None, Some(WARMUP), &[]).unwrap();
        PartitionClient::new(cluster.clone(), topic, p)
            .produce(batch.finish().unwrap(), Acks::All, T)
            .await
            .unwrap();
    }
}

/// Creates the topic and waits until metadata names a leader for every partition, and
/// no more: the first writes may still meet NOT_LEADER_OR_FOLLOWER.
pub async fn create_topic_cold(cluster: &Cluster, topic: &str, partitions: i32) {
    Admin::new(cluster.clone())
        .create_topics(&[NewTopic::new(topic, partitions)], T)
        .await
        .unwrap();
    // Wait until every partition has a leader.
    for _ in 0..100 {
        let md = cluster.refresh(&[topic], false).await.unwrap();
        if md.topic(topic).is_some_and(|t| {
            t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader.is_some())
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("topic {topic} has no leaders");
}

/// The value of the one record per partition `create_topic` writes.
pub const WARMUP: &[u8] = b"warmup";

/// Every record of `topic`/`partition` up to the high watermark, in offset order.
pub async fn read_partition(cluster: &Cluster, topic: &str, partition: i32) -> Vec<Read> {
    let client = PartitionClient::new(cluster.clone(), topic, partition);
    let options = FetchOptions {
        max_bytes: 8 * 1024 * 1024,
        max_wait: Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = client.fetch(offset, options).await.unwrap();
        if offset >= fetched.high_watermark {
            return out;
        }
        for batch in RecordBatches::new(fetched.records) {
            let Ok(batch) = batch else { break }; // the last batch may be cut short
            for record in batch.records().unwrap() {
                let record = record.unwrap();
                if record.offset() < offset {
                    continue;
                }
                offset = record.offset() + 1;
                if record.value().is_some_and(|v| &v[..] == WARMUP) {
                    continue;
                }
                out.push(Read {
                    offset: record.offset(),
                    key: record.key().cloned(),
                    value: record.value().cloned(),
                });
            }
        }
    }
}
