//! A span per record and the pipeline's metrics, through the `metrics` facade.
//!
//! [`Instrument`] (outermost) opens a `process` span per record with the OpenTelemetry
//! messaging attributes (`messaging.system = "kafka"`, `messaging.operation.type =
//! "process"`, `messaging.destination.name`, `messaging.destination.partition.id`,
//! `messaging.kafka.message.offset`, `messaging.consumer.group.name`), enters it whenever
//! the inner future is polled, and records:
//!
//! | metric | kind | labels | recorded by |
//! |---|---|---|---|
//! | [`PROCESSED`] | counter | `topic` | [`Instrument`]: records handled (dead-lettered included) |
//! | [`FAILED`] | counter | `topic`, `disposition` | [`Instrument`]: records that came out as errors |
//! | [`PROCESSING_DURATION`] | histogram (s) | `topic` | [`Instrument`] |
//! | [`RETRIED`] | counter | `topic` | the retry layer, per retry |
//! | [`DEAD_LETTERED`] | counter | `topic` | the DLQ layer, per acknowledged DLQ write |
//! | [`BREAKER_STATE`] | gauge | `breaker` | the breaker, on every transition |
//! | [`CONSUMER_LAG`] | gauge | `consumergroup`, `topic`, `partition` | [`record_consumer_lag`] |
//! | [`MISSING_TOPICS`] | gauge | `consumergroup` | [`record_missing_topics`]: subscribed topics the cluster does not have |
//! | [`REBALANCES`] | counter | `consumergroup` | the runner's rebalance listener, per assignment received (every rebalance the member took part in) |
//!
//! The producer the pipeline writes with (outputs, dead letters) records its own
//! `sluice_producer_*` series, among them the Produce round trip histogram
//! `sluice_producer_request_latency_seconds{client_id}` (the p99 to watch): see
//! `sluice_wire::producer`'s metrics.
//!
//! Under the [runner](crate::runner) the retries and dead letters are also counted in the
//! pipeline's [`PipelineStats`], and the missing topics listed there.
//!
//! No recorder is installed here: the application installs one (a Prometheus exporter in
//! the examples), and without one every metric is a no-op.

mod future;
mod layer;

use crate::sync;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use metrics::{Counter, Histogram};
use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::InstrumentLayer;
use crate::runner::PipelineStats;
use crate::{ConsumedRecord, PipelineError, Processed};

/// Counter: records handled (processed, or dead-lettered and acknowledged).
pub const PROCESSED: &str = "sluice_pipeline_records_processed_total";
/// Counter: records that came out of the stack as errors.
pub const FAILED: &str = "sluice_pipeline_records_failed_total";
/// Counter: records retried.
pub const RETRIED: &str = "sluice_pipeline_records_retried_total";
/// Counter: records published to the dead-letter topic (label `topic`: the source topic).
pub const DEAD_LETTERED: &str = "sluice_pipeline_records_dead_lettered_total";
/// Histogram: seconds from admission to answer, retries and DLQ write included.
pub const PROCESSING_DURATION: &str = "sluice_pipeline_processing_duration_seconds";
/// Gauge: breaker state (see [`BreakerState::gauge_value`](crate::breaker::BreakerState::gauge_value)).
pub const BREAKER_STATE: &str = "sluice_pipeline_breaker_state";
/// Gauge: consumer lag, named as the Prometheus Kafka exporter names it.
pub const CONSUMER_LAG: &str = "kafka_consumergroup_lag";
/// Gauge: how many of the pipeline's subscribed topics the cluster does not have (a
/// misspelt topic, or one not created yet); alert on it being above 0.
pub const MISSING_TOPICS: &str = "sluice_pipeline_missing_topics";
/// Counter: rebalances the pipeline's consumer took part in (one per assignment it
/// received, empty ones included); a steep rate is a rebalance storm.
pub const REBALANCES: &str = "sluice_pipeline_rebalances_total";

/// Registers the descriptions of every metric above with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(PROCESSED, "Records handled (processed or dead-lettered)");
    describe_counter!(FAILED, "Records that came out of the stack as errors");
    describe_counter!(RETRIED, "Retries of records");
    describe_counter!(DEAD_LETTERED, "Records published to the dead-letter topic");
    describe_histogram!(
        PROCESSING_DURATION,
        Unit::Seconds,
        "Time to handle one record"
    );
    describe_gauge!(
        BREAKER_STATE,
        "0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages between the committed offset and the high watermark"
    );
    describe_gauge!(
        MISSING_TOPICS,
        "Subscribed topics the cluster does not have"
    );
    describe_counter!(REBALANCES, "Rebalances the consumer took part in");
}

/// One rebalance of `group` completed for this member (an assignment received): the
/// [`REBALANCES`] counter.
pub(crate) fn count_rebalance(group: &str) {
    metrics::counter!(REBALANCES, "consumergroup" => group.to_owned()).increment(1);
}

/// Publishes `sluice_pipeline_missing_topics{consumergroup}`: the runner calls it with
/// how many subscribed topics the consumer's last metadata check did not find.
pub fn record_missing_topics(group: &str, missing: usize) {
    metrics::gauge!(MISSING_TOPICS, "consumergroup" => group.to_owned()).set(missing as f64);
}

/// One retry of a record of `topic`: the [`RETRIED`] counter, and the running pipeline's
/// [`PipelineStats::retried`](crate::runner::PipelineStats::retried).
pub(crate) fn count_retry(topic: &str) {
    metrics::counter!(RETRIED, "topic" => topic.to_owned()).increment(1);
    PipelineStats::with_current(PipelineStats::add_retried);
}

/// One acknowledged dead letter of a record of `topic`: the [`DEAD_LETTERED`] counter, and
/// the running pipeline's
/// [`PipelineStats::dead_lettered`](crate::runner::PipelineStats::dead_lettered).
pub(crate) fn count_dead_letter(topic: &str) {
    metrics::counter!(DEAD_LETTERED, "topic" => topic.to_owned()).increment(1);
    PipelineStats::with_current(PipelineStats::add_dead_lettered);
}

/// Publishes `kafka_consumergroup_lag{consumergroup, topic, partition}`: the runner calls
/// it with the high watermark minus the committed offset (it has both numbers; the
/// layers do not).
pub fn record_consumer_lag(group: &str, topic: &str, partition: i32, lag: i64) {
    metrics::gauge!(
        CONSUMER_LAG,
        "consumergroup" => group.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(lag.max(0) as f64);
}

/// The hot-path handles of one topic, registered once instead of per record.
#[derive(Debug, Clone)]
pub(crate) struct TopicMetrics {
    pub(crate) processed: Counter,
    pub(crate) duration: Histogram,
}

/// Opens a span per record and records the pipeline's metrics. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Instrument<S> {
    inner: S,
    group: Option<Arc<str>>,
    topics: Arc<Mutex<HashMap<Arc<str>, TopicMetrics>>>,
    /// The last topic's handles: most records follow one of their own topic, so the hot
    /// path skips the shared map's lock.
    last: Option<(Arc<str>, TopicMetrics)>,
}

impl<S> Instrument<S> {
    /// Instruments `inner`; `group` fills `messaging.consumer.group.name`.
    pub fn new(inner: S, group: Option<Arc<str>>) -> Self {
        Instrument {
            inner,
            group,
            topics: Arc::default(),
            last: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn topic(&mut self, topic: &Arc<str>) -> TopicMetrics {
        if let Some((t, m)) = &self.last {
            if Arc::ptr_eq(t, topic) || **t == **topic {
                return m.clone();
            }
        }
        let m = self.shared_topic(topic);
        self.last = Some((topic.clone(), m.clone()));
        m
    }

    fn shared_topic(&self, topic: &Arc<str>) -> TopicMetrics {
        let mut topics = sync::lock(&self.topics);
        if let Some(m) = topics.get(topic) {
            return m.clone();
        }
        let m = TopicMetrics {
            processed: metrics::counter!(PROCESSED, "topic" => topic.to_string()),
            duration: metrics::histogram!(PROCESSING_DURATION, "topic" => topic.to_string()),
        };
        topics.insert(topic.clone(), m.clone());
        m
    }
}

impl<S> Service<ConsumedRecord> for Instrument<S>
where
    S: Service<ConsumedRecord, Response = Processed>,
    S::Error: Into<PipelineError>,
{
    type Response = Processed;
    type Error = PipelineError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ConsumedRecord) -> Self::Future {
        let span = tracing::info_span!(
            "process",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = %request.topic,
            messaging.destination.partition.id = request.partition,
            messaging.kafka.message.offset = request.offset,
            messaging.consumer.group.name = self.group.as_deref(),
            sluice.attempt = request.attempt,
            error.type = tracing::field::Empty,
        );
        let metrics = self.topic(&request.topic);
        let topic = request.topic.clone();
        let future = {
            let _enter = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, metrics, topic)
    }
}

#[cfg(test)]
mod tests;
