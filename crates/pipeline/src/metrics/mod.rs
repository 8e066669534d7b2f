//! Metric names (placeholder until the metrics layer lands).

/// Counter: records retried.
pub const RETRIED: &str = "sluice_pipeline_records_retried_total";

/// Gauge: breaker state (see [`BreakerState::gauge_value`](crate::breaker::BreakerState::gauge_value)).
pub const BREAKER_STATE: &str = "sluice_pipeline_breaker_state";

/// Counter: records published to the dead-letter topic (label `topic`: the source topic).
pub const DEAD_LETTERED: &str = "sluice_pipeline_records_dead_lettered_total";
