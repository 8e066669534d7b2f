use std::sync::Arc;

use tower::Layer;

use super::Instrument;

/// Applies [`Instrument`] to a service.
#[derive(Debug, Clone, Default)]
pub struct InstrumentLayer {
    group: Option<Arc<str>>,
}

impl InstrumentLayer {
    /// Spans and metrics without a consumer group attribute.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `messaging.consumer.group.name` on every span. Takes the name as every
    /// builder here does: a `&str`, a `String`, a `&String`, an `Arc<str>`.
    pub fn consumer_group(mut self, group: impl AsRef<str>) -> Self {
        self.group = Some(Arc::from(group.as_ref()));
        self
    }
}

impl<S> Layer<S> for InstrumentLayer {
    type Service = Instrument<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Instrument::new(inner, self.group.clone())
    }
}
