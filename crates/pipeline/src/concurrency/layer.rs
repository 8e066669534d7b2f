use std::sync::Arc;

use tokio::sync::Semaphore;
use tower::Layer;

use super::order::Chains;
use super::{Concurrency, Ordering};

/// Applies [`Concurrency`] to a service. Every service it builds shares one in-flight
/// bound and one set of ordering chains.
#[derive(Debug, Clone)]
pub struct ConcurrencyLayer {
    ordering: Ordering,
    limit: Arc<Semaphore>,
    chains: Arc<Chains>,
}

impl ConcurrencyLayer {
    /// At most `max_in_flight` records (at least 1) at once, ordered by `ordering`.
    pub fn new(ordering: Ordering, max_in_flight: usize) -> Self {
        ConcurrencyLayer {
            ordering,
            limit: Arc::new(Semaphore::new(
                max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
            chains: Arc::default(),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = Concurrency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Concurrency::from_parts(
            inner,
            self.ordering,
            self.limit.clone(),
            self.chains.clone(),
        )
    }
}
