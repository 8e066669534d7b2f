//! What an output carries to Kafka: a record built with `OutputRecord`'s builder (key,
//! headers, a null header value, partition, timestamp) is written with all of them by the
//! runner, against a real broker; and headers keep one type from producer to consumer to
//! pipeline output.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice::pipeline::runner::Pipeline;
use sluice::pipeline::{ConsumedRecord, Header, PipelineError};
use sluice::wire::producer::ProducerRecord;
use tower::service_fn;

use pipeline_common::*;

/// Each input `"<i>"` (key `"k<i>"`) is answered with one output built with every
/// builder method; the output topic has 3 partitions and every output asks for
/// partition 2. Read back, each output sits on partition 2 with the input's key, the
/// new value, both headers (one with a null value) in order, and its own timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_reaches_kafka_with_its_key_headers_partition_and_timestamp() {
    let (cluster, input, _, group) = setup("pipe-out-builder", 1).await;
    let output = format!("{input}-built");
    common::create_topic(&cluster, &output, 3).await;
    let values: Vec<String> = (0..5).map(|i| i.to_string()).collect();
    write_values(&cluster, &input, 0, &values).await;

    // An hour back: a time the producer stamped itself cannot pass for it (and retention
    // keeps it).
    let base = now_ms() - 3_600_000;
    let topic: Arc<str> = Arc::from(output.as_str());
    let stack = service_fn(move |r: ConsumedRecord| {
        let topic = Arc::clone(&topic);
        async move {
            let Some(n) = r.value.as_deref().and_then(input_number) else {
                return Ok::<_, PipelineError>(vec![]);
            };
            let n = i64::try_from(n).unwrap();
            Ok(vec![r
                .forward(&topic, format!("out-{n}"))
                .header("source", Some(Bytes::from_static(b"pipeline")))
                .header("trace", None)
                .partition(2)
                .timestamp(base + n)])
        }
    });
    let pipeline = Pipeline::new(consumer(&group), producer().await, [input.clone()], stack);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    wait_until("every output", Duration::from_secs(60), || {
        stats.produced() >= 5
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();

    let mut read = read_all(&cluster, &output, 3).await;
    read.sort_by_key(|r| r.timestamp);
    assert_eq!(read.len(), 5, "{read:?}");
    for (i, r) in read.iter().enumerate() {
        assert_eq!(r.partition, 2, "the partition asked for: {r:?}");
        assert_eq!(
            r.key.as_deref(),
            Some(format!("k{i}").as_bytes()),
            "the input's key"
        );
        assert_eq!(r.value.as_deref(), Some(format!("out-{i}").as_bytes()));
        assert_eq!(
            r.headers,
            vec![
                Header::new("source", Some(Bytes::from_static(b"pipeline"))),
                Header::new("trace", None),
            ],
            "headers in order, the null value kept"
        );
        assert_eq!(r.timestamp, base + i as i64, "the timestamp set");
    }
}

/// One header type end to end: a record produced with a duplicate key and a null value
/// (`ProducerRecord::header`) is consumed by the pipeline as the same `Header`s, in order;
/// the service looks them up (`last_header` / `header_value`, last wins), passes the
/// `Vec<Header>` on to its output unchanged and adds one; read back from Kafka, the
/// output carries exactly those headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_and_a_null_header_round_trip_producer_consumer_pipeline_output() {
    let (cluster, input, _, group) = setup("pipe-out-headers", 1).await;
    let output = format!("{input}-headers");
    common::create_topic(&cluster, &output, 1).await;
    let sent = ProducerRecord::new(&input, "v")
        .key("k")
        .header("trace", Some(Bytes::from_static(b"first")))
        .header("marker", None)
        .header("trace", Some(Bytes::from_static(b"last")));
    assert_eq!(sent.header_value("trace"), Some(&b"last"[..]));
    let produced = sent.headers.clone();
    let p = producer().await;
    p.send(sent).await.unwrap().await.unwrap();
    p.close(common::T).await.unwrap();

    let topic: Arc<str> = Arc::from(output.as_str());
    let stack = service_fn(move |r: ConsumedRecord| {
        let topic = Arc::clone(&topic);
        async move {
            if r.value.as_deref() == Some(common::WARMUP) {
                return Ok::<_, PipelineError>(vec![]);
            }
            // What the lookups saw, written as headers so the test can check them.
            let last = r.header_value("trace").map(Bytes::copy_from_slice);
            let marker = match r.last_header("marker") {
                Some(h) if h.value().is_none() => "null",
                Some(_) => "not null",
                None => "absent",
            };
            let mut out = r.forward(&topic, "out");
            out.headers = r.headers.clone();
            Ok(vec![out.header("seen-trace", last).header(
                "seen-marker",
                Some(Bytes::from_static(marker.as_bytes())),
            )])
        }
    });
    let pipeline = Pipeline::new(consumer(&group), producer().await, [input.clone()], stack);
    let stats = pipeline.stats();
    let stop = pipeline.shutdown_handle();
    let run = tokio::spawn(pipeline.run());
    wait_until("the output", Duration::from_secs(60), || {
        stats.produced() >= 1
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();

    let read = read_all(&cluster, &output, 1).await;
    assert_eq!(read.len(), 1, "{read:?}");
    let mut want = produced;
    want.push(Header::new("seen-trace", Some(Bytes::from_static(b"last"))));
    want.push(Header::new(
        "seen-marker",
        Some(Bytes::from_static(b"null")),
    ));
    assert_eq!(
        read[0].headers, want,
        "the produced headers in order (duplicate and null kept), then the service's"
    );
}
