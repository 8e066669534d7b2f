//! Shutdown and restart of the pipeline runner against a real broker: a forced shutdown
//! ends a run at once, in-process, with `RunError::Interrupted` (the library never exits
//! the process); a plain cancel drains and commits; a static member that crashed and
//! restarts gets its partitions back without waiting out its session timeout.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::pipeline::runner::{Pipeline, RunError};
use sluice::pipeline::{ConsumedRecord, OutputRecord, PipelineError};
use sluice::wire::consumer::{Consumer, ConsumerConfig, TopicPartition};
use tower::service_fn;

use pipeline_common::*;

/// The group's committed offsets of `topic`'s partitions (-1: none).
async fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = Consumer::new(ConsumerConfig::new(sluice_testkit::bootstrap()).group_id(group))
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
    // The interval commits offset 6 (everything before the stuck record). Waiting for
    // the offset itself, not for a first commit: an earlier commit may hold less (a CI
    // rehearsal saw 0 committed when the test went on after the first commit).
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed(&group, &input, 1).await != BTreeMap::from([(0, 6)]) {
        assert!(
            Instant::now() < deadline,
            "the finished prefix was not committed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Long, so that a restart which waited for the crashed member's session to expire
/// (what a dynamic member's restart does) could not meet the bound below.
const STATIC_SESSION: Duration = Duration::from_secs(30);

/// A pipeline of a static member (`group.instance.id` "worker-1", 30 s session timeout)
/// reading `input` into `output`.
async fn static_pipeline(
    group: &str,
    input: &str,
    output: &str,
) -> Pipeline<
    impl tower::Service<
            ConsumedRecord,
            Response = sluice::pipeline::Processed,
            Error = PipelineError,
            Future = impl Send + 'static,
        > + Send
        + 'static,
> {
    let config = consumer(group)
        .group_instance_id("worker-1")
        .session_timeout(STATIC_SESSION)
        .heartbeat_interval(Duration::from_secs(1));
    let output: Arc<str> = Arc::from(output);
    let stack = service_fn(move |r| process(r, Arc::clone(&output), Downstream::default()));
    Pipeline::new(config, producer().await, [input.to_owned()], stack)
}

/// A static member's pipeline crashes: its runtime is dropped with every task of the
/// consumer and the producer (no drain, no commit, no LeaveGroup; the broker only sees
/// the connections close). Restarted with the same `group.instance.id`, it takes the old
/// member's place and processes its first record in under 15 s, half the 30 s session
/// timeout a dynamic member's restart waits out first. A liveness bound, not a speed
/// claim: the test fails only if the restart waits for the old session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarted_after_a_crash_resumes_before_its_session_times_out() {
    let (cluster, input, output, group) = setup("pipe-static", 1).await;
    write_input(&cluster, &input, 1, 0, 10).await;

    // The first instance runs on a runtime of its own, so that it can crash with all its
    // tasks.
    let crashing = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (stats_tx, stats_rx) = tokio::sync::oneshot::channel();
    crashing.spawn({
        let (group, input, output) = (group.clone(), input.clone(), output.clone());
        async move {
            let pipeline = static_pipeline(&group, &input, &output).await;
            let _ = stats_tx.send(pipeline.stats());
            pipeline.run().await
        }
    });
    let first = stats_rx.await.unwrap();
    wait_until(
        "the first instance's records",
        Duration::from_secs(60),
        || first.completed() >= 11 && first.commits() >= 1,
    )
    .await;
    crashing.shutdown_background();
    write_input(&cluster, &input, 1, 10, 20).await;

    let restarted = Instant::now();
    let pipeline = static_pipeline(&group, &input, &output).await;
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    wait_until(
        "the restarted static member's first record (15 s, half its session timeout)",
        Duration::from_secs(15),
        || stats.completed() >= 1,
    )
    .await;
    let resumed = restarted.elapsed();
    wait_until(
        "the records written after the crash",
        Duration::from_secs(30),
        || stats.completed() >= 10,
    )
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    assert!(resumed < STATIC_SESSION / 2, "resumed after {resumed:?}");

    let seen = counts(&read_all(&cluster, &output, 1).await);
    let missing: Vec<u64> = (0..20).filter(|i| !seen.contains_key(i)).collect();
    assert!(missing.is_empty(), "outputs missing: {missing:?}");
}
