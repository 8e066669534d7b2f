//! The schema layers (feature `schema` of sluice-pipeline) in a running pipeline, against
//! a real broker and a real schema registry (Apicurio, Confluent-compatible API): Avro
//! (`avro`: evolution, dead letters, a registry outage), JSON Schema and Protobuf values
//! and typed keys (`formats`).
//!
//! Start both first (`cargo xtask kafka up`, `cargo xtask registry up`, then export what
//! `registry up` prints), or run `cargo xtask test`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../pipeline_common/mod.rs"]
mod pipeline_common;

mod avro;
mod formats;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sluice::pipeline::breaker::{BreakerHandle, BreakerLayer};
use sluice::pipeline::concurrency::{ConcurrencyLayer, Ordering};
use sluice::pipeline::dlq::{headers, DeadLetterLayer};
use sluice::pipeline::retry::{RetryLayer, RetryPolicy};
use sluice::pipeline::runner::{Pipeline, ProducerSink};
use sluice::wire::producer::{Producer, ProducerRecord};
use sluice_pipeline::schema::decode::{DecodeLayer, Decoded};
use sluice_pipeline::schema::encode::{EncodeLayer, Produce};
use sluice_pipeline::schema::{Decoder, Encoder};
use sluice_pipeline::PipelineError;
use sluice_schema::Registry;
use tower::util::BoxService;
use tower::{service_fn, ServiceBuilder};

use pipeline_common::*;

/// Partitions of every topic here.
const P: i32 = 2;

/// What the tests' stacks are.
type Stack =
    BoxService<sluice::pipeline::ConsumedRecord, sluice::pipeline::Processed, PipelineError>;

/// A registry client that gives up fast, so an outage reaches the pipeline quickly.
fn registry(url: &str) -> Registry {
    Registry::builder(url)
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .retries(1, Duration::from_millis(20), Duration::from_millis(50))
        .build()
        .unwrap()
}

/// Concurrency → DLQ → breaker → retry → decode (keys with `key`, values with `value`) →
/// encode (`encoder`) → `service`, which counts its calls in `calls`; with the
/// breaker's handle.
fn stack<KD, VD, E, F>(
    producer: &Producer,
    group: &str,
    (key, value, encoder): (KD, VD, E),
    calls: Arc<Mutex<u64>>,
    service: F,
) -> (Stack, BreakerHandle)
where
    KD: Decoder + Clone,
    VD: Decoder + Clone,
    E: Encoder + Clone,
    F: Fn(Decoded<KD::Value, VD::Value>) -> Result<Vec<Produce<E::Value>>, PipelineError>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let breaker = BreakerLayer::new(quick_breaker(Duration::from_millis(500)));
    let handle = breaker.handle();
    let svc = ServiceBuilder::new()
        .layer(ConcurrencyLayer::new(Ordering::PerPartition, 64))
        .layer(DeadLetterLayer::new(ProducerSink::new(producer.clone())).consumer_group(group))
        .layer(breaker)
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(2)
                .initial_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(50)),
        ))
        .layer(DecodeLayer::new(value).key(key))
        .layer(EncodeLayer::new(encoder))
        .service(service_fn(move |r: Decoded<KD::Value, VD::Value>| {
            *calls.lock().unwrap() += 1;
            futures::future::ready(service(r))
        }));
    (BoxService::new(svc), handle)
}

/// Writes `values` to `topic` (each to its partition, key `k<n>`); their coordinates.
async fn write(producer: &Producer, topic: &str, values: Vec<(i32, Bytes)>) -> Vec<(i32, i64)> {
    let keyed = values
        .into_iter()
        .enumerate()
        .map(|(n, (p, v))| (p, Bytes::from(format!("k{n}")), v))
        .collect();
    write_keyed(producer, topic, keyed).await
}

/// Writes `(partition, key, value)`s to `topic`, in order; their coordinates.
async fn write_keyed(
    producer: &Producer,
    topic: &str,
    records: Vec<(i32, Bytes, Bytes)>,
) -> Vec<(i32, i64)> {
    let mut sent = Vec::new();
    for (partition, key, value) in records {
        let delivery = producer
            .send(
                ProducerRecord::new(topic, value)
                    .key(key)
                    .partition(partition),
            )
            .await
            .unwrap();
        sent.push(delivery);
    }
    let mut coords = Vec::new();
    for d in sent {
        let d = d.await.unwrap();
        coords.push((d.partition, d.offset));
    }
    coords
}

/// Which input record (its index in `coords`) a DLQ record is the dead letter of.
fn input_index(coords: &[(i32, i64)], r: &Read) -> i64 {
    let offset = i64::from_be_bytes(r.header(headers::ORIGINAL_OFFSET)[..].try_into().unwrap());
    let partition = i32::from_be_bytes(
        r.header(headers::ORIGINAL_PARTITION)[..]
            .try_into()
            .unwrap(),
    );
    coords
        .iter()
        .position(|&c| c == (partition, offset))
        .unwrap() as i64
}

/// A DLQ record's `kafka_dlt-exception-message`, checking it came from the schema layers.
fn dlq_message(r: &Read) -> String {
    let fqcn = String::from_utf8(r.header(headers::EXCEPTION_FQCN).to_vec()).unwrap();
    assert!(fqcn.ends_with("SchemaError"), "{fqcn}");
    String::from_utf8(r.header(headers::EXCEPTION_MESSAGE).to_vec()).unwrap()
}

async fn run_until_completed(pipeline: Pipeline<Stack>, total: u64) {
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    wait_until("every record completed", Duration::from_secs(60), || {
        stats.completed() >= total
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
}
