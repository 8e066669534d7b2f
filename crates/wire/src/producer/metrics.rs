//! Producer metrics through the [`metrics`] facade; install any recorder (Prometheus,
//! statsd, ...) to collect them. Names follow `sluice_producer_*`; every series carries
//! the `client_id` label.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `sluice_producer_records_sent_total` | counter | records acknowledged (or written, acks=0) |
//! | `sluice_producer_bytes_sent_total` | counter | batch bytes acknowledged |
//! | `sluice_producer_batch_size_bytes` | histogram | bytes per batch sent |
//! | `sluice_producer_request_latency_seconds` | histogram | Produce round trip (p99 from here) |
//! | `sluice_producer_retries_total` | counter | batches put back for a resend |
//! | `sluice_producer_errors_total` | counter | records failed for good |
//! | `sluice_producer_buffer_available_bytes` | gauge | free `buffer.memory` |

use std::sync::Arc;
use std::time::Duration;

/// The producer's handles on its series.
#[derive(Debug, Clone)]
pub(crate) struct ProducerMetrics {
    client_id: Arc<str>,
}

impl ProducerMetrics {
    pub(crate) fn new(client_id: &str) -> Self {
        ProducerMetrics {
            client_id: Arc::from(client_id),
        }
    }

    fn label(&self) -> [(&'static str, String); 1] {
        [("client_id", self.client_id.to_string())]
    }

    pub(crate) fn batch_sent(&self, records: usize, bytes: usize) {
        let l = self.label();
        metrics::counter!("sluice_producer_records_sent_total", &l).increment(records as u64);
        metrics::counter!("sluice_producer_bytes_sent_total", &l).increment(bytes as u64);
        metrics::histogram!("sluice_producer_batch_size_bytes", &l).record(bytes as f64);
    }

    pub(crate) fn request_latency(&self, latency: Duration) {
        metrics::histogram!("sluice_producer_request_latency_seconds", &self.label())
            .record(latency.as_secs_f64());
    }

    pub(crate) fn retry(&self) {
        metrics::counter!("sluice_producer_retries_total", &self.label()).increment(1);
    }

    pub(crate) fn errors(&self, records: usize) {
        metrics::counter!("sluice_producer_errors_total", &self.label()).increment(records as u64);
    }

    pub(crate) fn buffer_available(&self, bytes: usize) {
        metrics::gauge!("sluice_producer_buffer_available_bytes", &self.label()).set(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    /// The Produce round trip is a histogram per client, so its p99 can be read.
    #[test]
    fn request_latency_is_a_histogram_per_client() {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.01, 0.1, 1.0])
            .expect("buckets")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let m = ProducerMetrics::new("c1");
            m.request_latency(Duration::from_millis(5));
            m.request_latency(Duration::from_millis(50));
        });
        let text = handle.render();
        let line = |l: &str| text.lines().any(|x| x == l);
        assert!(
            line("sluice_producer_request_latency_seconds_bucket{client_id=\"c1\",le=\"0.01\"} 1"),
            "{text}"
        );
        assert!(
            line("sluice_producer_request_latency_seconds_bucket{client_id=\"c1\",le=\"0.1\"} 2"),
            "{text}"
        );
        assert!(
            line("sluice_producer_request_latency_seconds_count{client_id=\"c1\"} 2"),
            "{text}"
        );
    }
}
