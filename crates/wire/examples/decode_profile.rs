//! A fixed amount of record-batch decoding, for instruction counts under callgrind
//! (deterministic, unlike wall-clock time on a shared machine). The batches are the ones
//! the `records` and `fetch_decode` criterion benches decode.
//!
//! ```sh
//! cargo build --release -p sluice-wire --example decode_profile
//! B=target/release/examples/decode_profile
//! # instructions per record = (Ir of N iterations - Ir of 0 iterations) / records
//! valgrind --tool=callgrind --callgrind-out-file=cg.0 $B records 100 0
//! valgrind --tool=callgrind --callgrind-out-file=cg.200 $B records 100 200   # 200,000 records
//! callgrind_annotate --inclusive=no cg.200 | head -40
//! ```
//!
//! Modes: `records <value bytes> <iterations>` decodes one batch of 1000 records (key,
//! value, one header) per iteration; `fetch <value bytes> <iterations>` decodes a Fetch
//! v12 response of 10 batches of 500 records (key, value) per iteration.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchResponse, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_wire::records::{BatchOptions, HeaderRef, RecordBatchBuilder, RecordBatches};

const FETCH_VERSION: i16 = 12;

/// The `records` bench's batch: log-line-like values picked by a PRNG.
fn records_batch(value_len: usize) -> Bytes {
    let words: Vec<&str> =
        "user order status shipped pending region eu-west amount id timestamp { } : ,"
            .split(' ')
            .collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut builder = RecordBatchBuilder::with_capacity(BatchOptions::default(), 1 << 20);
    let headers = [HeaderRef::new("source", Some(&b"bench"[..]))];
    for i in 0..1000 {
        let key = format!("customer-{}", i % 97).into_bytes();
        let mut value = Vec::with_capacity(value_len + 16);
        while value.len() < value_len {
            let r = next();
            if r % 3 == 0 {
                value.extend_from_slice((r >> 8).to_string().as_bytes());
            } else {
                value.extend_from_slice(words[(r >> 8) as usize % words.len()].as_bytes());
            }
            value.push(b' ');
        }
        value.truncate(value_len);
        builder
            .append(1_700_000_000_000 + i, Some(&key), Some(&value), &headers)
            .expect("append");
    }
    builder.finish().expect("finish")
}

fn decode_records(batch: &Bytes) -> usize {
    let mut total = 0;
    for batch in RecordBatches::new(batch.clone()) {
        for record in batch.expect("batch").records().expect("records") {
            let record = record.expect("record");
            total += record.value().map_or(0, |v| v.len()) + record.header_count();
        }
    }
    total
}

/// The `fetch_decode` bench's response frame.
fn fetch_frame(value_len: usize) -> Bytes {
    let mut records = BytesMut::new();
    let mut offset = 0i64;
    for _ in 0..10 {
        let mut builder = RecordBatchBuilder::new(BatchOptions {
            base_offset: offset,
            ..BatchOptions::default()
        });
        for i in 0..500 {
            let key = format!("key-{i}");
            let value: Vec<u8> = (0..value_len)
                .map(|j| b'a' + ((i + j) % 26) as u8)
                .collect();
            builder
                .append(
                    1_700_000_000_000 + i as i64,
                    Some(key.as_bytes()),
                    Some(&value),
                    &[],
                )
                .expect("append");
        }
        records.extend_from_slice(&builder.finish().expect("finish"));
        offset += 500;
    }
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(offset)
            .with_last_stable_offset(offset)
            .with_records(Some(records.freeze()))])]);
    let mut buf = BytesMut::new();
    response.encode(&mut buf, FETCH_VERSION).expect("encode");
    buf.freeze()
}

fn decode_fetch(frame: &Bytes) -> usize {
    let mut buf = frame.clone();
    let response = FetchResponse::decode(&mut buf, FETCH_VERSION).expect("decode");
    let mut n = 0;
    for topic in response.responses {
        for p in topic.partitions {
            for batch in RecordBatches::new(p.records.unwrap_or_default()) {
                for record in batch.expect("batch").records().expect("records") {
                    let record = record.expect("record");
                    black_box((record.offset(), record.key(), record.value()));
                    n += 1;
                }
            }
        }
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(len), Some(iterations)) = (
        args.get(1),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
        args.get(3).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: decode_profile records|fetch <value bytes> <iterations>");
        std::process::exit(2);
    };
    let (input, decode): (Bytes, fn(&Bytes) -> usize) = match mode.as_str() {
        "records" => (records_batch(len), decode_records),
        "fetch" => (fetch_frame(len), decode_fetch),
        _ => {
            eprintln!("unknown mode {mode}: records or fetch");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let mut sum = 0;
    for _ in 0..iterations {
        sum += decode(black_box(&input));
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{mode} {len} B: {iterations} x {} bytes in {secs:.3} s = {:.2} GiB/s (checksum {sum})",
        input.len(),
        (input.len() * iterations) as f64 / secs / f64::from(1u32 << 30)
    );
}
