//! Leader epochs in the consumer (KIP-320) against a real broker: commits carry the leader
//! epoch of the last record consumed, a committed epoch is validated with
//! OffsetForLeaderEpoch before the first fetch, a committed position the leader's log
//! has no record of is reported as a typed truncation (or reset, with a reset policy),
//! and FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH answers to a fetch (rewritten by the
//! Kafka-aware proxy in front of the real broker) cost no record and repeat none.
//!
//! The real truncation, by an unclean leader election on three brokers, is in
//! `tests/replicated_truncation.rs`.

mod consumer_common;

use std::collections::BTreeMap;
use std::time::Duration;

use consumer_common::*;
use kafka_protocol::messages::ApiKey;
use sluice::wire::consumer::{
    Consumer, ConsumerConfig, OffsetAndMetadata, OffsetReset, TopicPartition,
};
use sluice::wire::ErrorKind;
use sluice_testkit::{codes, Rule};

/// The leader epoch metadata gives for `topic`-0.
fn leader_epoch(topic: &str) -> i32 {
    sluice_testkit::admin()
        .partition(topic, 0)
        .expect("partition metadata")
        .leader_epoch
}

/// `commit_positions` sends the leader epoch of the last consumed batch as
/// `committed_leader_epoch`; OffsetFetch gives it back. (It used to send -1: `None`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_carry_the_leader_epoch_of_the_last_record() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "epoch-commit", 1).await;
    produce(&cluster, &topic, 0, 0, 20).await;
    let group = sluice_testkit::unique_topic("epoch-commit-g");
    let c = Consumer::with_cluster(cluster, config(Some(&group))).unwrap();
    let tp = TopicPartition::new(&topic, 0);
    c.assign([tp.clone()]).unwrap();
    let got = recv_n(&c, 20, T).await;
    assert_eq!(got.last().map(|r| r.offset()), Some(19));
    let epoch = leader_epoch(&topic);
    assert!(epoch >= 0, "the broker names a leader epoch");
    assert!(
        got.iter().all(|r| r.leader_epoch() == Some(epoch)),
        "every record names its batch's leader epoch"
    );
    c.commit_positions().await.unwrap();
    let committed = c.committed(std::slice::from_ref(&tp)).await.unwrap();
    let om = committed[&tp].clone().expect("a committed offset");
    assert_eq!(om.offset, 20);
    assert_eq!(
        om.leader_epoch,
        Some(epoch),
        "the commit carries the leader epoch of the batch consumed"
    );
    c.close().await.unwrap();
}

/// A committed offset with a leader epoch seeds the position's epoch, which is validated
/// with OffsetForLeaderEpoch (seen by the proxy) before the first fetch; the log is
/// intact, so the consumer reads on from the committed offset. (No OffsetForLeaderEpoch
/// was ever sent before: 0 requests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_leader_epoch_is_validated_before_fetching() {
    let faults = sluice_testkit::kafka_fault_cluster();
    let cluster = cluster().await;
    let topic = topic(&cluster, "epoch-validate", 1).await;
    produce(&cluster, &topic, 0, 0, 30).await;
    let group = sluice_testkit::unique_topic("epoch-validate-g");
    let tp = TopicPartition::new(&topic, 0);
    let epoch = leader_epoch(&topic);
    let setup = Consumer::with_cluster(cluster, config(Some(&group))).unwrap();
    let mut offsets = BTreeMap::new();
    offsets.insert(
        tp.clone(),
        OffsetAndMetadata {
            leader_epoch: Some(epoch),
            ..OffsetAndMetadata::new(10)
        },
    );
    setup.commit(&offsets).await.unwrap();
    setup.close().await.unwrap();

    let validations = faults.add_rule(Rule::new(ApiKey::OffsetForLeaderEpoch));
    let config = ConsumerConfig::new(faults.bootstrap())
        .group_id(&group)
        .auto_offset_reset(OffsetReset::None)
        .fetch_max_wait(Duration::from_millis(100));
    let c = Consumer::new(config).await.unwrap();
    c.assign([tp.clone()]).unwrap();
    let got = recv_n(&c, 20, T).await;
    let offsets: Vec<i64> = got.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets, (10..30).collect::<Vec<i64>>());
    assert_eq!(
        validations.hits(),
        1,
        "one OffsetForLeaderEpoch validated the committed position"
    );
    c.close().await.unwrap();
}

/// A committed position whose leader epoch the leader's log has no record of (here
/// epoch 1000: the log it came from is gone) cannot be validated: with
/// `auto.offset.reset=none` `recv` fails with a typed `LogTruncation` naming the
/// partition and the position, and hands out nothing, again on the next call; with
/// `earliest` the consumer resets and reads from offset 0. (Both used to read on from
/// offset 5 as if nothing had happened.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_epoch_unknown_to_the_leader_is_a_typed_truncation() {
    let cluster = cluster().await;
    let topic = topic(&cluster, "epoch-unknown", 1).await;
    produce(&cluster, &topic, 0, 0, 12).await;
    let group = sluice_testkit::unique_topic("epoch-unknown-g");
    let tp = TopicPartition::new(&topic, 0);
    let setup = Consumer::with_cluster(cluster.clone(), config(Some(&group))).unwrap();
    let mut offsets = BTreeMap::new();
    offsets.insert(
        tp.clone(),
        OffsetAndMetadata {
            leader_epoch: Some(1000),
            ..OffsetAndMetadata::new(5)
        },
    );
    setup.commit(&offsets).await.unwrap();
    setup.close().await.unwrap();

    let strict = Consumer::with_cluster(
        cluster.clone(),
        config(Some(&group)).auto_offset_reset(OffsetReset::None),
    )
    .unwrap();
    strict.assign([tp.clone()]).unwrap();
    for attempt in 0..2 {
        let err = match tokio::time::timeout(T, strict.recv())
            .await
            .expect("an answer")
        {
            Ok(r) => panic!(
                "attempt {attempt}: handed out offset {} of a truncated log",
                r.offset()
            ),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::LogTruncation, "{err}");
        let t = err.truncation().expect("the truncation's details");
        assert_eq!((t.topic.as_str(), t.partition), (topic.as_str(), 0));
        assert_eq!((t.position, t.position_epoch), (5, 1000));
        assert_eq!(t.divergent_offset, None, "the leader knows no such epoch");
    }
    // The application decides: a seek is trusted as it is.
    strict.seek(&tp, 3).unwrap();
    let got = recv_n(&strict, 9, T).await;
    assert_eq!(got.first().map(|r| r.offset()), Some(3));
    strict.close().await.unwrap();

    let lenient = Consumer::with_cluster(cluster, config(Some(&group))).unwrap();
    lenient.assign([tp.clone()]).unwrap();
    let got = recv_n(&lenient, 12, T).await;
    let offsets: Vec<i64> = got.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets, (0..12).collect::<Vec<i64>>(), "reset to earliest");
    lenient.close().await.unwrap();
}

/// Reads 2000 records while the proxy answers some fetches with `code` for the
/// partition; every record arrives exactly once, in order. Whether the consumer asked
/// for metadata meanwhile is checked against `refreshes`.
async fn every_record_once_despite(code: i16, times: u64, refreshes: bool) {
    let faults = sluice_testkit::kafka_fault_cluster();
    let cluster = cluster().await;
    let topic = topic(&cluster, "epoch-fetch-error", 1).await;
    for from in (0..2000).step_by(500) {
        produce(&cluster, &topic, 0, from, 500).await;
    }
    let rule = faults.add_rule(
        Rule::new(ApiKey::Fetch)
            .partition(&topic, 0)
            .skip(2)
            .times(times)
            .set_error(code),
    );
    let mut config = ConsumerConfig::new(faults.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    config.max_partition_fetch_bytes = 4096;
    let c = Consumer::new(config).await.unwrap();
    let metadata = faults.add_rule(Rule::new(ApiKey::Metadata));
    c.assign([TopicPartition::new(&topic, 0)]).unwrap();
    let got = recv_n(&c, 2000, Duration::from_secs(60)).await;
    let offsets: Vec<i64> = got.iter().map(|r| r.offset()).collect();
    assert_eq!(
        offsets,
        (0..2000).collect::<Vec<i64>>(),
        "lost or repeated records"
    );
    assert_eq!(rule.hits(), times, "every rewritten answer was seen");
    if refreshes {
        assert!(metadata.hits() >= 1, "metadata was refreshed");
    } else {
        assert_eq!(metadata.hits(), 0, "no metadata refresh");
    }
    c.close().await.unwrap();
}

/// FENCED_LEADER_EPOCH on a fetch (our metadata is older than the broker's): the
/// consumer refreshes metadata, fetches again and loses or repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_leader_epoch_on_fetch_refreshes_and_costs_no_record() {
    every_record_once_despite(codes::FENCED_LEADER_EPOCH, 2, true).await;
}

/// UNKNOWN_LEADER_EPOCH on a fetch (the broker lags our metadata, which is the newer
/// one): retried after the backoff without a metadata refresh, nothing lost or
/// repeated. (It used to refresh metadata, as for a moved leader.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_leader_epoch_on_fetch_backs_off_and_costs_no_record() {
    every_record_once_despite(codes::UNKNOWN_LEADER_EPOCH, 3, false).await;
}

/// NOT_LEADER_OR_FOLLOWER on a fetch backs the partition off for `retry.backoff.ms`
/// before it is fetched again (as Java's), instead of re-fetching at once: 20 rewritten
/// answers in a row take at least 19 backoffs, and every record still arrives once, in
/// order. (A slow machine only makes the wait longer; re-fetching at once takes 20 round
/// trips.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_leader_on_fetch_backs_the_partition_off_before_fetching_again() {
    const TIMES: u64 = 20;
    let backoff = Duration::from_millis(150);
    let faults = sluice_testkit::kafka_fault_cluster();
    let cluster = cluster().await;
    let topic = topic(&cluster, "not-leader-backoff", 1).await;
    // 50 batches, more than 4 KiB: every fetch (4 KiB at most) leaves some for the next.
    for from in (0..500).step_by(10) {
        produce(&cluster, &topic, 0, from, 10).await;
    }
    let rule = faults.add_rule(
        Rule::new(ApiKey::Fetch)
            .partition(&topic, 0)
            .skip(1)
            .times(TIMES)
            .set_error(codes::NOT_LEADER_OR_FOLLOWER),
    );
    let mut config = ConsumerConfig::new(faults.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    config.max_partition_fetch_bytes = 4096;
    config.retry_backoff = backoff;
    let c = Consumer::new(config).await.unwrap();
    c.assign([TopicPartition::new(&topic, 0)]).unwrap();
    let reader = async {
        let got = recv_n(&c, 500, Duration::from_secs(60)).await;
        got.iter().map(|r| r.offset()).collect::<Vec<i64>>()
    };
    let watch = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while rule.hits() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no fetch was rewritten"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let first = tokio::time::Instant::now();
        while !rule.exhausted() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the rewrites never ran out: {} of {TIMES} fired, {} matched",
                rule.hits(),
                rule.matched()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first.elapsed()
    };
    let (offsets, elapsed) = tokio::join!(reader, watch);
    assert_eq!(
        offsets,
        (0..500).collect::<Vec<i64>>(),
        "lost or repeated records"
    );
    let least = backoff * (TIMES as u32 - 1);
    assert!(
        elapsed >= least.mul_f64(0.95),
        "{TIMES} NOT_LEADER answers in {elapsed:?}: re-fetched without waiting {backoff:?} each time"
    );
    c.close().await.unwrap();
}
