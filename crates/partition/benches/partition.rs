//! Per-record cost of placement. Goals: murmur2 <= 15 ns for a 16-byte key; hot-key
//! partitioner <= 50 ns per record on a Zipf stream.
//!
//! Quick run: `cargo bench -p sluice-partition -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_partition::{
    murmur2, HotKeyConfig, HotKeyPartitioner, Murmur2Partitioner, Partitioner,
    UniformStickyPartitioner,
};

#[path = "../tests/zipf/mod.rs"]
mod zipf;

fn bench_murmur2(c: &mut Criterion) {
    let mut group = c.benchmark_group("murmur2");
    for len in [8usize, 16, 64, 256] {
        let key: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &key, |b, key| {
            b.iter(|| murmur2(black_box(key)))
        });
    }
    group.finish();
}

fn bench_partitioners(c: &mut Criterion) {
    const PARTITIONS: i32 = 12;
    let keys = zipf::ZipfKeys::new(10_000, 1.2, 7).take(1 << 16);
    let mut group = c.benchmark_group("per_record_zipf");
    group.throughput(Throughput::Elements(1));

    let mut murmur = Murmur2Partitioner::new();
    let mut i = 0usize;
    group.bench_function("murmur2_partitioner", |b| {
        b.iter(|| {
            i = (i + 1) & (keys.len() - 1);
            murmur.partition("topic", Some(black_box(&keys[i])), 100, PARTITIONS)
        })
    });

    let config = HotKeyConfig::new()
        .load_cap(0.25 / f64::from(PARTITIONS))
        .seed(1);
    let mut hot = HotKeyPartitioner::new(config);
    let mut i = 0usize;
    group.bench_function("hot_key_partitioner", |b| {
        b.iter(|| {
            i = (i + 1) & (keys.len() - 1);
            hot.partition("topic", Some(black_box(&keys[i])), 100, PARTITIONS)
        })
    });

    let mut sticky = UniformStickyPartitioner::default().with_seed(1);
    group.bench_function("uniform_sticky_keyless", |b| {
        b.iter(|| sticky.partition("topic", None, black_box(100), PARTITIONS))
    });
    group.finish();
}

criterion_group!(benches, bench_murmur2, bench_partitioners);
criterion_main!(benches);
