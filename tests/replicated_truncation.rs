//! A real log truncation on three brokers (KIP-320): an unclean leader election gives a
//! partition to a replica that never had the last records the consumer read. Needs
//! `cargo xtask kafka up --brokers 3` and the `replicated` feature (`cargo xtask test
//! --brokers 3` turns it on).
//!
//! The partition has two replicas, on nodes 2 (the leader, X) and 3 (the follower, Y);
//! node 1 stays up throughout, so the controller quorum survives while X is down and Y
//! comes back. N records are written with acks=all (both have them), Y is stopped, M
//! more with acks=1 (only X has them), the consumers read all N+M, X is killed, Y starts
//! and is elected uncleanly (its log ends at N), and K > M records are written to Y, so
//! the consumers' position N+M is inside Y's new log: without validation they would read
//! on from N+M and silently skip the K records' first M.

mod consumer_common;

use std::time::Duration;

use consumer_common::*;
use sluice::wire::cluster::{Cluster, ClusterConfig};
use sluice::wire::consumer::{
    Consumer, ConsumerConfig, OffsetAndMetadata, OffsetReset, TopicPartition,
};
use sluice::wire::partition_client::{Acks, PartitionClient};
use sluice::wire::records::{BatchOptions, RecordBatchBuilder};
use sluice::wire::ErrorKind;

const N: usize = 100;
const M: usize = 50;
const K: usize = 80;

/// Writes `n` records `"<prefix>-<i>"` to partition 0 in batches of 10.
async fn produce_acks(cluster: &Cluster, topic: &str, prefix: &str, n: usize, acks: Acks) {
    let client = PartitionClient::new(cluster.clone(), topic, 0);
    for start in (0..n).step_by(10) {
        let mut b = RecordBatchBuilder::new(BatchOptions::default());
        for i in start..(start + 10).min(n) {
            let v = format!("{prefix}-{i}");
            b.append(1_700_000_000_000, None, Some(v.as_bytes()), &[])
                .unwrap();
        }
        let batch = b.finish().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match client.produce(batch.clone(), acks, T).await {
                Ok(_) => break,
                Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("produce {prefix}-{start}: {e}"),
            }
        }
    }
}

fn consumer_config(reset: OffsetReset) -> ConsumerConfig {
    ConsumerConfig::new(sluice_testkit::bootstrap())
        .auto_offset_reset(reset)
        .fetch_max_wait(Duration::from_millis(100))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclean_election_truncation_is_reported_or_reset_to_the_divergent_offset() {
    let brokers = sluice_testkit::brokers();
    let admin = brokers.admin();
    let (x, y) = (2, 3);
    let topic = sluice_testkit::unique_topic("truncation");
    admin
        .create_topic_on(
            &topic,
            &[vec![x, y]],
            &[
                ("unclean.leader.election.enable", "true"),
                ("min.insync.replicas", "1"),
            ],
        )
        .unwrap();
    admin.wait_for_leader(&topic, 0, None, T).unwrap();
    admin.wait_until_isr_full(&topic, T).unwrap();
    assert_eq!(admin.leader_of(&topic, 0).unwrap(), Some(x));
    let cluster = Cluster::connect(ClusterConfig::new(sluice_testkit::bootstrap()))
        .await
        .unwrap();
    produce_acks(&cluster, &topic, "before", N, Acks::All).await;

    brokers.stop(y).unwrap();
    produce_acks(&cluster, &topic, "only-x", M, Acks::Leader).await;

    // Two consumers read all N+M: one with auto.offset.reset=none, one with earliest.
    let tp = TopicPartition::new(&topic, 0);
    // The strict one starts from a committed 0 (no leader epoch: nothing to validate
    // yet), the other from earliest.
    let group = sluice_testkit::unique_topic("truncation-g");
    let strict = Consumer::new(consumer_config(OffsetReset::None).group_id(&group))
        .await
        .unwrap();
    let mut start = std::collections::BTreeMap::new();
    start.insert(tp.clone(), OffsetAndMetadata::new(0));
    strict.commit(&start).await.unwrap();
    let lenient = Consumer::new(consumer_config(OffsetReset::Earliest))
        .await
        .unwrap();
    for c in [&strict, &lenient] {
        c.assign([tp.clone()]).unwrap();
        let got = recv_n(c, N + M, T).await;
        let offsets: Vec<i64> = got.iter().map(|r| r.offset()).collect();
        assert_eq!(offsets, (0..(N + M) as i64).collect::<Vec<i64>>());
        assert_eq!(c.position(&tp), Some((N + M) as i64));
    }
    let epoch_before = admin.partition(&topic, 0).unwrap().leader_epoch;

    // X dies with the M records; Y comes back without them and is elected uncleanly.
    brokers.kill(x).unwrap();
    brokers.start(y).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let _ = admin.elect_unclean_leaders(&topic);
        if admin.leader_of(&topic, 0).ok().flatten() == Some(y) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {y} never became the leader: {:?}",
            admin.partition(&topic, 0)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let elected = std::time::Instant::now();
    let after = admin.partition(&topic, 0).unwrap();
    assert!(
        after.leader_epoch > epoch_before,
        "a new leader epoch: {after:?}"
    );
    // Y's log ends at N; K more records land at N..N+K, past the consumers' N+M.
    let cluster = Cluster::connect(ClusterConfig::new(sluice_testkit::bootstrap()))
        .await
        .unwrap();
    produce_acks(&cluster, &topic, "after", K, Acks::Leader).await;

    // reset=none: a typed truncation at the position, naming the divergent offset N;
    // no record is handed out (none skipped silently), again on the next call.
    for attempt in 0..2 {
        let err = match tokio::time::timeout(Duration::from_secs(60), strict.recv())
            .await
            .expect("an answer within 60 s")
        {
            Ok(r) => panic!(
                "attempt {attempt}: handed out offset {} ({:?}) from the truncated log",
                r.offset(),
                r.value()
            ),
            Err(e) => e,
        };
        if attempt == 0 {
            eprintln!(
                "truncation reported {:?} after the election (K written meanwhile): {err}",
                elected.elapsed()
            );
        }
        assert_eq!(err.kind(), ErrorKind::LogTruncation, "{err}");
        let t = err.truncation().expect("the truncation's details");
        assert_eq!((t.topic.as_str(), t.partition), (topic.as_str(), 0));
        assert_eq!(t.position, (N + M) as i64, "{t}");
        assert_eq!(t.divergent_offset, Some(N as i64), "{t}");
    }

    // earliest: back to the divergent offset N, then every record written to Y since.
    let got = recv_n(&lenient, K, Duration::from_secs(60)).await;
    eprintln!(
        "reset=earliest: {K} records from offset {N} read {:?} after the election",
        elected.elapsed()
    );
    let offsets: Vec<i64> = got.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets, (N as i64..(N + K) as i64).collect::<Vec<i64>>());
    let values: Vec<String> = got.iter().map(value).collect();
    assert_eq!(
        values,
        (0..K)
            .map(|i| format!("after-{i}"))
            .collect::<Vec<String>>()
    );

    // The strict consumer goes on once the application seeks.
    strict.seek(&tp, N as i64).unwrap();
    let got = recv_n(&strict, K, Duration::from_secs(60)).await;
    assert_eq!(got.first().map(value).as_deref(), Some("after-0"));

    strict.close().await.unwrap();
    lenient.close().await.unwrap();
    // X comes back, truncates its log to Y's and catches up.
    brokers.start(x).unwrap();
    admin
        .wait_until_isr_full(&topic, Duration::from_secs(120))
        .unwrap();
}
