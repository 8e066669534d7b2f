use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::future::BoxFuture;
use futures::FutureExt;
use pin_project_lite::pin_project;
use tower::Service;

use super::Decoded;
use crate::schema::error::{Part, SchemaError};
use crate::{ConsumedRecord, PipelineError};

/// A pending decode of a key or a value.
type Pending<T> = BoxFuture<'static, Result<T, sluice_schema::Error>>;

/// Decodes the key, then the value, into a [`Decoded`].
pub(super) fn decode<K: Send + 'static, V: Send + 'static>(
    record: ConsumedRecord,
    key: Option<Pending<K>>,
    value: Option<Pending<V>>,
) -> BoxFuture<'static, Result<Decoded<K, V>, PipelineError>> {
    async move {
        let fail = |part, source| {
            PipelineError::new(SchemaError {
                part,
                topic: Arc::clone(&record.topic),
                partition: Some(record.partition),
                offset: Some(record.offset),
                source,
            })
        };
        let key = match key {
            Some(k) => Some(k.await.map_err(|e| fail(Part::Key, e))?),
            None => None,
        };
        let value = match value {
            Some(v) => Some(v.await.map_err(|e| fail(Part::Value, e))?),
            None => None,
        };
        Ok(Decoded { key, value, record })
    }
    .boxed()
}

pin_project! {
    /// The [`Decode`](super::Decode) response future: decoding, then the inner call.
    ///
    /// Cancel-safe: dropping it drops the decode (or the inner call) in flight.
    pub struct ResponseFuture<S, K, V>
    where
        S: Service<Decoded<K, V>>,
    {
        #[pin]
        state: State<S, K, V>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, K, V>
    where
        S: Service<Decoded<K, V>>,
    {
        // Decoding; the service (made ready by the caller) waits for the result.
        Decoding {
            decode: BoxFuture<'static, Result<Decoded<K, V>, PipelineError>>,
            service: Option<S>,
        },
        // The inner service has the decoded record.
        Called { #[pin] future: S::Future },
    }
}

impl<S, K, V> ResponseFuture<S, K, V>
where
    S: Service<Decoded<K, V>>,
{
    pub(super) fn new(
        service: S,
        decode: BoxFuture<'static, Result<Decoded<K, V>, PipelineError>>,
    ) -> Self {
        ResponseFuture {
            state: State::Decoding {
                decode,
                service: Some(service),
            },
        }
    }
}

impl<S, K, V> std::fmt::Debug for ResponseFuture<S, K, V>
where
    S: Service<Decoded<K, V>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Decoding { .. } => "decoding",
            State::Called { .. } => "called",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, K, V> Future for ResponseFuture<S, K, V>
where
    S: Service<Decoded<K, V>>,
    S::Error: Into<PipelineError>,
{
    type Output = Result<S::Response, PipelineError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Decoding { decode, service } => {
                    let decoded = ready!(decode.as_mut().poll(cx))?;
                    let Some(mut service) = service.take() else {
                        // Only reachable by polling after completion, which the Future
                        // contract forbids; answer instead of panicking.
                        return Poll::Ready(Err(PipelineError::fatal(
                            "decode future polled after completion",
                        )));
                    };
                    let future = service.call(decoded);
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => return future.poll(cx).map_err(Into::into),
            }
        }
    }
}
