//! The sliding windows the closed breaker judges the failure and slow-call rates over.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Totals over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

impl Totals {
    pub(crate) fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += failed as u32;
        self.slow += slow as u32;
    }

    fn sub(&mut self, other: Totals) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }
}

/// How the closed breaker's window is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The last `n` calls.
    Count(u32),
    /// The calls that finished in the last duration (kept in ten buckets).
    Time(Duration),
}

const BUCKETS: u32 = 10;

#[derive(Debug)]
pub(crate) enum Window {
    Count {
        size: usize,
        calls: VecDeque<(bool, bool)>,
        totals: Totals,
    },
    Time {
        width: Duration,
        origin: Instant,
        buckets: VecDeque<(u64, Totals)>,
        totals: Totals,
    },
}

impl Window {
    pub(crate) fn new(kind: WindowKind, now: Instant) -> Self {
        match kind {
            WindowKind::Count(n) => Window::Count {
                size: n.max(1) as usize,
                calls: VecDeque::new(),
                totals: Totals::default(),
            },
            WindowKind::Time(d) => Window::Time {
                width: (d / BUCKETS).max(Duration::from_millis(1)),
                origin: now,
                buckets: VecDeque::new(),
                totals: Totals::default(),
            },
        }
    }

    pub(crate) fn record(&mut self, now: Instant, failed: bool, slow: bool) {
        match self {
            Window::Count {
                size,
                calls,
                totals,
            } => {
                if calls.len() == *size {
                    if let Some((f, s)) = calls.pop_front() {
                        totals.sub(Totals {
                            calls: 1,
                            failures: f as u32,
                            slow: s as u32,
                        });
                    }
                }
                calls.push_back((failed, slow));
                totals.add(failed, slow);
            }
            Window::Time { .. } => {
                let idx = self.expire(now);
                if let Window::Time {
                    buckets, totals, ..
                } = self
                {
                    match buckets.back_mut() {
                        Some((i, t)) if *i == idx => t.add(failed, slow),
                        _ => {
                            let mut t = Totals::default();
                            t.add(failed, slow);
                            buckets.push_back((idx, t));
                        }
                    }
                    totals.add(failed, slow);
                }
            }
        }
    }

    pub(crate) fn totals(&mut self, now: Instant) -> Totals {
        self.expire(now);
        match self {
            Window::Count { totals, .. } | Window::Time { totals, .. } => *totals,
        }
    }

    pub(crate) fn clear(&mut self) {
        match self {
            Window::Count { calls, totals, .. } => {
                calls.clear();
                *totals = Totals::default();
            }
            Window::Time {
                buckets, totals, ..
            } => {
                buckets.clear();
                *totals = Totals::default();
            }
        }
    }

    /// Drops buckets older than the window; returns the index of the current bucket.
    fn expire(&mut self, now: Instant) -> u64 {
        match self {
            Window::Count { .. } => 0,
            Window::Time {
                width,
                origin,
                buckets,
                totals,
            } => {
                let idx = (now.saturating_duration_since(*origin).as_nanos()
                    / width.as_nanos().max(1)) as u64;
                while let Some(&(i, t)) = buckets.front() {
                    if i + u64::from(BUCKETS) <= idx {
                        buckets.pop_front();
                        totals.sub(t);
                    } else {
                        break;
                    }
                }
                idx
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n() {
        let now = Instant::now();
        let mut w = Window::new(WindowKind::Count(3), now);
        w.record(now, true, false);
        w.record(now, false, true);
        w.record(now, false, false);
        assert_eq!(
            w.totals(now),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(now, false, false);
        assert_eq!(
            w.totals(now),
            Totals {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_window_forgets_old_calls() {
        let start = Instant::now();
        let mut w = Window::new(WindowKind::Time(Duration::from_secs(10)), start);
        w.record(start, true, false);
        tokio::time::advance(Duration::from_secs(5)).await;
        w.record(Instant::now(), false, false);
        assert_eq!(w.totals(Instant::now()).calls, 2);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(
            w.totals(Instant::now()),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(w.totals(Instant::now()).calls, 0);
    }
}
