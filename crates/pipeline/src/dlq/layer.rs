use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::DeadLetter;
use crate::ConsumedRecord;

type Destination = dyn Fn(&ConsumedRecord) -> (String, Option<i32>) + Send + Sync;

/// Settings shared by every service a [`DeadLetterLayer`] builds.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) destination: Arc<Destination>,
    pub(crate) group: Option<String>,
    pub(crate) exhausted_retries: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("group", &self.group)
            .field("exhausted_retries", &self.exhausted_retries)
            .finish_non_exhaustive()
    }
}

/// The sink and the settings, shared by a layer's services and their futures; the sink
/// is cloned only when a record is actually dead-lettered.
#[derive(Debug)]
pub(crate) struct Shared<K> {
    pub(crate) sink: K,
    pub(crate) config: Config,
}

/// Applies [`DeadLetter`] to a service, publishing through the sink `K`.
#[derive(Debug, Clone)]
pub struct DeadLetterLayer<K> {
    sink: K,
    config: Config,
}

impl<K> DeadLetterLayer<K> {
    /// Dead-letters to `<topic>-dlt`, same partition, through `sink` (any
    /// `Service<OutputRecord, Response = Delivered, Error = BoxError> + Clone`).
    pub fn new(sink: K) -> Self {
        DeadLetterLayer {
            sink,
            config: Config {
                destination: Arc::new(|r: &ConsumedRecord| {
                    (format!("{}-dlt", r.topic), Some(r.partition))
                }),
                group: None,
                exhausted_retries: false,
            },
        }
    }

    /// Chooses the dead-letter topic and partition (`None`: let the producer choose).
    ///
    /// The default is `<topic>-dlt` on the record's own partition, as Spring Kafka does.
    /// A dead-letter topic with fewer partitions than the source needs a resolver that
    /// returns `None` (Spring checks the partition count; the runner does not: a missing
    /// partition fails the DLQ write, which is retriable, so the record is not lost but
    /// stops its partition).
    pub fn destination(
        mut self,
        f: impl Fn(&ConsumedRecord) -> (String, Option<i32>) + Send + Sync + 'static,
    ) -> Self {
        self.config.destination = Arc::new(f);
        self
    }

    /// Writes `kafka_dlt-original-consumer-group` with this group id (a `&str`, a
    /// `String`, a `&String`, an `Arc<str>`).
    pub fn consumer_group(mut self, group: impl AsRef<str>) -> Self {
        self.config.group = Some(group.as_ref().to_owned());
        self
    }

    /// Also dead-letter records whose *retriable* errors survived every retry (Spring's
    /// behaviour). Off by default: with the breaker, an outage pauses the pipeline instead
    /// of emptying the topic into the DLQ.
    pub fn dead_letter_exhausted_retries(mut self, yes: bool) -> Self {
        self.config.exhausted_retries = yes;
        self
    }
}

impl<S, K: Clone> Layer<S> for DeadLetterLayer<K> {
    type Service = DeadLetter<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadLetter {
            inner,
            shared: Arc::new(Shared {
                sink: self.sink.clone(),
                config: self.config.clone(),
            }),
        }
    }
}
