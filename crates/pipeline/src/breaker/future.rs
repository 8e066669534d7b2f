use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::state::Permit;
use super::BreakerOpen;
use crate::{Disposition, PipelineError, Processed};

pin_project! {
    /// The [`Breaker`](super::Breaker) response future. It reports the call's outcome and
    /// duration to the breaker when it completes; dropped early, it reports nothing (and
    /// frees its half-open probe slot).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Called { #[pin] future: F, permit: Option<Permit>, start: Instant },
        Rejected,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn called(future: F, permit: Permit) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: Some(permit),
                start: Instant::now(),
            },
        }
    }

    pub(crate) fn rejected() -> Self {
        ResponseFuture {
            kind: Kind::Rejected,
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
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                start,
            } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                if let Some(permit) = permit.take() {
                    let now = Instant::now();
                    let slow = now.saturating_duration_since(*start) >= permit.slow_call_duration();
                    // A dead-letter error means the downstream answered and the message is
                    // bad: that is no reason to stop the pipeline.
                    let failed = matches!(
                        &result,
                        Err(e) if e.disposition() != Disposition::DeadLetter
                    );
                    permit.complete(failed, slow, now);
                }
                Poll::Ready(result)
            }
            KindProj::Rejected => Poll::Ready(Err(PipelineError::retriable(BreakerOpen::new()))),
        }
    }
}
