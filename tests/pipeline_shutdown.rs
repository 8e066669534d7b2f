//! Shutdown of the pipeline runner against a real broker: a forced shutdown ends a run
//! at once, in-process, with `RunError::Interrupted` (the library never exits the
//! process); a plain cancel drains and commits.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice::pipeline::runner::{Pipeline, RunError};
use sluice::pipeline::{ConsumedRecord, OutputRecord, PipelineError};
use sluice::wire::consumer::{Consumer, ConsumerConfig, TopicPartition};
use tower::service_fn;

use pipeline_common::*;

/// The group's committed offsets of `topic`'s partitions (-1: none).
async fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = Consumer::new(ConsumerConfig::new(&sluice_testkit::bootstrap()).group_id(group))
        .await
        .unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let committed = consumer.committed(&tps).await.unwrap();
    consumer.close().await.unwrap();
    committed
        .into_iter()
        .map(|(tp, om)| (tp.partition, om.map_or(-1, |o| o.offset)))
        .collect()
}

/// A run whose input record `"5"` never finishes: the records before it complete (the
/// ones after it wait, since outputs keep the partition's order). Returns the group, the
/// input topic, the run, its stats and its shutdown token.
async fn stuck_run(
    prefix: &str,
) -> (
    String,
    String,
    tokio::task::JoinHandle<Result<(), RunError>>,
    sluice::pipeline::runner::PipelineStats,
    sluice::pipeline::runner::Shutdown,
) {
    let (cluster, input, output, group) = setup(prefix, 1).await;
    // Offsets: 0 the warm-up record, then "0".."9" at 1..=10; "5" is at offset 6.
    write_input(&cluster, &input, 1, 0, 10).await;
    let producer = producer().await;
    let stack = service_fn(move |r: ConsumedRecord| {
        let output = output.clone();
        async move {
            let value = r.value.unwrap_or_default();
            if &value[..] == b"5" {
                std::future::pending::<()>().await;
            }
            Ok::<_, PipelineError>(vec![OutputRecord::new(output, value)])
        }
    });
    let pipeline = Pipeline::new(consumer(&group), producer, [input.clone()], stack)
        .commit_interval(Duration::from_millis(50))
        .drain_timeout(Duration::from_secs(60));
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    wait_until(
        "the records before the stuck one",
        Duration::from_secs(30),
        || stats.completed() >= 6,
    )
    .await;
    (group, input, run, stats, stop)
}

/// Cancelled, the run drains for up to the 60 s drain timeout behind the stuck record;
/// forced, it ends at once with `RunError::Interrupted`, without committing past the
/// stuck record (nothing at or after offset 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_shutdown_ends_a_stuck_drain_at_once_with_interrupted() {
    let (group, input, run, stats, stop) = stuck_run("pipe-force").await;
    // The interval commits offset 6 (everything before the stuck record).
    wait_until(
        "the commit of the finished prefix",
        Duration::from_secs(10),
        || stats.commits() >= 1,
    )
    .await;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!run.is_finished(), "a cancel waits for the stuck record");
    let forced = Instant::now();
    stop.force();
    let result = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("a forced run ends at once")
        .unwrap();
    assert!(
        matches!(result, Err(RunError::Interrupted)),
        "forced: {result:?}"
    );
    assert!(forced.elapsed() < Duration::from_secs(5));
    assert_eq!(stats.completed(), 6, "the warm-up record and \"0\"..\"4\"");
    assert_eq!(
        committed(&group, &input, 1).await,
        BTreeMap::from([(0, 6)]),
        "committed up to the stuck record, not past it"
    );
}

/// A run whose token was forced before it started ends at once, having committed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_forced_before_it_starts_returns_interrupted() {
    let (_cluster, input, _output, group) = setup("pipe-force-early", 1).await;
    let producer = producer().await;
    let stack = service_fn(|_r: ConsumedRecord| async { Ok::<_, PipelineError>(Vec::new()) });
    let pipeline = Pipeline::new(consumer(&group), producer, [input.clone()], stack);
    pipeline.shutdown_handle().force();
    let result = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("a forced run ends at once");
    assert!(
        matches!(result, Err(RunError::Interrupted)),
        "forced: {result:?}"
    );
    assert_eq!(
        committed(&group, &input, 1).await,
        BTreeMap::from([(0, -1)])
    );
}
