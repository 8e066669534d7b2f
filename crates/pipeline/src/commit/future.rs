use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use super::{CommitHandle, Ticket};
use crate::{PipelineError, Processed};

pin_project! {
    /// The [`Commit`](super::Commit) response future. Only an `Ok` marks the record done;
    /// an error or a drop leaves it unfinished, holding the partition's commit back.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        ticket: Option<Ticket>,
        handle: CommitHandle,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, ticket: Ticket, handle: CommitHandle) -> Self {
        ResponseFuture {
            future,
            ticket: Some(ticket),
            handle,
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
        let result = ready!(this.future.poll(cx)).map_err(Into::into);
        if result.is_ok() {
            if let Some(ticket) = this.ticket.take() {
                this.handle.done(&ticket);
            }
        }
        Poll::Ready(result)
    }
}
