//! Helpers shared by the consumer tests: topics, test data written with
//! `PartitionClient::produce`, and consumer configs with short group timeouts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use sluice::wire::admin::{Admin, NewTopic};
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use sluice::wire::partition_client::{Acks, PartitionClient};
use sluice::wire::records::{BatchOptions, RecordBatchBuilder};

pub const T: Duration = Duration::from_secs(30);

pub async fn cluster() -> Cluster {
    Cluster::connect(ClusterConfig::new(sluice_testkit::bootstrap()))
        .await
        .expect("connect")
}

pub async fn topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let name = sluice_testkit::unique_topic(prefix);
    create(cluster, &name, partitions).await;
    name
}

/// Creates the topic `name`.
pub async fn create(cluster: &Cluster, name: &str, partitions: i32) {
    Admin::new(cluster.clone())
        .create_topics(&[NewTopic::new(name, partitions)], T)
        .await
        .expect("create topic");
}

/// Writes `n` records `"<partition>-<i>"` (i from `from`) to one partition.
pub async fn produce(cluster: &Cluster, topic: &str, partition: i32, from: usize, n: usize) {
    let client = PartitionClient::new(cluster.clone(), topic, partition);
    let mut i = from;
    while i < from + n {
        let mut b = RecordBatchBuilder::new(BatchOptions::default());
        let end = (i + 500).min(from + n);
        for j in i..end {
            let v = format!("{partition}-{j}");
            b.append(
                1_700_000_000_000 + j as i64,
                Some(v.as_bytes()),
                Some(v.as_bytes()),
                &[],
            )
            .unwrap();
        }
        client
            .produce(b.finish().unwrap(), Acks::All, T)
            .await
            .expect("produce");
        i = end;
    }
}

/// A consumer config with short group timeouts (the broker's minimum session timeout
/// is 6 s) and short fetch waits, reading from the earliest offset.
pub fn config(group: Option<&str>) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(sluice_testkit::bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(500))
        .fetch_max_wait(Duration::from_millis(100));
    if let Some(g) = group {
        c = c.group_id(g);
    }
    c
}

/// Receives `n` records, failing after `within`.
pub async fn recv_n(c: &Consumer, n: usize, within: Duration) -> Vec<ConsumerRecord> {
    let mut out = Vec::with_capacity(n);
    tokio::time::timeout(within, async {
        while out.len() < n {
            out.push(c.recv().await.expect("recv"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} records within {within:?}", out.len()));
    out
}

pub fn value(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value().unwrap().to_vec()).unwrap()
}

/// Waits until `f` is true, polling every 100 ms, panicking after `within`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, within: Duration, mut f: F) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn offsets_of(records: &[ConsumerRecord]) -> BTreeMap<(String, i32), Vec<i64>> {
    let mut m: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
    for r in records {
        m.entry((r.topic().to_string(), r.partition()))
            .or_default()
            .push(r.offset());
    }
    m
}
