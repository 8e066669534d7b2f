use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::{RetryBudget, RetryPolicy};
use crate::{ConsumedRecord, Disposition, PipelineError, Processed};

pin_project! {
    /// The [`Retry`](super::Retry) response future.
    ///
    /// Cancel-safe: dropping it drops the attempt in flight and the pending wait.
    pub struct ResponseFuture<S>
    where
        S: Service<ConsumedRecord>,
    {
        service: S,
        request: ConsumedRecord,
        policy: Arc<RetryPolicy>,
        budget: Option<Arc<RetryBudget>>,
        #[pin]
        state: State<S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is running.
        Called { #[pin] future: F },
        // Backing off before the next attempt. Boxed: a `Sleep` is larger than most
        // inner futures, and every record's future would carry it (and be copied with
        // it) for a state only failures reach.
        Waiting { sleep: Pin<Box<Sleep>> },
        // Waiting for the service to be ready for the next attempt.
        Retrying,
    }
}

impl<S> std::fmt::Debug for ResponseFuture<S>
where
    S: Service<ConsumedRecord>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("topic", &self.request.topic)
            .field("partition", &self.request.partition)
            .field("offset", &self.request.offset)
            .field("attempt", &self.request.attempt)
            .finish()
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<ConsumedRecord, Response = Processed>,
    S::Error: Into<PipelineError>,
{
    pub(crate) fn new(
        mut service: S,
        request: ConsumedRecord,
        policy: Arc<RetryPolicy>,
        budget: Option<Arc<RetryBudget>>,
    ) -> Self {
        let future = service.call(request.clone());
        ResponseFuture {
            service,
            request,
            policy,
            budget,
            state: State::Called { future },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<ConsumedRecord, Response = Processed>,
    S::Error: Into<PipelineError>,
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
                    let attempt = this.request.attempt;
                    let may_retry = error.disposition() == Disposition::Retriable
                        && attempt < this.policy.attempts()
                        && this.budget.as_ref().is_none_or(|b| b.withdraw());
                    if !may_retry {
                        return Poll::Ready(Err(error));
                    }
                    let delay = this.policy.delay(attempt);
                    tracing::debug!(
                        topic = %this.request.topic,
                        partition = this.request.partition,
                        offset = this.request.offset,
                        attempt,
                        ?delay,
                        error = %error,
                        "retrying record"
                    );
                    crate::metrics::count_retry(&this.request.topic);
                    this.state.set(State::Waiting {
                        sleep: Box::pin(tokio::time::sleep(delay)),
                    });
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Retrying);
                }
                StateProj::Retrying => {
                    ready!(this.service.poll_ready(cx)).map_err(Into::into)?;
                    this.request.attempt += 1;
                    let future = this.service.call(this.request.clone());
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}
