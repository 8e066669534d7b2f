//! What the breaker measures and when it trips.

use std::time::Duration;

use super::WindowKind;

/// Circuit-breaker settings. The defaults follow resilience4j's where they make sense for
/// a record pipeline (smaller minimum and wait, since a paused partition is visible lag).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub(crate) window: WindowKind,
    pub(crate) failure_rate: f64,
    pub(crate) slow_call_rate: f64,
    pub(crate) slow_call_duration: Duration,
    pub(crate) minimum_calls: u32,
    pub(crate) wait_in_open: Duration,
    pub(crate) permitted_in_half_open: u32,
    pub(crate) name: String,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: WindowKind::Count(100),
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_duration: Duration::from_secs(60),
            minimum_calls: 20,
            wait_in_open: Duration::from_secs(30),
            permitted_in_half_open: 5,
            name: "default".to_owned(),
        }
    }
}

impl BreakerConfig {
    /// The defaults: count window of 100, trips at 50 % failures (or 100 % slow calls over
    /// 60 s) once 20 calls are in the window, waits 30 s open, probes with 5 calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sliding window (count- or time-based). Default `Count(100)`.
    pub fn window(mut self, window: WindowKind) -> Self {
        self.window = window;
        self
    }

    /// Opens when the share of failed calls reaches this (0.0–1.0). Default 0.5.
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.failure_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Opens when the share of slow calls reaches this (0.0–1.0). Default 1.0.
    pub fn slow_call_rate_threshold(mut self, rate: f64) -> Self {
        self.slow_call_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// A call taking at least this long is slow. Default 60 s.
    pub fn slow_call_duration(mut self, d: Duration) -> Self {
        self.slow_call_duration = d;
        self
    }

    /// No rate is judged before the window holds this many calls. Default 20.
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = n.max(1);
        self
    }

    /// How long the breaker stays open before probing. Default 30 s.
    pub fn wait_in_open(mut self, d: Duration) -> Self {
        self.wait_in_open = d;
        self
    }

    /// How many probe calls half-open admits; their rates decide open or closed. Default 5.
    pub fn permitted_calls_in_half_open(mut self, n: u32) -> Self {
        self.permitted_in_half_open = n.max(1);
        self
    }

    /// The `breaker` label on the state gauge (a `&str`, a `String`, a `&String`, an
    /// `Arc<str>`). Default `"default"`.
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.name = name.as_ref().to_owned();
        self
    }
}
