use tower::Layer;

use super::Encode;

/// Applies [`Encode`] with one encoder for every output value.
#[derive(Debug, Clone)]
pub struct EncodeLayer<E> {
    encoder: E,
}

impl<E> EncodeLayer<E> {
    /// Encodes output values with `encoder`.
    pub fn new(encoder: E) -> Self {
        EncodeLayer { encoder }
    }
}

impl<S, E: Clone> Layer<S> for EncodeLayer<E> {
    type Service = Encode<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        Encode::new(inner, self.encoder.clone())
    }
}
