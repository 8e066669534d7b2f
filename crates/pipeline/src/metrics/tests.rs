use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower::Layer;
use tower_test::mock;

use super::*;
use crate::test_support::{pair, record};

/// Keeps every metric by `name{label=value,...}`.
#[derive(Debug, Default)]
struct TestRecorder {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
}

#[derive(Debug, Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().expect("lock").push(value);
    }
}

fn name(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut c = self.counters.lock().expect("lock");
        Counter::from_arc(c.entry(name(key)).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut g = self.gauges.lock().expect("lock");
        Gauge::from_arc(g.entry(name(key)).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut h = self.histograms.lock().expect("lock");
        Histogram::from_arc(h.entry(name(key)).or_default().clone())
    }
}

impl TestRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.counters
            .lock()
            .expect("lock")
            .get(key)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    fn gauge(&self, key: &str) -> Option<f64> {
        self.gauges
            .lock()
            .expect("lock")
            .get(key)
            .map(|g| f64::from_bits(g.load(Ordering::SeqCst)))
    }

    fn samples(&self, key: &str) -> usize {
        self.histograms
            .lock()
            .expect("lock")
            .get(key)
            .map_or(0, |h| h.0.lock().expect("lock").len())
    }
}

#[test]
fn counts_processed_and_failed_and_times_every_record() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let (svc, mut handle) = pair();
        let mut svc = mock::Spawn::new(InstrumentLayer::new().consumer_group("g").layer(svc));
        assert_ready_ok!(svc.poll_ready());
        let mut ok = tokio_test::task::spawn(svc.call(record(1)));
        assert_ready_ok!(svc.poll_ready());
        let mut bad = tokio_test::task::spawn(svc.call(record(2)));
        assert_pending!(ok.poll());
        let (r, send) = tokio_test::block_on(handle.next_request()).expect("first");
        assert_eq!(r, record(1));
        send.send_response(vec![]);
        let (r, send) = tokio_test::block_on(handle.next_request()).expect("second");
        assert_eq!(r, record(2));
        send.send_error(PipelineError::fatal("corrupt"));
        assert_ready_ok!(ok.poll());
        assert_ready_err!(bad.poll());
    });
    assert_eq!(
        recorder.counter("sluice_pipeline_records_processed_total{topic=orders}"),
        1
    );
    assert_eq!(
        recorder.counter("sluice_pipeline_records_failed_total{topic=orders,disposition=fatal}"),
        1
    );
    assert_eq!(
        recorder.samples("sluice_pipeline_processing_duration_seconds{topic=orders}"),
        2
    );
}

#[test]
fn publishes_consumer_lag_with_the_exporter_s_labels() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || record_consumer_lag("g", "orders", 3, 42));
    assert_eq!(
        recorder.gauge("kafka_consumergroup_lag{consumergroup=g,topic=orders,partition=3}"),
        Some(42.0)
    );
}

#[test]
fn publishes_the_missing_topics_per_group() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || record_missing_topics("g", 2));
    assert_eq!(
        recorder.gauge("sluice_pipeline_missing_topics{consumergroup=g}"),
        Some(2.0)
    );
}

#[test]
fn counts_rebalances_per_group() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        count_rebalance("g");
        count_rebalance("g");
        count_rebalance("h");
    });
    assert_eq!(
        recorder.counter("sluice_pipeline_rebalances_total{consumergroup=g}"),
        2
    );
    assert_eq!(
        recorder.counter("sluice_pipeline_rebalances_total{consumergroup=h}"),
        1
    );
}

#[test]
fn retries_and_dead_letters_count_into_the_pipeline_polling_them() {
    let recorder = TestRecorder::default();
    let stats = PipelineStats::default();
    metrics::with_local_recorder(&recorder, || {
        tokio_test::block_on(stats.scope(async {
            count_retry("orders");
            count_retry("orders");
            count_dead_letter("orders");
        }));
        // Outside a pipeline's record task: the metrics only.
        count_retry("orders");
    });
    assert_eq!((stats.retried(), stats.dead_lettered()), (2, 1));
    assert_eq!(
        recorder.counter("sluice_pipeline_records_retried_total{topic=orders}"),
        3
    );
    assert_eq!(
        recorder.counter("sluice_pipeline_records_dead_lettered_total{topic=orders}"),
        1
    );
}

#[test]
fn the_breaker_publishes_its_state() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let layer = crate::breaker::BreakerLayer::new(
            crate::breaker::BreakerConfig::new().name("inventory"),
        );
        layer.handle().force_open();
    });
    assert_eq!(
        recorder.gauge("sluice_pipeline_breaker_state{breaker=inventory}"),
        Some(3.0)
    );
}

#[test]
fn readiness_is_the_inner_service_s() {
    let (svc, mut handle) = pair();
    let mut svc = mock::Spawn::new(Instrument::new(svc, None));
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
}
