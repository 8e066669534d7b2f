//! How many times to retry and how long to wait between attempts.

use std::time::Duration;

use rand::Rng;

/// Retry configuration: attempts, exponential backoff, jitter.
///
/// The backoff is a short function here rather than a crate: `backoff` is unmaintained and
/// `tokio-retry` / `exponential-backoff` would each bring an iterator API we do not need for
/// one formula. The formula is the "equal jitter" variant from the AWS architecture blog:
///
/// ```text
/// base_delay(n) = min(max_delay, initial_delay * multiplier^(n-1))   n = failed attempt, from 1
/// delay(n)      = base_delay(n) * (1 - jitter * U[0,1))
/// ```
///
/// With `jitter = 1.0` that is "full jitter"; with `0.0` no randomness (handy in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms doubling up to 10 s, jitter 0.5.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// The default policy (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Total attempts including the first one; `1` disables retries. Default 3.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The wait after the first failed attempt. Default 100 ms.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// The cap on any single wait. Default 10 s.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// The growth factor between waits (values below 1 are taken as 1). Default 2.
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = if m.is_finite() && m >= 1.0 { m } else { 1.0 };
        self
    }

    /// The share of each wait that is randomised, clamped to `0.0..=1.0`. Default 0.5.
    pub fn jitter(mut self, j: f64) -> Self {
        self.jitter = if j.is_finite() {
            j.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Total attempts including the first.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before the next attempt after failed attempt number `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exp);
        let capped = base.min(self.max_delay.as_secs_f64());
        let factor = if self.jitter > 0.0 {
            1.0 - self.jitter * rand::thread_rng().gen::<f64>()
        } else {
            1.0
        };
        Duration::try_from_secs_f64(capped * factor).unwrap_or(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_caps() {
        let p = RetryPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(350))
            .jitter(0.0);
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(350));
        assert_eq!(p.delay(1000), Duration::from_millis(350));
    }

    #[test]
    fn jitter_stays_within_the_band() {
        let p = RetryPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .jitter(0.5);
        for _ in 0..1000 {
            let d = p.delay(1);
            assert!(
                d > Duration::from_millis(50) && d <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }
}
