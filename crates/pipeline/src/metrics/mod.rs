//! Metric names (placeholder until the metrics layer lands).

/// Counter: records retried.
pub const RETRIED: &str = "sluice_pipeline_records_retried_total";
