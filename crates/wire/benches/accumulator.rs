//! Records appended per second by the producer's accumulator (no network): keyed
//! records, 100 B and 1 KiB values, `batch.size` 16 KiB, 6 partitions round robin. Each
//! closed batch is finished (header + CRC) and dropped, so the figure includes the
//! per-batch work the sender would do before a request.
//!
//! `cargo bench -p sluice-wire --bench accumulator -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_wire::producer::bench::{value, AccumulatorBench};

const RECORDS: usize = 10_000;

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("accumulator_append");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for len in [100usize, 1024] {
        let v = value(len);
        let keys: Vec<Vec<u8>> = (0..RECORDS)
            .map(|i| format!("key-{i}").into_bytes())
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, _| {
            let mut acc = AccumulatorBench::new(16 * 1024, 6);
            b.iter(|| {
                for k in &keys {
                    black_box(acc.append(Some(k), &v).unwrap());
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
