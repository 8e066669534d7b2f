//! Commit-after-process: which offsets may be committed when records finish out of order.
//!
//! The [`Commit`] layer marks each record started when it is called and done when the
//! inner stack answers `Ok` (processed, or dead-lettered and acknowledged). An error or a
//! cancelled future leaves the record unfinished, so its partition's committable offset
//! stays at or below it: nothing unprocessed is ever committed. The committable offset is
//! one past the highest offset below which everything finished ([`OffsetTracker`]).
//!
//! Committing itself needs the consumer, so it is the [runner](crate::runner)'s job: on
//! its commit interval it commits [`CommitHandle::committable`] and reports success with
//! [`CommitHandle::committed`]; on revoke it stops admitting, drains the partition's
//! in-flight records (bounded), commits [`CommitHandle::revoke`]'s offset and releases the
//! partition. Records of a revoked partition that finish late are ignored ([`Ticket`]
//! carries the assignment epoch).
//!
//! The runner does not use this layer: its `Ok` comes before the answer's outputs are
//! produced. It keeps its own [`CommitTracker`] and marks a record done only once the
//! producer acknowledged every output. Use this layer for stacks you drive yourself,
//! with outputs produced inside the stack.
//!
//! Put this layer outside the DLQ layer (a dead-lettered record is done once the DLQ write
//! is acknowledged) and inside the concurrency layer, so "started" means admitted.

mod future;
mod handle;
mod layer;
mod tracker;

use std::task::{Context, Poll};

use tower::Service;

pub use self::future::ResponseFuture;
pub use self::handle::CommitHandle;
pub use self::layer::CommitLayer;
pub use self::tracker::{CommitTracker, OffsetTracker, Ticket};
use crate::{ConsumedRecord, PipelineError, Processed};

/// Tracks each record's completion for commits. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Commit<S> {
    inner: S,
    handle: CommitHandle,
}

impl<S> Commit<S> {
    /// The tracker this service marks records in.
    pub fn handle(&self) -> &CommitHandle {
        &self.handle
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
}

impl<S> Service<ConsumedRecord> for Commit<S>
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
        let ticket = self
            .handle
            .start(&request.topic, request.partition, request.offset);
        ResponseFuture::new(self.inner.call(request), ticket, self.handle.clone())
    }
}

#[cfg(test)]
mod tests;
