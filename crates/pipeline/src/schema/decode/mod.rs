//! Decodes each input record's key and value before the inner service sees them.
//!
//! [`Decode`] is a `Service<ConsumedRecord>` around a service of [`Decoded`] records: it
//! decodes the value (and the key, if a key decoder is set; else the key stays raw
//! [`Bytes`](bytes::Bytes)) and calls the inner service with the typed values. A record that does not
//! decode never reaches the inner service: the call fails with a [`SchemaError`] wrapped
//! in a [`PipelineError`] whose disposition says whether it is a dead letter, a registry
//! outage (retriable) or a misconfiguration (fatal); see the [parent module](super).
//!
//! The inner service's error is any `Into<`[`PipelineError`]`>`, as for every layer of
//! this crate: your own [`Classify`](crate::Classify) error, a [`BoxError`](crate::BoxError),
//! or a `PipelineError`.
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
    S: Service<Decoded<KD::Value, VD::Value>> + Clone,
    S::Error: Into<PipelineError>,
    KD: Decoder,
    VD: Decoder,
{
    type Response = S::Response;
    type Error = PipelineError;
    type Future = ResponseFuture<S, KD::Value, VD::Value>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tower::{service_fn, ServiceExt};

    use super::*;
    use crate::test_support::UserError;
    use crate::Disposition;

    #[tokio::test]
    async fn the_inner_service_may_fail_with_its_own_error_type() {
        let inner = service_fn(|d: Decoded<Bytes, Bytes>| async move {
            match d.value.as_deref() {
                Some(b"ok") => Ok(d.record.offset),
                _ => Err(UserError::Rejected("not ok")),
            }
        });
        let decode = Decode::new(inner, Raw, Raw);
        let good = ConsumedRecord::new("orders", 0, 7).with_value("ok");
        assert_eq!(decode.clone().oneshot(good).await.unwrap(), 7);
        let bad = ConsumedRecord::new("orders", 0, 8).with_value("no");
        let err: PipelineError = decode.oneshot(bad).await.unwrap_err();
        assert_eq!(err.disposition(), Disposition::DeadLetter);
        assert!(matches!(err.downcast_ref(), Some(UserError::Rejected(_))));
    }
}
