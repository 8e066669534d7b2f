//! Per-record overhead of the layers over the bare service, in memory.
//!
//! Every future here completes on its first poll, so this measures the layers' own work
//! (locks, clones, span, metric handles), not scheduling. No metrics recorder and no
//! tracing subscriber are installed: the cost of an exporter is the application's.
//!
//! Four clock reads per record are inherent (the latency histogram and the breaker's
//! slow-call detection each need a start and an end); on a VM whose clock is slow to read
//! they are a large share of the total, as `perf` shows.

use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_pipeline::breaker::{BreakerConfig, BreakerLayer};
use sluice_pipeline::commit::{CommitHandle, CommitLayer};
use sluice_pipeline::concurrency::{ConcurrencyLayer, Ordering};
use sluice_pipeline::dlq::{DeadLetterLayer, MemorySink};
use sluice_pipeline::metrics::InstrumentLayer;
use sluice_pipeline::retry::{RetryLayer, RetryPolicy};
use sluice_pipeline::{ConsumedRecord, PipelineError, Processed};
use tower::{service_fn, Service, ServiceBuilder};

fn bare() -> impl Service<ConsumedRecord, Response = Processed, Error = PipelineError> + Clone {
    service_fn(|r: ConsumedRecord| {
        black_box(&r);
        ready(Ok::<Processed, PipelineError>(Vec::new()))
    })
}

/// Admits one record and drives its answer; every future here is ready at once.
fn one<S>(svc: &mut S, record: ConsumedRecord)
where
    S: Service<ConsumedRecord, Response = Processed, Error = PipelineError>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("stack not ready"),
    }
    let fut = pin!(svc.call(record));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(out)) => {
            black_box(out);
        }
        _ => panic!("record not handled at once"),
    }
}

fn bench(c: &mut Criterion) {
    let template = ConsumedRecord::new("orders", 0, 0)
        .with_key("order-1")
        .with_value(&b"{\"qty\":3}"[..])
        .with_timestamp(1_700_000_000_000);
    let mut group = c.benchmark_group("per_record");

    let mut svc = bare();
    let mut offset = 0;
    group.bench_function("bare_service", |b| {
        b.iter(|| {
            offset += 1;
            let mut r = template.clone();
            r.offset = offset;
            one(&mut svc, r)
        })
    });

    let mut svc = ServiceBuilder::new()
        .layer(InstrumentLayer::new().consumer_group("bench"))
        .layer(CommitLayer::new(CommitHandle::new()))
        .layer(DeadLetterLayer::new(MemorySink::new()))
        .layer(BreakerLayer::new(BreakerConfig::new()))
        .layer(RetryLayer::new(RetryPolicy::new()))
        .service(bare());
    let mut offset = 0;
    group.bench_function("full_stack", |b| {
        b.iter(|| {
            offset += 1;
            let mut r = template.clone();
            r.offset = offset;
            one(&mut svc, r)
        })
    });

    let mut svc = ServiceBuilder::new()
        .layer(InstrumentLayer::new().consumer_group("bench"))
        .layer(CommitLayer::new(CommitHandle::new()))
        .layer(ConcurrencyLayer::new(Ordering::PerPartition, 256))
        .layer(DeadLetterLayer::new(MemorySink::new()))
        .layer(BreakerLayer::new(BreakerConfig::new()))
        .layer(RetryLayer::new(RetryPolicy::new()))
        .service(bare());
    let mut offset = 0;
    group.bench_function("full_stack_with_concurrency", |b| {
        b.iter(|| {
            offset += 1;
            let mut r = template.clone();
            r.offset = offset;
            one(&mut svc, r)
        })
    });
    group.finish();

    // Each layer alone over the bare service: where the overhead goes.
    let mut group = c.benchmark_group("one_layer");
    macro_rules! alone {
        ($name:literal, $layer:expr) => {{
            let mut svc = ServiceBuilder::new().layer($layer).service(bare());
            let mut offset = 0;
            group.bench_function($name, |b| {
                b.iter(|| {
                    offset += 1;
                    let mut r = template.clone();
                    r.offset = offset;
                    one(&mut svc, r)
                })
            });
        }};
    }
    alone!("instrument", InstrumentLayer::new().consumer_group("bench"));
    alone!("commit", CommitLayer::new(CommitHandle::new()));
    alone!("dlq", DeadLetterLayer::new(MemorySink::new()));
    alone!("breaker", BreakerLayer::new(BreakerConfig::new()));
    alone!("retry", RetryLayer::new(RetryPolicy::new()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
