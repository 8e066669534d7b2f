//! Backoff with jitter, one implementation for every retry loop of the client (produce
//! retries, transactional calls, reconnects).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential backoff with ±20 % jitter, as Java's `ExponentialBackoff` (KIP-580):
/// `base * 2^(attempt-1)`, capped at `max`.
pub(crate) fn exponential(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max.max(base));
    capped.mul_f64(0.8 + 0.4 * unit_random())
}

/// A number in [0, 1), different on every call. It comes from the standard library's
/// randomly seeded hasher: no extra dependency for a few random bits, and nothing here
/// needs to be unpredictable.
pub(crate) fn unit_random() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for attempt in 1..30 {
            let b = exponential(base, max, attempt);
            let nominal = (100u64 << (attempt - 1).min(20)).min(1000) as f64;
            let ms = b.as_secs_f64() * 1000.0;
            assert!(
                ms >= nominal * 0.8 - 1.0 && ms <= nominal * 1.2 + 1.0,
                "{attempt}: {ms}"
            );
        }
    }

    #[test]
    fn unit_random_is_in_range_and_varies() {
        let v: Vec<f64> = (0..64).map(|_| unit_random()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(v.windows(2).any(|w| w[0] != w[1]));
    }
}
