use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use super::headers::dead_letter_headers;
use super::layer::Shared;
use super::DeadLetterFailed;
use crate::{
    BoxError, ConsumedRecord, Delivered, Disposition, OutputRecord, PipelineError, Processed,
};

pin_project! {
    /// The [`DeadLetter`](super::DeadLetter) response future.
    ///
    /// Dropping it during the publication abandons the wait for the acknowledgement; the
    /// record is then not handled (the commit layer does not commit it) and will be
    /// redelivered, so the dead-letter topic may see it twice, never zero times.
    pub struct ResponseFuture<F, K>
    where
        K: Service<OutputRecord>,
    {
        #[pin]
        state: State<F, K>,
        original: Option<ConsumedRecord>,
        shared: Arc<Shared<K>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, K>
    where
        K: Service<OutputRecord>,
    {
        Called { #[pin] future: F },
        // Boxed: the publication (sink, dead letter, its future) is the rare path, and
        // unboxed it would make every record's future larger.
        Publishing { send: Pin<Box<Oneshot<K, OutputRecord>>>, error: Option<PipelineError> },
    }
}

impl<F, K: Service<OutputRecord>> std::fmt::Debug for ResponseFuture<F, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let publishing = matches!(self.state, State::Publishing { .. });
        f.debug_struct("ResponseFuture")
            .field("original", &self.original)
            .field("publishing", &publishing)
            .finish_non_exhaustive()
    }
}

impl<F, K: Service<OutputRecord>> ResponseFuture<F, K> {
    pub(crate) fn new(future: F, original: ConsumedRecord, shared: Arc<Shared<K>>) -> Self {
        ResponseFuture {
            state: State::Called { future },
            original: Some(original),
            shared,
        }
    }
}

impl<F, E, K> Future for ResponseFuture<F, K>
where
    K: Clone,
    F: Future<Output = Result<Processed, E>>,
    E: Into<PipelineError>,
    K: Service<OutputRecord, Response = Delivered, Error = BoxError>,
{
    type Output = Result<Processed, PipelineError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let error = match ready!(future.poll(cx)) {
                        Ok(out) => return Poll::Ready(Ok(out)),
                        Err(e) => e.into(),
                    };
                    let dead_letter = match error.disposition() {
                        Disposition::DeadLetter => true,
                        Disposition::Retriable => this.shared.config.exhausted_retries,
                        Disposition::Fatal => false,
                    };
                    let (true, Some(record)) = (dead_letter, this.original.as_ref()) else {
                        return Poll::Ready(Err(error));
                    };
                    let sink = this.shared.sink.clone();
                    let (topic, partition) = (this.shared.config.destination)(record);
                    let out = OutputRecord {
                        topic: topic.into(),
                        partition,
                        key: record.key.clone(),
                        value: record.value.clone(),
                        headers: dead_letter_headers(
                            record,
                            &error,
                            this.shared.config.group.as_deref(),
                        ),
                        timestamp: None,
                    };
                    this.state.set(State::Publishing {
                        send: Box::pin(sink.oneshot(out)),
                        error: Some(error),
                    });
                }
                StateProj::Publishing { send, error } => {
                    let result = ready!(send.as_mut().poll(cx));
                    let (Some(record), Some(error)) = (this.original.take(), error.take()) else {
                        // Polled after completion: a contract violation, answered harmlessly.
                        return Poll::Ready(Ok(Vec::new()));
                    };
                    return Poll::Ready(match result {
                        Ok(delivered) => {
                            tracing::warn!(
                                topic = %record.topic,
                                partition = record.partition,
                                offset = record.offset,
                                dlq.topic = %delivered.topic,
                                dlq.partition = delivered.partition,
                                dlq.offset = delivered.offset,
                                error = %error,
                                "record dead-lettered"
                            );
                            crate::metrics::count_dead_letter(&record.topic);
                            Ok(Vec::new())
                        }
                        Err(cause) => Err(PipelineError::retriable(DeadLetterFailed {
                            original: error,
                            cause,
                        })),
                    });
                }
            }
        }
    }
}
