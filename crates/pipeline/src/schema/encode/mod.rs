//! Encodes the values of the records the inner service answers with.
//!
//! The inner service answers with [`Produce`]s: an [`OutputRecord`] (topic, partition,
//! key, headers, timestamp) and a typed value. [`Encode`] encodes each value for its
//! topic with the [`Encoder`] and answers with plain [`OutputRecord`]s, in the same
//! order, for the runner (or the DLQ layer) to produce. Keys pass through as bytes.
//!
//! An output that does not encode fails the whole record with a [`SchemaError`]
//! ([`Part::Output`](super::Part::Output)): a value that does not fit its schema is a dead
//! letter, a registry outage is retriable, an incompatible or invalid schema is fatal
//! (see the [parent module](super)). Nothing of that record is produced.
//!
//! The inner service's error is any `Into<`[`PipelineError`]`>`, as for every layer of
//! this crate.
//!
//! `Encode` serves any request type, so it fits inside [`Decode`](super::decode::Decode)
//! or on its own around a service of raw [`ConsumedRecord`](crate::ConsumedRecord)s.

mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use sluice_wire::producer::IntoTopic;
use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::EncodeLayer;
use super::codec::Encoder;
#[cfg(doc)]
use super::SchemaError;
use crate::{OutputRecord, PipelineError};

/// One record to produce with a value still to encode.
#[derive(Debug, Clone)]
pub struct Produce<V> {
    /// Where and how to produce it; its `value` is replaced by the encoded one.
    pub record: OutputRecord,
    /// The value to encode (`None`: a tombstone, produced with no value).
    pub value: Option<V>,
}

impl<V> Produce<V> {
    /// A record for `topic` carrying `value`.
    pub fn new(topic: impl IntoTopic, value: V) -> Self {
        Produce {
            // The empty value is replaced by the encoded one.
            record: OutputRecord::new(topic, Bytes::new()),
            value: Some(value),
        }
    }

    /// A tombstone for `topic` (no value).
    pub fn tombstone(topic: impl IntoTopic) -> Self {
        Produce {
            record: OutputRecord::new(topic, Bytes::new()).value(None),
            value: None,
        }
    }

    /// Sets the key (raw bytes).
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.record.key = Some(key.into());
        self
    }

    /// Sets the partition (`None`, the default, lets the producer's partitioner choose).
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.record.partition = Some(partition);
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.record
            .headers
            .push(crate::Header::new(name, Some(value.into())));
        self
    }
}

/// Encodes output values; see the [module docs](self).
#[derive(Debug)]
pub struct Encode<S, E> {
    inner: S,
    encoder: Arc<E>,
}

impl<S: Clone, E> Clone for Encode<S, E> {
    fn clone(&self) -> Self {
        Encode {
            inner: self.inner.clone(),
            encoder: Arc::clone(&self.encoder),
        }
    }
}

impl<S, E> Encode<S, E> {
    /// Wraps `inner`, encoding its outputs' values with `encoder`.
    pub fn new(inner: S, encoder: E) -> Self {
        Encode {
            inner,
            encoder: Arc::new(encoder),
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

impl<S, E, R> Service<R> for Encode<S, E>
where
    S: Service<R, Response = Vec<Produce<E::Value>>>,
    S::Error: Into<PipelineError>,
    E: Encoder,
{
    type Response = Vec<OutputRecord>;
    type Error = PipelineError;
    type Future = ResponseFuture<S::Future, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        ResponseFuture::new(self.inner.call(request), Arc::clone(&self.encoder))
    }
}

#[cfg(test)]
mod tests {
    use tower::{service_fn, ServiceExt};

    use super::*;
    use crate::schema::Raw;
    use crate::test_support::UserError;
    use crate::{ConsumedRecord, Disposition};

    #[tokio::test]
    async fn the_inner_service_may_fail_with_its_own_error_type() {
        let inner = service_fn(|r: ConsumedRecord| async move {
            match r.value() {
                Some(b"ok") => Ok(vec![Produce::new("out", Bytes::from_static(b"x"))]),
                _ => Err(UserError::Timeout),
            }
        });
        let encode = Encode::new(inner, Raw);
        let good = ConsumedRecord::new("orders", 0, 7).with_value("ok");
        let out = encode.clone().oneshot(good).await.unwrap();
        assert_eq!(out[0].value.as_deref(), Some(&b"x"[..]));
        let bad = ConsumedRecord::new("orders", 0, 8).with_value("no");
        let err: PipelineError = encode.oneshot(bad).await.unwrap_err();
        assert_eq!(err.disposition(), Disposition::Retriable);
        assert!(matches!(err.downcast_ref(), Some(UserError::Timeout)));
    }
}
