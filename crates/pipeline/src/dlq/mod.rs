//! Publishes records that failed with a dead-letter error to a dead-letter topic.
//!
//! When the inner service fails with [`Disposition::DeadLetter`](crate::Disposition) (after
//! retry, which does not retry those), this layer sends the original key, value and headers
//! to the dead-letter topic (default `<topic>-dlt`, same partition) with Spring Kafka's
//! `kafka_dlt-*` headers ([`headers`]), waits for the sink's acknowledgement, and only then
//! answers `Ok(vec![])`: the record counts as handled, and the commit layer may commit past
//! it. A failed DLQ write is returned as a retriable error, so the record is not committed.
//!
//! Retriable errors (an outage that outlasted its retries) and fatal errors pass through
//! untouched, unless [`DeadLetterLayer::dead_letter_exhausted_retries`] says otherwise.
//!
//! # The sink
//!
//! The sink is any `Clone` service of type
//! `tower::Service<OutputRecord, Response = Delivered, Error = BoxError>`: a `Service`
//! because it is the most tower-like seam (it can carry its own layers: timeouts, rate
//! limits), and `Clone` because each publication drives its own clone to readiness
//! ([`tower::util::Oneshot`]). [`MemorySink`] is the in-memory one;
//! [`ProducerSink`](crate::runner::ProducerSink) adapts `sluice-wire`'s producer.
//!
//! Each dead-lettered record increments `sluice_pipeline_records_dead_lettered_total`
//! (label `topic`).
//!
//! # Duplicate dead letters
//!
//! At-least-once, a record may be dead-lettered more than once. Under the
//! [runner](crate::runner), a record that fails *retriably* (retries spent during an
//! outage, an output not acknowledged) rewinds its partition: the partition is read again
//! from that record, and the records after it that were already admitted are read again
//! too. With [`Ordering::PerPartition`](crate::concurrency::Ordering::PerPartition) those
//! later records are still queued behind the failed one, their service is never called,
//! and a dead letter among them is written once, when it is read again. With
//! [`Ordering::PerKey`](crate::concurrency::Ordering::PerKey) (or `Unordered`) records of
//! other keys run beside the failed one: a bad record among them may already have been
//! dead-lettered when the rewind comes, and is dead-lettered again when it is read again.
//! An outage makes this common: every record of the partition that fails retriably
//! rewinds it again, and each rewind can repeat the dead letters admitted after it.
//!
//! Nothing is lost either way; readers of the dead-letter topic should treat the
//! original coordinates as the identity of a dead letter and count
//! (`kafka_dlt-original-topic`, `kafka_dlt-original-partition`,
//! `kafka_dlt-original-offset`) once ([`headers`]). In exactly-once mode, with the sink a
//! [`ProducerSink`](crate::runner::ProducerSink) of the pipeline's own producer, the dead
//! letters of a rewound record are aborted with the transaction, and `read_committed`
//! readers see each once.

mod error;
mod future;
pub mod headers;
mod layer;
mod sink;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::error::DeadLetterFailed;
pub use self::future::ResponseFuture;
pub use self::layer::DeadLetterLayer;
pub use self::sink::{MemorySink, SinkFailing};
use crate::{BoxError, ConsumedRecord, Delivered, OutputRecord, PipelineError, Processed};

/// Dead-letters records the inner service rejects as bad. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct DeadLetter<S, K> {
    inner: S,
    shared: Arc<layer::Shared<K>>,
}

impl<S, K> DeadLetter<S, K> {
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

    /// The sink dead letters go to.
    pub fn sink(&self) -> &K {
        &self.shared.sink
    }
}

impl<S, K> Service<ConsumedRecord> for DeadLetter<S, K>
where
    S: Service<ConsumedRecord, Response = Processed>,
    S::Error: Into<PipelineError>,
    K: Service<OutputRecord, Response = Delivered, Error = BoxError> + Clone,
{
    type Response = Processed;
    type Error = PipelineError;
    type Future = ResponseFuture<S::Future, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The sink's readiness is awaited per publication: dead letters are rare, and
        // holding back every record for the DLQ's sake would couple the two.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ConsumedRecord) -> Self::Future {
        let original = request.clone();
        ResponseFuture::new(self.inner.call(request), original, self.shared.clone())
    }
}

#[cfg(test)]
mod tests;
