use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use tracing::Span;

use super::{TopicMetrics, FAILED};
use crate::{Disposition, PipelineError, Processed};

pin_project! {
    /// The [`Instrument`](super::Instrument) response future: polls the inner future inside
    /// the record's span and records the outcome and duration when it completes.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        span: Span,
        metrics: TopicMetrics,
        topic: Arc<str>,
        start: Instant,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, span: Span, metrics: TopicMetrics, topic: Arc<str>) -> Self {
        ResponseFuture {
            future,
            span,
            metrics,
            topic,
            start: Instant::now(),
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Processed, E>>,
    E: Into<PipelineError>,
{
    type Output = Result<Processed, PipelineError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _enter = this.span.enter();
        let result = ready!(this.future.poll(cx)).map_err(Into::into);
        this.metrics
            .duration
            .record(this.start.elapsed().as_secs_f64());
        match &result {
            Ok(_) => this.metrics.processed.increment(1),
            Err(e) => {
                let disposition = match e.disposition() {
                    Disposition::Retriable => "retriable",
                    Disposition::DeadLetter => "dead_letter",
                    Disposition::Fatal => "fatal",
                };
                this.span.record("error.type", e.type_name());
                tracing::error!(error = %e, disposition, "record failed");
                metrics::counter!(FAILED, "topic" => this.topic.to_string(), "disposition" => disposition)
                    .increment(1);
            }
        }
        Poll::Ready(result)
    }
}
