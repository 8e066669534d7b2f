//! The pipeline runner against a real broker: poison records, a downstream outage, a
//! crash (SIGKILL) and a rebalance with work in flight.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::collections::BTreeMap;
use std::time::Duration;

use sluice::pipeline::dlq::headers;
use sluice::pipeline::runner::{Pipeline, RejectedOutput, RunError};
use sluice::wire::admin::Admin;

use pipeline_common::*;

/// 100,000 records, 1 % poison: every poison record in the DLQ with the Spring headers
/// naming its original topic, partition and offset; every other one in the output
/// exactly once; the counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_and_everything_else_to_the_output() {
    const N: u64 = 100_000;
    const P: i32 = 4;
    let (cluster, input, output, group) = setup("pipe-poison", P).await;
    write_input(&cluster, &input, P, 0, N).await;

    let producer = producer().await;
    let downstream = Downstream::default();
    let (stack, _) = stack(
        &producer,
        &group,
        &output,
        downstream.clone(),
        quick_breaker(Duration::from_secs(1)),
    );
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], stack);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    // Every input record plus one warm-up record per partition.
    let total = N + P as u64;
    wait_until("every record completed", Duration::from_secs(60), || {
        stats.completed() >= total
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();

    let poison: Vec<u64> = (0..N).filter(|&i| is_poison(i)).collect();
    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    assert_eq!(
        dlq.len(),
        poison.len(),
        "every poison record dead-lettered exactly once"
    );
    let originals = read_all(&cluster, &input, P).await;
    for r in &dlq {
        assert_eq!(&r.header(headers::ORIGINAL_TOPIC)[..], input.as_bytes());
        let partition = i32::from_be_bytes(
            r.header(headers::ORIGINAL_PARTITION)[..]
                .try_into()
                .unwrap(),
        );
        let offset = i64::from_be_bytes(r.header(headers::ORIGINAL_OFFSET)[..].try_into().unwrap());
        assert_eq!(partition, r.partition, "same partition as the original");
        let original = originals
            .iter()
            .find(|o| o.partition == partition && o.offset == offset)
            .expect("the original offset exists");
        assert_eq!(original.value, r.value, "the DLQ record is the original");
        assert_eq!(original.key, r.key);
        assert!(r
            .header(headers::EXCEPTION_MESSAGE)
            .starts_with(b"malformed order"));
        assert_eq!(
            &r.header(headers::ORIGINAL_CONSUMER_GROUP)[..],
            group.as_bytes()
        );
        assert_eq!(r.header(headers::ATTEMPT).len(), 4);
    }
    let out = counts(&read_all(&cluster, &output, P).await);
    assert_eq!(
        out.len() as u64,
        N - poison.len() as u64,
        "every good record produced"
    );
    assert!(
        out.values().all(|&c| c == 1),
        "no duplicates without crashes"
    );
    assert!(out.keys().all(|&i| !is_poison(i)));
    assert_eq!(
        out.len() + dlq.len(),
        N as usize,
        "input = output + dead-lettered"
    );
}

/// A record that fails retriably (its retries spent) while the poison records behind it
/// in its partition are queued in the concurrency layer: they are superseded by the
/// rewind and their service is not called until they are fetched again, so each is
/// dead-lettered exactly once (before the fix every one of them was written twice).
///
/// Two worker threads: the concurrency layer releases the next record only when the
/// failed answer is dropped, and the runner marks the rewind before dropping it, so no
/// other thread can start a queued record in between. Two good records sit between the
/// failing and the poison ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewind_does_not_dead_letter_the_queued_records_twice() {
    const FAILING: u64 = 20;
    let poison = 23..33u64;
    let (cluster, input, output, group) = setup("pipe-rewind-dlq", 1).await;
    let values: Vec<String> = (0..50u64)
        .map(|i| {
            if poison.contains(&i) {
                format!("poison-{i}")
            } else {
                i.to_string()
            }
        })
        .collect();
    write_values(&cluster, &input, 0, &values).await;

    let producer = producer().await;
    let downstream = Downstream {
        // Long enough for every later record to be admitted and queued behind it.
        failing_delay: Duration::from_millis(150),
        ..Downstream::default()
    };
    // Fails both attempts of the retry layer, then succeeds when fetched again.
    downstream.fail(FAILING, 2);
    let (stack, _) = stack(
        &producer,
        &group,
        &output,
        downstream.clone(),
        quick_breaker(Duration::from_secs(1)),
    );
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], stack);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    // The warm-up record and the 50 values, one of them once more after the rewind.
    wait_until("every record completed", Duration::from_secs(30), || {
        stats.completed() >= 51
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        stats.redelivered(),
        1,
        "the failing record was fetched again"
    );

    let dlq = read_all(&cluster, &format!("{input}-dlt"), 1).await;
    let mut dead: Vec<i64> = dlq
        .iter()
        .map(|r| i64::from_be_bytes(r.header(headers::ORIGINAL_OFFSET)[..].try_into().unwrap()))
        .collect();
    dead.sort();
    // Offset 0 is the warm-up record; value i is at offset i + 1.
    let expected: Vec<i64> = poison.clone().map(|i| i as i64 + 1).collect();
    assert_eq!(
        dead, expected,
        "each poison record dead-lettered exactly once"
    );
    let out = counts(&read_all(&cluster, &output, 1).await);
    assert_eq!(out.len(), 50 - poison.count(), "every good record produced");
}

/// Waits until `output` holds every good record of `0..n` (distinct values), reading it
/// back every 500 ms; returns the output counts.
async fn wait_for_outputs(
    cluster: &sluice::wire::cluster::Cluster,
    output: &str,
    partitions: i32,
    n: u64,
    within: Duration,
) -> std::collections::BTreeMap<u64, u32> {
    let good = (0..n).filter(|&i| !is_poison(i)).count();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let out = counts(&read_all(cluster, output, partitions).await);
        if out.len() >= good {
            return out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {good} outputs within {within:?}",
            out.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A 30-second downstream outage, five times the consumer's 6 s session timeout: the
/// breaker opens, the partitions are paused while the member stays in the group (same
/// member id, no rebalance), no record is dead-lettered because of the outage, the flow
/// resumes and every record comes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_opens_the_breaker_pauses_and_loses_nothing() {
    const N: u64 = 20_000;
    const P: i32 = 4;
    const BOUND: usize = 500;
    let (cluster, input, output, group) = setup("pipe-outage", P).await;
    write_input(&cluster, &input, P, 0, N).await;

    let producer = producer().await;
    let downstream = Downstream::default();
    let (stack, breaker) = stack(
        &producer,
        &group,
        &output,
        downstream.clone(),
        quick_breaker(Duration::from_millis(500)),
    );
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], stack)
        .max_in_flight(BOUND);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());

    wait_until("some records done", Duration::from_secs(30), || {
        stats.completed() >= 2_000
    })
    .await;
    let admin = Admin::new(cluster.clone());
    let members_before = members(&admin, &group).await;
    assert_eq!(members_before.len(), 1, "one member before the outage");
    downstream
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut opened = false;
    let mut paused = false;
    let outage_end = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < outage_end {
        opened |= breaker.state() == sluice::pipeline::breaker::BreakerState::Open;
        paused |= stats.is_paused();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done_during_outage = stats.completed();
    assert_eq!(
        members(&admin, &group).await,
        members_before,
        "the paused member stayed in the group through the outage"
    );
    downstream
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(opened, "the breaker opened during the outage");
    assert!(paused && stats.pauses() > 0, "the partitions were paused");

    let out = wait_for_outputs(&cluster, &output, P, N, Duration::from_secs(60)).await;
    assert!(stats.completed() > done_during_outage, "the flow resumed");
    stop.cancel();
    run.await.unwrap().unwrap();
    assert!(!stats.is_paused(), "resumed");

    let poison = (0..N).filter(|&i| is_poison(i)).count();
    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    assert_eq!(
        dlq.len(),
        poison,
        "only poison records dead-lettered, none for the outage"
    );
    assert!(
        downstream
            .failures
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    );
    assert_eq!(out.len(), N as usize - poison, "nothing lost");
    let duplicates: u32 = out.values().map(|c| c - 1).sum();
    assert!(
        duplicates as usize <= BOUND,
        "{duplicates} duplicates > bound {BOUND}"
    );
}

/// A 40-second downstream outage, twice the consumer's 20 s `max.poll.interval.ms`, with
/// a breaker that stays open 30 s before it probes (so the runner takes no record for
/// longer than the poll interval): the breaker opens and the runner pauses its
/// partitions, and pausing counts as polling (as
/// Java's `poll()` with every partition paused does), so the member never leaves: the
/// group stays `Stable` with the same member id, sampled every second through the
/// outage. No record is dead-lettered because of the outage, nothing is lost, and the
/// group's committed offsets reach the end of every partition (lag 0).
///
/// R5 of the reliability issue at full size (a 6-minute outage, `max.poll.interval.ms`
/// 5 minutes; the breaker then waits 7.5 minutes, 1.5 poll intervals, before it probes):
/// `SLUICE_R5_MAX_POLL_SECS=300 SLUICE_R5_OUTAGE_SECS=360`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_open_longer_than_max_poll_interval_keeps_the_member() {
    const N: u64 = 4_000;
    const P: i32 = 4;
    let secs = |name: &str, default: u64| {
        Duration::from_secs(
            std::env::var(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default),
        )
    };
    let max_poll = secs("SLUICE_R5_MAX_POLL_SECS", 20);
    let outage = secs("SLUICE_R5_OUTAGE_SECS", 40);
    // Open longer than the poll interval: no record taken for that long.
    let open_for = max_poll * 3 / 2;
    let (cluster, input, output, group) = setup("pipe-long-outage", P).await;
    write_input(&cluster, &input, P, 0, N).await;

    let producer = producer().await;
    let downstream = Downstream::default();
    let (stack, breaker) = stack(
        &producer,
        &group,
        &output,
        downstream.clone(),
        quick_breaker(open_for),
    );
    let consumer = consumer(&group).max_poll_interval(max_poll);
    let pipeline =
        Pipeline::new(consumer, producer.clone(), [input.clone()], stack).max_in_flight(200);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());

    wait_until("some records done", Duration::from_secs(30), || {
        stats.completed() >= 500
    })
    .await;
    let admin = Admin::new(cluster.clone());
    let before = members(&admin, &group).await;
    assert_eq!(before.len(), 1, "one member before the outage");
    downstream
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut opened, mut paused) = (false, false);
    let mut samples = Vec::new();
    let outage_end = tokio::time::Instant::now() + outage;
    let mut next_sample = tokio::time::Instant::now();
    while tokio::time::Instant::now() < outage_end {
        opened |= breaker.state() == sluice::pipeline::breaker::BreakerState::Open;
        paused |= stats.is_paused();
        if tokio::time::Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            let d = admin.describe_group(&group).await.unwrap();
            let ids: Vec<String> = d.members.into_iter().map(|m| m.member_id).collect();
            samples.push((d.state, ids));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failures_in_outage = downstream
        .failures
        .load(std::sync::atomic::Ordering::SeqCst);
    downstream
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let changed: Vec<&(String, Vec<String>)> = samples
        .iter()
        .filter(|(state, ids)| state != "Stable" || *ids != before)
        .collect();
    eprintln!(
        "outage {outage:?} with max.poll.interval {max_poll:?}, breaker open {open_for:?}: {} group samples, {} not the \
         member from before (first: {:?}); {failures_in_outage} failed calls, {} pauses",
        samples.len(),
        changed.len(),
        changed.first(),
        stats.pauses()
    );
    assert!(opened, "the breaker opened during the outage");
    assert!(paused && stats.pauses() > 0, "the partitions were paused");
    let want_samples = (outage.as_secs() * 3 / 4) as usize;
    assert!(
        samples.len() >= want_samples,
        "only {} samples",
        samples.len()
    );
    assert!(
        changed.is_empty(),
        "the member left or the group rebalanced during the outage ({} of {} samples): {:?}",
        changed.len(),
        samples.len(),
        &changed[..changed.len().min(3)]
    );

    // The breaker probes `open_for` after it opened, then closes.
    let out = wait_for_outputs(
        &cluster,
        &output,
        P,
        N,
        open_for.saturating_sub(outage) + Duration::from_secs(90),
    )
    .await;
    // Every partition holds a warm-up record and N / P inputs: committed up to its end.
    let end = N as i64 / P as i64 + 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let committed = admin.group_offsets(&group).await.unwrap();
        let at_end = (0..P).all(|p| {
            committed
                .get(&sluice::wire::consumer::TopicPartition::new(&input, p))
                .is_some_and(|om| om.offset == end)
        });
        if at_end && stats.lag() == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "committed {committed:?} (want {end} per partition), lag {}",
            stats.lag()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        members(&admin, &group).await,
        before,
        "the same member after the outage"
    );
    stop.cancel();
    run.await.unwrap().unwrap();

    let poison = (0..N).filter(|&i| is_poison(i)).count();
    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    assert_eq!(dlq.len(), poison, "only poison records dead-lettered");
    assert_eq!(out.len(), N as usize - poison, "nothing lost");
    let duplicates: u32 = out.values().map(|c| c - 1).sum();
    eprintln!(
        "{} outputs, {duplicates} duplicates, {} dead letters",
        out.len(),
        dlq.len()
    );
    assert!(
        duplicates <= 200,
        "{duplicates} duplicates > the in-flight bound 200"
    );
}

/// The group's member ids (sorted), with its state `Stable`.
async fn members(admin: &Admin, group: &str) -> Vec<String> {
    let d = admin.describe_group(group).await.unwrap();
    assert_eq!(d.state, "Stable", "group {group}");
    d.members.into_iter().map(|m| m.member_id).collect()
}

/// Two pipelines in one group, the second joining while the first has records in
/// flight (a slow downstream): the first drains and commits what it gives up, every
/// record has an output, duplicates stay within the in-flight bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_drains_and_commits_in_flight_work() {
    const N: u64 = 20_000;
    const P: i32 = 4;
    const BOUND: usize = 300;
    let (cluster, input, output, group) = setup("pipe-rebalance", P).await;
    write_input(&cluster, &input, P, 0, N).await;

    let start = |slow: bool| {
        let (input, output, group) = (input.clone(), output.clone(), group.clone());
        async move {
            let producer = producer().await;
            let downstream = Downstream {
                slow: slow.then_some(Duration::from_millis(2)),
                ..Downstream::default()
            };
            let (stack, _) = stack(
                &producer,
                &group,
                &output,
                downstream,
                quick_breaker(Duration::from_secs(1)),
            );
            let pipeline = Pipeline::new(consumer(&group), producer, [input], stack)
                .max_in_flight(BOUND)
                .drain_timeout(Duration::from_secs(10));
            let stats = pipeline.stats();
            let stop = pipeline.shutdown_handle();
            (stats, stop, tokio::spawn(pipeline.run()))
        }
    };
    let (first, stop_first, run_first) = start(true).await;
    wait_until(
        "the first pipeline is busy",
        Duration::from_secs(30),
        || first.completed() >= 1_000,
    )
    .await;
    let commits_before = first.commits();
    let (second, stop_second, run_second) = start(false).await;
    let out = wait_for_outputs(&cluster, &output, P, N, Duration::from_secs(60)).await;
    assert!(second.completed() > 0, "the second member got partitions");
    assert!(
        first.commits() > commits_before,
        "the first member kept committing"
    );
    stop_first.cancel();
    stop_second.cancel();
    run_first.await.unwrap().unwrap();
    run_second.await.unwrap().unwrap();

    let poison = (0..N).filter(|&i| is_poison(i)).count();
    assert_eq!(out.len(), N as usize - poison, "every input has an output");
    let duplicates: u32 = out.values().map(|c| c - 1).sum();
    assert!(
        duplicates as usize <= BOUND,
        "{duplicates} duplicates > bound {BOUND}"
    );
    eprintln!("rebalance: {duplicates} duplicate outputs (bound {BOUND})");
}

/// The pipeline process (`examples/orders_pipeline.rs` in worker mode) killed with
/// SIGKILL mid-run and started again: nothing lost, duplicates within the in-flight bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_pipeline_restarts_without_loss() {
    const N: u64 = 30_000;
    const P: i32 = 4;
    const BOUND: usize = 500;
    let (cluster, input, output, group) = setup("pipe-kill", P).await;
    write_orders(&cluster, &input, P, N).await;

    let mut worker = orders_worker(&input, &output, &group, BOUND, None);
    kill_after_outputs(&mut worker, &cluster, &output, P, 8_000).await;
    let at_kill = read_all(&cluster, &output, P).await.len();
    assert!((at_kill as u64) < N, "killed mid-run");

    let mut second = worker.spawn().unwrap();
    let malformed = (0..N).filter(|i| i % 97 == 13).count();
    let good = N as usize - malformed;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let ids = loop {
        let ids = order_ids(&read_all(&cluster, &output, P).await);
        if ids.len() >= good {
            break ids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {good} outputs after the restart",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    second.kill().unwrap();
    second.wait().unwrap();

    assert_eq!(ids.len(), good, "nothing lost");
    assert!(ids.keys().all(|i| i % 97 != 13));
    let duplicates: u32 = ids.values().map(|c| c - 1).sum();
    assert!(
        duplicates as usize <= BOUND,
        "{duplicates} duplicates > bound {BOUND}"
    );
    eprintln!("sigkill: {at_kill} outputs at the kill, {duplicates} duplicates (bound {BOUND})");
}

/// Waits until `f` is true, polling every 50 ms, for at most `within`; whether it became
/// true (the caller asserts with its figures).
async fn became<F: FnMut() -> bool>(within: Duration, mut f: F) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The most calls of any input, and how many inputs had more than one.
fn call_figures(calls: &Calls) -> (u32, usize) {
    let calls = calls.lock().unwrap();
    let max = calls.values().copied().max().unwrap_or(0);
    (max, calls.values().filter(|&&c| c > 1).count())
}

/// At-least-once, an output topic that refuses the outputs of 2 % of the inputs as
/// `refusal` says: each such input is dead-lettered once with the producer's error in
/// `kafka_dlt-exception-message`, every other input is output once, the service is called
/// once per input (no seek-back loop), and the committed offsets reach the end.
async fn refused_outputs_are_dead_lettered(refusal: Refusal, code: &str) {
    const N: u64 = 2_000;
    const P: i32 = 4;
    let (cluster, input, _, group) = setup("pipe-refused", P).await;
    let output = format!("{input}-refusing");
    create_refusing_topic(&cluster, &output, P, refusal).await;
    write_input(&cluster, &input, P, 0, N).await;

    let producer = producer().await;
    let calls = Calls::default();
    let stack = refused_output_stack(&output, refusal, calls.clone());
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], stack)
        .max_in_flight(200);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    let total = N + P as u64;
    let finished = became(Duration::from_secs(60), || stats.completed() >= total).await;
    let (max_calls, called_again) = call_figures(&calls);
    eprintln!(
        "{refusal:?}: completed {} of {total}, admitted {}, redelivered {}; service calls: \
         at most {max_calls} per input, {called_again} inputs called more than once",
        stats.completed(),
        stats.admitted(),
        stats.redelivered()
    );
    assert!(
        finished,
        "the pipeline did not get through its input (a refused output loops)"
    );
    stop.cancel();
    run.await.unwrap().unwrap();

    let out = counts(&read_all(&cluster, &output, P).await);
    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    let refused: Vec<u64> = (0..N).filter(|&i| is_rejected(i)).collect();
    let mut dead: BTreeMap<u64, u32> = BTreeMap::new();
    for r in &dlq {
        let n = input_number(r.value.as_deref().unwrap()).unwrap();
        *dead.entry(n).or_insert(0) += 1;
        let message = String::from_utf8_lossy(&r.header(headers::EXCEPTION_MESSAGE)).into_owned();
        assert!(message.contains(code), "{message}");
        assert!(
            message.contains(&output),
            "names the output topic: {message}"
        );
    }
    eprintln!(
        "{refusal:?}: {} outputs, {} dead letters ({} refused inputs)",
        out.len(),
        dlq.len(),
        refused.len()
    );
    for i in 0..N {
        if is_rejected(i) {
            assert_eq!(dead.get(&i), Some(&1), "input {i} dead-lettered once");
            assert_eq!(out.get(&i), None, "input {i} has no output");
        } else {
            assert_eq!(out.get(&i), Some(&1), "input {i} output once");
            assert_eq!(dead.get(&i), None, "input {i} not dead-lettered");
        }
    }
    // A refused batch fails every record in it; their outputs are sent again alone, not
    // processed again.
    assert_eq!(max_calls, 1, "the service was called again for some input");
    let committed = Admin::new(cluster.clone())
        .group_offsets(&group)
        .await
        .unwrap();
    for p in 0..P {
        let tp = sluice::wire::consumer::TopicPartition::new(&input, p);
        assert_eq!(
            committed.get(&tp).map(|om| om.offset),
            Some(N as i64 / P as i64 + 1),
            "{tp} committed to its end"
        );
    }
}

/// Outputs larger than the output topic's `max.message.bytes` (MESSAGE_TOO_LARGE): see
/// [`refused_outputs_are_dead_lettered`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_too_large_for_the_topic_are_dead_lettered_once() {
    refused_outputs_are_dead_lettered(Refusal::TooLarge, "MessageTooLarge").await;
}

/// Outputs without a key on a compacted output topic (INVALID_RECORD): see
/// [`refused_outputs_are_dead_lettered`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_outputs_on_a_compacted_topic_are_dead_lettered_once() {
    refused_outputs_are_dead_lettered(Refusal::NullKeyOnCompacted, "InvalidRecord").await;
}

/// With `on_rejected_output(RejectedOutput::Fatal)` the first refused output stops the
/// pipeline with `RunError::OutputRejected` naming the input record and carrying the
/// producer's error; nothing at or after that record is committed in its partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_output_stops_the_pipeline_when_asked_to() {
    const N: u64 = 2_000;
    const P: i32 = 4;
    let (cluster, input, _, group) = setup("pipe-refused-fatal", P).await;
    let output = format!("{input}-refusing");
    create_refusing_topic(&cluster, &output, P, Refusal::TooLarge).await;
    write_input(&cluster, &input, P, 0, N).await;

    let producer = producer().await;
    let calls = Calls::default();
    let stack = refused_output_stack(&output, Refusal::TooLarge, calls.clone());
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [input.clone()], stack)
        .max_in_flight(200)
        .on_rejected_output(RejectedOutput::Fatal);
    let result = tokio::time::timeout(Duration::from_secs(60), pipeline.run())
        .await
        .expect("run() returned");
    let (max_calls, _) = call_figures(&calls);
    let Err(RunError::OutputRejected {
        topic,
        partition,
        offset,
        error,
    }) = result
    else {
        panic!("want RunError::OutputRejected, got {result:?}");
    };
    eprintln!(
        "stopped at {topic}-{partition}@{offset}: {error}; at most {max_calls} calls per input"
    );
    assert_eq!(topic, input);
    assert_eq!(error.topic, output);
    assert_eq!(
        error.source.kafka_code().map(|c| c.code()),
        Some(10),
        "MESSAGE_TOO_LARGE: {error}"
    );
    let originals = read_all(&cluster, &input, P).await;
    let record = originals
        .iter()
        .find(|r| r.partition == partition && r.offset == offset)
        .expect("the input record exists");
    assert!(is_rejected(
        input_number(record.value.as_deref().unwrap()).unwrap()
    ));
    let committed = Admin::new(cluster.clone())
        .group_offsets(&group)
        .await
        .unwrap();
    let tp = sluice::wire::consumer::TopicPartition::new(&input, partition);
    assert!(
        committed.get(&tp).is_none_or(|om| om.offset <= offset),
        "committed {committed:?} past the refused record"
    );
    assert!(
        read_all(&cluster, &format!("{input}-dlt"), P)
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
}
