//! Offset commits through the fault proxies (`sluice_testkit::fault_cluster`): the
//! committed offset of a partition never goes back, however the connection to the group
//! coordinator fails.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod consumer_common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consumer_common::*;
use sluice::wire::admin::Admin;
use sluice::wire::consumer::{Consumer, OffsetAndMetadata, TopicPartition};

const PARTITIONS: i32 = 2;

/// What the monitor saw of one partition's committed offset.
#[derive(Debug, Default, Clone)]
struct Seen {
    samples: u64,
    last: i64,
    /// (from, to) for every time the committed offset was seen to go down.
    decreases: Vec<(i64, i64)>,
}

/// Reads the group's committed offsets (straight from the broker, not through the
/// proxies) as fast as it can until `stop`, noting every decrease.
fn monitor(
    admin: Admin,
    group: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<TopicPartition, Seen>> {
    tokio::spawn(async move {
        let mut seen: BTreeMap<TopicPartition, Seen> = BTreeMap::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(offsets) = admin.group_offsets(&group).await {
                for (tp, om) in offsets {
                    let s = seen.entry(tp).or_default();
                    s.samples += 1;
                    if om.offset < s.last {
                        s.decreases.push((s.last, om.offset));
                    }
                    s.last = om.offset;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen
    })
}

/// 400 `commit_async` calls, one every 5 ms with rising offsets, none awaited before the
/// next (as an application that commits after every poll does), over connections to the
/// coordinator that are cut at random. Polling OffsetFetch all along: the committed
/// offset of each partition never decreases (Java's `commitAsync` never retries, so an
/// old commit cannot land after a newer one), and after one more commit on a healthy
/// connection it equals that last commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commits_never_move_the_committed_offset_back() {
    const N: i64 = 400;
    let faults = sluice_testkit::fault_cluster();
    let direct = cluster().await;
    let topic = topic(&direct, "commit-faults", PARTITIONS).await;
    let group = format!("{topic}-g");
    let mut c = config(Some(&group));
    c.cluster = sluice::wire::cluster::ClusterConfig::new(faults.bootstrap());
    let consumer = Consumer::new(c).await.unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(&topic, p))
        .collect();
    consumer.assign(partitions.clone()).unwrap();
    let offsets = |o: i64| -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        partitions
            .iter()
            .map(|tp| (tp.clone(), OffsetAndMetadata::new(o)))
            .collect()
    };
    // One commit on a healthy connection first: the coordinator is known, the group has
    // offsets for the monitor to read.
    consumer.commit(&offsets(0)).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = monitor(Admin::new(direct.clone()), group.clone(), Arc::clone(&stop));
    faults.cut_randomly(0.15);
    let mut pending = Vec::new();
    for i in 1..=N {
        pending.push(consumer.commit_async(offsets(i)));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut ok, mut failed) = (0u64, 0u64);
    for p in pending {
        match tokio::time::timeout(Duration::from_secs(60), p).await {
            Ok(Ok(())) => ok += 1,
            Ok(Err(_)) => failed += 1,
            Err(_) => panic!("a commit_async did not answer within 60 s"),
        }
    }
    faults.cut_randomly(0.0);
    // The next commit carries the newest offsets: the failed ones need no retry.
    consumer.commit_async(offsets(N + 1)).await.unwrap();
    // Late arrivals of old commits, if any, would land now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = watcher.await.unwrap();
    let connections = faults.connections();
    let end = Admin::new(direct.clone())
        .group_offsets(&group)
        .await
        .unwrap();
    for (tp, s) in &seen {
        eprintln!(
            "{tp}: {} samples, {} decreases (first: {:?}), last {}",
            s.samples,
            s.decreases.len(),
            &s.decreases[..s.decreases.len().min(5)],
            s.last
        );
    }
    eprintln!("{N} async commits: {ok} ok, {failed} failed, {connections} connections");
    assert!(failed > 0, "no commit failed: the cuts did not happen");
    for tp in &partitions {
        let s = seen.get(tp).cloned().unwrap_or_default();
        assert!(s.samples >= 50, "only {} samples of {tp}", s.samples);
        assert!(
            s.decreases.is_empty(),
            "the committed offset of {tp} went back {} times, first: {:?}",
            s.decreases.len(),
            &s.decreases[..s.decreases.len().min(5)]
        );
        assert_eq!(
            end.get(tp).map(|om| om.offset),
            Some(N + 1),
            "{tp} ends at the last commit"
        );
    }
    drop(consumer);
}
