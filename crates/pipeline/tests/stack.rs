//! The whole stack, in memory: an outage pauses the pipeline instead of filling the DLQ,
//! a bad message is dead-lettered, and commits never pass an unhandled record.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use sluice_pipeline::breaker::{BreakerConfig, BreakerLayer, BreakerState, WindowKind};
use sluice_pipeline::commit::{CommitHandle, CommitLayer};
use sluice_pipeline::concurrency::{ConcurrencyLayer, Ordering};
use sluice_pipeline::dlq::{DeadLetterLayer, MemorySink};
use sluice_pipeline::metrics::InstrumentLayer;
use sluice_pipeline::retry::{RetryLayer, RetryPolicy};
use sluice_pipeline::{ConsumedRecord, Disposition, OutputRecord, PipelineError};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

fn record(offset: i64, value: &'static str) -> ConsumedRecord {
    ConsumedRecord::new("orders", 0, offset)
        .with_key("k")
        .with_value(value)
}

#[tokio::test(start_paused = true)]
async fn an_outage_pauses_the_pipeline_and_a_bad_message_is_dead_lettered() {
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = {
        let (down, calls) = (down.clone(), calls.clone());
        service_fn(move |r: ConsumedRecord| {
            let (down, calls) = (down.clone(), calls.clone());
            async move {
                calls.fetch_add(1, AtomicOrdering::SeqCst);
                if down.load(AtomicOrdering::SeqCst) {
                    return Err(PipelineError::retriable("inventory unavailable"));
                }
                if r.value.as_deref() == Some(&b"bad"[..]) {
                    return Err(PipelineError::dead_letter("unparseable order"));
                }
                Ok(vec![OutputRecord::new(
                    "reservations",
                    r.value.unwrap_or_default(),
                )])
            }
        })
    };
    let dlq = MemorySink::new();
    let commits = CommitHandle::new();
    let breaker = BreakerLayer::new(
        BreakerConfig::new()
            .window(WindowKind::Count(4))
            .minimum_calls(4)
            .wait_in_open(Duration::from_secs(10))
            .permitted_calls_in_half_open(1),
    );
    let ops = breaker.handle();
    let mut stack = ServiceBuilder::new()
        .layer(InstrumentLayer::new())
        .layer(CommitLayer::new(commits.clone()))
        .layer(ConcurrencyLayer::new(Ordering::PerPartition, 16))
        .layer(DeadLetterLayer::new(dlq.clone()))
        .layer(breaker)
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(2)
                .initial_delay(Duration::from_millis(10))
                .jitter(0.0),
        ))
        .service(service);

    // The outage: every record fails after its retries, as a retriable error.
    for offset in 0..4 {
        let err = stack
            .ready()
            .await
            .expect("ready")
            .call(record(offset, "ok"))
            .await;
        assert_eq!(err.expect_err("down").disposition(), Disposition::Retriable);
    }
    assert_eq!(calls.load(AtomicOrdering::SeqCst), 8, "two attempts each");
    assert_eq!(ops.state(), BreakerState::Open);
    let ready = poll_fn(|cx| Poll::Ready(stack.poll_ready(cx).is_ready())).await;
    assert!(!ready, "open breaker: the stack admits nothing");
    assert!(dlq.records().is_empty(), "an outage never goes to the DLQ");
    assert!(
        commits.committable().iter().all(|&(_, _, c)| c <= 0),
        "nothing past the first failed record is committable"
    );

    // The downstream recovers; after the open wait one probe closes the breaker and the
    // runner redelivers from the first unhandled offset.
    down.store(false, AtomicOrdering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;
    for (offset, value) in [(0, "ok"), (1, "ok"), (2, "bad"), (3, "ok")] {
        let out = stack
            .ready()
            .await
            .expect("ready")
            .call(record(offset, value))
            .await;
        let out = out.expect("handled");
        assert_eq!(out.len(), usize::from(value == "ok"));
    }
    assert_eq!(ops.state(), BreakerState::Closed);
    let dead = dlq.records();
    assert_eq!(dead.len(), 1);
    assert_eq!(&*dead[0].topic, "orders-dlt");
    assert_eq!(dead[0].value.as_deref(), Some(&b"bad"[..]));
    assert_eq!(commits.committable(), vec![("orders".into(), 0, 4)]);
}
