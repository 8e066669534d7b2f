use std::sync::Arc;

use tower::Layer;

use super::{Retry, RetryBudget, RetryPolicy};

/// Applies [`Retry`] to a service.
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
    budget: Option<Arc<RetryBudget>>,
}

impl RetryLayer {
    /// Retries retriable errors according to `policy`, without a budget.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            policy: Arc::new(policy),
            budget: None,
        }
    }

    /// Also caps retries with `budget` (shared by every service this layer builds).
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            policy: self.policy.clone(),
            budget: self.budget.clone(),
        }
    }
}
