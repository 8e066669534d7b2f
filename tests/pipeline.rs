//! The pipeline runner against a real broker: poison records, a downstream outage, a
//! crash (SIGKILL) and a rebalance with work in flight.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::time::Duration;

use sluice::pipeline::dlq::headers;
use sluice::pipeline::runner::Pipeline;
use sluice_testkit::unique_topic;

use pipeline_common::*;

/// 100,000 records, 1 % poison: every poison record in the DLQ with the Spring headers
/// naming its original topic, partition and offset; every other one in the output
/// exactly once; the counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_and_everything_else_to_the_output() {
    const N: u64 = 100_000;
    const P: i32 = 4;
    let cluster = common::cluster(&sluice_testkit::bootstrap()).await;
    let input = unique_topic("pipe-poison");
    let output = format!("{input}-out");
    let group = format!("{input}-g");
    topics(&cluster, &input, &output, P).await;
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
