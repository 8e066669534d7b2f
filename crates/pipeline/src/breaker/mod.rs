//! A circuit breaker whose open state is *not ready*.
//!
//! Closed, the breaker admits every call and records its outcome in a sliding window
//! ([`WindowKind`]: the last *n* calls, or the last *d* of time). Once the window holds
//! [`minimum_calls`](BreakerConfig::minimum_calls) and the failure rate or the slow-call rate
//! reaches its threshold, it opens. Open, [`poll_ready`](tower::Service::poll_ready) returns
//! `Pending` and arms a timer for the end of the wait, so the runner neither spins nor
//! admits records: it pauses the partitions (the consumer stays in its group) and lag
//! grows visibly. Then half-open admits a few probe calls; their rates decide closed or
//! open again. Operators can force it open or disable it through a [`BreakerHandle`].
//!
//! What counts as a failure: an error that is [`Retriable`](crate::Disposition::Retriable)
//! or [`Fatal`](crate::Disposition::Fatal). A [`DeadLetter`](crate::Disposition::DeadLetter)
//! error is a bad message, not a bad world, and counts as a success; so does any answer.
//!
//! # Where it goes
//!
//! Put the breaker **outside** retry: one logical call (all its attempts) then counts
//! once, and a record whose retries are exhausted counts as one failure. Inside retry, every
//! attempt would count and an open breaker would burn the retry attempts on rejections.

mod config;
mod error;
mod future;
mod layer;
mod state;
mod window;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Sleep;
use tower::Service;

pub use self::config::BreakerConfig;
pub use self::error::BreakerOpen;
pub use self::future::ResponseFuture;
pub use self::layer::BreakerLayer;
use self::state::{Admission, Permit, Shared};
pub use self::state::{BreakerHandle, BreakerState};
pub use self::window::WindowKind;
use crate::{ConsumedRecord, PipelineError, Processed};

/// A circuit breaker around the inner service. See the [module docs](self).
#[derive(Debug)]
pub struct Breaker<S> {
    inner: S,
    shared: Arc<Shared>,
    /// Admission granted by `poll_ready`, spent by `call`.
    permit: Option<Permit>,
    /// Wakes the task when the open wait ends.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> Breaker<S> {
    /// A breaker with its own state (use [`BreakerLayer`] to share one between services).
    pub fn new(inner: S, config: BreakerConfig) -> Self {
        Self::from_shared(inner, Shared::new(config))
    }

    fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Breaker {
            inner,
            shared,
            permit: None,
            sleep: None,
        }
    }

    /// The operator's handle to this breaker's state.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.shared.clone(),
        }
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

impl<S: Clone> Clone for Breaker<S> {
    /// The clone shares the state machine but not this service's admission.
    fn clone(&self) -> Self {
        Breaker::from_shared(self.inner.clone(), self.shared.clone())
    }
}

impl<S> Service<ConsumedRecord> for Breaker<S>
where
    S: Service<ConsumedRecord, Response = Processed>,
    S::Error: Into<PipelineError>,
{
    type Response = Processed;
    type Error = PipelineError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while self.permit.is_none() {
            match self.shared.admit(cx.waker()) {
                Admission::Admitted(permit) => {
                    self.sleep = None;
                    self.permit = Some(permit);
                }
                Admission::OpenUntil(until) => {
                    let sleep = match &mut self.sleep {
                        Some(sleep) => {
                            if sleep.deadline() != until {
                                sleep.as_mut().reset(until);
                            }
                            sleep
                        }
                        None => self.sleep.insert(Box::pin(tokio::time::sleep_until(until))),
                    };
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The wait is over: ask again, which moves the breaker to half-open.
                }
                Admission::Parked => return Poll::Pending,
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ConsumedRecord) -> Self::Future {
        match self.permit.take() {
            Some(permit) => ResponseFuture::called(self.inner.call(request), permit),
            None => ResponseFuture::rejected(),
        }
    }
}

#[cfg(test)]
mod tests;
