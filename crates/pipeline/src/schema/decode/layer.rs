use tower::Layer;

use super::Decode;
use crate::schema::codec::Raw;

/// Applies [`Decode`]: values with one decoder, keys raw unless [`key`](Self::key) says.
#[derive(Debug, Clone)]
pub struct DecodeLayer<KD, VD> {
    key: KD,
    value: VD,
}

impl<VD: Clone> DecodeLayer<Raw, VD> {
    /// Decodes values with `value`; keys reach the service as raw bytes.
    pub fn new(value: VD) -> Self {
        DecodeLayer { key: Raw, value }
    }
}

impl<KD, VD> DecodeLayer<KD, VD> {
    /// Decodes keys with `key` too.
    pub fn key<K2>(self, key: K2) -> DecodeLayer<K2, VD> {
        DecodeLayer {
            key,
            value: self.value,
        }
    }
}

impl<S, KD: Clone, VD: Clone> Layer<S> for DecodeLayer<KD, VD> {
    type Service = Decode<S, KD, VD>;

    fn layer(&self, inner: S) -> Self::Service {
        Decode::new(inner, self.key.clone(), self.value.clone())
    }
}
