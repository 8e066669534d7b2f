//! A seeded Zipf key stream for the load test and the benchmarks: key of rank `r` (1-based)
//! is drawn with probability proportional to `r^-s`, by inverse CDF over a precomputed
//! table. Shared by `tests/load.rs` and `benches/partition.rs` through `#[path]`.

pub struct ZipfKeys {
    keys: Vec<Vec<u8>>,
    cumulative: Vec<f64>,
    state: u64,
}

impl ZipfKeys {
    pub fn new(key_count: usize, exponent: f64, seed: u64) -> Self {
        let mut sum = 0.0;
        let cumulative = (1..=key_count)
            .map(|rank| {
                sum += (rank as f64).powf(-exponent);
                sum
            })
            .collect();
        let keys = (0..key_count)
            .map(|rank| format!("key-{rank:05}").into_bytes())
            .collect();
        Self {
            keys,
            cumulative,
            state: seed,
        }
    }

    /// SplitMix64, so the stream is the same on every platform.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn next_key(&mut self) -> &[u8] {
        let total = self.cumulative[self.cumulative.len() - 1];
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let i = self
            .cumulative
            .partition_point(|&c| c <= u)
            .min(self.keys.len() - 1);
        &self.keys[i]
    }

    /// The first `count` keys of the stream, owned (for benchmarks that must not time the
    /// sampling).
    #[allow(dead_code)]
    pub fn take(&mut self, count: usize) -> Vec<Vec<u8>> {
        (0..count).map(|_| self.next_key().to_vec()).collect()
    }
}
