//! The runner drives a service that returns the user's own error type: `?` on
//! `serde_json` and on the user's enum, no `map_err`, and each failure gets its
//! disposition: retriable retried, dead letters in the DLQ naming the user's type, fatal
//! stops the run; the pipeline's stats count the retries and dead letters. A pipeline
//! told to stop at the end of its input does, with everything committed, and names the
//! subscribed topic the cluster does not have.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice::pipeline::dlq::{headers, DeadLetterLayer};
use sluice::pipeline::retry::{RetryLayer, RetryPolicy};
use sluice::pipeline::runner::{Pipeline, PipelineStats, ProducerSink, RunError};
use sluice::pipeline::{Classify, ConsumedRecord, Disposition, Processed};
use sluice::wire::producer::Producer;
use tower::util::BoxService;
use tower::{service_fn, ServiceBuilder};

use pipeline_common::*;

#[derive(Debug, thiserror::Error)]
enum PaymentError {
    #[error("not a payment: {0}")]
    Json(#[from] serde_json::Error),
    #[error("amount {0} over the limit")]
    OverLimit(i64),
    #[error("fraud service timed out")]
    FraudTimeout,
    #[error("ledger corrupted")]
    Ledger,
}

impl Classify for PaymentError {
    fn disposition(&self) -> Disposition {
        match self {
            PaymentError::Json(_) | PaymentError::OverLimit(_) => Disposition::DeadLetter,
            PaymentError::FraudTimeout => Disposition::Retriable,
            PaymentError::Ledger => Disposition::Fatal,
        }
    }
}

fn check_limit(amount: i64) -> Result<i64, PaymentError> {
    match amount {
        -1 => Err(PaymentError::Ledger),
        a if a > 1000 => Err(PaymentError::OverLimit(a)),
        a => Ok(a),
    }
}

/// Parses a JSON amount; the amount 7 times out on its first call (`timeouts` counts).
async fn score(
    record: ConsumedRecord,
    output: Arc<str>,
    timeouts: Arc<AtomicU32>,
) -> Result<Processed, PaymentError> {
    let value = record.value().unwrap_or_default();
    if value == common::WARMUP {
        return Ok(vec![]);
    }
    let amount: i64 = serde_json::from_slice(value)?;
    let amount = check_limit(amount)?;
    if amount == 7 && timeouts.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(PaymentError::FraudTimeout);
    }
    Ok(vec![record.forward(output, amount.to_string())])
}

/// DLQ → retry → [`score`], writing to `output`.
fn payments_stack(
    producer: &Producer,
    group: &str,
    output: &str,
    timeouts: &Arc<AtomicU32>,
) -> Stack {
    let output: Arc<str> = Arc::from(output);
    let calls = Arc::clone(timeouts);
    BoxService::new(
        ServiceBuilder::new()
            .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group(group))
            .layer(RetryLayer::new(
                RetryPolicy::new()
                    .max_attempts(3)
                    .initial_delay(Duration::from_millis(10)),
            ))
            .service(service_fn(move |r| {
                score(r, Arc::clone(&output), Arc::clone(&calls))
            })),
    )
}

async fn run(
    values: &[&str],
) -> (
    Result<(), RunError>,
    Vec<Read>,
    Vec<Read>,
    u32,
    PipelineStats,
) {
    let (cluster, input, output, group) = setup("pipe-user-errors", 1).await;
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    write_values(&cluster, &input, 0, &values).await;

    let producer = producer().await;
    let timeouts = Arc::new(AtomicU32::new(0));
    let stack = payments_stack(&producer, &group, &output, &timeouts);
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [&input], stack);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    // The warm-up record plus the values, unless a fatal error ends the run first.
    let total = values.len() as u64 + 1;
    let finished = tokio::time::timeout(Duration::from_secs(30), async {
        while stats.completed() < total && !run.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        finished.is_ok(),
        "the pipeline neither finished nor stopped"
    );
    stop.cancel();
    let result = run.await.unwrap();
    let out = read_all(&cluster, &output, 1).await;
    let dlq = read_all(&cluster, &format!("{input}-dlt"), 1).await;
    (result, out, dlq, timeouts.load(Ordering::SeqCst), stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_errors_keep_their_dispositions_under_the_runner() {
    let (result, out, dlq, timeouts, stats) = run(&["5", "{oops", "7", "5000", "9"]).await;
    result.expect("no fatal error");
    assert_eq!(
        stats.retried(),
        1,
        "the timed-out record, by the retry layer"
    );
    assert_eq!(stats.dead_lettered(), 2, "by the DLQ layer");
    assert_eq!(stats.redelivered(), 0);

    let values: Vec<&[u8]> = out.iter().map(|r| r.value.as_deref().unwrap()).collect();
    assert_eq!(values, [&b"5"[..], b"7", b"9"], "good records, in order");
    assert_eq!(timeouts, 2, "the timed-out record was retried once");

    assert_eq!(dlq.len(), 2, "the bad JSON and the over-limit amount");
    // No concurrency layer: the two dead letters are written concurrently, in either
    // order. Ordered by their original offsets.
    let mut dlq = dlq;
    dlq.sort_by_key(|r| {
        dead_letter_counts(std::slice::from_ref(r))
            .into_keys()
            .next()
    });
    assert_eq!(dlq[0].value.as_deref(), Some(&b"{oops"[..]));
    assert_eq!(dlq[1].value.as_deref(), Some(&b"5000"[..]));
    for r in &dlq {
        let fqcn = r.header(headers::EXCEPTION_FQCN);
        assert!(fqcn.ends_with(b"PaymentError"), "{fqcn:?}");
    }
    assert!(dlq[0]
        .header(headers::EXCEPTION_MESSAGE)
        .starts_with(b"not a payment: "));
    assert_eq!(
        &dlq[1].header(headers::EXCEPTION_MESSAGE)[..],
        b"amount 5000 over the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_user_error_stops_the_run() {
    // Records after it may run concurrently; the runner commits nothing at or past it.
    let (result, _, dlq, _, _) = run(&["5", "-1", "9"]).await;
    match result {
        Err(RunError::Fatal { offset, error, .. }) => {
            assert_eq!(offset, 2, "the -1 after the warm-up record and 5");
            assert_eq!(error.disposition(), Disposition::Fatal);
            assert!(matches!(error.downcast_ref(), Some(PaymentError::Ledger)));
        }
        other => panic!("expected a fatal stop, got {other:?}"),
    }
    assert!(dlq.is_empty(), "a fatal error is not dead-lettered");
}

/// `stop_at_end`: subscribed to its input and to a topic the cluster does not have, the
/// pipeline lists the missing topic in its stats, reads every partition of the input to
/// its end, and `run` returns by itself with every record handled and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_stops_at_the_end_of_its_input_and_names_a_missing_topic() {
    const P: i32 = 2;
    let (cluster, input, output, group) = setup("pipe-to-end", P).await;
    let absent = format!("{input}-absent");
    let values: Vec<String> = ["5", "{oops", "7", "9"].map(String::from).to_vec();
    for p in 0..P {
        write_values(&cluster, &input, p, &values).await;
    }

    let producer = producer().await;
    let timeouts = Arc::new(AtomicU32::new(0));
    let stack = payments_stack(&producer, &group, &output, &timeouts);
    let pipeline = Pipeline::new(consumer(&group), producer.clone(), [&input, &absent], stack)
        .stop_at_end(true);
    let stats = pipeline.stats();
    tokio::time::timeout(Duration::from_secs(30), pipeline.run())
        .await
        .expect("run() returned at the end of its input")
        .expect("no error");

    assert_eq!(stats.missing_topics(), [absent]);
    // Per partition: the warm-up record and the values; one of them is bad JSON.
    let records = P as u64 * (values.len() as u64 + 1);
    assert_eq!(stats.completed(), records, "every record handled");
    let out = read_all(&cluster, &output, P).await;
    let dlq = read_all(&cluster, &format!("{input}-dlt"), P).await;
    assert_eq!(out.len(), 3 * P as usize, "5, 7 and 9 of each partition");
    assert_eq!(dlq.len(), P as usize);
    assert_eq!(stats.dead_lettered(), P as u64);
    assert_eq!(stats.retried(), 1, "the first 7 timed out once");
    assert_eq!(
        committed(&group, &input, P).await,
        end_offsets(&cluster, &input, P).await,
        "committed to the end"
    );
}
