use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::future::BoxFuture;
use futures::FutureExt;
use pin_project_lite::pin_project;

use super::Produce;
use crate::schema::codec::Encoder;
use crate::schema::error::{Part, SchemaError};
use crate::{OutputRecord, PipelineError};

pin_project! {
    /// The [`Encode`](super::Encode) response future: the inner call, then the encoding.
    ///
    /// Cancel-safe: dropping it drops the call (or the encoding) in flight.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F>,
        encoder: Arc<E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Encoding { encode: BoxFuture<'static, Result<Vec<OutputRecord>, PipelineError>> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn new(future: F, encoder: Arc<E>) -> Self {
        ResponseFuture {
            state: State::Called { future },
            encoder,
        }
    }
}

impl<F, E> std::fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Called { .. } => "called",
            State::Encoding { .. } => "encoding",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// Encodes every value in order; the first failure fails the record.
fn encode_all<E: Encoder>(
    encoder: &E,
    outputs: Vec<Produce<E::Value>>,
) -> BoxFuture<'static, Result<Vec<OutputRecord>, PipelineError>> {
    // Start every encoding now (each owns what it needs), await them in order.
    let pending: Vec<_> = outputs
        .into_iter()
        .map(|p| {
            let encoded = p.value.map(|v| encoder.encode(&p.record.topic, v));
            (p.record, encoded)
        })
        .collect();
    async move {
        let mut records = Vec::with_capacity(pending.len());
        for (mut record, encoded) in pending {
            if let Some(encoded) = encoded {
                let bytes = encoded.await.map_err(|source| {
                    PipelineError::new(SchemaError {
                        part: Part::Output,
                        topic: (&*record.topic).into(),
                        partition: None,
                        offset: None,
                        source,
                    })
                })?;
                record.value = Some(bytes);
            } else {
                record.value = None;
            }
            records.push(record);
        }
        Ok(records)
    }
    .boxed()
}

impl<F, E, Er> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Vec<Produce<E::Value>>, Er>>,
    Er: Into<PipelineError>,
    E: Encoder,
{
    type Output = Result<Vec<OutputRecord>, PipelineError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let outputs = ready!(future.poll(cx)).map_err(Into::into)?;
                    let encode = encode_all(&**this.encoder, outputs);
                    this.state.set(State::Encoding { encode });
                }
                StateProj::Encoding { encode } => return encode.as_mut().poll(cx),
            }
        }
    }
}
