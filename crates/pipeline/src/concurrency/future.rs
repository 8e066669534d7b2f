use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

use super::order::ChainGuard;
use crate::{ConsumedRecord, PipelineError, Processed};

pin_project! {
    /// The [`Concurrency`](super::Concurrency) response future: waits for the previous
    /// record with the same ordering key, then runs this one. It holds an in-flight slot
    /// until it completes or is dropped. The next record with its key starts when it is
    /// *dropped*: a caller holding a failed answer can act on it first (the runner rewinds
    /// the partition, so the records queued behind are never called). `.await` drops it
    /// as soon as it completes.
    pub struct ResponseFuture<S>
    where
        S: Service<ConsumedRecord>,
    {
        #[pin]
        state: State<S>,
        guard: Option<ChainGuard>,
        permit: Option<OwnedSemaphorePermit>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S>
    where
        S: Service<ConsumedRecord>,
    {
        // No predecessor: called at once on the service that was made ready.
        Called { #[pin] future: S::Future },
        // Waiting for the predecessor to finish.
        Queued { #[pin] previous: oneshot::Receiver<()>, service: Option<S>, request: Option<ConsumedRecord> },
        // Predecessor done: drive a clone of the service to readiness and call it.
        Running { #[pin] future: Oneshot<S, ConsumedRecord> },
    }
}

impl<S: Service<ConsumedRecord>> std::fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Queued { .. } => "queued",
            State::Running { .. } => "running",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S: Service<ConsumedRecord>> ResponseFuture<S> {
    pub(crate) fn called(
        future: S::Future,
        guard: Option<ChainGuard>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        ResponseFuture {
            state: State::Called { future },
            guard,
            permit,
        }
    }

    pub(crate) fn queued(
        previous: oneshot::Receiver<()>,
        service: S,
        request: ConsumedRecord,
        guard: ChainGuard,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        ResponseFuture {
            state: State::Queued {
                previous,
                service: Some(service),
                request: Some(request),
            },
            guard: Some(guard),
            permit,
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
            let result = match this.state.as_mut().project() {
                StateProj::Called { future } => ready!(future.poll(cx)).map_err(Into::into),
                StateProj::Running { future } => ready!(future.poll(cx)).map_err(Into::into),
                StateProj::Queued {
                    previous,
                    service,
                    request,
                } => {
                    // Ok or closed: either way the predecessor is finished (or abandoned).
                    let _ = ready!(previous.poll(cx));
                    match (service.take(), request.take()) {
                        (Some(service), Some(request)) => {
                            let future = service.oneshot(request);
                            this.state.set(State::Running { future });
                            continue;
                        }
                        _ => Err(PipelineError::fatal(
                            "concurrency future polled after completion",
                        )),
                    }
                }
            };
            // Free the slot as soon as the record is done. The successor waits for the drop
            // (the guard goes with the future).
            this.permit.take();
            return Poll::Ready(result);
        }
    }
}
