//! Consumer decode throughput: records per second out of a fetch response, the way the
//! consumer reads one: decode the Fetch response frame (`kafka-protocol`; records stay a
//! `Bytes` slice), then walk its batches and records with the zero-copy decoder, touching
//! key and value. 100 B and 1 KiB values, uncompressed, 10 batches of 500 records.
//!
//! The response is built the way a broker sends it (Fetch v12, as the consumer
//! negotiates against Kafka 4.x) from batches written by our encoder.
//!
//! `cargo bench -p sluice-wire --bench fetch_decode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchResponse, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_wire::records::{BatchOptions, RecordBatchBuilder, RecordBatches};

const BATCHES: usize = 10;
const RECORDS_PER_BATCH: usize = 500;
const VERSION: i16 = 12;

/// A captured-style Fetch response body for one partition.
fn response(value_len: usize) -> Bytes {
    let mut records = BytesMut::new();
    let mut offset = 0i64;
    for _ in 0..BATCHES {
        let mut b = RecordBatchBuilder::new(BatchOptions {
            base_offset: offset,
            ..BatchOptions::default()
        });
        for i in 0..RECORDS_PER_BATCH {
            let key = format!("key-{i}");
            let value: Vec<u8> = (0..value_len)
                .map(|j| b'a' + ((i + j) % 26) as u8)
                .collect();
            b.append(
                1_700_000_000_000 + i as i64,
                Some(key.as_bytes()),
                Some(&value),
                &[],
            )
            .unwrap();
        }
        records.extend_from_slice(&b.finish().unwrap());
        offset += RECORDS_PER_BATCH as i64;
    }
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(offset)
            .with_last_stable_offset(offset)
            .with_records(Some(records.freeze()))])]);
    let mut buf = BytesMut::new();
    response.encode(&mut buf, VERSION).unwrap();
    buf.freeze()
}

fn decode_all(frame: &Bytes) -> usize {
    let mut buf = frame.clone();
    let response = FetchResponse::decode(&mut buf, VERSION).unwrap();
    let mut n = 0;
    for topic in response.responses {
        for p in topic.partitions {
            for batch in RecordBatches::new(p.records.unwrap_or_default()) {
                for record in batch.unwrap().records().unwrap() {
                    let record = record.unwrap();
                    black_box((record.offset(), record.key(), record.value()));
                    n += 1;
                }
            }
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("fetch_decode");
    for value_len in [100usize, 1024] {
        let frame = response(value_len);
        assert_eq!(decode_all(&frame), BATCHES * RECORDS_PER_BATCH);
        group.throughput(Throughput::Elements((BATCHES * RECORDS_PER_BATCH) as u64));
        group.bench_with_input(
            BenchmarkId::new("records", format!("{value_len}B")),
            &frame,
            |b, frame| b.iter(|| decode_all(frame)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
