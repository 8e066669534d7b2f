//! Record batch encode / decode throughput, per codec, for 100 B and 1 KiB values in
//! batches of 1000 records. Throughput is counted in uncompressed batch bytes (what the
//! producer hands us / what the consumer gets back), so codecs compare on equal terms.
//!
//! `cargo bench -p sluice-wire --bench records -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_wire::records::{
    BatchOptions, Compression, HeaderRef, RecordBatchBuilder, RecordBatches,
};

const RECORDS_PER_BATCH: usize = 1000;

struct Input {
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
}

/// Log-line-like values: compressible, but not trivially (a PRNG picks the words and
/// numbers).
fn input(value_len: usize) -> Input {
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
    let mut keys = Vec::with_capacity(RECORDS_PER_BATCH);
    let mut values = Vec::with_capacity(RECORDS_PER_BATCH);
    for i in 0..RECORDS_PER_BATCH {
        keys.push(format!("customer-{}", i % 97).into_bytes());
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
        values.push(value);
    }
    Input { keys, values }
}

fn encode(input: &Input, compression: Compression) -> (Bytes, usize) {
    let mut builder = RecordBatchBuilder::with_capacity(
        BatchOptions {
            compression,
            ..BatchOptions::default()
        },
        1 << 20,
    );
    let headers = [HeaderRef::new("source", Some(&b"bench"[..]))];
    for (i, (key, value)) in input.keys.iter().zip(&input.values).enumerate() {
        builder
            .append(
                1_700_000_000_000 + i as i64,
                Some(key),
                Some(value),
                &headers,
            )
            .expect("append");
    }
    let uncompressed = builder.estimated_size();
    (builder.finish().expect("finish"), uncompressed)
}

fn decode(batch: &Bytes) -> usize {
    let mut total = 0;
    for batch in RecordBatches::new(batch.clone()) {
        for record in batch.expect("batch").records().expect("records") {
            let record = record.expect("record");
            total += record.value().map_or(0, |v| v.len()) + record.header_count();
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    for value_len in [100usize, 1024] {
        let input = input(value_len);
        let mut group = c.benchmark_group(format!("records/{value_len}B"));
        group.sample_size(20);
        for codec in Compression::ALL {
            let (batch, uncompressed) = encode(&input, codec);
            group.throughput(Throughput::Bytes(uncompressed as u64));
            group.bench_with_input(BenchmarkId::new("encode", codec), &codec, |b, &codec| {
                b.iter(|| encode(black_box(&input), codec))
            });
            group.bench_with_input(BenchmarkId::new("decode", codec), &batch, |b, batch| {
                b.iter(|| decode(black_box(batch)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
