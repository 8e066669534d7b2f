//! Retries [`Disposition::Retriable`](crate::Disposition::Retriable) failures in place.
//!
//! The record is retried by this future, in place: with the concurrency layer outside
//! (ordered per partition by default), the next record of the partition does not run until
//! this one, retries included, is finished, so retries keep partition
//! order. Each retry waits an exponential backoff with jitter ([`RetryPolicy`]), bumps
//! [`ConsumedRecord::attempt`], and takes a token from the optional [`RetryBudget`].
//!
//! Dead-letter and fatal errors are not retried: a malformed message stays malformed.
//! When the attempts or the budget run out the last error is returned unchanged (still
//! retriable): the DLQ layer does not dead-letter it, so an outage never fills the DLQ.

mod budget;
mod future;
mod layer;
mod policy;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::budget::RetryBudget;
pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::RetryPolicy;
use crate::{ConsumedRecord, PipelineError, Processed};

/// Retries retriable failures of the inner service. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
    budget: Option<Arc<RetryBudget>>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with `policy` and no budget.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Retry {
            inner,
            policy: Arc::new(policy),
            budget: None,
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

impl<S> Service<ConsumedRecord> for Retry<S>
where
    S: Service<ConsumedRecord, Response = Processed> + Clone,
    S::Error: Into<PipelineError>,
{
    type Response = Processed;
    type Error = PipelineError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ConsumedRecord) -> Self::Future {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        // The ready service handles the first attempt; a clone (driven to readiness by the
        // future) handles retries, as tower's own Retry does.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(service, request, self.policy.clone(), self.budget.clone())
    }
}

#[cfg(test)]
mod tests;
