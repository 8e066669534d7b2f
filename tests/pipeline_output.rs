//! What an output carries to Kafka: a record built with `OutputRecord`'s builder (key,
//! headers, a null header value, partition, timestamp) is written with all of them by the
//! runner, against a real broker.
//!
//! Start a broker first (`cargo xtask kafka up`), or run `cargo xtask test`.

mod common;
mod pipeline_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice::pipeline::runner::Pipeline;
use sluice::pipeline::{ConsumedRecord, Header, PipelineError};
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
