//! How many records run at once and which of them must not overlap.
//!
//! The bound on in-flight records is the backpressure: [`poll_ready`](Service::poll_ready)
//! returns `Pending` while `max_in_flight` records are running, and the runner stops
//! fetching. Readiness also waits for the inner service, so an open breaker below stops
//! admission here.
//!
//! Ordering ([`Ordering`]) is per partition by default: a record waits, inside its future,
//! for the previous record of its partition (the previous one *called*, so the runner's
//! call order is the processing order); with the retry layer inside, retries happen in
//! place and keep that order. Per key lets different keys of one partition overlap;
//! unordered lets everything overlap. Either way records can finish out of order across
//! keys or partitions, which is what the commit layer's tracker is for.
//!
//! The next record of a partition (or key) starts when the previous one's future is
//! *dropped*, so the runner can mark a rewind after a retriable failure before the records
//! queued behind run. Layers outside this one should poll its future in place, as the
//! crate's instrument and commit layers do: a combinator that drops the future as it
//! completes (`map_err`, tower's `MapErr`) lets the next record start first, and after a
//! rewind that record runs once more than it needs to (a second dead letter, at worst).

mod future;
mod layer;
mod order;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::ConcurrencyLayer;
pub use self::order::Ordering;
use self::order::{Chains, OrderKey};
use crate::{ConsumedRecord, PipelineError, Processed};

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Bounds and orders concurrent records. See the [module docs](self).
pub struct Concurrency<S> {
    inner: S,
    ordering: Ordering,
    limit: Arc<Semaphore>,
    chains: Arc<Chains>,
    permit: Option<OwnedSemaphorePermit>,
    acquire: Option<Acquire>,
}

impl<S> Concurrency<S> {
    /// At most `max_in_flight` records of this service (and its clones) at once.
    pub fn new(inner: S, ordering: Ordering, max_in_flight: usize) -> Self {
        let limit = Arc::new(Semaphore::new(
            max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
        ));
        Self::from_parts(inner, ordering, limit, Arc::default())
    }

    fn from_parts(
        inner: S,
        ordering: Ordering,
        limit: Arc<Semaphore>,
        chains: Arc<Chains>,
    ) -> Self {
        Concurrency {
            inner,
            ordering,
            limit,
            chains,
            permit: None,
            acquire: None,
        }
    }

    /// Free in-flight slots right now.
    pub fn available(&self) -> usize {
        self.limit.available_permits()
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

impl<S: fmt::Debug> fmt::Debug for Concurrency<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Concurrency")
            .field("inner", &self.inner)
            .field("ordering", &self.ordering)
            .field("available", &self.limit.available_permits())
            .field("has_permit", &self.permit.is_some())
            .finish()
    }
}

impl<S: Clone> Clone for Concurrency<S> {
    /// The clone shares the bound and the chains, not this service's reserved slot.
    fn clone(&self) -> Self {
        Self::from_parts(
            self.inner.clone(),
            self.ordering,
            self.limit.clone(),
            self.chains.clone(),
        )
    }
}

impl<S> Service<ConsumedRecord> for Concurrency<S>
where
    S: Service<ConsumedRecord, Response = Processed> + Clone,
    S::Error: Into<PipelineError>,
{
    type Response = Processed;
    type Error = PipelineError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() && self.acquire.is_none() {
            // The common case, without boxing a future.
            self.permit = self.limit.clone().try_acquire_owned().ok();
        }
        if self.permit.is_none() {
            let acquire = self
                .acquire
                .get_or_insert_with(|| Box::pin(self.limit.clone().acquire_owned()));
            match acquire.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(permit)) => self.permit = Some(permit),
                // The semaphore is never closed; if it were, stop the pipeline.
                Poll::Ready(Err(e)) => return Poll::Ready(Err(PipelineError::fatal(e))),
            }
            self.acquire = None;
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ConsumedRecord) -> Self::Future {
        let permit = self.permit.take();
        let Some(key) = OrderKey::of(&request, self.ordering) else {
            return ResponseFuture::called(self.inner.call(request), None, permit);
        };
        match self.chains.join(key) {
            (None, guard) => ResponseFuture::called(self.inner.call(request), Some(guard), permit),
            (Some(previous), guard) => {
                // The record must wait: a clone runs it later, polling readiness then.
                // Whatever `self.inner` reserved in `poll_ready` (a breaker's half-open
                // probe slot) is given back now by replacing it with a fresh clone: held
                // while records queue behind a stuck one, that slot would starve the very
                // records they wait for. The next call polls readiness again anyway.
                let service = self.inner.clone();
                self.inner = self.inner.clone();
                ResponseFuture::queued(previous, service, request, guard, permit)
            }
        }
    }
}

#[cfg(test)]
mod tests;
