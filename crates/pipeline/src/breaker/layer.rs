use std::sync::Arc;

use tower::Layer;

use super::state::Shared;
use super::{Breaker, BreakerConfig, BreakerHandle};

/// Applies [`Breaker`] to a service. Every service this layer builds (and every clone of
/// them) shares one state machine, so build it once per downstream you protect.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    shared: Arc<Shared>,
}

impl BreakerLayer {
    /// A closed breaker with `config`.
    pub fn new(config: BreakerConfig) -> Self {
        BreakerLayer {
            shared: Shared::new(config),
        }
    }

    /// The operator's handle: state, force open, disable, reset.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::from_shared(inner, self.shared.clone())
    }
}
