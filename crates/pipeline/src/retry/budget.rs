//! A retry budget: retries may add at most a fixed share of load on top of first attempts.

use crate::sync;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Caps retries at `min_per_window + ratio × first attempts` over a sliding window, so a
/// storm of failures cannot multiply the load on a struggling downstream.
///
/// The window is two fixed buckets of `ttl` each, weighted by how far the clock is into the
/// current one (the usual approximation of a sliding window; cheap and lock-short). One
/// budget is shared by every clone of a [`Retry`](super::Retry) service.
#[derive(Debug)]
pub struct RetryBudget {
    ttl: Duration,
    min_per_window: u32,
    ratio: f64,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    start: Instant,
    calls: u64,
    retries: u64,
    prev_calls: u64,
    prev_retries: u64,
}

impl RetryBudget {
    /// A budget over a window of `ttl` allowing `min_per_window` retries plus `ratio`
    /// retries per first attempt (`ratio = 0.1`: retries add at most 10 % load).
    pub fn new(ttl: Duration, min_per_window: u32, ratio: f64) -> Self {
        RetryBudget {
            ttl: ttl.max(Duration::from_millis(1)),
            min_per_window,
            ratio: if ratio.is_finite() {
                ratio.max(0.0)
            } else {
                0.0
            },
            state: Mutex::new(Buckets {
                start: Instant::now(),
                calls: 0,
                retries: 0,
                prev_calls: 0,
                prev_retries: 0,
            }),
        }
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        self.with(|b, _| b.calls += 1);
    }

    /// Takes one retry from the budget; `false` means the budget is spent: do not retry.
    pub fn withdraw(&self) -> bool {
        let (min, ratio) = (self.min_per_window as f64, self.ratio);
        self.with(|b, weight| {
            let calls = b.calls as f64 + b.prev_calls as f64 * weight;
            let retries = b.retries as f64 + b.prev_retries as f64 * weight;
            if retries + 1.0 <= min + ratio * calls {
                b.retries += 1;
                true
            } else {
                false
            }
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Buckets, f64) -> T) -> T {
        let now = Instant::now();
        // A poisoned lock only means another thread panicked mid-update of two counters;
        // the counters are still usable.
        let mut b = sync::lock(&self.state);
        let elapsed = now.saturating_duration_since(b.start);
        if elapsed >= self.ttl * 2 {
            *b = Buckets {
                start: now,
                calls: 0,
                retries: 0,
                prev_calls: 0,
                prev_retries: 0,
            };
        } else if elapsed >= self.ttl {
            b.prev_calls = b.calls;
            b.prev_retries = b.retries;
            b.calls = 0;
            b.retries = 0;
            b.start += self.ttl;
        }
        let into = now.saturating_duration_since(b.start).as_secs_f64() / self.ttl.as_secs_f64();
        let weight = (1.0 - into).clamp(0.0, 1.0);
        f(&mut b, weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn caps_retries_at_ratio_of_calls() {
        let budget = RetryBudget::new(Duration::from_secs(10), 2, 0.1);
        for _ in 0..100 {
            budget.deposit();
        }
        let allowed = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 12); // 2 + 10% of 100
        tokio::time::advance(Duration::from_secs(25)).await;
        // The window has passed: only the floor remains.
        let allowed = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 2);
    }
}
