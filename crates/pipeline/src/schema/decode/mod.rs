//! Decodes each input record's key and value before the inner service sees them.
//!
//! [`Decode`] is a `Service<ConsumedRecord>` around a service of [`Decoded`] records: it
//! decodes the value (and the key, if a key decoder is set; else the key stays raw
//! [`Bytes`](bytes::Bytes)) and calls the inner service with the typed values. A record that does not
//! decode never reaches the inner service: the call fails with a [`SchemaError`] wrapped
//! in a [`PipelineError`] whose disposition says whether it is a dead letter, a registry
//! outage (retriable) or a misconfiguration (fatal); see the [parent module](super).
//!
//! Readiness is the inner service's. Decoding takes time (the first record of a schema
//! fetches it), so `call` hands the future the service that was made ready and keeps a
//! clone for the next call, as `tower-service`'s docs advise for services that call their
//! inner service later; the inner service must therefore be `Clone`.

mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::DecodeLayer;
use super::codec::{Decoder, Raw};
#[cfg(doc)]
use super::SchemaError;
use crate::{ConsumedRecord, PipelineError};

/// One input record with its key and value decoded: what the inner service receives.
#[derive(Debug, Clone)]
pub struct Decoded<K, V> {
    /// The key (`None`: the record had none).
    pub key: Option<K>,
    /// The value (`None`: a tombstone).
    pub value: Option<V>,
    /// The record as consumed: its coordinates, headers, timestamp and raw bytes.
    pub record: ConsumedRecord,
}

/// Decodes keys and values; see the [module docs](self).
#[derive(Debug)]
pub struct Decode<S, KD = Raw, VD = Raw> {
    inner: S,
    key: Arc<KD>,
    value: Arc<VD>,
}

impl<S: Clone, KD, VD> Clone for Decode<S, KD, VD> {
    fn clone(&self) -> Self {
        Decode {
            inner: self.inner.clone(),
            key: Arc::clone(&self.key),
            value: Arc::clone(&self.value),
        }
    }
}

impl<S, KD, VD> Decode<S, KD, VD> {
    /// Wraps `inner`, decoding keys with `key` and values with `value`.
    pub fn new(inner: S, key: KD, value: VD) -> Self {
        Decode {
            inner,
            key: Arc::new(key),
            value: Arc::new(value),
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

impl<S, KD, VD> Service<ConsumedRecord> for Decode<S, KD, VD>
where
    S: Service<Decoded<KD::Value, VD::Value>, Error = PipelineError> + Clone,
    KD: Decoder,
    VD: Decoder,
{
    type Response = S::Response;
    type Error = PipelineError;
    type Future = ResponseFuture<S, KD::Value, VD::Value>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, record: ConsumedRecord) -> Self::Future {
        // The ready service goes with this record; the clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let key = record.key.clone().map(|k| self.key.decode(k));
        let value = record.value.clone().map(|v| self.value.decode(v));
        ResponseFuture::new(ready, future::decode(record, key, value))
    }
}
